// The handler of inbound jobs (connection × object × mode): one resumable inbound run
// (../sync/inbound.ts) bounded by the worker's budget, its outcome turned into the job's:
//   finished                      → done
//   stopped at the budget         → more (a continuation, due now, from the saved checkpoint)
//   another run holds the stream  → deferred until that run's lease can have expired
//   rate budget paused            → deferred until the budget reopens, no attempt counted
//   credentials refused           → dead (the connection is in status error; reconnecting
//                                   enqueues afresh)
//   other failures                → retried with backoff, dead after the job's attempts
// Modes: delta walks from the watermark; full (a backfill) walks everything; drift (the hourly
// check, cron crm-drift-check) compares ids and modification times and repairs only what
// differs (../sync/drift.ts). A drift check stopped at the budget continues like a walk.
import type { Sql } from "../db.ts";
import type { ObjectType } from "../providers/types.ts";
import { runDrift } from "../sync/drift.ts";
import { runInbound, type RunProgress, type RunSummary, type Trigger } from "../sync/inbound.ts";
import type { ContextCache } from "./contexts.ts";
import type { Job } from "./queue.ts";
import type { JobBudget, JobHandler, JobOutcome } from "./worker.ts";

/** An inbound run's lease (crm.begin_inbound_run's default): a stream held by a run that died
 * is free again after at most this long. */
const STREAM_LEASE_S = 180;

const TRIGGERS: readonly Trigger[] = ["cron", "webhook", "manual", "backfill", "live"];

export function inboundJobHandler(sql: Sql, contexts: ContextCache): JobHandler {
  const handle = async (job: Job, budget: JobBudget): Promise<JobOutcome> => {
    // Backfills and drift checks yield the shared rate budget to deltas (and both to live reads).
    const ctx = await contexts.get(job.connectionId, job.mode === "delta" ? "delta" : "backfill");
    if (typeof ctx === "string") return { outcome: "dead", error: ctx };
    // Cron enqueues with trigger "cron"; a job enqueued without one was asked for by hand.
    const trigger = TRIGGERS.find((t) => t === job.payload.trigger) ?? "manual";
    const pageSize = Number.isInteger(job.payload.page_size)
      ? job.payload.page_size as number
      : undefined;
    const onProgress = (p: RunProgress) => budget.heartbeat({ ...p, at: new Date().toISOString() });
    if (job.mode === "drift") {
      const s = await runDrift(sql, ctx, {
        object: job.object as ObjectType,
        trigger,
        deadline: budget.deadline,
        cpuLeftMs: budget.cpuLeftMs,
        pageSize,
        onProgress,
      });
      const outcome = outcomeOf(s);
      return "details" in outcome && outcome.details
        ? { ...outcome, details: { ...outcome.details, drift: s.drift } }
        : outcome;
    }
    const summary = await runInbound(sql, ctx, {
      object: job.object as ObjectType,
      mode: job.mode === "delta" ? "delta" : "full",
      trigger,
      deadline: budget.deadline,
      cpuLeftMs: budget.cpuLeftMs,
      pageSize,
      onProgress,
    });
    return outcomeOf(summary);
  };

  return handle;
}

export function outcomeOf(s: RunSummary): JobOutcome {
  const details = {
    run_id: s.run_id,
    status: s.status,
    processed: s.processed,
    created: s.created,
    updated: s.updated,
    deleted: s.deleted,
    failed: s.failed,
    api_calls: s.api_calls,
  };
  if (s.status === "skipped") {
    return {
      outcome: "defer",
      until: new Date(Date.now() + STREAM_LEASE_S * 1000),
      reason: s.error ?? "another inbound run holds this stream",
    };
  }
  if (s.status !== "failed") return { outcome: s.more ? "more" : "done", details };
  const error = s.error ?? "the inbound run failed";
  if (s.paused_until) {
    return { outcome: "defer", until: new Date(s.paused_until), reason: error };
  }
  if (s.revoked) return { outcome: "dead", error };
  return { outcome: "retry", error, details };
}
