// The handler of outbound jobs (one per connection): one push of the connection's due outbox
// entries (../sync/outbound.ts), bounded by the worker's budget, its outcome turned into the
// job's:
//   outbox empty                  → done
//   stopped at the budget         → more (a continuation, due now)
//   rate budget paused            → deferred until the budget reopens
//   credentials refused           → dead (the connection is in status error; its entries stay
//                                   queued for when it is reconnected)
//   other failures of a call      → done: the entries carry their own backoff, and the outbox
//                                   trigger and the cron safety net enqueue the job again
// Entry-level outcomes (retries, dead letters) live on the entries, not on the job.
import type { Sql } from "../db.ts";
import type { Trigger } from "../sync/inbound.ts";
import { type OutboundSummary, runOutbound } from "../sync/outbound.ts";
import type { ContextCache } from "./contexts.ts";
import type { Job } from "./queue.ts";
import type { JobBudget, JobHandler, JobOutcome } from "./worker.ts";

const TRIGGERS: readonly Trigger[] = ["cron", "webhook", "manual", "backfill", "live"];

export function outboundJobHandler(sql: Sql, contexts: ContextCache): JobHandler {
  return async (job: Job, budget: JobBudget): Promise<JobOutcome> => {
    const ctx = await contexts.get(job.connectionId, "realtime");
    if (typeof ctx === "string") return { outcome: "dead", error: ctx };
    const summary = await runOutbound(sql, ctx, {
      trigger: TRIGGERS.find((t) => t === job.payload.trigger) ?? "manual",
      worker: `job ${job.id}`,
      deadline: budget.deadline,
      cpuLeftMs: budget.cpuLeftMs,
      onProgress: (p) => budget.heartbeat({ ...p, at: new Date().toISOString() }),
    });
    return outboundOutcome(summary);
  };
}

export function outboundOutcome(s: OutboundSummary): JobOutcome {
  const details = { status: s.status, pushes: s.pushes };
  if (s.status !== "failed") return { outcome: s.more ? "more" : "done", details };
  const error = s.error ?? "the outbound push failed";
  if (s.paused_until) return { outcome: "defer", until: new Date(s.paused_until), reason: error };
  if (s.revoked) return { outcome: "dead", error };
  return { outcome: "done", details: { ...details, error } };
}
