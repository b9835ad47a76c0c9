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
import { keyOrResponse } from "../_shared/crypto.ts";
import { connect, type Sql } from "../_shared/db.ts";
import {
  connectionsOf,
  enqueueInbox,
  type InboxEvent,
  storeEvents,
} from "../_shared/webhooks/event.ts";
import { normalizeHubSpot } from "../_shared/webhooks/hubspot.ts";
import { routeHubSpot } from "../_shared/webhooks/hubspot_route.ts";
import { header, readText, Refusal, refuse, safeEqual } from "../_shared/webhooks/limits.ts";
import { webhookBaseUrl } from "../_shared/webhooks/public_url.ts";
import {
  normalizePipedrive,
  parseBasicAuth,
  parsePipedriveDelivery,
} from "../_shared/webhooks/pipedrive.ts";
import {
  credential,
  hubspotConnection,
  hubspotConnectionsByPortal,
  pipedriveConnectionByUser,
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
const log = (msg: string, extra?: Record<string, unknown>) =>
  console.log(JSON.stringify({ fn: "crm-webhook", msg, ...extra }));

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
  try {
    return await route(req);
  } catch (e) {
    if (e instanceof Refusal) return Response.json({ error: e.message }, { status: e.status });
    log("failed", { error: (e as Error).message });
    return Response.json({ error: "crm-webhook failed; see the function logs" }, { status: 500 });
  }
});

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

/** Stores the events (one call), then enqueues the inbox jobs after the answer. */
async function accept(db: Sql, events: InboxEvent[]) {
  const stored = await storeEvents(db, events);
  const touched = connectionsOf(events);
  if (touched.length > 0) {
    const kick = enqueueInbox(db, touched).catch((e) =>
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
    connectionsOf: (portals) => hubspotConnectionsByPortal(sql, portals),
    connectionSecret: async (portal) => {
      const conn = await hubspotConnection(sql, key, portal);
      return conn ? { id: conn.id, secret: credential(conn, "webhook_secret") } : null;
    },
  });
  const { events, skipped } = normalizeHubSpot(batch, route);
  const stored = await accept(sql, events);
  return Response.json({ ok: true, received: batch.length, ...stored, skipped });
}

async function salesforce(req: Request, token: string): Promise<Response> {
  const key = await keyOrResponse();
  if (key instanceof Response) return key;
  const conn = await salesforceConnectionByToken(sql, key, token);
  const expected = conn ? credential(conn, "webhook_token") : null;
  if (!conn || !expected || !safeEqual(expected, token)) {
    refuse(401, "unknown Salesforce listener token");
  }
  const body = await readText(req);
  const msg = parseOutboundMessage(body);
  if (!conn!.remoteAccountId || !sameOrg(conn!.remoteAccountId, msg.organizationId)) {
    refuse(401, "OrganizationId does not match this listener's connection");
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
  const conn = await pipedriveConnectionByUser(sql, key, auth!.user);
  const user = conn ? credential(conn, "webhook_user") : null;
  const password = conn ? credential(conn, "webhook_password") : null;
  // Both compared, always, so the answer's timing does not say which one was wrong.
  const userOk = safeEqual(user ?? "", auth!.user);
  const passwordOk = safeEqual(password ?? "", auth!.password);
  if (!conn || !user || !password || !userOk || !passwordOk) {
    refuse(401, "webhook credentials do not match");
  }
  const body = await readText(req);
  const delivery = parsePipedriveDelivery(body);
  if (!conn!.remoteAccountId || String(delivery.meta.company_id) !== conn!.remoteAccountId) {
    refuse(401, "meta.company_id does not match these credentials' connection");
  }
  const { events, skipped } = normalizePipedrive(delivery, conn!.id);
  const stored = await accept(sql, events);
  return Response.json({ ok: true, ...stored, skipped });
}
