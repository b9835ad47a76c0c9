// `npm start` connects its CRM sandboxes the way a user connects a real CRM: through the
// crm-connect function, as the dev account's user (a JWT minted with the stack's JWT secret),
// instead of writing crm.connections rows behind the engine's back (./connections.ts, which the
// test profile keeps: its suites are written against those rows).
//  - The function secrets crm-connect needs for the sandboxes (the OAuth apps, where the
//    sandboxes live, the callback URL, the redirect allow-list) and the HubSpot developer app
//    the webhook set-up registers with are written into the stack's own secrets file before
//    the gateway starts (./secrets.ts setStackSecrets).
//  - HubSpot and Pipedrive connect with POST /token (private-app token, API token), Salesforce
//    through the OAuth flow: /start, the sandbox's auto-approving authorize redirect, /callback.
//  - crm-connect queues the webhook set-up and the first backfill itself; the stack waits for
//    the set-up, reads the Salesforce listener URL through POST /webhook-url and points the
//    Salesforce sandbox's Outbound Messages at it (the admin's step in Setup).
// A connection of the dev account pointed at a real account of the same provider is left alone
// (crm-connect refuses another remote account: "skipped"). Tokens and the listener URL are
// never printed.
import type postgres from "postgres";
import type { ProviderName } from "../../supabase/functions/_shared/providers/types.ts";
import { DEV_ACCOUNT_ID } from "./connections.ts";
import { mintKey } from "./jwt.ts";
import { awaitWebhookSetup, configureSandboxOutbound } from "./webhooks.ts";

/** The dev account's user who connects the sandboxes (sub of the minted JWT). */
export const DEV_USER_ID = "00000000-0000-4000-8000-0000000000d1";
/** Where the callback sends the browser back (the dashboards' dev servers; crm-connect only
 * redirects there, the stack reads the redirect without following it). */
export const LOCAL_REDIRECT_ALLOW_LIST = "http://localhost:3000/,http://localhost:5173/";

const TIMEOUT_MS = 15_000;

function need(env: Record<string, string>, key: string): string {
  const v = env[key];
  if (!v) throw new Error(`${key} missing from the sandbox environment`);
  return v;
}

/** crm-connect's function secrets for the running sandboxes (`env`: their ready line). */
export function sandboxConnectSecrets(
  env: Record<string, string>,
  gatewayUrl: string,
): Record<string, string> {
  const hs = need(env, "HUBSPOT_API_URL");
  const pd = need(env, "PIPEDRIVE_API_URL");
  return {
    CRM_HUBSPOT_CLIENT_ID: need(env, "HUBSPOT_CLIENT_ID"),
    CRM_HUBSPOT_CLIENT_SECRET: need(env, "HUBSPOT_CLIENT_SECRET"),
    CRM_HUBSPOT_AUTHORIZE_URL: `${hs}/oauth/authorize`,
    CRM_HUBSPOT_API_URL: hs,
    CRM_SALESFORCE_CLIENT_ID: need(env, "SALESFORCE_CLIENT_ID"),
    CRM_SALESFORCE_CLIENT_SECRET: need(env, "SALESFORCE_CLIENT_SECRET"),
    CRM_SALESFORCE_LOGIN_URL: need(env, "SALESFORCE_API_URL"),
    CRM_PIPEDRIVE_CLIENT_ID: need(env, "PIPEDRIVE_CLIENT_ID"),
    CRM_PIPEDRIVE_CLIENT_SECRET: need(env, "PIPEDRIVE_CLIENT_SECRET"),
    CRM_PIPEDRIVE_OAUTH_URL: pd,
    CRM_PIPEDRIVE_API_URL: pd,
    CRM_CONNECT_CALLBACK_URL: `${gatewayUrl}/functions/v1/crm-connect/callback`,
    CRM_CONNECT_REDIRECT_ALLOW_LIST: LOCAL_REDIRECT_ALLOW_LIST,
    // The deployment's HubSpot app is the sandbox's developer app: webhooks are registered
    // with its developer key, and the receiver checks their signatures with its client secret.
    HUBSPOT_APP_ID: need(env, "HUBSPOT_APP_ID"),
    HUBSPOT_DEVELOPER_API_KEY: need(env, "HUBSPOT_DEVELOPER_API_KEY"),
    HUBSPOT_CLIENT_SECRET: need(env, "HUBSPOT_CLIENT_SECRET"),
  };
}

export interface Connected {
  provider: ProviderName;
  id: string | null;
  action: "created" | "updated" | "skipped" | "failed";
  /** Why skipped or failed (no secret in it). */
  reason?: string;
}

interface Answer {
  status: number;
  body: Record<string, unknown>;
  location: string | null;
}

async function call(
  url: string,
  o: { jwt?: string; body?: unknown; method?: string } = {},
): Promise<Answer> {
  const res = await fetch(url, {
    method: o.method ?? (o.body === undefined ? "GET" : "POST"),
    redirect: "manual",
    headers: {
      ...(o.jwt ? { authorization: `Bearer ${o.jwt}` } : {}),
      ...(o.body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: o.body === undefined ? undefined : JSON.stringify(o.body),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text);
  } catch { /* a page or a redirect */ }
  return { status: res.status, body, location: res.headers.get("location") };
}

const why = (a: Answer) =>
  `${a.status} ${String(a.body.error ?? "")}${a.body.message ? `: ${a.body.message}` : ""}`;

/** The dev account's user JWT (short-lived: it only connects the sandboxes). */
export async function devUserJwt(jwtSecret: string, accountId = DEV_ACCOUNT_ID): Promise<string> {
  return await mintKey(jwtSecret, {
    role: "authenticated",
    aud: "authenticated",
    sub: DEV_USER_ID,
    app_metadata: { account_id: accountId },
  }, 15 * 60);
}

async function tokenConnect(
  fn: string,
  jwt: string,
  provider: "hubspot" | "pipedrive",
  token: string,
): Promise<Connected> {
  const a = await call(`${fn}/token`, { jwt, body: { provider, token } });
  if (a.status === 200 || a.status === 201) {
    return {
      provider,
      id: String(a.body.connection_id),
      action: a.body.created ? "created" : "updated",
    };
  }
  if (a.body.error === "other_remote_account") {
    return { provider, id: null, action: "skipped", reason: String(a.body.message ?? "") };
  }
  return { provider, id: null, action: "failed", reason: why(a) };
}

/** start → the sandbox's auto-approving authorize → callback, as a browser would. */
async function oauthConnect(fn: string, jwt: string, provider: ProviderName): Promise<Connected> {
  const s = await call(`${fn}/start`, { jwt, body: { provider } });
  if (s.status !== 200) return { provider, id: null, action: "failed", reason: why(s) };
  const consent = await call(String(s.body.authorize_url));
  if (consent.status !== 302 || !consent.location) {
    return {
      provider,
      id: null,
      action: "failed",
      reason: `authorize answered ${consent.status}`,
    };
  }
  const done = await call(consent.location);
  const back = done.location ? new URL(done.location) : null;
  if (done.status === 303 && back?.searchParams.get("crm_connect") === "success") {
    return {
      provider,
      id: back.searchParams.get("connection_id"),
      action: back.searchParams.get("created") === "true" ? "created" : "updated",
    };
  }
  const error = back?.searchParams.get("error") ?? `callback answered ${done.status}`;
  return {
    provider,
    id: null,
    action: error === "other_remote_account" ? "skipped" : "failed",
    reason: back?.searchParams.get("message") ?? error,
  };
}

/** Connects the three sandboxes through crm-connect at `gatewayUrl`. */
export async function connectSandboxes(o: {
  gatewayUrl: string;
  jwt: string;
  env: Record<string, string>;
}): Promise<Connected[]> {
  const fn = `${o.gatewayUrl}/functions/v1/crm-connect`;
  const out: Connected[] = [];
  const attempt = async (p: ProviderName, f: () => Promise<Connected>) => {
    out.push(
      await f().catch((e) => ({
        provider: p,
        id: null,
        action: "failed" as const,
        reason: (e as Error).message,
      })),
    );
  };
  await attempt(
    "hubspot",
    () => tokenConnect(fn, o.jwt, "hubspot", need(o.env, "HUBSPOT_PRIVATE_APP_TOKEN")),
  );
  await attempt("salesforce", () => oauthConnect(fn, o.jwt, "salesforce"));
  await attempt(
    "pipedrive",
    () => tokenConnect(fn, o.jwt, "pipedrive", need(o.env, "PIPEDRIVE_API_TOKEN")),
  );
  return out;
}

/**
 * Waits for the webhook set-up crm-connect queued, then points the Salesforce sandbox's
 * Outbound Messages at the listener URL read through POST /webhook-url. One line per
 * connection for the start-up log (the URL's token is not in it).
 */
export async function finishSandboxWebhooks(
  sql: postgres.Sql,
  o: { gatewayUrl: string; jwt: string; env: Record<string, string>; connected: Connected[] },
): Promise<string[]> {
  const ids = o.connected.filter((c) => c.id).map((c) => c.id!);
  if (ids.length === 0) return [];
  const states = await awaitWebhookSetup(sql, ids);
  const lines: string[] = [];
  for (const s of states) {
    if (s.provider === "salesforce" && s.state === "manual_step") {
      const a = await call(`${o.gatewayUrl}/functions/v1/crm-connect/webhook-url`, {
        jwt: o.jwt,
        body: { connection_id: s.id },
      });
      if (a.status === 200 && typeof a.body.salesforce_listener_url === "string") {
        await configureSandboxOutbound(
          need(o.env, "SALESFORCE_API_URL"),
          a.body.salesforce_listener_url,
        );
        lines.push("salesforce: outbound messages → crm-webhook/salesforce/<token>");
      } else {
        lines.push(`salesforce: listener URL not available (${why(a)})`);
      }
      continue;
    }
    lines.push(
      s.state === "registered"
        ? `${s.provider}: webhooks registered`
        : `${s.provider}: webhooks not set up (${s.state ?? s.job ?? "no outcome"}${
          s.error ? `: ${s.error}` : ""
        })`,
    );
  }
  return lines;
}
