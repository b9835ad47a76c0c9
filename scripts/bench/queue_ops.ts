// What the issue-11 parts do to the job queue and the stack around a round: the worker cap,
// enqueue and wake (the SQL verbs cron and trigger_crm_sync use, so workers run as real
// requests: pg_net -> gateway -> crm-sync-bidirectional {"worker": true}), waiting for the
// queue to drain, a reset of every stream's state between rounds, the gateway's per-process
// stats (GET/DELETE /_gateway/stats) and the CPU of each part of the stack.
import type postgres from "postgres";
import { readPid } from "../../shared/local/processes.ts";
import type { StackConfig } from "../../shared/local/config.ts";
import { clusterCpuMs, cpuMs, groupCpuMs } from "./procstat.ts";

export async function setMaxWorkers(sql: postgres.Sql, n: number): Promise<void> {
  const r = await sql`update crm.engine_settings set max_workers = ${n}`;
  if (r.count !== 1) throw new Error("crm.engine_settings has no row to update");
}

export interface QueueState {
  queued: number;
  running: number;
  done: number;
  dead: number;
  other: number;
  liveWorkers: number;
}

export async function queueState(sql: postgres.Sql, ids: readonly string[]): Promise<QueueState> {
  const [r] = await sql`
    select count(*) filter (where state = 'queued')::int as queued,
           count(*) filter (where state = 'running')::int as running,
           count(*) filter (where state = 'done')::int as done,
           count(*) filter (where state = 'dead')::int as dead,
           count(*) filter (where state not in ('queued', 'running', 'done', 'dead'))::int as other,
           (select live_workers from crm.engine_status())::int as live_workers
    from crm.jobs where connection_id = any(${ids as string[]}::uuid[])`;
  return {
    queued: r.queued,
    running: r.running,
    done: r.done,
    dead: r.dead,
    other: r.other,
    liveWorkers: r.live_workers ?? 0,
  };
}

/** Polls until no job of these connections is queued or running (or the timeout), calling
 * `tick` after every poll. */
export async function waitDrained(
  sql: postgres.Sql,
  ids: readonly string[],
  o: { timeoutMs: number; pollMs: number; tick?: (s: QueueState) => void | Promise<void> },
): Promise<QueueState> {
  const until = performance.now() + o.timeoutMs;
  for (;;) {
    const s = await queueState(sql, ids);
    await o.tick?.(s);
    if (s.queued + s.running === 0) return s;
    if (performance.now() > until) {
      throw new Error(
        `the queue did not drain in ${o.timeoutMs / 1000} s: ${JSON.stringify(s)}`,
      );
    }
    await new Promise((r) => setTimeout(r, o.pollMs));
  }
}

/** Waits until no worker invocation is live (all answered or were reaped). */
export async function waitWorkersGone(sql: postgres.Sql, timeoutMs: number): Promise<boolean> {
  const until = performance.now() + timeoutMs;
  while (performance.now() < until) {
    const [r] = await sql`select live_workers::int as n from crm.engine_status()`;
    if (!r.n) return true;
    await new Promise((r) => setTimeout(r, 250));
  }
  return false;
}

/**
 * Forgets everything the given connections synced, so the next round starts as the first did:
 * every row of every crm table keyed by connection_id (mirror, cursors, runs, leases, logs,
 * jobs, budgets; the connections and their field mappings stay) and every worker row. Run with
 * triggers off (session_replication_role = replica): a reset is not an app write to push.
 */
export async function resetStreams(sql: postgres.Sql, ids: readonly string[]): Promise<string[]> {
  const tables = await sql`
    select c.relname as name from pg_class c
    join pg_namespace n on n.oid = c.relnamespace
    join pg_attribute a on a.attrelid = c.oid and a.attname = 'connection_id' and not a.attisdropped
    where n.nspname = 'crm' and c.relkind in ('r', 'p')
      and c.relname not in ('connections', 'field_mappings')
    order by 1`;
  await sql.begin(async (tx) => {
    await tx`set local session_replication_role = replica`;
    for (const t of tables) {
      await tx`delete from ${tx("crm")}.${tx(t.name)}
               where connection_id = any(${ids as string[]}::uuid[])`;
    }
    await tx`delete from crm.job_workers`;
  });
  return tables.map((t) => t.name as string);
}

/** Enqueues one inbound job per active connection × enabled object and wakes workers once;
 * returns how many were enqueued and the database's clock at the enqueue. */
export async function enqueueInbound(
  sql: postgres.Sql,
  objects: string[],
  mode: "delta" | "full",
): Promise<{ jobs: number; at: Date }> {
  const [r] = await sql`
    select crm.enqueue_inbound(${objects}::text[], ${mode}, null, 'manual') as n,
           now() as at`;
  return { jobs: Number(r.n), at: r.at };
}

/** One job for one connection's object, not woken yet (p_wake false). */
export async function enqueueJob(
  sql: postgres.Sql,
  connectionId: string,
  object: string,
  mode: "delta" | "full",
): Promise<number> {
  const [r] = await sql`
    select crm.enqueue_job('inbound', ${connectionId}::uuid, ${object}, ${mode},
                           '{"trigger": "manual"}'::jsonb, now(), false) as id`;
  return Number(r.id);
}

export async function wakeWorkers(sql: postgres.Sql): Promise<number> {
  const [r] = await sql`select crm.wake_workers('bench') as n`;
  return Number(r.n);
}

/** One finished job: when it was enqueued and finished (database clock) and how it ended. */
export interface JobRow {
  id: number;
  connectionId: string;
  object: string | null;
  state: string;
  createdAt: Date;
  finishedAt: Date | null;
  claims: number;
  attempts: number;
  lastError: string | null;
}

export async function jobRows(sql: postgres.Sql, ids: readonly string[]): Promise<JobRow[]> {
  const rows = await sql`
    select id, connection_id, object, state, created_at, finished_at, claims, attempts, last_error
    from crm.jobs where connection_id = any(${ids as string[]}::uuid[]) order by id`;
  return rows.map((r) => ({
    id: Number(r.id),
    connectionId: r.connection_id,
    object: r.object,
    state: r.state,
    createdAt: r.created_at,
    finishedAt: r.finished_at,
    claims: Number(r.claims),
    attempts: Number(r.attempts),
    lastError: r.last_error,
  }));
}

// ---- the gateway's per-process stats (shared/local/function_pool.ts) ----------------------

export interface ProcessStats {
  pid?: number;
  requests?: number;
  cpuMsMax?: number;
  cpuMsTotal?: number;
  peakRssMb: number;
  exit?: string | null;
  /** ISO time the process was spawned. */
  startedAt?: string;
}

export interface FunctionStats {
  spawned: number;
  requests: number;
  kills: Record<string, number>;
  cpuMsMax: number;
  peakRssMb: number;
  processes: ProcessStats[];
}

export async function gatewayStats(
  url: string,
  reset = false,
): Promise<Record<string, FunctionStats>> {
  const res = await fetch(`${url}/_gateway/stats`, { method: reset ? "DELETE" : "GET" });
  const text = await res.text();
  if (!res.ok) {
    throw new Error(`${reset ? "DELETE" : "GET"} /_gateway/stats: ${res.status} ${text}`);
  }
  return JSON.parse(text).functions ?? {};
}

// ---- CPU of the stack's parts -------------------------------------------------------------

export interface StackCpu {
  postgres: number;
  functions: number;
  gateway: number;
  "pg_net worker": number;
  sandboxes: number;
}

/** CPU ms each part of the stack has used so far (differences between two readings are what a
 * round cost it). */
export function stackCpu(cfg: StackConfig, sandboxPid: number): StackCpu {
  const gw = readPid(cfg.dir, "gateway");
  const net = readPid(cfg.dir, "pg_net_worker");
  const g = gw === null ? { leader: NaN, rest: NaN } : groupCpuMs(gw);
  return {
    postgres: clusterCpuMs(cfg.pgData),
    functions: g.rest,
    gateway: g.leader,
    "pg_net worker": net === null ? NaN : cpuMs(net),
    sandboxes: cpuMs(sandboxPid),
  };
}

export function cpuDelta(a: StackCpu, b: StackCpu): StackCpu {
  const out = {} as StackCpu;
  for (const k of Object.keys(a) as (keyof StackCpu)[]) out[k] = b[k] - a[k];
  return out;
}
