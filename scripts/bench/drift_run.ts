// The drift part (issue 13): over N unchanged records, today's full walk against the drift check
// in the same run, on the same stack and sandboxes, both as production runs them: an inbound
// job (mode full, then mode drift, what the hourly cron crm-drift-check enqueues) claimed by a
// worker woken through pg_net and the gateway. Per way: SQL time of the engine's statements
// (pg_stat_user_functions, track_functions = all), API calls and bytes fetched (the runs'
// sync_log rows), the sandbox's own count of requests, wall time from enqueue to drained; then
// full ÷ drift. Sandboxes: HubSpot N contacts, Salesforce N/2 Contacts + N/2 Leads, rate limits
// lifted (./sandbox_server.ts), and the connections' pacing raised (./connection.ts), so the
// figures measure the machinery, not the providers' documented limits.
import type postgres from "postgres";
import { registerConnection } from "./connection.ts";
import {
  compareWalks,
  DRIFT_SQL_FUNCTIONS,
  type DriftComparison,
  FULL_SQL_FUNCTIONS,
  type FunctionTimes,
  type RunRow,
  sqlTime,
  type WalkCost,
  walkCost,
} from "./drift_figures.ts";
import { waitDrained, wakeWorkers } from "./queue_ops.ts";
import { counters, resetCounters, type SandboxInfo, startSandboxes } from "./sandboxes.ts";

export interface DriftStack {
  encryptionKey: string;
}

export interface DriftPartResult {
  seededMs: number;
  comparisons: DriftComparison[];
  /** Live mirror rows per provider after the backfill. */
  rows: Record<string, number>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Postgres flushes a backend's function counters at most every second, an idle one's within
 * 10 s (PGSTAT_IDLE_INTERVAL): wait that long before reading them. */
const STATS_FLUSH_MS = 11_000;

async function functionTimes(sql: postgres.Sql): Promise<FunctionTimes> {
  await sql`select pg_stat_clear_snapshot()`;
  const rows = await sql`select funcname, sum(calls)::bigint as calls,
                                sum(total_time)::float8 as total
                         from pg_stat_user_functions where schemaname = 'crm'
                         group by funcname`;
  return Object.fromEntries(
    rows.map((r) => [r.funcname as string, { calls: Number(r.calls), totalMs: Number(r.total) }]),
  );
}

/** One inbound job of `mode` for the connection's contacts, run to the end: its cost. */
async function measure(
  sql: postgres.Sql,
  sb: SandboxInfo,
  conn: string,
  mode: "full" | "drift",
  timeoutMs: number,
): Promise<WalkCost> {
  await resetCounters(sb.url);
  const before = await functionTimes(sql);
  const [{ t0 }] = await sql`select clock_timestamp() as t0`;
  const started = performance.now();
  await sql`select crm.enqueue_job('inbound', ${conn}::uuid, 'contacts', ${mode},
                                   '{"trigger": "manual"}'::jsonb, now(), false)`;
  await wakeWorkers(sql);
  await waitDrained(sql, [conn], { timeoutMs, pollMs: 100 });
  const wallMs = performance.now() - started;
  const sandboxCalls = (await counters(sb.url)).total;
  await sleep(STATS_FLUSH_MS);
  const after = await functionTimes(sql);
  const logged = await sql`
    select status, api_calls,
           coalesce((details ->> 'bytes_fetched')::bigint, 0) as bytes,
           created + updated + deleted as written,
           coalesce((details -> 'drift' ->> 'fetched')::bigint, 0) as fetched
    from crm.sync_log
    where connection_id = ${conn} and direction = 'inbound' and mode = ${mode}
      and started_at >= ${t0}
    order by id`;
  const rows: RunRow[] = logged.map((r) => ({
    status: r.status,
    api_calls: Number(r.api_calls),
    bytes: Number(r.bytes),
    written: Number(r.written),
    fetched: Number(r.fetched),
  }));
  const t = sqlTime(before, after, mode === "full" ? FULL_SQL_FUNCTIONS : DRIFT_SQL_FUNCTIONS);
  return walkCost(rows, { sandboxCalls, sqlMs: t.ms, sqlCalls: t.calls, wallMs });
}

export async function runDriftPart(
  sql: postgres.Sql,
  stack: DriftStack,
  o: { records: number; timeoutMs: number },
  log: (m: string) => void,
): Promise<DriftPartResult> {
  const sandboxes = await startSandboxes(o.records, Math.ceil(o.records / 2));
  log(`seeded in ${(sandboxes.seededMs / 1000).toFixed(1)} s (pid ${sandboxes.pid})`);
  const comparisons: DriftComparison[] = [];
  const rows: Record<string, number> = {};
  const conns: string[] = [];
  try {
    for (const provider of ["hubspot", "salesforce"] as const) {
      const sb = sandboxes[provider];
      const conn = (await registerConnection(sql, stack.encryptionKey, sb)).id;
      conns.push(conn);
      log(`${provider}: backfill (a full job) of the mirror the checks compare with`);
      const backfill = await measure(sql, sb, conn, "full", o.timeoutMs);
      const [{ live }] = await sql`select count(*)::int as live from crm.contacts
                                   where connection_id = ${conn} and deleted_at is null`;
      rows[provider] = live;
      log(`  ${live} live rows, ${backfill.runs} runs, ${(backfill.wallMs / 1000).toFixed(1)} s`);
      if (backfill.failed) throw new Error(`${provider}: the backfill had failed runs`);
      log(`${provider}: today's full walk over the unchanged records`);
      const full = await measure(sql, sb, conn, "full", o.timeoutMs);
      log(`  ${full.runs} runs, ${full.apiCalls} calls, ${(full.wallMs / 1000).toFixed(1)} s`);
      log(`${provider}: the drift check over the same records`);
      const drift = await measure(sql, sb, conn, "drift", o.timeoutMs);
      log(`  ${drift.runs} runs, ${drift.apiCalls} calls, ${(drift.wallMs / 1000).toFixed(1)} s`);
      comparisons.push(compareWalks(provider, live, full, drift));
      await sql`update crm.connections set status = 'paused' where id = ${conn}`;
    }
  } finally {
    await sandboxes.close();
    for (const id of conns) {
      await sql`update crm.connections set status = 'paused' where id = ${id}`.catch(() => {});
    }
  }
  return { seededMs: sandboxes.seededMs, comparisons, rows };
}
