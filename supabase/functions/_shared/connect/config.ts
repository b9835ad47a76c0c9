// crm-connect's configuration, from function secrets only (never from a request):
// - per provider, the OAuth app: CRM_<P>_CLIENT_ID / CRM_<P>_CLIENT_SECRET, and where it lives
//   (CRM_HUBSPOT_AUTHORIZE_URL, CRM_HUBSPOT_API_URL, CRM_SALESFORCE_LOGIN_URL,
//   CRM_PIPEDRIVE_OAUTH_URL, CRM_PIPEDRIVE_API_URL; production hosts by default, a sandbox's
//   URL locally). A provider without a client id offers no OAuth (its /start answers 400);
//   token connect (HubSpot private app, Pipedrive API token) needs no OAuth app.
// - CRM_CONNECT_CALLBACK_URL: this function's public /callback URL, registered as the
//   redirect URI of each OAuth app (default SUPABASE_URL/functions/v1/crm-connect/callback).
// - CRM_CONNECT_REDIRECT_ALLOW_LIST: comma-separated URLs the app may send users back to;
//   `redirect_to` must have the same origin as an entry and a path under the entry's path.
//   The first entry is the default. Empty: redirect_to is refused and the callback answers a
//   small page instead of redirecting.
// - The state signing key: CRM_STATE_SECRET (≥ 32 bytes) when set, else derived from
//   CRM_ENCRYPTION_KEY with HKDF-SHA256 (info "crm-connect/state/v1"), so no further secret is
//   needed and rotating the encryption key also rotates it (pending states then fail: minutes).
import type { ProviderName } from "../providers/types.ts";

export interface OAuthApp {
  clientId: string;
  clientSecret: string;
}

export interface ConnectConfig {
  callbackUrl: string;
  allowList: URL[];
  apps: Partial<Record<ProviderName, OAuthApp>>;
  hubspot: { authorizeUrl: string; apiUrl: string; sandbox: boolean };
  salesforce: { loginUrl: string };
  pipedrive: { oauthUrl: string; apiUrl: string; sandbox: boolean };
  /** Longest wait for one provider answer. */
  timeoutMs: number;
  /** How long a started flow may take (the state's and the nonce's lifetime). */
  stateTtlS: number;
}

/**
 * The scopes the engine needs, nothing more. HubSpot: read/write the three objects, read
 * owners, and the schemas (create the external-id properties outbound uses). Salesforce: the
 * REST API, a refresh token, and the identity URL (org id). Pipedrive has no scope parameter:
 * scopes are chosen when the app is registered (see the README).
 */
export const SCOPES: Record<ProviderName, string[]> = {
  hubspot: [
    "oauth",
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.objects.companies.read",
    "crm.objects.companies.write",
    "crm.objects.deals.read",
    "crm.objects.deals.write",
    "crm.objects.owners.read",
    "crm.schemas.contacts.read",
    "crm.schemas.contacts.write",
    "crm.schemas.companies.read",
    "crm.schemas.companies.write",
    "crm.schemas.deals.read",
    "crm.schemas.deals.write",
  ],
  salesforce: ["api", "refresh_token", "id"],
  pipedrive: [],
};

const trim = (u: string) => u.replace(/\/+$/, "");

export function connectConfigFromEnv(
  env: { get(k: string): string | undefined } = Deno.env,
): ConnectConfig {
  const apps: ConnectConfig["apps"] = {};
  for (const p of ["hubspot", "salesforce", "pipedrive"] as const) {
    const id = env.get(`CRM_${p.toUpperCase()}_CLIENT_ID`);
    const secret = env.get(`CRM_${p.toUpperCase()}_CLIENT_SECRET`);
    if (id && secret) apps[p] = { clientId: id, clientSecret: secret };
  }
  const supabase = env.get("SUPABASE_URL");
  const callbackUrl = env.get("CRM_CONNECT_CALLBACK_URL") ??
    (supabase ? `${trim(supabase)}/functions/v1/crm-connect/callback` : "");
  const allowList: URL[] = [];
  for (const entry of (env.get("CRM_CONNECT_REDIRECT_ALLOW_LIST") ?? "").split(",")) {
    const e = entry.trim();
    if (!e) continue;
    try {
      const u = new URL(e);
      if (u.protocol === "https:" || u.protocol === "http:") allowList.push(u);
    } catch {
      console.error(JSON.stringify({ msg: "CRM_CONNECT_REDIRECT_ALLOW_LIST: not a URL; ignored" }));
    }
  }
  const hsApi = env.get("CRM_HUBSPOT_API_URL");
  const pdApi = env.get("CRM_PIPEDRIVE_API_URL");
  return {
    callbackUrl,
    allowList,
    apps,
    hubspot: {
      authorizeUrl: env.get("CRM_HUBSPOT_AUTHORIZE_URL") ??
        "https://app.hubspot.com/oauth/authorize",
      apiUrl: trim(hsApi ?? "https://api.hubapi.com"),
      sandbox: !!hsApi,
    },
    salesforce: {
      loginUrl: trim(env.get("CRM_SALESFORCE_LOGIN_URL") ?? "https://login.salesforce.com"),
    },
    pipedrive: {
      oauthUrl: trim(env.get("CRM_PIPEDRIVE_OAUTH_URL") ?? "https://oauth.pipedrive.com"),
      apiUrl: trim(pdApi ?? "https://api.pipedrive.com"),
      sandbox: !!pdApi,
    },
    timeoutMs: Number(env.get("CRM_CONNECT_TIMEOUT_MS") ?? "") || 10_000,
    stateTtlS: 10 * 60,
  };
}

/** A path with no encoded slash or backslash, and, once decoded, no empty or dot segment nor
 * backslash: a prefix check on it cannot be escaped by what a server or browser decodes later
 * (`/app/..%2fadmin`, `/app/%2e%2e/x`, `/app//evil.example`). */
function plainPath(pathname: string): boolean {
  if (/%2f|%5c/i.test(pathname)) return false;
  let decoded: string;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    return false;
  }
  if (decoded.includes("\\") || decoded.includes("//")) return false;
  return !decoded.split("/").some((seg) => seg === "." || seg === "..");
}

/** The allowed redirect target for `requested` (the first entry when absent), or null. */
export function allowedRedirect(cfg: ConnectConfig, requested?: string): string | null {
  if (requested === undefined) return cfg.allowList[0]?.toString() ?? null;
  let u: URL;
  try {
    u = new URL(requested);
  } catch {
    return null;
  }
  if (u.username || u.password) return null;
  if (!plainPath(u.pathname)) return null;
  for (const entry of cfg.allowList) {
    if (u.origin !== entry.origin) continue;
    const base = entry.pathname.endsWith("/") ? entry.pathname : `${entry.pathname}/`;
    if (u.pathname === entry.pathname || u.pathname.startsWith(base)) return u.toString();
  }
  return null;
}

/** The HS256 key of the state tokens (see the header). */
export async function stateKey(
  env: { get(k: string): string | undefined } = Deno.env,
): Promise<Uint8Array> {
  const own = env.get("CRM_STATE_SECRET");
  if (own) {
    const bytes = new TextEncoder().encode(own);
    if (bytes.length < 32) throw new Error("CRM_STATE_SECRET must be at least 32 bytes");
    return bytes;
  }
  const base = env.get("CRM_ENCRYPTION_KEY");
  if (!base) throw new Error("CRM_ENCRYPTION_KEY is not set");
  const raw = Uint8Array.from(atob(base), (c) => c.charCodeAt(0));
  const ikm = await crypto.subtle.importKey("raw", raw, "HKDF", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits(
    {
      name: "HKDF",
      hash: "SHA-256",
      salt: new Uint8Array(32),
      info: new TextEncoder().encode("crm-connect/state/v1"),
    },
    ikm,
    256,
  );
  return new Uint8Array(bits);
}
