// crm-webhook: the CRMs' webhooks in, verified, stored, acknowledged (processing is the inbox
// job's). verify_jwt is off: every request is authenticated by its provider's own scheme.
//   POST /crm-webhook/hubspot              HubSpot signature v3 (v2/v1 for older apps)
//   POST /crm-webhook/salesforce/<token>   Outbound Messaging SOAP, token = per-connection secret
//   POST /crm-webhook/pipedrive            webhooks v2, per-connection HTTP basic auth
// All events of a request are stored with one call of crm.enqueue_webhook_events before the
// 2xx; then one inbox job per connection touched is enqueued after the answer
// (EdgeRuntime.waitUntil); the queue drains whatever that misses. Bad input is a 4xx that writes
// nothing (401 credentials, 400 malformed, 413 over 1 MiB, 405 method, 404 route); only our own
// failures (database down, missing CRM_ENCRYPTION_KEY) answer 5xx, so the provider retries.
// A sender refused too often is answered 429 + Retry-After before any database work, unless the
// request verifies from memory (verified_in_memory.ts; refusal_limit.ts);
// verified routes and secrets are remembered for 10 s per isolate (route_cache.ts).
import { logLine } from "../_shared/http/redact.ts";
import { keyOrResponse } from "../_shared/crypto.ts";
import { connect, type Sql } from "../_shared/db.ts";
import {
  coalescedEnqueue,
  connectionsOf,
  enqueueInbox,
  type InboxEvent,
  storeEvents,
} from "../_shared/webhooks/event.ts";
import { normalizeHubSpot } from "../_shared/webhooks/hubspot.ts";
import { routeHubSpot } from "../_shared/webhooks/hubspot_route.ts";
import { header, readText, Refusal, refuse } from "../_shared/webhooks/limits.ts";
import { webhookBaseUrl } from "../_shared/webhooks/public_url.ts";
import {
  normalizePipedrive,
  parseBasicAuth,
  parsePipedriveDelivery,
} from "../_shared/webhooks/pipedrive.ts";
import {
  clientAddress,
  REFUSAL_LIMIT,
  REFUSAL_WINDOW_MS,
  RefusalLimiter,
} from "../_shared/webhooks/refusal_limit.ts";
import { RouteCache, verifiedRoute } from "../_shared/webhooks/route_cache.ts";
import {
  pipedriveAuthOk,
  salesforceTokenOk,
  verifiesInMemory,
} from "../_shared/webhooks/verified_in_memory.ts";
import {
  credential,
  hubspotConnection,
  hubspotConnectionsByPortal,
  pipedriveConnectionByUser,
  type RoutedConnection,
  salesforceConnectionByToken,
} from "../_shared/webhooks/routes.ts";
import {
  ACK_ENVELOPE,
  normalizeSalesforce,
  parseOutboundMessage,
  sameOrg,
} from "../_shared/webhooks/salesforce.ts";

declare const EdgeRuntime: { waitUntil(p: Promise<unknown>): void } | undefined;

const sql = connect();
// Senders refused too often are answered 429 before any work (refusal_limit.ts).
const limiter = new RefusalLimiter(
  positive(Deno.env.get("CRM_WEBHOOK_REFUSAL_LIMIT")) ?? REFUSAL_LIMIT,
  (positive(Deno.env.get("CRM_WEBHOOK_REFUSAL_WINDOW_S")) ?? REFUSAL_WINDOW_MS / 1000) * 1000,
);
// Which request header names the sender (refusal_limit.ts clientAddress).
const CLIENT_HEADER = (Deno.env.get("CRM_WEBHOOK_CLIENT_HEADER") || "x-forwarded-for")
  .toLowerCase();
// Verified routes, remembered briefly in this isolate (route_cache.ts says what that allows).
const routes = new RouteCache<RoutedConnection>();
const portalRoutes = new RouteCache<Map<string, string>>();
const log = (msg: string, extra?: Record<string, unknown>) => logLine("crm-webhook", msg, extra);
const inMemory = {
  routes,
  appSecret: Deno.env.get("HUBSPOT_CLIENT_SECRET") || null,
  publicUri,
};

function positive(raw: string | undefined): number | null {
  const v = Number(raw);
  return raw && Number.isInteger(v) && v > 0 ? v : null;
}

/**
 * The URL HubSpot called, for v2/v3 signatures: the function's public URL (webhookBaseUrl:
 * CRM_WEBHOOK_PUBLIC_URL, else SUPABASE_URL + /functions/v1/crm-webhook), else the request URL
 * (behind a gateway this is not what HubSpot signed).
 */
function publicUri(req: Request, subpath: string): string {
  const url = new URL(req.url);
  const base = webhookBaseUrl();
  return base ? `${base}${subpath}${url.search}` : req.url;
}

Deno.serve(async (req) => {
  const sender = `${clientAddress(req, CLIENT_HEADER)} ${routeKind(req)}`;
  const wait = limiter.retryAfter(sender);
  // The sender's key is a header it can set: a delivery that verifies from memory is served
  // whatever its sender's count (verified_in_memory.ts); only work that needs the database waits.
  if (wait > 0 && !(await verifiesInMemory(req, inMemory))) {
    await req.body?.cancel().catch(() => {});
    return Response.json({ error: "too many refused requests; retry later" }, {
      status: 429,
      headers: { "retry-after": String(wait) },
    });
  }
  const res = await answer(req);
  limiter.answered(sender, res.status);
  return res;
});

async function answer(req: Request): Promise<Response> {
  try {
    return await route(req);
  } catch (e) {
    if (e instanceof Refusal) return Response.json({ error: e.message }, { status: e.status });
    log("failed", { error: (e as Error).message });
    return Response.json({ error: "crm-webhook failed; see the function logs" }, { status: 500 });
  }
}

/** The route a request names, for the refusal limit's key (never the Salesforce token). */
function routeKind(req: Request): string {
  return new URL(req.url).pathname.match(/\/crm-webhook\/(hubspot|pipedrive|salesforce)\b/)?.[1] ??
    "other";
}

async function route(req: Request): Promise<Response> {
  const path = new URL(req.url).pathname.replace(/^.*?\/crm-webhook(?=\/|$)/, "");
  const m = path.match(/^\/(hubspot|pipedrive|salesforce\/([A-Za-z0-9_-]{16,128}))\/?$/);
  if (!m) return refuse(404, "unknown webhook route");
  if (req.method !== "POST") {
    return Response.json({ error: "method not allowed" }, {
      status: 405,
      headers: { allow: "POST" },
    });
  }
  if (m[1] === "hubspot") return await hubspot(req, "/hubspot");
  if (m[1] === "pipedrive") return await pipedrive(req);
  return await salesforce(req, m[2]);
}

let kickInbox: ((connectionIds: string[]) => Promise<void>) | undefined;

/** Stores the events (one call), then enqueues the inbox jobs after the answer (coalesced in
 * this isolate: see coalescedEnqueue). */
async function accept(db: Sql, events: InboxEvent[]) {
  kickInbox ??= coalescedEnqueue((ids) => enqueueInbox(db, ids));
  const stored = await storeEvents(db, events);
  const touched = connectionsOf(events);
  if (touched.length > 0) {
    const kick = kickInbox(touched).catch((e) =>
      log("inbox job not enqueued; the queue drain will pick the events up", {
        error: (e as Error).message,
      })
    );
    if (typeof EdgeRuntime !== "undefined") EdgeRuntime.waitUntil(kick);
  }
  return stored;
}

async function hubspot(req: Request, subpath: string): Promise<Response> {
  const sig = {
    v3: header(req, "x-hubspot-signature-v3"),
    timestamp: header(req, "x-hubspot-request-timestamp"),
    legacy: header(req, "x-hubspot-signature"),
    version: header(req, "x-hubspot-signature-version"),
  };
  if (sig.v3 === null && sig.legacy === null) refuse(401, "missing HubSpot signature");
  const body = await readText(req);
  const signed = { method: req.method, uri: publicUri(req, subpath), body, sig, now: Date.now() };
  const key = await keyOrResponse();
  if (key instanceof Response) return key;
  const { batch, route } = await routeHubSpot(signed, {
    appSecret: Deno.env.get("HUBSPOT_CLIENT_SECRET") || null,
    connectionsOf: async (portals) => {
      // Remembered only when every portal has a connection: an unrouted event is stored
      // unprocessed, so a portal linked a moment ago must be seen at once.
      let found: Map<string, string> | null = null;
      const kept = await portalRoutes.get(portals.join(","), async () => {
        found = await hubspotConnectionsByPortal(sql, portals);
        return found.size === portals.length ? found : null;
      });
      return kept?.value ?? found ?? new Map();
    },
    connectionSecret: async (portal, ok) => {
      const conn = await verifiedRoute(
        routes,
        `hubspot:${portal}`,
        () => hubspotConnection(sql, key, portal),
        (c) => {
          const secret = credential(c, "webhook_secret");
          return secret ? ok(secret) : false;
        },
      );
      return conn ? { id: conn.id } : null;
    },
  });
  const { events, skipped } = normalizeHubSpot(batch, route);
  const stored = await accept(sql, events);
  return Response.json({ ok: true, received: batch.length, ...stored, skipped });
}

async function salesforce(req: Request, token: string): Promise<Response> {
  const key = await keyOrResponse();
  if (key instanceof Response) return key;
  const tokenOk = (c: RoutedConnection) => salesforceTokenOk(c, token);
  const conn = await verifiedRoute(
    routes,
    `salesforce:${token}`,
    () => salesforceConnectionByToken(sql, key, token),
    tokenOk,
  );
  if (!conn) refuse(401, "unknown Salesforce listener token");
  const body = await readText(req);
  const msg = parseOutboundMessage(body);
  if (!conn!.remoteAccountId || !sameOrg(conn!.remoteAccountId, msg.organizationId)) {
    // A remembered route may be stale (organisation re-pointed): ask the database once.
    const fresh = (await routes.get(
      `salesforce:${token}`,
      () => salesforceConnectionByToken(sql, key, token),
      true,
    ))?.value;
    if (
      !fresh || !tokenOk(fresh) || !fresh.remoteAccountId ||
      !sameOrg(fresh.remoteAccountId, msg.organizationId)
    ) {
      refuse(401, "OrganizationId does not match this listener's connection");
    }
  }
  const { events } = normalizeSalesforce(msg, conn!.id);
  await accept(sql, events);
  return new Response(ACK_ENVELOPE, {
    status: 200,
    headers: { "content-type": "text/xml; charset=utf-8" },
  });
}

async function pipedrive(req: Request): Promise<Response> {
  const auth = parseBasicAuth(header(req, "authorization"));
  if (!auth) refuse(401, "basic auth required");
  const key = await keyOrResponse();
  if (key instanceof Response) return key;
  const conn = await verifiedRoute(
    routes,
    `pipedrive:${auth!.user}`,
    () => pipedriveConnectionByUser(sql, key, auth!.user),
    (c) => pipedriveAuthOk(c, auth!),
  );
  if (!conn) refuse(401, "webhook credentials do not match");
  const body = await readText(req);
  const delivery = parsePipedriveDelivery(body);
  if (!conn!.remoteAccountId || String(delivery.meta.company_id) !== conn!.remoteAccountId) {
    // A remembered route may be stale (company re-pointed): the database decides.
    routes.forget(`pipedrive:${auth!.user}`);
    refuse(401, "meta.company_id does not match these credentials' connection");
  }
  const { events, skipped } = normalizePipedrive(delivery, conn!.id);
  const stored = await accept(sql, events);
  return Response.json({ ok: true, ...stored, skipped });
}
