// crm-sync-bidirectional: the engine's worker and its manual entry point (service role only).
//   {"worker": true, "worker_id"?: n}: a job worker, woken through pg_net by crm.wake_workers
//     (cron ticks, enqueues, a predecessor handing over). It claims jobs from crm.jobs one at a
//     time until the queue is empty or its CPU or wall budget is spent (../_shared/jobs), and
//     answers with what it did.
//   {"direction": "inbound"|"outbound"|"both", "objects"?: [...], "connection_id"?: uuid,
//    "mode"?: "delta"|"full"|"retry", "dry_run"?: bool, "trigger"?: ..., "budget_ms"?: n}:
//     the direct shape, for admins and tests: walks the connection given (or every active one)
//     in this request and answers with one summary per stream; "more": true means a stream
//     stopped at the time or CPU budget and the next call continues it. Scheduled work does not
//     use it: cron enqueues jobs. Outbound pushes the connection's due outbox entries in this
//     request ("outbound": the push's summary); without a connection it enqueues outbound jobs.
//     mode "retry" runs an inbound delta.
// Every request stops starting new pages once its CPU budget (crm.engine_settings, well under
// the platform's 2 s per request) is spent.
import { logLine } from "../_shared/http/redact.ts";
import { errorMessage } from "../_shared/sync/connections.ts";
import { z } from "zod";
import { authFromEnv, isServiceRole } from "../_shared/auth.ts";
import { keyOrResponse } from "../_shared/crypto.ts";
import { connect } from "../_shared/db.ts";
import { parseBody } from "../_shared/http/body.ts";
import { OBJECT_TYPES, ObjectTypeSchema } from "../_shared/providers/types.ts";
import { createCpuMeter } from "../_shared/jobs/cpu.ts";
import { contextCache } from "../_shared/jobs/contexts.ts";
import { inboundJobHandler } from "../_shared/jobs/inbound_job.ts";
import { inboxJobHandler } from "../_shared/jobs/inbox_job.ts";
import { outboundJobHandler } from "../_shared/jobs/outbound_job.ts";
import { setupJobHandler } from "../_shared/jobs/setup_job.ts";
import { workerSettings } from "../_shared/jobs/queue.ts";
import { runWorker } from "../_shared/jobs/worker.ts";
import { syncInbound } from "../_shared/sync/engine.ts";
import { type OutboundSummary, runOutbound } from "../_shared/sync/outbound.ts";

/** Well under the platform's 150 s wall clock, leaving time to close runs and answer. */
const DEFAULT_BUDGET_MS = 90_000;

const Worker = z.object({
  worker: z.literal(true),
  worker_id: z.number().int().positive().optional(),
  budget_ms: z.number().int().min(1).max(120_000).optional(),
}).strict();

const Direct = z.object({
  direction: z.enum(["inbound", "outbound", "both"]).default("inbound"),
  objects: z.array(ObjectTypeSchema).min(1).optional(),
  connection_id: z.string().uuid().optional(),
  mode: z.enum(["delta", "full", "retry"]).default("delta"),
  dry_run: z.boolean().default(false),
  trigger: z.enum(["cron", "manual", "backfill"]).default("manual"),
  budget_ms: z.number().int().min(1).max(120_000).optional(),
  page_size: z.number().int().min(1).max(2_000).optional(),
}).strict();

const Body = z.union([Worker, Direct]);

const sql = connect();
const auth = authFromEnv();
const log = (msg: string, extra?: Record<string, unknown>) =>
  logLine("crm-sync-bidirectional", msg, extra);

Deno.serve(async (req) => {
  if (req.method !== "POST") return Response.json({ error: "method not allowed" }, { status: 405 });
  if (!await isServiceRole(req, auth)) {
    return Response.json({ error: "service role required" }, { status: 403 });
  }
  const body = await parseBody(req, Body);
  if (!body.ok) return body.response;
  const cpu = createCpuMeter();
  try {
    const settings = await workerSettings(sql);
    const b = body.data;
    if ("worker" in b) {
      const key = await keyOrResponse();
      if (key instanceof Response) return key;
      const contexts = contextCache(sql, key, log);
      try {
        const report = await runWorker({
          sql,
          log,
          cpu,
          now: Date.now,
          handlers: {
            inbound: inboundJobHandler(sql, contexts),
            outbound: outboundJobHandler(sql, contexts),
            inbox: inboxJobHandler(sql, contexts),
            setup: setupJobHandler({ sql, contexts, key, log }),
          },
        }, {
          workerId: b.worker_id ?? null,
          cpuBudgetMs: settings.cpuBudgetMs,
          wallBudgetMs: b.budget_ms ?? DEFAULT_BUDGET_MS,
          leaseS: settings.leaseS,
        });
        return Response.json({ ok: true, ...report });
      } finally {
        await contexts.flush();
      }
    }
    return await direct(b, () => settings.cpuBudgetMs - cpu.usedMs());
  } finally {
    cpu.stop();
  }
});

/** One outbound push of one connection in this request. */
async function pushNow(
  connectionId: string,
  trigger: "cron" | "manual" | "backfill",
  budget: { deadline: number; cpuLeftMs: () => number },
  key: CryptoKey,
): Promise<OutboundSummary | string> {
  const contexts = contextCache(sql, key, log);
  try {
    const ctx = await contexts.get(connectionId, "realtime");
    if (typeof ctx === "string") return ctx;
    return await runOutbound(sql, ctx, { trigger, worker: "direct", ...budget });
  } finally {
    await contexts.flush();
  }
}

async function direct(b: z.infer<typeof Direct>, cpuLeftMs: () => number): Promise<Response> {
  const started = Date.now();
  if (!b.connection_id) return await enqueueAll(b);
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
        cpuLeftMs,
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
      return Response.json({ error: `inbound sync failed: ${errorMessage(e)}` }, {
        status: 500,
      });
    }
  }
  if (b.direction !== "inbound" && !b.dry_run) {
    const pushed = await pushNow(b.connection_id, b.trigger, {
      deadline: started + (b.budget_ms ?? DEFAULT_BUDGET_MS),
      cpuLeftMs,
    }, key);
    out.outbound = pushed;
    if (typeof pushed === "string" || pushed.status === "failed") out.ok = false;
    if (typeof pushed !== "string" && pushed.more) out.more = true;
  }
  out.duration_ms = Date.now() - started;
  return Response.json(out);
}

/** Without a connection id the direct shape does not walk every connection in one request: it
 * enqueues their streams as jobs and wakes workers, as a cron tick does. */
async function enqueueAll(b: z.infer<typeof Direct>): Promise<Response> {
  if (b.dry_run) {
    return Response.json({ error: "dry_run needs a connection_id" }, { status: 400 });
  }
  const out: Record<string, unknown> = { ok: true, more: false, runs: [] };
  if (b.direction !== "outbound") {
    const [r] = await sql`
      select crm.enqueue_inbound(${b.objects ?? OBJECT_TYPES}::text[],
                                 ${b.mode === "full" ? "full" : "delta"}, null,
                                 ${b.trigger}) as n`;
    out.enqueued = Number(r.n);
  }
  if (b.direction !== "inbound") {
    const [r] = await sql`select crm.enqueue_outbound(null, ${b.trigger}) as n`;
    out.enqueued_outbound = Number(r.n);
  }
  return Response.json(out);
}
