// What connecting needs of each provider: the authorize URL, the code exchange, the remote
// account id (HubSpot hub id from the access-token info, Salesforce org id from the identity
// URL, Pipedrive company id from users/me), the test call of a pasted token, and revocation.
// Every request has a timeout (cfg.timeoutMs). These calls happen before a connection exists
// (or, for revocation, as it ends), so they are not charged to a connection's rate budget; the
// token endpoints are not API calls the budget counts either (as in providers/hubspot.ts).
// Tokens never appear in errors or logs: messages carry statuses and provider error codes only.
import type { ProviderName } from "../providers/types.ts";
import { type ConnectConfig, type OAuthApp, SCOPES } from "./config.ts";

export class ConnectError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/** What a successful connect learned: credentials to store, where, and whose they are. */
export interface Grant {
  credentials: Record<string, string>;
  remoteAccountId: string;
  name: string;
  settings: Record<string, unknown>;
}

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

async function call(cfg: ConnectConfig, url: string, init: RequestInit = {}): Promise<Answer> {
  let res: Response;
  try {
    res = await fetch(url, { ...init, signal: AbortSignal.timeout(cfg.timeoutMs) });
  } catch (e) {
    const what = (e as Error).name === "TimeoutError" ? "timed out" : "unreachable";
    throw new ConnectError("provider_unavailable", `${new URL(url).host} ${what}`);
  }
  const text = await res.text().catch(() => "");
  let body: Record<string, unknown> = {};
  try {
    const parsed = JSON.parse(text);
    if (parsed && typeof parsed === "object") body = parsed;
  } catch { /* not JSON */ }
  return { status: res.status, body };
}

const form = (data: Record<string, string>, headers: Record<string, string> = {}) => ({
  method: "POST",
  headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
  body: new URLSearchParams(data),
});
const bearer = (t: string) => ({ headers: { authorization: `Bearer ${t}` } });
const basic = (app: OAuthApp) => ({
  authorization: `Basic ${btoa(`${app.clientId}:${app.clientSecret}`)}`,
});
const str = (v: unknown) => (typeof v === "string" || typeof v === "number") ? String(v) : "";
const errCode = (b: Record<string, unknown>) => str(b.error ?? b.status ?? b.errorCode) || "error";
const expiresAt = (b: Record<string, unknown>) =>
  typeof b.expires_in === "number"
    ? new Date(Date.now() + b.expires_in * 1000).toISOString()
    : undefined;

function need(cfg: ConnectConfig, p: ProviderName): OAuthApp {
  const app = cfg.apps[p];
  if (!app) throw new ConnectError("not_configured", `${p} OAuth is not configured`);
  return app;
}

function tokens(b: Record<string, unknown>, what: string): { access: string; refresh: string } {
  if (typeof b.access_token !== "string" || !b.access_token) {
    throw new ConnectError("exchange_failed", `${what} answered no access token`);
  }
  return {
    access: b.access_token,
    refresh: typeof b.refresh_token === "string" ? b.refresh_token : "",
  };
}

export interface ConnectProvider {
  /** Whether authorize takes a PKCE challenge (RFC 7636, S256). */
  pkce: boolean;
  authorizeUrl(cfg: ConnectConfig, state: string, challenge: string | null): string;
  exchange(cfg: ConnectConfig, code: string, verifier: string | null): Promise<Grant>;
  /** Connect with a pasted token, checked by a test call; absent = not offered. */
  tokenConnect?(cfg: ConnectConfig, token: string): Promise<Grant>;
  /** Revokes the stored grant; false when the provider has no API for it (pasted tokens). */
  revoke(cfg: ConnectConfig, credentials: Record<string, string>): Promise<boolean>;
}

const hubspot: ConnectProvider = {
  pkce: false,
  authorizeUrl(cfg, state) {
    const u = new URL(cfg.hubspot.authorizeUrl);
    u.searchParams.set("client_id", need(cfg, "hubspot").clientId);
    u.searchParams.set("redirect_uri", cfg.callbackUrl);
    u.searchParams.set("scope", SCOPES.hubspot.join(" "));
    u.searchParams.set("state", state);
    return u.toString();
  },
  async exchange(cfg, code) {
    const app = need(cfg, "hubspot");
    const api = cfg.hubspot.apiUrl;
    const t = await call(
      cfg,
      `${api}/oauth/v1/token`,
      form({
        grant_type: "authorization_code",
        client_id: app.clientId,
        client_secret: app.clientSecret,
        redirect_uri: cfg.callbackUrl,
        code,
      }),
    );
    if (t.status !== 200) {
      throw new ConnectError(
        "exchange_failed",
        `HubSpot refused the code (${t.status} ${errCode(t.body)})`,
      );
    }
    const { access, refresh } = tokens(t.body, "HubSpot");
    const info = await call(cfg, `${api}/oauth/v1/access-tokens/${encodeURIComponent(access)}`);
    const hub = str(info.body.hub_id);
    if (info.status !== 200 || !hub) {
      throw new ConnectError(
        "identity_failed",
        `HubSpot access-token info failed (${info.status})`,
      );
    }
    return {
      credentials: {
        accessToken: access,
        refreshToken: refresh,
        clientId: app.clientId,
        clientSecret: app.clientSecret,
        ...(expiresAt(t.body) ? { expiresAt: expiresAt(t.body)! } : {}),
      },
      remoteAccountId: hub,
      name: str(info.body.hub_domain) || `HubSpot ${hub}`,
      settings: cfg.hubspot.sandbox ? { base_url: api } : {},
    };
  },
  async tokenConnect(cfg, token) {
    const api = cfg.hubspot.apiUrl;
    const r = await call(cfg, `${api}/account-info/v3/details`, bearer(token));
    const portal = str(r.body.portalId);
    if (r.status !== 200 || !portal) {
      throw new ConnectError("invalid_token", `HubSpot refused the token (${r.status})`);
    }
    return {
      credentials: { accessToken: token },
      remoteAccountId: portal,
      name: `HubSpot ${portal}`,
      settings: cfg.hubspot.sandbox ? { base_url: api } : {},
    };
  },
  async revoke(cfg, c) {
    if (!c.refreshToken) return false;
    const r = await call(
      cfg,
      `${cfg.hubspot.apiUrl}/oauth/v1/refresh-tokens/${encodeURIComponent(c.refreshToken)}`,
      { method: "DELETE" },
    );
    return r.status < 300;
  },
};

/** The org id in a Salesforce identity URL (…/id/<orgId>/<userId>). */
export function orgIdOf(identityUrl: string): string | null {
  try {
    const m = new URL(identityUrl).pathname.match(
      /^\/id\/([A-Za-z0-9]{15,18})\/([A-Za-z0-9]{15,18})$/,
    );
    return m?.[1] ?? null;
  } catch {
    return null;
  }
}

const salesforce: ConnectProvider = {
  pkce: true,
  authorizeUrl(cfg, state, challenge) {
    const u = new URL(`${cfg.salesforce.loginUrl}/services/oauth2/authorize`);
    u.searchParams.set("response_type", "code");
    u.searchParams.set("client_id", need(cfg, "salesforce").clientId);
    u.searchParams.set("redirect_uri", cfg.callbackUrl);
    u.searchParams.set("scope", SCOPES.salesforce.join(" "));
    u.searchParams.set("state", state);
    // Always the consent screen: a user already signed in to another org sees which org and
    // scopes they grant, rather than being connected silently (Salesforce's prompt parameter).
    u.searchParams.set("prompt", "consent");
    if (challenge) {
      u.searchParams.set("code_challenge", challenge);
      u.searchParams.set("code_challenge_method", "S256");
    }
    return u.toString();
  },
  async exchange(cfg, code, verifier) {
    const app = need(cfg, "salesforce");
    const login = cfg.salesforce.loginUrl;
    const t = await call(
      cfg,
      `${login}/services/oauth2/token`,
      form({
        grant_type: "authorization_code",
        client_id: app.clientId,
        client_secret: app.clientSecret,
        redirect_uri: cfg.callbackUrl,
        code,
        ...(verifier ? { code_verifier: verifier } : {}),
      }),
    );
    if (t.status !== 200) {
      throw new ConnectError(
        "exchange_failed",
        `Salesforce refused the code (${t.status} ${errCode(t.body)})`,
      );
    }
    const { access, refresh } = tokens(t.body, "Salesforce");
    const idUrl = str(t.body.id);
    const instance = str(t.body.instance_url);
    const org = orgIdOf(idUrl);
    if (!org || !/^https?:\/\//.test(instance)) {
      throw new ConnectError(
        "identity_failed",
        "Salesforce answered no identity URL or instance URL",
      );
    }
    // The identity URL is asked too: the org it names must be the one the token belongs to.
    const who = await call(cfg, idUrl, bearer(access));
    if (who.status !== 200 || str(who.body.organization_id) !== org) {
      throw new ConnectError(
        "identity_failed",
        `Salesforce identity lookup failed (${who.status})`,
      );
    }
    return {
      credentials: {
        accessToken: access,
        refreshToken: refresh,
        clientId: app.clientId,
        clientSecret: app.clientSecret,
        instanceUrl: instance.replace(/\/+$/, ""),
        loginUrl: login,
      },
      remoteAccountId: org,
      name: str(who.body.username) ? `Salesforce ${str(who.body.username)}` : `Salesforce ${org}`,
      settings: {},
    };
  },
  async revoke(cfg, c) {
    const token = c.refreshToken || c.accessToken;
    if (!token) return false;
    const r = await call(
      cfg,
      `${c.loginUrl || cfg.salesforce.loginUrl}/services/oauth2/revoke`,
      form({ token }),
    );
    return r.status < 300;
  },
};

async function pipedriveMe(cfg: ConnectConfig, apiBase: string, init: RequestInit) {
  const r = await call(cfg, `${apiBase}/v1/users/me`, init);
  const data = (r.body.data ?? {}) as Record<string, unknown>;
  return { status: r.status, company: str(data.company_id), domain: str(data.company_domain) };
}

const pipedrive: ConnectProvider = {
  pkce: false,
  authorizeUrl(cfg, state) {
    const u = new URL(`${cfg.pipedrive.oauthUrl}/oauth/authorize`);
    u.searchParams.set("client_id", need(cfg, "pipedrive").clientId);
    u.searchParams.set("redirect_uri", cfg.callbackUrl);
    u.searchParams.set("state", state);
    return u.toString();
  },
  async exchange(cfg, code) {
    const app = need(cfg, "pipedrive");
    const t = await call(
      cfg,
      `${cfg.pipedrive.oauthUrl}/oauth/token`,
      form({ grant_type: "authorization_code", code, redirect_uri: cfg.callbackUrl }, basic(app)),
    );
    if (t.status !== 200) {
      throw new ConnectError(
        "exchange_failed",
        `Pipedrive refused the code (${t.status} ${errCode(t.body)})`,
      );
    }
    const { access, refresh } = tokens(t.body, "Pipedrive");
    const apiDomain = str(t.body.api_domain).replace(/\/+$/, "");
    if (!/^https?:\/\//.test(apiDomain)) {
      throw new ConnectError("identity_failed", "Pipedrive answered no api_domain");
    }
    const me = await pipedriveMe(cfg, apiDomain, bearer(access));
    if (me.status !== 200 || !me.company) {
      throw new ConnectError("identity_failed", `Pipedrive users/me failed (${me.status})`);
    }
    return {
      credentials: {
        accessToken: access,
        refreshToken: refresh,
        clientId: app.clientId,
        clientSecret: app.clientSecret,
        tokenUrl: `${cfg.pipedrive.oauthUrl}/oauth/token`,
        ...(me.domain ? { companyDomain: me.domain } : {}),
        ...(expiresAt(t.body) ? { expiresAt: expiresAt(t.body)! } : {}),
      },
      remoteAccountId: me.company,
      name: me.domain ? `Pipedrive ${me.domain}` : `Pipedrive ${me.company}`,
      settings: { base_url: apiDomain },
    };
  },
  async tokenConnect(cfg, token) {
    const api = cfg.pipedrive.apiUrl;
    const me = await pipedriveMe(cfg, api, { headers: { "x-api-token": token } });
    if (me.status !== 200 || !me.company) {
      throw new ConnectError("invalid_token", `Pipedrive refused the token (${me.status})`);
    }
    return {
      credentials: { apiToken: token, ...(me.domain ? { companyDomain: me.domain } : {}) },
      remoteAccountId: me.company,
      name: me.domain ? `Pipedrive ${me.domain}` : `Pipedrive ${me.company}`,
      settings: cfg.pipedrive.sandbox ? { base_url: api } : {},
    };
  },
  async revoke(cfg, c) {
    const app = cfg.apps.pipedrive ??
      (c.clientId && c.clientSecret
        ? { clientId: c.clientId, clientSecret: c.clientSecret }
        : null);
    if (!c.refreshToken || !app) return false;
    const r = await call(
      cfg,
      `${cfg.pipedrive.oauthUrl}/oauth/revoke`,
      form({ token: c.refreshToken, token_type_hint: "refresh_token" }, basic(app)),
    );
    return r.status < 300;
  },
};

export const CONNECT_PROVIDERS: Record<ProviderName, ConnectProvider> = {
  hubspot,
  salesforce,
  pipedrive,
};
