// The shared-budget part (issue 11): three concurrent consumers of one HubSpot portal with the
// sandbox's documented limits on — a backfill (contacts, a full job run by the workers: the
// list endpoint, burst class), a delta (companies: search, after a set-up backfill of the
// companies and a change to every one of them in the CRM; through the direct shape of
// crm-sync-bidirectional, because the queue runs one connection's streams one at a time, in
// dependency order) and an open-loop stream of live reads (crm-fetch-live
// through the gateway, deals, timeframe all: one list page each, lane 'interactive' of the shared
// budget) — all taking grants from the one SQL budget of the connection. The sandbox's counters
// are sampled every second; the measured interval starts one window after the start (the fresh
// rolling window's burst is spent) and ends when the backfill or the delta finishes, trimmed to
// whole windows; within it, the requests served per class are compared with the documented
// ceilings of the classes that had demand (each class's, not the budget's own ceiling, which
// keeps a margin under the documented one). 429s are counted over the whole part (nobody else
// calls this sandbox, so every one is our own traffic).
import type postgres from "postgres";
import { HUBSPOT_ROUTES, HUBSPOT_SEARCH, HUBSPOT_TEN_SECONDLY } from "./ceiling.ts";
import { HUBSPOT_WINDOW_MS, type PortalStack, startPortal } from "./ceiling_run.ts";
import { post } from "./engine_run.ts";
import { loadAverage } from "./procstat.ts";
import { cpuDelta, enqueueJob, type StackCpu, stackCpu, wakeWorkers } from "./queue_ops.ts";
import { admin, type Counters, counters, resetCounters } from "./sandboxes.ts";
import {
  combinedRatio,
  quantile,
  rateBetween,
  type RequestClass,
  type Sample,
  servedByClass,
  wholeWindows,
} from "./scale_figures.ts";

export const REQUEST_CLASSES: RequestClass[] = [
  {
    name: "burst",
    ceilingPerSecond: HUBSPOT_TEN_SECONDLY.freeStarter / (HUBSPOT_WINDOW_MS / 1000),
    routes: null,
  },
  { name: "search", ceilingPerSecond: HUBSPOT_SEARCH.perSecond, routes: [HUBSPOT_ROUTES.search] },
];

export interface LiveRead {
  /** ms since the part started. */
  at: number;
  ms: number;
  status: number;
  ok: boolean;
  error?: string;
}

export interface BudgetResult {
  seededMs: number;
  window: { from: number; to: number; windows: number } | null;
  perClass: Record<string, number>;
  combined: { rate: number; ceiling: number; ratio: number };
  used: string[];
  throttled: number;
  live: { reads: LiveRead[]; p50: number; p99: number; max: number; failed: number };
  jobs: {
    consumer: string;
    object: string;
    mode: string;
    state: string;
    endedAt: number;
    rows: number;
  }[];
  totalRequests: number;
  counters: Counters;
  /** CPU of each part of the stack over the measured interval, ms, and the load average. */
  cpuMs: StackCpu | null;
  cpuWallMs: number;
  /** Share of the samples in the interval where a lane was waiting on a class
   * ("class: lane" → share), from crm.budget_status(). */
  waiting: Record<string, number>;
  load: number;
}

export interface BudgetOptions {
  records: number;
  liveEveryMs: number;
  timeoutMs: number;
}

/** "class: lane" for every lane crm.budget_status() says is waiting on a class now. */
async function waitingLanes(sql: postgres.Sql, connectionId: string): Promise<string[]> {
  const rows = await sql`
    select class, waiting_lanes from crm.budget_status(${connectionId}::uuid)`;
  return rows.flatMap((r) => (r.waiting_lanes as string[]).map((l) => `${r.class}: ${l}`));
}

/** How often each value occurs across samples, as a share of the samples. */
function shares(samples: string[][]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of samples) for (const v of new Set(s)) out[v] = (out[v] ?? 0) + 1;
  for (const k of Object.keys(out)) out[k] /= Math.max(1, samples.length);
  return out;
}

const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** Marks every record of `object` modified, in batches of 1,000 a few ms apart (distinct
 * modification times, all after the backfill's watermark and none in the future). */
async function changeAll(url: string, object: string, records: number): Promise<number> {
  const batches = Math.ceil(records / 1000);
  const end = Date.now();
  let changed = 0;
  for (let k = 0; k < batches; k++) {
    const r = await admin(url, "POST", `/records/${object}/set-modified`, {
      count: 1000,
      pick: "oldest",
      modifiedAt: end - (batches - k) * 10,
    }) as { updated: number };
    changed += r.updated;
  }
  return changed;
}

async function liveRead(stack: PortalStack, connectionId: string, t0: number): Promise<LiveRead> {
  const at = performance.now() - t0;
  const s = performance.now();
  try {
    const res = await fetch(`${stack.url}/functions/v1/crm-fetch-live`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${stack.serviceRoleKey}`,
        "content-type": "application/json",
      },
      body: JSON.stringify({ type: "deals", connection_id: connectionId, limit: 100 }),
      signal: AbortSignal.timeout(60_000),
    });
    const body = await res.json().catch(() => null) as { ok?: boolean; error?: string } | null;
    return {
      at,
      ms: performance.now() - s,
      status: res.status,
      ok: res.ok && body?.ok === true,
      ...(body?.ok === true ? {} : { error: JSON.stringify(body).slice(0, 200) }),
    };
  } catch (e) {
    return { at, ms: performance.now() - s, status: 0, ok: false, error: (e as Error).message };
  }
}

export async function runBudget(
  sql: postgres.Sql,
  stack: PortalStack,
  o: BudgetOptions,
  log: (line: string) => void,
): Promise<BudgetResult> {
  const portal = await startPortal(sql, stack, o.records, ["contacts", "companies", "deals"]);
  try {
    log(`sandbox seeded in ${(portal.sb.seededMs / 1000).toFixed(1)} s (pid ${portal.sb.pid})`);
    const conn = portal.connectionId;
    // Set-up, not measured: the companies are backfilled, then all of them change in the CRM,
    // so the delta has every company to fetch (by search, from the backfill's watermark).
    const setup = await enqueueJob(sql, conn, "companies", "full");
    await wakeWorkers(sql);
    const s0 = performance.now();
    for (;;) {
      const [j] = await sql`select state from crm.jobs where id = ${setup}`;
      if (j.state === "done") break;
      if (j.state !== "queued" && j.state !== "running") {
        throw new Error(`the companies backfill (set-up) ended ${j.state}`);
      }
      if (performance.now() - s0 > o.timeoutMs) throw new Error("the set-up backfill timed out");
      await new Promise((r) => setTimeout(r, 500));
    }
    const changed = await changeAll(portal.url, "companies", o.records);
    log(`set-up: companies backfilled in ${s(performance.now() - s0)}, ${changed} changed since`);
    await sql`delete from crm.job_workers`;
    await resetCounters(portal.url);
    const backfill = await enqueueJob(sql, conn, "contacts", "full");
    const t0 = performance.now();
    await wakeWorkers(sql);
    // The delta: the job queue runs one connection's streams one at a time (dependency order),
    // so it goes through the direct shape, as an admin's trigger does, called again while it
    // answers "more" (each call stops at the request's CPU budget).
    const ended = new Map<string, { state: string; at: number }>();
    let deltaError: unknown = null;
    const deltaRun = (async () => {
      const fn = { url: stack.url, serviceRoleKey: stack.serviceRoleKey, pgPort: 0, pgData: "" };
      for (;;) {
        const r = await post(fn, {
          direction: "inbound",
          objects: ["companies"],
          connection_id: conn,
          mode: "delta",
          trigger: "manual",
        });
        const a = r.json as { more?: boolean; runs?: { status?: string }[] };
        if (r.status !== 200 || !Array.isArray(a.runs)) {
          ended.set("delta", { state: `failed: ${r.status}`, at: performance.now() - t0 });
          throw new Error(`the delta call answered ${r.status}: ${JSON.stringify(r.json)}`);
        }
        if (!a.more) break;
      }
      const at = performance.now() - t0;
      ended.set("delta", { state: "done", at });
      log(`  ${(at / 1000).toFixed(0)} s: delta done`);
    })().catch((e) => {
      deltaError = e;
    });

    // Live reads: one every liveEveryMs, each on its own (open loop: a slow read does not
    // delay the next), until both jobs have finished.
    const reads: Promise<LiveRead>[] = [];
    let stop = false;
    const stream = (async () => {
      for (let k = 0; !stop; k++) {
        reads.push(liveRead(stack, conn, t0));
        const next = t0 + (k + 1) * o.liveEveryMs;
        await new Promise((r) => setTimeout(r, Math.max(0, next - performance.now())));
      }
    })();

    const served: Record<string, Sample[]> = Object.fromEntries(
      REQUEST_CLASSES.map((c) => [c.name, []]),
    );
    const cpuAt: { t: number; cpu: StackCpu }[] = [];
    const lanes: { t: number; waiting: string[] }[] = [];
    let lastLog = t0;
    try {
      for (;;) {
        const c = await counters(portal.url);
        const t = performance.now() - t0;
        const byClass = servedByClass(c.routes, REQUEST_CLASSES);
        for (const k of REQUEST_CLASSES) served[k.name].push({ t, count: byClass[k.name] });
        cpuAt.push({ t, cpu: stackCpu(stack.cfg, portal.sb.pid) });
        lanes.push({ t, waiting: await waitingLanes(sql, conn) });
        const [job] = await sql`select state from crm.jobs where id = ${backfill}`;
        if (!["queued", "running"].includes(job.state) && !ended.has("backfill")) {
          ended.set("backfill", { state: job.state, at: t });
          log(`  ${(t / 1000).toFixed(0)} s: backfill ${job.state}`);
        }
        if (ended.size === 2) break;
        if (t > o.timeoutMs) throw new Error(`the jobs did not finish in ${o.timeoutMs / 1000} s`);
        if (performance.now() - lastLog > 10_000) {
          lastLog = performance.now();
          log(`  ${(t / 1000).toFixed(0)} s: ${JSON.stringify(byClass)} requests served`);
        }
        await new Promise((r) => setTimeout(r, 1000));
      }
    } finally {
      stop = true;
      await stream;
      await deltaRun;
    }
    if (deltaError) throw deltaError;
    const done = await Promise.all(reads);
    const final = await counters(portal.url);
    const firstEnd = Math.min(...[...ended.values()].map((e) => e.at));
    // The first sample that saw a request served: the window's burst is spent a window later.
    const first = served[REQUEST_CLASSES[0].name].findIndex((_, i) =>
      REQUEST_CLASSES.some((k) => served[k.name][i].count > 0)
    );
    const window = first < 0 ? null : wholeWindows(
      served[REQUEST_CLASSES[0].name][first].t + HUBSPOT_WINDOW_MS,
      firstEnd,
      HUBSPOT_WINDOW_MS,
    );
    const perClass: Record<string, number> = {};
    const used = new Set<string>();
    for (const k of REQUEST_CLASSES) {
      const s = served[k.name];
      perClass[k.name] = window ? rateBetween(s, window.from, window.to) : NaN;
      if (perClass[k.name] > 0) used.add(k.name);
    }
    const ok = done.filter((r) => r.ok).map((r) => r.ms);
    // CPU between the samples nearest the interval's ends.
    const near = (t: number) =>
      cpuAt.reduce((a, b) => Math.abs(b.t - t) < Math.abs(a.t - t) ? b : a, cpuAt[0]);
    const c0 = window ? near(window.from) : null;
    const c1 = window ? near(window.to) : null;
    const [landed] = await sql`
      select (select count(*)::int from crm.contacts where connection_id = ${conn}) as contacts,
             (select count(*)::int from crm.companies where connection_id = ${conn}) as companies`;
    return {
      seededMs: portal.sb.seededMs,
      window,
      perClass,
      combined: combinedRatio(perClass, REQUEST_CLASSES, used),
      used: [...used],
      throttled: final.byStatus["429"] ?? 0,
      live: {
        reads: done,
        p50: quantile(ok, 0.5),
        p99: quantile(ok, 0.99),
        max: Math.max(0, ...ok),
        failed: done.length - ok.length,
      },
      jobs: [
        {
          consumer: "backfill (a job)",
          object: "contacts",
          mode: "full",
          state: ended.get("backfill")?.state ?? "?",
          endedAt: ended.get("backfill")?.at ?? NaN,
          rows: landed.contacts,
        },
        {
          consumer: "delta (direct shape)",
          object: "companies",
          mode: "delta",
          state: ended.get("delta")?.state ?? "?",
          endedAt: ended.get("delta")?.at ?? NaN,
          rows: landed.companies,
        },
      ],
      totalRequests: final.total,
      counters: final,
      cpuMs: c0 && c1 && c1.t > c0.t ? cpuDelta(c0.cpu, c1.cpu) : null,
      cpuWallMs: c0 && c1 ? c1.t - c0.t : NaN,
      waiting: shares(
        lanes.filter((x) => window && x.t >= window.from && x.t <= window.to).map((x) => x.waiting),
      ),
      load: loadAverage(),
    };
  } finally {
    await portal.close();
  }
}
