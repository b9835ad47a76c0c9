// The scale part (issue 11): many connections, each its own CRM account in the multi-tenant
// sandboxes (documented limits on) and its own app tenant, about `perTenant` changed contacts
// each, all due at once. One round per worker cap (crm.engine_settings.max_workers): reset every
// stream, enqueue one delta per connection the way cron does (crm.enqueue_inbound, one wake),
// and wait until the queue drains; workers run as real requests (pg_net -> gateway ->
// crm-sync-bidirectional {"worker": true}). A small round first, with the fewest workers, gives the
// peak RSS per worker process the full round with as many workers must not exceed by more than
// the flatness target (a quarter of the connections, each worker invocation still running up to
// its CPU budget: the same work per process, a quarter of the tenants).
// Per round: time until every stream is synced (enqueue to the last job's finish, database
// clock), each tenant's wait (enqueue to its job's finish), rows landed, dead jobs, 429s the
// sandboxes served, worker processes and their peak RSS (the gateway's stats), and the CPU each
// part of the stack spent.
import type postgres from "postgres";
import type { StackConfig } from "../../shared/local/config.ts";
import type { ProviderName } from "../../supabase/functions/_shared/providers/types.ts";
import { SYNC_FUNCTION } from "./engine_run.ts";
import { isAlive } from "../../shared/local/processes.ts";
import { functionPids, loadAverage } from "./procstat.ts";
import {
  cpuDelta,
  enqueueInbound,
  enqueueJob,
  gatewayStats,
  jobRows,
  resetStreams,
  setMaxWorkers,
  type StackCpu,
  stackCpu,
  waitDrained,
  waitWorkersGone,
  wakeWorkers,
} from "./queue_ops.ts";
import { fairnessRatio, type ProcPeak, quantile } from "./scale_figures.ts";
import {
  type Account,
  dropConnections,
  listAccounts,
  registerTenants,
  startTenantSandboxes,
  type TenantSpec,
  throttledByAccount,
} from "./tenants.ts";

export interface ScaleOptions {
  connections: number;
  perTenant: number;
  workerCounts: number[];
  providers: ProviderName[];
  /** Connections of the small round that calibrates the per-process peak RSS: run with the
   * fewest workers, compared with the full round of the same worker count, so that in both a
   * worker invocation runs until its CPU budget (the work per process is the same; only the
   * number of connections differs). */
  small: number;
  roundTimeoutMs: number;
}

export interface ScaleRound {
  label: string;
  workers: number;
  connections: number;
  makespanMs: number;
  waitsMs: number[];
  fairness: number;
  jobs: { done: number; dead: number; other: number; claims: number; errors: string[] };
  landed: { total: number; minPerConnection: number; empty: number };
  throttled: number;
  memory: {
    source: "gateway" | "job_workers";
    processes: number;
    peakMaxMb: number;
    peakMedianMb: number;
    cpuKills: number;
    /** Each process spawned in the round: requests and peak RSS (gateway stats only). */
    perProcess: ProcPeak[];
  };
  invocations: number;
  /** Jobs taken over after their worker stopped heartbeating (its process died mid-job). */
  takenOver: number;
  /** Time until 99 % of the streams were synced. */
  p99Ms: number;
  /** CPU of each part until 99 % of the streams were synced (the busy period, without a
   * straggler's idle wait), and that period. */
  cpuMs: StackCpu;
  busyMs: number;
  /** 1-minute load average at the start and the end (other work shares the CPUs). */
  load: [number, number];
}

export interface ScaleResult {
  options: ScaleOptions;
  seededMs: number;
  accounts: Record<string, number>;
  small: ScaleRound;
  rounds: ScaleRound[];
}

/** Records per object for each provider so a connection's contacts walk meets ~`n` records:
 * Salesforce's contacts stream walks Contacts and Leads, seeded `records` each. */
function recordsFor(provider: ProviderName, n: number): number {
  return provider === "salesforce" ? Math.max(1, Math.round(n / 2)) : n;
}

function split(total: number, parts: number): number[] {
  return Array.from(
    { length: parts },
    (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0),
  );
}

export interface ScaleStack {
  cfg: StackConfig;
  url: string;
  encryptionKey: string;
}

/** Ends the idle function processes of the worker's slug (SIGTERM by pid, as ./engine_run.ts
 * does; the gateway spawns fresh ones on the next request). */
async function stopFunctions(pgPort: number): Promise<void> {
  const pids = functionPids(SYNC_FUNCTION, pgPort);
  for (const pid of pids) {
    try {
      Deno.kill(pid, "SIGTERM");
    } catch { /* gone */ }
  }
  for (let i = 0; i < 150 && pids.some(isAlive); i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function runScale(
  sql: postgres.Sql,
  stack: ScaleStack,
  o: ScaleOptions,
  log: (line: string) => void,
): Promise<ScaleResult> {
  const counts = split(o.connections, o.providers.length);
  const specs: Partial<Record<ProviderName, TenantSpec>> = {};
  for (const [i, p] of o.providers.entries()) {
    const r = recordsFor(p, o.perTenant);
    specs[p] = { accounts: counts[i], records: r, tenantRecords: r };
  }
  const sandboxes = await startTenantSandboxes(specs);
  let ids: string[] = [];
  try {
    log(
      `sandboxes up in ${(sandboxes.seededMs / 1000).toFixed(1)} s (pid ${sandboxes.pid}): ${
        o.providers.map((p, i) => `${p} ${counts[i]} accounts`).join(", ")
      }`,
    );
    const accounts: Account[] = [];
    for (const [i, p] of o.providers.entries()) {
      accounts.push(...await listAccounts(p, sandboxes.urls[p]!, counts[i]));
    }
    const registered = await registerTenants(sql, stack.encryptionKey, accounts, {});
    ids = registered.map((r) => r.id);
    log(`${ids.length} connections registered, one per sandbox account and app tenant`);

    const round = async (label: string, workers: number, subset: string[] | null) => {
      const roundIds = subset ?? ids;
      const roundAccounts = subset ? accounts.filter((_, i) => subset.includes(ids[i])) : accounts;
      await waitWorkersGone(sql, 60_000);
      // Every round starts with no function process of the worker's slug: each process of the
      // round is then spawned in it, so its peak RSS is that of this round's work alone.
      await stopFunctions(stack.cfg.pgPort);
      const startedAt = Date.now();
      await resetStreams(sql, ids);
      await setMaxWorkers(sql, workers);
      const gatewayOk = await gatewayStats(stack.url, true).then(() => true, () => false);
      const throttled0 = await throttledByAccount(roundAccounts);
      const cpu0 = stackCpu(stack.cfg, sandboxes.pid);
      const load0 = loadAverage();
      let at: Date;
      if (subset) {
        const [r] = await sql`select now() as at`;
        at = r.at;
        for (const id of subset) await enqueueJob(sql, id, "contacts", "delta");
        await wakeWorkers(sql);
      } else {
        const e = await enqueueInbound(sql, ["contacts"], "delta");
        if (e.jobs !== ids.length) {
          throw new Error(`crm.enqueue_inbound enqueued ${e.jobs} jobs for ${ids.length} streams`);
        }
        at = e.at;
      }
      const t0 = performance.now();
      let lastLog = t0;
      const cpuSamples: { t: number; cpu: StackCpu }[] = [{ t: 0, cpu: cpu0 }];
      await waitDrained(sql, roundIds, {
        timeoutMs: o.roundTimeoutMs,
        pollMs: 500,
        tick: (s) => {
          cpuSamples.push({ t: performance.now() - t0, cpu: stackCpu(stack.cfg, sandboxes.pid) });
          if (performance.now() - lastLog < 10_000) return;
          lastLog = performance.now();
          log(
            `  ${((lastLog - t0) / 1000).toFixed(0)} s: ${s.done} done, ${s.running} running, ` +
              `${s.queued} queued, ${s.dead} dead; ${s.liveWorkers} live workers`,
          );
        },
      });
      const load1 = loadAverage();
      await waitWorkersGone(sql, 60_000);
      const jobs = await jobRows(sql, roundIds);
      const waitsMs = jobs.filter((j) => j.state === "done" && j.finishedAt)
        .map((j) => j.finishedAt!.getTime() - at.getTime());
      const p99Ms = quantile(waitsMs, 0.99);
      // The first CPU sample at or past the 99 % mark (bench clock, started at the enqueue).
      const busy = cpuSamples.find((x) => x.t >= p99Ms) ?? cpuSamples.at(-1)!;
      const [landed] = await sql`
        select coalesce(sum(n), 0)::int as total, coalesce(min(n), 0)::int as min,
               count(*) filter (where n = 0)::int as empty
        from (select c.id, count(x.connection_id)::int as n
              from unnest(${roundIds}::uuid[]) as c(id)
              left join crm.contacts x on x.connection_id = c.id
              group by c.id) t`;
      const [inv] = await sql`
        select count(*)::int as n, max((stats->>'rss_mb')::float8) as rss_max,
               percentile_cont(0.5) within group (order by (stats->>'rss_mb')::float8) as rss_med
        from crm.job_workers`;
      let memory: ScaleRound["memory"];
      if (gatewayOk) {
        const fn = (await gatewayStats(stack.url))[SYNC_FUNCTION];
        const peaks = (fn?.processes ?? []).map((p) => p.peakRssMb).filter((x) => x > 0);
        memory = {
          source: "gateway",
          processes: fn?.spawned ?? 0,
          peakMaxMb: Math.max(0, ...peaks),
          peakMedianMb: quantile(peaks, 0.5),
          cpuKills: fn?.kills?.cpu ?? 0,
          // Only processes spawned in this round: one kept idle from the round before starts
          // with the heap its earlier requests grew (its peak is reset to that RSS).
          perProcess: (fn?.processes ?? [])
            .filter((p) => p.startedAt !== undefined && Date.parse(p.startedAt) >= startedAt)
            .map((p) => ({ requests: p.requests ?? 0, peakMb: p.peakRssMb })),
        };
      } else {
        memory = {
          source: "job_workers",
          processes: inv.n,
          peakMaxMb: Number(inv.rss_max ?? NaN),
          peakMedianMb: Number(inv.rss_med ?? NaN),
          cpuKills: NaN,
          perProcess: [],
        };
      }
      const r: ScaleRound = {
        label,
        workers,
        connections: roundIds.length,
        makespanMs: Math.max(...waitsMs),
        waitsMs,
        fairness: fairnessRatio(waitsMs),
        jobs: {
          done: jobs.filter((j) => j.state === "done").length,
          dead: jobs.filter((j) => j.state === "dead").length,
          other: jobs.filter((j) => !["done", "dead"].includes(j.state)).length,
          claims: jobs.reduce((a, j) => a + j.claims, 0),
          errors: [...new Set(jobs.flatMap((j) => j.lastError ? [j.lastError] : []))].slice(0, 3),
        },
        landed: { total: landed.total, minPerConnection: landed.min, empty: landed.empty },
        throttled: (await throttledByAccount(roundAccounts)) - throttled0,
        memory,
        invocations: inv.n,
        takenOver: jobs.filter((j) => /lease expired/.test(j.lastError ?? "")).length,
        p99Ms,
        cpuMs: cpuDelta(cpu0, busy.cpu),
        busyMs: busy.t,
        load: [load0, load1],
      };
      log(
        `${label}: ${r.connections} streams synced in ${(r.makespanMs / 1000).toFixed(1)} s, ` +
          `${r.jobs.done} done / ${r.jobs.dead} dead, ${r.landed.total} rows, ` +
          `${r.invocations} worker invocations, peak RSS ${r.memory.peakMaxMb} MB`,
      );
      return r;
    };

    // Every k-th connection, so the small round has the full round's mix of providers (a round
    // of HubSpot tenants only would load one SDK of three and look leaner for that alone).
    const step = Math.max(1, Math.floor(ids.length / Math.max(1, o.small)));
    const smallIds = ids.filter((_, i) => i % step === 0).slice(0, o.small);
    const fewest = Math.min(...o.workerCounts);
    const small = await round(`small round (${smallIds.length} connections)`, fewest, smallIds);
    const rounds: ScaleRound[] = [];
    for (const w of o.workerCounts) {
      log(`round: max_workers = ${w}, ${ids.length} connections due at once`);
      rounds.push(await round(`max_workers ${w}`, w, null));
    }
    return {
      options: o,
      seededMs: sandboxes.seededMs,
      accounts: Object.fromEntries(o.providers.map((p, i) => [p, counts[i]])),
      small,
      rounds,
    };
  } finally {
    if (ids.length) await dropConnections(sql, ids).catch(() => {});
    await sandboxes.close();
  }
}
