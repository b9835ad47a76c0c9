/**
 * Pipedrive companies of a multi-company sandbox: credentials of company `i` derived from the
 * seed (company 0 = the single-company sandbox's), and the routing keys Pipedrive resolves a
 * company by: the API token (`x-api-token` or `?api_token=`), the OAuth bearer token, the
 * refresh token or code at /oauth/token, the client id (HTTP Basic or `client_id`).
 */
import { Prng } from "../common/prng.ts";
import { type AccountDescriptor, accountSeed } from "../common/tenancy.ts";
import { parseBasicAuth, readForm } from "../common/http.ts";

export interface PipedriveCredentials {
  apiToken: string;
  clientId: string;
  clientSecret: string;
  companyId: number;
  companyDomain: string;
  accessToken: string;
  refreshToken: string;
}

/**
 * Company 0 draws its id at random as it always did (10,000,000..19,999,999); company i > 0 is
 * 20,000,000 + i, so ids never collide (crm.connections is unique per company id).
 */
export function pipedriveCredentials(seed: number, account: number): PipedriveCredentials {
  const c = new Prng(accountSeed(seed, account)).fork("pipedrive").fork("credentials");
  const drawn = 10_000_000 + c.int(0, 9_999_999);
  const companyId = account === 0 ? drawn : 20_000_000 + account;
  return {
    apiToken: c.hex(40),
    clientId: c.hex(16),
    clientSecret: c.hex(40),
    companyId,
    companyDomain: `sandbox-${companyId}`,
    accessToken: `${companyId}:1:${c.hex(40)}`,
    refreshToken: `${companyId}:1:${c.hex(40)}`,
  };
}

export function pipedriveEnv(c: PipedriveCredentials): Record<string, string> {
  return {
    PIPEDRIVE_API_TOKEN: c.apiToken,
    PIPEDRIVE_CLIENT_ID: c.clientId,
    PIPEDRIVE_CLIENT_SECRET: c.clientSecret,
    PIPEDRIVE_COMPANY_ID: String(c.companyId),
    PIPEDRIVE_COMPANY_DOMAIN: c.companyDomain,
    PIPEDRIVE_ACCESS_TOKEN: c.accessToken,
    PIPEDRIVE_REFRESH_TOKEN: c.refreshToken,
    PIPEDRIVE_USER_ID: "1",
  };
}

export function pipedriveAccount(seed: number, account: number): AccountDescriptor {
  const c = pipedriveCredentials(seed, account);
  return {
    id: String(c.companyId),
    credentials: pipedriveEnv(c),
    keys: [
      `token:${c.apiToken}`,
      `token:${c.accessToken}`,
      `token:${c.refreshToken}`,
      `client:${c.clientId}`,
    ],
  };
}

export async function pipedriveRoutingKeys(req: Request, url: URL): Promise<string[]> {
  const keys: string[] = [];
  const auth = req.headers.get("authorization")?.trim() ?? "";
  const bearer = /^Bearer\s+(.+)$/i.exec(auth)?.[1];
  if (bearer) keys.push(`token:${bearer.trim()}`);
  const apiToken = req.headers.get("x-api-token") ?? url.searchParams.get("api_token");
  if (apiToken) keys.push(`token:${apiToken}`);
  if (url.pathname.startsWith("/oauth/")) {
    if (req.method === "POST") {
      const form = await readForm(req.clone());
      for (const k of ["refresh_token", "code", "token"]) {
        const v = form.get(k);
        if (v) keys.push(`token:${v}`);
      }
      const client = form.get("client_id");
      if (client) keys.push(`client:${client}`);
    }
    const basic = parseBasicAuth(auth);
    if (basic) keys.push(`client:${basic.user}`);
    const client = url.searchParams.get("client_id");
    if (client) keys.push(`client:${client}`);
  }
  return keys;
}
