// One worker invocation of crm-sync-bidirectional ({"worker": true}): claim a job, run it until
// it finishes or this invocation's budget ends, record the outcome, claim the next. The budget
// is CPU first (the platform terminates a request past 2 s of CPU; we stop claiming, and stop
// the running job at its next page, at crm.engine_settings.worker_cpu_budget_ms, default
// 1.2 s) and wall clock second (well under the 150 s limit). A job cut short is saved as a
// continuation ("more": queued again, due now); before exiting, a worker that stopped on its
// budget asks crm.wake_workers for a successor, which wakes one only if due work remains and
// fewer workers than allowed are live. Nothing here calls another function directly: wake-ups
// go through Postgres and pg_net.
import type { Sql } from "../db.ts";
import type { Logger } from "../sync/context.ts";
import { errorMessage } from "../sync/connections.ts";
import { redactSecrets } from "../http/redact.ts";
import type { CpuMeter } from "./cpu.ts";
import {
  claimJob,
  deferJob,
  dueJobs,
  failJob,
  finishJob,
  heartbeatJob,
  isJobLeaseLost,
  type Job,
  type JobKind,
  wakeWorkers,
  workerFinished,
  workerStarted,
} from "./queue.ts";

/** What a handler made of its job. */
export type JobOutcome =
  | { outcome: "done" | "more"; details: Record<string, unknown> }
  | { outcome: "retry"; error: string; retryAfterS?: number; details?: Record<string, unknown> }
  | { outcome: "dead"; error: string }
  | { outcome: "defer"; until: Date; reason: string }
  /** The job was taken over or cancelled while it ran: nothing more is recorded. */
  | { outcome: "lost"; error: string };

export interface JobBudget {
  /** Epoch ms after which the job starts nothing new (the worker's wall budget). */
  deadline: number;
  /** CPU ms the worker has left of its budget: at 0 the job stops at its next page. */
  cpuLeftMs(): number;
  /** Extends the job's lease and records its progress; throws CRM11 when the job was lost. */
  heartbeat(progress: Record<string, unknown>): Promise<void>;
}

export type JobHandler = (job: Job, budget: JobBudget) => Promise<JobOutcome>;

export interface WorkerDeps {
  sql: Sql;
  log: Logger;
  cpu: CpuMeter;
  now: () => number;
  handlers: Partial<Record<JobKind, JobHandler>>;
}

export interface WorkerOptions {
  /** The crm.job_workers row this invocation was woken as (null: register a new one). */
  workerId: number | null;
  cpuBudgetMs: number;
  wallBudgetMs: number;
  leaseS: number;
}

export interface JobReport {
  job_id: number;
  kind: JobKind;
  connection_id: string;
  object: string | null;
  mode: string | null;
  outcome: JobOutcome["outcome"];
  state: string | null;
  cpu_ms: number;
  duration_ms: number;
  error?: string;
  details?: Record<string, unknown>;
}

export interface WorkerReport {
  worker_id: number;
  jobs: JobReport[];
  /** Why the worker stopped claiming. */
  stopped: "idle" | "cpu" | "wall";
  cpu_ms: number;
  cpu_source: string;
  duration_ms: number;
  /** Successors woken on exit. */
  woken: number;
}

/** Claims tried again after one found nothing while due jobs existed (see claimAfterSkips). */
const CLAIM_RETRIES = 3;
const CLAIM_RETRY_MS = 100;

/** Fewest seconds between two heartbeats of one job (pages can come every few ms). */
const HEARTBEAT_EVERY_S = 2;

export async function runWorker(deps: WorkerDeps, o: WorkerOptions): Promise<WorkerReport> {
  const { sql, cpu, now } = deps;
  const started = now();
  const workerId = await workerStarted(sql, o.workerId);
  const wallDeadline = started + o.wallBudgetMs;
  const spent = (): "cpu" | "wall" | null =>
    cpu.usedMs() >= o.cpuBudgetMs ? "cpu" : now() >= wallDeadline ? "wall" : null;
  const jobs: JobReport[] = [];
  let stopped: WorkerReport["stopped"] = "idle";
  for (;;) {
    const reason = spent();
    if (reason) {
      stopped = reason;
      break;
    }
    const job = await claimAfterSkips(deps, workerId, o.leaseS);
    if (!job) break;
    jobs.push(await runJob(deps, job, { ...o, wallDeadline }));
  }
  const report = {
    worker_id: workerId,
    jobs,
    stopped,
    cpu_ms: Math.round(cpu.usedMs()),
    cpu_source: cpu.source,
    duration_ms: now() - started,
    woken: 0,
  };
  await workerFinished(sql, workerId, {
    jobs: jobs.length,
    stopped,
    cpu_ms: report.cpu_ms,
    duration_ms: report.duration_ms,
    rss_mb: Math.round(Deno.memoryUsage().rss / 2 ** 20),
  });
  // A worker cut short leaves due work behind. An idle one may too: a job enqueued after its
  // last empty claim and before workerFinished saw it live and idle, so that enqueue woke
  // nobody and the job would wait for the next crm-workers tick (up to a minute).
  if (stopped !== "idle" || await dueJobs(sql) > 0) {
    report.woken = await wakeWorkers(sql, "handover");
  }
  return report;
}

/**
 * A claim skips rows other sessions hold locked (SKIP LOCKED); an app transaction that queued
 * a push holds its connection's job row until it commits, and its wake may have been the one
 * debounced. So when a claim finds nothing while due jobs exist, try again shortly, a few
 * times, rather than leave that job to the next minute's crm-workers tick.
 */
async function claimAfterSkips(
  deps: WorkerDeps,
  workerId: number,
  leaseS: number,
): Promise<Job | null> {
  for (let i = 0;; i++) {
    const job = await claimJob(deps.sql, workerId, leaseS);
    if (job || i >= CLAIM_RETRIES || await dueJobs(deps.sql) === 0) return job;
    await new Promise((r) => setTimeout(r, CLAIM_RETRY_MS));
  }
}

async function runJob(
  deps: WorkerDeps,
  job: Job,
  o: WorkerOptions & { wallDeadline: number },
): Promise<JobReport> {
  const { sql, cpu, now, log } = deps;
  const cpu0 = cpu.usedMs();
  const t0 = now();
  let lastBeat = t0;
  const budget: JobBudget = {
    deadline: o.wallDeadline,
    cpuLeftMs: () => o.cpuBudgetMs - cpu.usedMs(),
    async heartbeat(progress) {
      if (now() - lastBeat < HEARTBEAT_EVERY_S * 1000) return;
      lastBeat = now();
      await heartbeatJob(sql, job, o.leaseS, progress);
    },
  };
  const handler = deps.handlers[job.kind];
  let result: JobOutcome;
  try {
    result = handler
      ? await handler(job, budget)
      // A job kind this deployment cannot run yet (a newer enqueuer, an older function):
      // kept, retried later, dead after its attempts, never dropped silently.
      : {
        outcome: "retry",
        error: `this worker has no handler for ${job.kind} jobs`,
        retryAfterS: 600,
      };
  } catch (e) {
    result = isJobLeaseLost(e)
      ? { outcome: "lost", error: errorMessage(e) }
      : { outcome: "retry", error: errorMessage(e) };
  }
  let state: string | null = null;
  try {
    state = await record(sql, job, result);
  } catch (e) {
    if (!isJobLeaseLost(e)) throw e;
    result = { outcome: "lost", error: errorMessage(e) };
  }
  if (result.outcome !== "done" && result.outcome !== "more") {
    log("job did not finish", { job_id: job.id, kind: job.kind, outcome: result.outcome, state });
  }
  return {
    job_id: job.id,
    kind: job.kind,
    connection_id: job.connectionId,
    object: job.object,
    mode: job.mode,
    outcome: result.outcome,
    state,
    cpu_ms: Math.round(cpu.usedMs() - cpu0),
    duration_ms: now() - t0,
    ...("error" in result ? { error: result.error } : {}),
    ...("reason" in result ? { error: result.reason } : {}),
    ...("details" in result && result.details ? { details: result.details } : {}),
  };
}

function record(sql: Sql, job: Job, r: JobOutcome): Promise<string | null> {
  switch (r.outcome) {
    case "done":
    case "more":
      return finishJob(sql, job, r.outcome, r.details);
    case "retry":
      return failJob(sql, job, redactSecrets(r.error), { retryAfterS: r.retryAfterS });
    case "dead":
      return failJob(sql, job, redactSecrets(r.error), { permanent: true });
    case "defer":
      return deferJob(sql, job, r.until, redactSecrets(r.reason));
    case "lost":
      return Promise.resolve(null);
  }
}
