/**
 * Salesforce orgs of a multi-org sandbox, all on one shared instance URL (as many orgs share
 * a pod): credentials of org `i` derived from the seed (org 0 = the single-org sandbox's), and
 * the routing keys Salesforce resolves an org by: the session (bearer) token; at
 * /services/oauth2/token the refresh token, code, username or client id (connected app);
 * the client id at /services/oauth2/authorize; the org id of the identity URL.
 */
import { Prng } from "../common/prng.ts";
import { type AccountDescriptor, accountSeed } from "../common/tenancy.ts";
import { readForm } from "../common/http.ts";
import { KEY_PREFIX, makeId } from "./ids.ts";

export interface SalesforceCredentials {
  accessToken: string;
  refreshToken: string;
  clientId: string;
  clientSecret: string;
  orgId: string;
  userId: string;
  username: string;
  password: string;
}

/**
 * Org 0 draws its org number at random as it always did (1..1,000,000); org i > 0 is number
 * 1,000,000 + i and its username carries i, so org ids and usernames never collide.
 */
export function salesforceCredentials(seed: number, account: number): SalesforceCredentials {
  const c = new Prng(accountSeed(seed, account)).fork("salesforce").fork("credentials");
  const drawn = c.int(1, 1_000_000);
  const orgId = makeId(KEY_PREFIX.Organization, account === 0 ? drawn : 1_000_000 + account, "0D");
  return {
    accessToken: `${orgId.slice(0, 15)}!${c.alnum(20).toUpperCase()}${c.alnum(60)}`,
    refreshToken: `5Aep861${c.alnum(80)}`,
    clientId: `3MVG9${c.alnum(80)}`,
    clientSecret: c.digits(19).replace(/^0/, "1") + c.hex(45).toUpperCase(),
    orgId,
    userId: makeId(KEY_PREFIX.User, 1),
    username: `integration@sandbox-${c.alnum(6)}${account === 0 ? "" : `-${account}`}.example`,
    password: `pw-${c.alnum(12)}`,
  };
}

export function salesforceEnv(c: SalesforceCredentials, url: string): Record<string, string> {
  return {
    SALESFORCE_ACCESS_TOKEN: c.accessToken,
    SALESFORCE_REFRESH_TOKEN: c.refreshToken,
    SALESFORCE_CLIENT_ID: c.clientId,
    SALESFORCE_CLIENT_SECRET: c.clientSecret,
    SALESFORCE_ORG_ID: c.orgId,
    SALESFORCE_INSTANCE_URL: url,
    SALESFORCE_LOGIN_URL: url,
    SALESFORCE_USER_ID: c.userId,
    SALESFORCE_USERNAME: c.username,
    SALESFORCE_PASSWORD: c.password,
    SALESFORCE_API_VERSION: "62.0",
  };
}

export function salesforceAccount(seed: number, account: number, url: string): AccountDescriptor {
  const c = salesforceCredentials(seed, account);
  return {
    id: c.orgId,
    credentials: salesforceEnv(c, url),
    keys: [
      `token:${c.accessToken}`,
      `token:${c.refreshToken}`,
      `client:${c.clientId}`,
      `user:${c.username}`,
      `org:${c.orgId}`,
    ],
  };
}

const IDENTITY = /^\/id\/([^/]+)\//;

export async function salesforceRoutingKeys(req: Request, url: URL): Promise<string[]> {
  const keys: string[] = [];
  const auth = /^(?:Bearer|OAuth)\s+(.+)$/i.exec(req.headers.get("authorization")?.trim() ?? "");
  if (auth) keys.push(`token:${auth[1].trim()}`);
  const p = url.pathname;
  if (
    (p === "/services/oauth2/token" || p === "/services/oauth2/revoke") && req.method === "POST"
  ) {
    const form = await readForm(req.clone());
    for (const k of ["refresh_token", "code", "token"]) {
      const v = form.get(k);
      if (v) keys.push(`token:${v}`);
    }
    const user = form.get("username");
    if (user) keys.push(`user:${user}`);
    const client = form.get("client_id");
    if (client) keys.push(`client:${client}`);
  }
  for (const k of ["token", "oauth_token"]) {
    const v = url.searchParams.get(k);
    if (v) keys.push(`token:${v}`);
  }
  const client = url.searchParams.get("client_id");
  if (client) keys.push(`client:${client}`);
  const identity = IDENTITY.exec(p);
  if (identity) keys.push(`org:${decodeURIComponent(identity[1])}`);
  return keys;
}
