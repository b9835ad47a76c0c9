// crm-fetch-live: live, normalised CRM records for dashboards.
//   {"type": "contacts"|"companies"|"deals"|"owners",
//    "timeframe"?: "today"|"this_week"|"this_month"|"last_30_days"|"all",
//    "sync"?: bool, "connection_id"?: uuid, "limit"?: 1..1000}
// A signed-in user (JWT with app_metadata.account_id) reads only their account's connections;
// the service role may read any. Records come oldest change first within the timeframe; with
// "sync": true they are also persisted through the sync's apply path and logged (trigger live).
// A user's calls are limited per account, reads and syncs each by their own bucket (429 +
// Retry-After, _shared/http/live_limit.ts); the service role is not limited.
// Browsers may call it from the origins in CRM_CORS_ORIGINS (_shared/http/cors.ts).
import { logLine } from "../_shared/http/redact.ts";
import { z } from "zod";
import { authFromEnv, identify } from "../_shared/auth.ts";
import { keyOrResponse } from "../_shared/crypto.ts";
import { connect } from "../_shared/db.ts";
import { parseBody } from "../_shared/http/body.ts";
import { corsFromEnv, preflight, withCors } from "../_shared/http/cors.ts";
import { liveLimitFromEnv, takeLiveGrant } from "../_shared/http/live_limit.ts";
import { ObjectTypeSchema } from "../_shared/providers/types.ts";
import { loadConnections } from "../_shared/sync/connections.ts";
import { createSyncContext } from "../_shared/sync/context.ts";
import { fetchLive, TIMEFRAMES, timeframeStart } from "../_shared/sync/live.ts";

const BUDGET_MS = 60_000;

const Body = z.object({
  type: ObjectTypeSchema,
  timeframe: z.enum(TIMEFRAMES).default("all"),
  sync: z.boolean().default(false),
  connection_id: z.string().uuid().optional(),
  limit: z.number().int().min(1).max(1_000).default(100),
}).strict();

const sql = connect();
const auth = authFromEnv();
const cors = corsFromEnv();
const liveLimit = liveLimitFromEnv();
const log = (msg: string, extra?: Record<string, unknown>) => logLine("crm-fetch-live", msg, extra);

Deno.serve(async (req) => {
  if (req.method === "OPTIONS") return preflight(req, cors);
  let res: Response;
  try {
    res = await handle(req);
  } catch (e) {
    // Answered here rather than by the runtime, so a browser can read this error too.
    log("failed", { error: (e as Error).message });
    res = Response.json({ error: "crm-fetch-live failed; see the function logs" }, { status: 500 });
  }
  return withCors(req, res, cors);
});

async function handle(req: Request): Promise<Response> {
  if (req.method !== "POST") return Response.json({ error: "method not allowed" }, { status: 405 });
  const who = await identify(req, auth);
  if (!who) {
    return Response.json({
      error: "a user token with an account, or the service role, is required",
    }, {
      status: 401,
    });
  }
  const body = await parseBody(req, Body);
  if (!body.ok) return body.response;
  const b = body.data;
  const started = Date.now();
  const key = await keyOrResponse();
  if (key instanceof Response) return key;
  const { connections, unusable } = await loadConnections(sql, key, {
    connectionId: b.connection_id,
    accountId: who.kind === "user" ? who.accountId : undefined,
    activeOnly: true,
  });
  if (connections.length === 0 && unusable.length === 0) {
    return Response.json({ error: "no active connection found" }, { status: 404 });
  }
  if (who.kind === "user") {
    const refused = await takeLiveGrant(sql, who.accountId, "read", liveLimit) ??
      (b.sync ? await takeLiveGrant(sql, who.accountId, "sync", liveLimit) : null);
    if (refused) return refused;
  }
  const since = timeframeStart(b.timeframe);
  const results = await Promise.all(connections.map(async (conn) => {
    // Live reads go first on the account's shared rate budget.
    const ctx = await createSyncContext(sql, key, conn, log, { lane: "interactive" });
    return await fetchLive(sql, ctx, {
      object: b.type,
      since,
      limit: b.limit,
      persist: b.sync,
      deadline: started + BUDGET_MS,
    });
  }));
  const failed = results.some((r) => r.error) || unusable.length > 0;
  return Response.json({
    ok: !failed,
    type: b.type,
    timeframe: b.timeframe,
    since: since?.toISOString() ?? null,
    results,
    ...(unusable.length ? { unusable } : {}),
  }, { status: failed && results.every((r) => r.error) ? 502 : 200 });
}
