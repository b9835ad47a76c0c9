// The job queue's verbs as the workers call them. The queue lives in SQL (crm.jobs; claims,
// leases, backoff, dead letters and wake-ups are crm.* functions): this file only types them.
import type { Sql } from "../db.ts";

/** The SQLSTATE of the job verbs when the caller no longer holds the job (taken over after its
 * lease expired, or cancelled). */
export const JOB_LEASE_LOST = "CRM11";

export function isJobLeaseLost(e: unknown): boolean {
  return (e as { code?: unknown } | null)?.code === JOB_LEASE_LOST;
}

export type JobKind = "inbound" | "outbound" | "inbox" | "setup";

export interface Job {
  id: number;
  kind: JobKind;
  connectionId: string;
  accountId: string;
  object: string | null;
  mode: string | null;
  payload: Record<string, unknown>;
  /** The fencing token (a bigint as text) every later verb presents. */
  token: string;
  leaseExpiresAt: Date;
  attempts: number;
  claims: number;
}

export async function claimJob(sql: Sql, workerId: number, leaseS: number): Promise<Job | null> {
  const rows = await sql`
    select job_id, kind, connection_id, account_id, object, mode, payload,
           lease_token::text as lease_token, lease_expires_at, attempts, claims
    from crm.claim_job(${workerId}, make_interval(secs => ${leaseS}))`;
  if (rows.length === 0) return null;
  const r = rows[0];
  return {
    id: Number(r.job_id),
    kind: r.kind,
    connectionId: r.connection_id,
    accountId: r.account_id,
    object: r.object,
    mode: r.mode,
    payload: r.payload ?? {},
    token: r.lease_token,
    leaseExpiresAt: new Date(r.lease_expires_at),
    attempts: Number(r.attempts),
    claims: Number(r.claims),
  };
}

export async function heartbeatJob(
  sql: Sql,
  job: Job,
  leaseS: number,
  progress: Record<string, unknown> | null,
): Promise<void> {
  const [r] = await sql`
    select crm.heartbeat_job(${job.id}, ${job.token}::bigint, make_interval(secs => ${leaseS}),
                             ${progress ? sql.json(progress as never) : null}::jsonb) as expires`;
  job.leaseExpiresAt = new Date(r.expires);
}

export async function finishJob(
  sql: Sql,
  job: Job,
  outcome: "done" | "more",
  details: Record<string, unknown>,
): Promise<string> {
  const [r] = await sql`
    select crm.finish_job(${job.id}, ${job.token}::bigint, ${outcome},
                          ${sql.json(details as never)}::jsonb) as state`;
  return r.state;
}

export async function failJob(
  sql: Sql,
  job: Job,
  error: string,
  o: { retryAfterS?: number; permanent?: boolean } = {},
): Promise<string> {
  const [r] = await sql`
    select crm.fail_job(${job.id}, ${job.token}::bigint, ${error},
                        case when ${o.retryAfterS ?? null}::float8 is null then null
                             else make_interval(secs => ${o.retryAfterS ?? null}::float8) end,
                        ${o.permanent ?? false}) as state`;
  return r.state;
}

export async function deferJob(sql: Sql, job: Job, until: Date, reason: string): Promise<string> {
  const [r] = await sql`
    select crm.defer_job(${job.id}, ${job.token}::bigint, ${until}::timestamptz, ${reason})
      as state`;
  return r.state;
}

/** Registers this invocation as a worker (the id it was woken with, or a new one). */
export async function workerStarted(sql: Sql, workerId: number | null): Promise<number> {
  const [r] = await sql`select crm.worker_started(${workerId}::bigint) as id`;
  return Number(r.id);
}

export async function workerFinished(
  sql: Sql,
  workerId: number,
  stats: Record<string, unknown>,
): Promise<void> {
  await sql`select crm.worker_finished(${workerId}, ${sql.json(stats as never)}::jsonb)`;
}

/** Wakes as many workers as the due backlog needs (capped by crm.engine_settings); returns
 * how many were woken. */
/** Jobs a worker could claim now (queued and due, or with an expired lease). */
export async function dueJobs(sql: Sql): Promise<number> {
  const [r] = await sql`select crm._due_jobs() as n`;
  return Number(r.n);
}

export async function wakeWorkers(sql: Sql, reason: string): Promise<number> {
  const [r] = await sql`select crm.wake_workers(${reason}) as woken`;
  return Number(r.woken);
}

export interface WorkerSettings {
  cpuBudgetMs: number;
  leaseS: number;
}

export async function workerSettings(sql: Sql): Promise<WorkerSettings> {
  const rows = await sql`
    select worker_cpu_budget_ms, extract(epoch from job_lease)::float8 as lease_s
    from crm.engine_settings`;
  return {
    cpuBudgetMs: Number(rows[0]?.worker_cpu_budget_ms ?? 800),
    leaseS: Number(rows[0]?.lease_s ?? 120),
  };
}
