// crm-connect's routes. Every route but the callback needs a signed-in user's JWT with the
// account claim (app_metadata.account_id, the claim RLS uses), verified here (_shared/auth.ts):
// none, the anon key, an expired or forged token → 401; the service role has no account → 403.
// The callback is reached by the provider's redirect and is authenticated by its state.
// Answers never carry tokens; logs carry ids, codes and statuses only.
import { z } from "zod";
import { type AuthConfig, identify } from "../auth.ts";
import type { Sql } from "../db.ts";
import { parseBody } from "../http/body.ts";
import { PROVIDERS } from "../providers/types.ts";
import { allowedRedirect, type ConnectConfig } from "./config.ts";
import { CONNECT_PROVIDERS, ConnectError, type Grant } from "./oauth.ts";
import { pkcePair, signState, verifyState } from "./state.ts";
import { removeWebhooks } from "./webhooks.ts";
import {
  consumeState,
  createState,
  credentialsOf,
  disconnect,
  saveConnection,
  statusOf,
} from "./store.ts";

export interface ConnectDeps {
  sql: Sql;
  key: CryptoKey;
  stateKey: Uint8Array;
  cfg: ConnectConfig;
  auth: AuthConfig;
  log: (msg: string, extra?: Record<string, unknown>) => void;
  /** crm-webhook's public URL (webhooks/public_url.ts), null when unknown. */
  webhookBase: string | null;
}

const StartBody = z.object({
  provider: z.enum(PROVIDERS),
  redirect_to: z.string().max(2048).optional(),
}).strict();
const TokenBody = z.object({
  provider: z.enum(["hubspot", "pipedrive"]),
  token: z.string().min(8).max(512).regex(/^[\x21-\x7e]+$/),
}).strict();
const ConnectionBody = z.object({ connection_id: z.string().uuid() }).strict();
const DisconnectBody = z.object({
  connection_id: z.string().uuid(),
  purge: z.boolean().default(false),
}).strict();
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const json = (status: number, body: unknown) => Response.json(body, { status });
const NOT_FOUND = () => json(404, { error: "connection not found" });

type User = { accountId: string; userId: string };

async function user(req: Request, d: ConnectDeps): Promise<User | Response> {
  const caller = await identify(req, d.auth);
  if (!caller) return json(401, { error: "sign in: a valid user JWT is required" });
  if (caller.kind !== "user" || !caller.userId || !UUID.test(caller.userId)) {
    return json(403, { error: "crm-connect acts for a signed-in user of an account" });
  }
  return { accountId: caller.accountId, userId: caller.userId };
}

function back(target: string, params: Record<string, string>): Response {
  const u = new URL(target);
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  return new Response(null, { status: 303, headers: { location: u.toString() } });
}

/** The callback's answer without a redirect target: a small page (no tokens, no detail). */
function page(status: number, text: string): Response {
  const safe = text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return new Response(`<!doctype html><title>crm-connect</title><p>${safe}</p>`, {
    status,
    headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" },
  });
}

async function start(req: Request, d: ConnectDeps): Promise<Response> {
  const who = await user(req, d);
  if (who instanceof Response) return who;
  const parsed = await parseBody(req, StartBody);
  if (!parsed.ok) return parsed.response;
  const { provider, redirect_to } = parsed.data;
  if (!d.cfg.apps[provider]) {
    return json(400, { error: `${provider} OAuth is not configured on this project` });
  }
  const redirectTo = allowedRedirect(d.cfg, redirect_to);
  if (redirect_to !== undefined && !redirectTo) {
    return json(400, {
      error: "redirect_to is not on the allow-list (CRM_CONNECT_REDIRECT_ALLOW_LIST)",
    });
  }
  if (!d.cfg.callbackUrl) return json(500, { error: "CRM_CONNECT_CALLBACK_URL is not set" });
  const p = CONNECT_PROVIDERS[provider];
  const pair = p.pkce ? await pkcePair() : null;
  const nonce = crypto.randomUUID();
  await createState(d.sql, d.key, {
    nonce,
    ...who,
    provider,
    redirectTo,
    verifier: pair?.verifier ?? null,
    ttlS: d.cfg.stateTtlS,
  });
  const state = await signState(d.stateKey, { nonce, ...who, provider }, d.cfg.stateTtlS);
  d.log("connect started", { provider, account_id: who.accountId });
  return json(200, {
    provider,
    authorize_url: p.authorizeUrl(d.cfg, state, pair?.challenge ?? null),
    expires_in: d.cfg.stateTtlS,
  });
}

async function callback(req: Request, d: ConnectDeps): Promise<Response> {
  const q = new URL(req.url).searchParams;
  const claims = await verifyState(d.stateKey, q.get("state") ?? "");
  if (!claims) return page(400, "This link is invalid or has expired. Start connecting again.");
  const spent = await consumeState(d.sql, d.key, claims);
  if (!spent) {
    return page(400, "This link was already used or has expired. Start connecting again.");
  }
  const to = (params: Record<string, string>) =>
    spent.redirectTo
      ? back(spent.redirectTo, {
        crm_connect: params.error ? "error" : "success",
        provider: claims.provider,
        ...params,
      })
      : page(
        params.error ? 400 : 200,
        params.error ? `Not connected: ${params.message ?? params.error}` : "Connected.",
      );
  const denied = q.get("error");
  if (denied) {
    d.log("connect refused at the provider", {
      provider: claims.provider,
      error: denied.slice(0, 64),
    });
    return to({ error: denied === "access_denied" ? "access_denied" : "provider_error" });
  }
  const code = q.get("code");
  if (!code || code.length > 2048) return to({ error: "missing_code" });
  const p = CONNECT_PROVIDERS[claims.provider];
  let grant: Grant;
  try {
    grant = await p.exchange(d.cfg, code, spent.verifier);
  } catch (e) {
    if (!(e instanceof ConnectError)) throw e;
    d.log("code exchange failed", { provider: claims.provider, code: e.code, error: e.message });
    return to({ error: e.code });
  }
  const r = await saveConnection(d.sql, d.key, claims.accountId, claims.provider, grant, d.log);
  // A refused grant is dropped, not revoked: for the same remote account a revocation can also
  // end the grant the existing connection uses (Pipedrive uninstalls the app for the company).
  d.log(r.ok ? "connected" : "connect refused", {
    provider: claims.provider,
    account_id: claims.accountId,
    ...(r.ok ? { connection_id: r.connectionId, created: r.created } : { code: r.code }),
  });
  return r.ok
    ? to({ connection_id: r.connectionId, created: String(r.created) })
    : to({ error: r.code, message: r.message });
}

async function tokenConnect(req: Request, d: ConnectDeps): Promise<Response> {
  const who = await user(req, d);
  if (who instanceof Response) return who;
  const parsed = await parseBody(req, TokenBody);
  if (!parsed.ok) return parsed.response;
  const p = CONNECT_PROVIDERS[parsed.data.provider];
  let grant: Grant;
  try {
    grant = await p.tokenConnect!(d.cfg, parsed.data.token);
  } catch (e) {
    if (!(e instanceof ConnectError)) throw e;
    const status = e.code === "invalid_token" ? 400 : 502;
    return json(status, { error: e.code, message: e.message });
  }
  const r = await saveConnection(d.sql, d.key, who.accountId, parsed.data.provider, grant, d.log);
  if (!r.ok) return json(409, { error: r.code, message: r.message });
  d.log("connected with a token", {
    provider: parsed.data.provider,
    connection_id: r.connectionId,
  });
  return json(r.created ? 201 : 200, {
    connection_id: r.connectionId,
    provider: parsed.data.provider,
    remote_account_id: grant.remoteAccountId,
    created: r.created,
  });
}

async function status(req: Request, d: ConnectDeps): Promise<Response> {
  const who = await user(req, d);
  if (who instanceof Response) return who;
  const only = new URL(req.url).searchParams.get("connection_id");
  if (only !== null && !UUID.test(only)) {
    return json(400, { error: "connection_id must be a uuid" });
  }
  const rows = await statusOf(d.sql, who.accountId);
  if (only !== null) {
    const one = rows.find((r) => r.id === only.toLowerCase());
    return one ? json(200, { connection: one }) : NOT_FOUND();
  }
  return json(200, { connections: rows });
}

async function disconnectRoute(req: Request, d: ConnectDeps): Promise<Response> {
  const who = await user(req, d);
  if (who instanceof Response) return who;
  const parsed = await parseBody(req, DisconnectBody);
  if (!parsed.ok) return parsed.response;
  const { connection_id, purge } = parsed.data;
  const stored = await credentialsOf(d.sql, d.key, who.accountId, connection_id);
  if (!stored) return NOT_FOUND();
  // Webhooks first: deleting them needs the credentials the revocation ends.
  const webhooks = await removeWebhooks(d, who.accountId, connection_id, stored.provider);
  let revoked = false;
  if (stored.credentials) {
    try {
      revoked = await CONNECT_PROVIDERS[stored.provider].revoke(d.cfg, stored.credentials);
    } catch (e) {
      if (!(e instanceof ConnectError)) throw e;
      d.log("revoke failed", { connection_id, code: e.code });
    }
  }
  const result = await disconnect(d.sql, who.accountId, connection_id, purge);
  if (!result) return NOT_FOUND();
  d.log("disconnected", {
    connection_id,
    result,
    revoked,
    webhooks: webhooks.action,
    webhooks_removed: webhooks.removed.length,
  });
  return json(200, {
    connection_id,
    status: result,
    revoked_at_provider: revoked,
    webhooks: { action: webhooks.action, removed: webhooks.removed.length, note: webhooks.note },
  });
}

/**
 * The Salesforce listener URL (it carries the connection's secret token) for the account's own
 * connection: POST, so it is never in a URL, a cache or an access log; `no-store`; never
 * logged. Another account's or an unknown connection → 404 alike. Not Salesforce → 400. Before
 * the set-up job made the token → 409 with the set-up state (ask again in a moment).
 */
async function webhookUrl(req: Request, d: ConnectDeps): Promise<Response> {
  const who = await user(req, d);
  if (who instanceof Response) return who;
  const parsed = await parseBody(req, ConnectionBody);
  if (!parsed.ok) return parsed.response;
  const { connection_id } = parsed.data;
  const stored = await credentialsOf(d.sql, d.key, who.accountId, connection_id);
  if (!stored) return NOT_FOUND();
  if (stored.provider !== "salesforce") {
    return json(400, {
      error: "only Salesforce connections have a listener URL (the others register theirs)",
    });
  }
  const token = stored.credentials?.webhook_token;
  if (!token || !d.webhookBase) {
    const [row] = await d.sql`select status, webhook_setup ->> 'state' as state
                              from crm.connections where id = ${connection_id}::uuid`;
    return json(409, {
      error: "not_ready",
      message: row?.status !== "active"
        ? `the connection is ${row?.status}: reconnect it first`
        : !d.webhookBase
        ? "crm-webhook's public URL is unknown: set CRM_WEBHOOK_PUBLIC_URL"
        : "the webhook set-up has not made the listener URL yet; ask again in a moment",
      webhook_setup: row?.state ?? null,
    });
  }
  d.log("listener URL shown", { connection_id });
  return new Response(
    JSON.stringify({
      connection_id,
      salesforce_listener_url: `${d.webhookBase}/salesforce/${token}`,
    }),
    {
      status: 200,
      headers: { "content-type": "application/json", "cache-control": "no-store" },
    },
  );
}

export function createConnectHandler(d: ConnectDeps): (req: Request) => Promise<Response> {
  return async (req) => {
    const path = new URL(req.url).pathname.replace(/^.*\/crm-connect/, "").replace(/\/+$/, "") ||
      "/";
    const route = `${req.method} ${path}`;
    try {
      switch (route) {
        case "POST /start":
          return await start(req, d);
        case "GET /callback":
          return await callback(req, d);
        case "POST /token":
          return await tokenConnect(req, d);
        case "GET /status":
          return await status(req, d);
        case "POST /disconnect":
          return await disconnectRoute(req, d);
        case "POST /webhook-url":
          return await webhookUrl(req, d);
      }
      const known = ["/start", "/callback", "/token", "/status", "/disconnect", "/webhook-url"]
        .includes(path);
      return json(known ? 405 : 404, { error: known ? "method not allowed" : "no such route" });
    } catch (e) {
      d.log("failed", { route, error: (e as Error).message?.slice(0, 300) });
      return json(500, { error: "internal error" });
    }
  };
}
