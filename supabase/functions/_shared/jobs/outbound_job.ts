// The handler of outbound jobs (one per connection): one push of the connection's due outbox
// entries (../sync/outbound.ts), bounded by the worker's budget, its outcome turned into the
// job's:
//   outbox empty                  → done
//   stopped at the budget         → more (a continuation, due now)
//   rate budget paused            → deferred until the budget reopens
//   credentials refused           → dead (the connection is in status error; its entries stay
//                                   queued for when it is reconnected)
//   other failures of a call      → as below: the entries carry their own backoff
//   entries left in backoff       → deferred until the first is due (the outbox trigger and
//                                   the cron job enqueue it too)
// Entry-level outcomes (retries, dead letters) live on the entries, not on the job.
import type { Sql } from "../db.ts";
import type { Trigger } from "../sync/inbound.ts";
import { type OutboundSummary, runOutbound } from "../sync/outbound.ts";
import type { ContextCache } from "./contexts.ts";
import type { Job } from "./queue.ts";
import type { JobBudget, JobHandler, JobOutcome } from "./worker.ts";

const TRIGGERS: readonly Trigger[] = ["app", "cron", "webhook", "manual", "backfill"];

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
    const outcome = outboundOutcome(summary);
    if (outcome.outcome !== "done") return outcome;
    // Entries left waiting out a backoff (or a held create): come back when the first is due,
    // rather than at the next cron tick.
    const [w] = await sql`select min(next_attempt_at) as at, count(*)::int as n from crm.outbox
                          where connection_id = ${job.connectionId} and state = 'pending'
                            and next_attempt_at > now()`;
    if (!w.at) return outcome;
    return {
      outcome: "defer",
      until: new Date(w.at),
      reason: `${w.n} outbox entr${w.n === 1 ? "y waits" : "ies wait"} for a retry`,
    };
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
