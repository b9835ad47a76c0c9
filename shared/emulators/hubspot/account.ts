/**
 * HubSpot portals of a multi-account sandbox: credentials of portal `i` derived from the seed
 * (portal 0 = the single-portal sandbox's), and the routing keys HubSpot itself resolves a
 * portal by: the bearer token (OAuth access token or private-app token), the refresh token or
 * code at /oauth/v1/token, the client id at /oauth/authorize, the app id or developer key of
 * the webhooks settings API.
 */
import { Prng } from "../common/prng.ts";
import { type AccountDescriptor, accountSeed } from "../common/tenancy.ts";
import { readForm } from "../common/http.ts";

export interface HubSpotCredentials {
  accessToken: string;
  refreshToken: string;
  privateAppToken: string;
  clientId: string;
  clientSecret: string;
  developerApiKey: string;
  portalId: number;
  appId: number;
}

/**
 * Portal 0 draws its ids at random as it always did; portal i > 0 gets ids outside portal 0's
 * ranges, numbered by i, so ids never collide (crm.connections is unique per portal id).
 */
export function hubspotCredentials(seed: number, account: number): HubSpotCredentials {
  const c = new Prng(accountSeed(seed, account)).fork("hubspot").fork("credentials");
  const creds = {
    accessToken: `C${c.alnum(10).toUpperCase()}${c.alnum(50)}`,
    refreshToken: c.uuid(),
    privateAppToken: `pat-na1-${c.uuid()}`,
    clientId: c.uuid(),
    clientSecret: c.uuid(),
    developerApiKey: c.uuid(),
    portalId: 10_000_000 + c.int(0, 89_999_999),
    appId: 1_000_000 + c.int(0, 8_999_999),
  };
  if (account > 0) {
    creds.portalId = 100_000_000 + account;
    creds.appId = 10_000_000 + account;
  }
  return creds;
}

export function hubspotEnv(c: HubSpotCredentials): Record<string, string> {
  return {
    HUBSPOT_ACCESS_TOKEN: c.accessToken,
    HUBSPOT_REFRESH_TOKEN: c.refreshToken,
    HUBSPOT_CLIENT_ID: c.clientId,
    HUBSPOT_CLIENT_SECRET: c.clientSecret,
    HUBSPOT_PORTAL_ID: String(c.portalId),
    HUBSPOT_APP_ID: String(c.appId),
    HUBSPOT_PRIVATE_APP_TOKEN: c.privateAppToken,
    HUBSPOT_DEVELOPER_API_KEY: c.developerApiKey,
  };
}

export function hubspotAccount(seed: number, account: number): AccountDescriptor {
  const c = hubspotCredentials(seed, account);
  return {
    id: String(c.portalId),
    credentials: hubspotEnv(c),
    keys: [
      `token:${c.accessToken}`,
      `token:${c.refreshToken}`,
      `token:${c.privateAppToken}`,
      `client:${c.clientId}`,
      `app:${c.appId}`,
      `devkey:${c.developerApiKey}`,
    ],
  };
}

const TOKEN_INFO = /^\/oauth\/v1\/(?:access|refresh)-tokens\/([^/]+)$/;
const WEBHOOKS = /^\/webhooks\/v3\/([^/]+)\//;

export async function hubspotRoutingKeys(req: Request, url: URL): Promise<string[]> {
  const keys: string[] = [];
  const bearer = /^Bearer\s+(.+)$/i.exec(req.headers.get("authorization")?.trim() ?? "")?.[1];
  if (bearer) keys.push(`token:${bearer.trim()}`);
  const p = url.pathname;
  if (p === "/oauth/v1/token" && req.method === "POST") {
    const form = await readForm(req.clone());
    for (const k of ["refresh_token", "code"]) {
      const v = form.get(k);
      if (v) keys.push(`token:${v}`);
    }
    const client = form.get("client_id");
    if (client) keys.push(`client:${client}`);
  }
  const client = url.searchParams.get("client_id");
  if (client) keys.push(`client:${client}`);
  const info = TOKEN_INFO.exec(p);
  if (info) keys.push(`token:${decodeURIComponent(info[1])}`);
  const hook = WEBHOOKS.exec(p);
  if (hook) keys.push(`app:${decodeURIComponent(hook[1])}`);
  const hapikey = url.searchParams.get("hapikey");
  if (hapikey) keys.push(`devkey:${hapikey}`);
  return keys;
}
