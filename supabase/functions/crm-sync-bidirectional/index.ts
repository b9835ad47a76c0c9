// crm-sync-bidirectional: the scheduled and manual sync entry point (service role only).
//   {"direction": "inbound"|"outbound"|"both", "objects"?: [...], "connection_id"?: uuid,
//    "mode"?: "delta"|"full"|"retry", "dry_run"?: bool, "trigger"?: ..., "budget_ms"?: n}
// Inbound walks every active connection (or the one given) from its watermark and answers
// with one summary per stream; "more": true means a stream stopped at the time budget and the
// next call continues it. Outbound push is not built yet: pending changes stay queued in
// crm.outbox and the answer says so. mode "retry" (the hourly retry job) runs an inbound delta.
import { z } from "zod";
import { authFromEnv, isServiceRole } from "../_shared/auth.ts";
import { keyOrResponse } from "../_shared/crypto.ts";
import { connect } from "../_shared/db.ts";
import { parseBody } from "../_shared/http/body.ts";
import { ObjectTypeSchema } from "../_shared/providers/types.ts";
import { syncInbound } from "../_shared/sync/engine.ts";

/** Well under the platform's 150 s wall clock, leaving time to close runs and answer. */
const DEFAULT_BUDGET_MS = 90_000;

const Body = z.object({
  direction: z.enum(["inbound", "outbound", "both"]).default("inbound"),
  objects: z.array(ObjectTypeSchema).min(1).optional(),
  connection_id: z.string().uuid().optional(),
  mode: z.enum(["delta", "full", "retry"]).default("delta"),
  dry_run: z.boolean().default(false),
  trigger: z.enum(["cron", "manual", "backfill"]).default("manual"),
  budget_ms: z.number().int().min(1).max(120_000).optional(),
  page_size: z.number().int().min(1).max(2_000).optional(),
}).strict();

const sql = connect();
const auth = authFromEnv();
const log = (msg: string, extra?: Record<string, unknown>) =>
  console.log(JSON.stringify({ fn: "crm-sync-bidirectional", msg, ...extra }));

Deno.serve(async (req) => {
  if (req.method !== "POST") return Response.json({ error: "method not allowed" }, { status: 405 });
  if (!await isServiceRole(req, auth)) {
    return Response.json({ error: "service role required" }, { status: 403 });
  }
  const body = await parseBody(req, Body);
  if (!body.ok) return body.response;
  const b = body.data;
  const started = Date.now();
  if (b.connection_id) {
    const [conn] = await sql`select status from crm.connections where id = ${b.connection_id}`;
    if (!conn) {
      return Response.json({ error: `connection ${b.connection_id} not found` }, { status: 404 });
    }
    if (conn.status !== "active" && b.direction !== "outbound") {
      return Response.json({
        error: `connection ${b.connection_id} is ${conn.status}, not active; nothing was synced`,
      }, { status: 409 });
    }
  }
  const key = await keyOrResponse();
  if (key instanceof Response) return key;
  const out: Record<string, unknown> = { ok: true, more: false };
  if (b.direction !== "outbound") {
    try {
      const inbound = await syncInbound(sql, key, {
        objects: b.objects,
        connectionId: b.connection_id,
        mode: b.mode === "full" ? "full" : "delta",
        trigger: b.trigger,
        dryRun: b.dry_run,
        deadline: started + (b.budget_ms ?? DEFAULT_BUDGET_MS),
        pageSize: b.page_size,
      }, log);
      out.more = inbound.more;
      out.runs = inbound.runs;
      if (inbound.unusable.length) out.unusable = inbound.unusable;
      if (inbound.runs.some((r) => r.status === "failed") || inbound.unusable.length) {
        out.ok = false;
      }
    } catch (e) {
      log("inbound failed", { error: (e as Error).message });
      return Response.json({ error: `inbound sync failed: ${(e as Error).message}` }, {
        status: 500,
      });
    }
  }
  if (b.direction !== "inbound") {
    out.outbound = {
      status: "not_available",
      message: "outbound push is not built yet; local changes stay queued in crm.outbox",
    };
  }
  out.duration_ms = Date.now() - started;
  return Response.json(out);
});
