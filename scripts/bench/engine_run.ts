// The engine's side of the bench: a backfill of one connection's contacts through the real
// path — the gateway, crm-sync-bidirectional in its own Deno process, called again while it
// answers "more": true (each call stops at its ~90 s budget) — with the wall time, the calls
// the sandbox served, what sync_log recorded, the function process's peak memory and the CPU
// each process spent.
//
// Peak memory: the function process is restarted before each provider (SIGTERM by pid; the
// gateway spawns a fresh one on the next request), warmed up with an outbound call (which
// does no inbound work) and its VmHWM reset through /proc/<pid>/clear_refs, so the peak is
// that of this backfill alone. Where the reset is not allowed the peak includes the boot,
// and the report says so. RSS is also sampled every 250 ms, which catches a process that
// died and was replaced mid-run.
import type postgres from "postgres";
import { isAlive } from "../../shared/local/processes.ts";
import { gatewayStats } from "./queue_ops.ts";
import { clusterCpuMs, cpuMs, functionPid, loadAverage, memoryMb, resetPeak } from "./procstat.ts";
import { type Counters, counters, resetCounters } from "./sandboxes.ts";

export const SYNC_FUNCTION = "crm-sync-bidirectional";

export interface Stack {
  url: string;
  serviceRoleKey: string;
  pgPort: number;
  pgData: string;
}

export interface EngineResult {
  wallMs: number;
  calls: { status: number; ms: number; processed: number; more: boolean }[];
  landed: number;
  landedLive: number;
  counters: Counters;
  log: {
    runs: number;
    apiCalls: number;
    processed: number;
    failed: number;
    durationMs: number;
    statuses: string;
  };
  memory: { pid: number; bootRssMb: number; peakMb: number; peakReset: boolean; sampledMb: number };
  restarts: number;
  /** Function processes that served the backfill (the gateway's pool). */
  processes: number;
  cpuMs: { fn: number; pg: number; sandbox: number };
  /** 1-minute load average when the backfill started and ended. */
  load: [number, number];
  /** pg_stat_user_functions of schema crm for this run: calls and total ms per function. */
  sqlFunctions: { name: string; calls: number; totalMs: number; selfMs: number }[];
}

export async function post(
  stack: Stack,
  body: unknown,
): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${stack.url}/functions/v1/${SYNC_FUNCTION}`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${stack.serviceRoleKey}`,
      "content-type": "application/json",
    },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(170_000),
  });
  const text = await res.text();
  try {
    return { status: res.status, json: JSON.parse(text) };
  } catch {
    return { status: res.status, json: { raw: text } };
  }
}

async function stopFunction(stack: Stack): Promise<void> {
  const pid = functionPid(SYNC_FUNCTION, stack.pgPort);
  if (pid === null) return;
  Deno.kill(pid, "SIGTERM");
  for (let i = 0; i < 150 && isAlive(pid); i++) await new Promise((r) => setTimeout(r, 100));
}

/** A fresh function process, booted and idle, with its peak memory reset. */
async function freshFunction(stack: Stack) {
  await stopFunction(stack);
  const warm = await post(stack, { direction: "outbound", trigger: "manual" });
  if (warm.status !== 200) throw new Error(`warm-up call: ${warm.status} ${JSON.stringify(warm)}`);
  const pid = functionPid(SYNC_FUNCTION, stack.pgPort);
  if (pid === null) throw new Error(`no ${SYNC_FUNCTION} process found after the warm-up call`);
  const bootRssMb = memoryMb(pid).rss;
  return { pid, bootRssMb, peakReset: resetPeak(pid) };
}

export async function runEngineBackfill(
  sql: postgres.Sql,
  stack: Stack,
  sandbox: { url: string; pid: number },
  connectionId: string,
  progress: (line: string) => void,
): Promise<EngineResult> {
  const fn = await freshFunction(stack);
  // The gateway runs a pool of processes and retires one past 1 s of CPU (as hosted), so the
  // backfill spans several: their CPU and peak memory come from the gateway's stats.
  await gatewayStats(stack.url, true);
  await resetCounters(sandbox.url);
  await sql`select pg_stat_reset()`;
  const cpu0 = {
    fn: cpuMs(fn.pid),
    pg: clusterCpuMs(stack.pgData),
    sandbox: cpuMs(sandbox.pid),
  };

  let sampledMb = memoryMb(fn.pid).rss;
  let restarts = 0;
  let current = fn.pid;
  const sampler = setInterval(() => {
    const pid = functionPid(SYNC_FUNCTION, stack.pgPort);
    if (pid === null) return;
    if (pid !== current) {
      restarts++;
      current = pid;
    }
    try {
      sampledMb = Math.max(sampledMb, memoryMb(pid).rss);
    } catch { /* exited between the two reads */ }
  }, 250);

  const body = {
    direction: "inbound",
    objects: ["contacts"],
    connection_id: connectionId,
    trigger: "backfill",
  };
  const calls: EngineResult["calls"] = [];
  const load0 = loadAverage();
  const t0 = performance.now();
  let processed = 0;
  try {
    for (;;) {
      const c0 = performance.now();
      const r = await post(stack, body);
      const ms = performance.now() - c0;
      const a = r.json as { more?: boolean; runs?: { processed?: number; status?: string }[] };
      if (r.status !== 200 || !Array.isArray(a.runs)) {
        throw new Error(`${SYNC_FUNCTION} answered ${r.status}: ${JSON.stringify(r.json)}`);
      }
      const n = a.runs.reduce((s, run) => s + Number(run.processed ?? 0), 0);
      processed += n;
      calls.push({ status: r.status, ms, processed: n, more: a.more === true });
      progress(
        `call ${calls.length}: ${n.toLocaleString("en")} records in ${(ms / 1000).toFixed(1)} s ` +
          `(${processed.toLocaleString("en")} so far)${a.more ? ", more" : ", done"}`,
      );
      if (!a.more) break;
      if (n === 0) throw new Error(`${SYNC_FUNCTION} said "more" but processed nothing`);
    }
  } finally {
    clearInterval(sampler);
  }
  const wallMs = performance.now() - t0;
  const load1 = loadAverage();

  const pool = (await gatewayStats(stack.url))[SYNC_FUNCTION];
  const workers = pool?.processes.filter((p) => (p.requests ?? 0) > 0) ?? [];
  const poolCpu = workers.reduce((sum, p) => sum + (p.cpuMsTotal ?? 0), 0);
  const alive = isAlive(fn.pid);
  const mem = workers.length
    ? { rss: 0, hwm: Math.max(...workers.map((p) => p.peakRssMb)) }
    : alive
    ? memoryMb(fn.pid)
    : { rss: 0, hwm: 0 };
  const cpu = {
    fn: workers.length ? poolCpu : alive ? cpuMs(fn.pid) - cpu0.fn : NaN,
    pg: clusterCpuMs(stack.pgData) - cpu0.pg,
    sandbox: cpuMs(sandbox.pid) - cpu0.sandbox,
  };
  const served = await counters(sandbox.url);
  const [landed] = await sql`
    select count(*)::int as n, count(*) filter (where deleted_at is null)::int as live
    from crm.contacts where connection_id = ${connectionId}`;
  const [log] = await sql`
    select count(*)::int as runs, coalesce(sum(api_calls), 0)::int as api_calls,
           coalesce(sum(processed), 0)::int as processed, coalesce(sum(failed), 0)::int as failed,
           coalesce(sum(duration_ms), 0)::bigint as duration_ms,
           string_agg(distinct status, ',') as statuses
    from crm.sync_log where connection_id = ${connectionId} and direction = 'inbound'`;

  // Backends flush their function statistics when idle or on exit: end the function process
  // (closing its pool), then read them.
  await stopFunction(stack);
  await new Promise((r) => setTimeout(r, 1500));
  await sql`select pg_stat_clear_snapshot()`;
  const fns = await sql`
    select funcname, calls::int, total_time::float8 as total, self_time::float8 as self
    from pg_stat_user_functions where schemaname = 'crm' order by total_time desc`;

  return {
    wallMs,
    calls,
    landed: landed.n,
    landedLive: landed.live,
    counters: served,
    log: {
      runs: log.runs,
      apiCalls: log.api_calls,
      processed: log.processed,
      failed: log.failed,
      durationMs: Number(log.duration_ms),
      statuses: log.statuses ?? "",
    },
    processes: workers.length,
    memory: {
      pid: fn.pid,
      bootRssMb: fn.bootRssMb,
      peakMb: mem.hwm,
      peakReset: fn.peakReset,
      sampledMb,
    },
    restarts,
    cpuMs: cpu,
    load: [load0, load1],
    sqlFunctions: fns.map((f) => ({
      name: f.funcname,
      calls: f.calls,
      totalMs: f.total,
      selfMs: f.self,
    })),
  };
}
