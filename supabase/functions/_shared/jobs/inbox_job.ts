// The handler of inbox jobs (one per connection): one drain of the connection's webhook inbox
// (../sync/inbox.ts) in the real-time lane of the rate budget, bounded by the worker's budget,
// its outcome turned into the job's:
//   inbox empty                   → done
//   stopped at the budget         → more (a continuation, due now)
//   rate budget paused            → deferred until the budget reopens
//   credentials refused           → dead (the connection is in status error; its events stay
//                                   pending, unclaimed, until it is reconnected and the cron
//                                   job crm-inbox enqueues a drain)
//   a re-read failed              → the events carry their own backoff (crm.fail_inbox)
//   events left in backoff        → deferred until the first is due
import type { Sql } from "../db.ts";
import { type InboxSummary, runInbox } from "../sync/inbox.ts";
import type { ContextCache } from "./contexts.ts";
import type { Job } from "./queue.ts";
import type { JobBudget, JobHandler, JobOutcome } from "./worker.ts";

export function inboxJobHandler(sql: Sql, contexts: ContextCache): JobHandler {
  return async (job: Job, budget: JobBudget): Promise<JobOutcome> => {
    const ctx = await contexts.get(job.connectionId, "realtime");
    if (typeof ctx === "string") return { outcome: "dead", error: ctx };
    const summary = await runInbox(sql, ctx, {
      worker: `job ${job.id}`,
      deadline: budget.deadline,
      cpuLeftMs: budget.cpuLeftMs,
      onProgress: (p) => budget.heartbeat({ ...p, at: new Date().toISOString() }),
    });
    const outcome = inboxOutcome(summary);
    if (outcome.outcome !== "done") return outcome;
    const [w] = await sql`select due, next_at from crm.inbox_due(${job.connectionId}::uuid)`;
    // Events that arrived while the drain ran and that it could not claim (another holder).
    if (Number(w.due) > 0) return { ...outcome, outcome: "more" };
    if (!w.next_at) return outcome;
    return {
      outcome: "defer",
      until: new Date(w.next_at),
      reason: "webhook events wait for a retry",
    };
  };
}

export function inboxOutcome(s: InboxSummary): JobOutcome {
  const details = {
    status: s.status,
    done: s.done,
    ignored: s.ignored,
    retrying: s.retrying,
    dead: s.dead,
    runs: s.runs,
  };
  if (s.status !== "failed") return { outcome: s.more ? "more" : "done", details };
  const error = s.error ?? "the inbox drain failed";
  if (s.paused_until) return { outcome: "defer", until: new Date(s.paused_until), reason: error };
  if (s.revoked) return { outcome: "dead", error };
  return { outcome: "done", details: { ...details, error } };
}
