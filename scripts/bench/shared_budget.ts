// The shared-budget part (issue 11): three concurrent consumers of one HubSpot portal with the
// sandbox's documented limits on — a backfill (contacts, full job: the list endpoint, burst
// class), a delta (companies, delta job: search, after a set-up backfill of the companies and a
// change to every one of them in the CRM) and an open-loop stream of live reads (crm-fetch-live
// through the gateway, deals, timeframe all: one list page each, lane 'interactive' of the shared
// budget) — all taking grants from the one SQL budget of the connection. The sandbox's counters
// are sampled every second; the measured interval starts one window after the start (the fresh
// rolling window's burst is spent) and ends when the first of the two jobs finishes, trimmed to
// whole windows; within it, the requests served per class are compared with the documented
// ceilings of the classes that had demand. 429s are counted over the whole part (nobody else
// calls this sandbox, so every one is our own traffic).
import type postgres from "postgres";
import { HUBSPOT_ROUTES, HUBSPOT_SEARCH, HUBSPOT_TEN_SECONDLY } from "./ceiling.ts";
import { HUBSPOT_WINDOW_MS, type PortalStack, startPortal } from "./ceiling_run.ts";
import { enqueueJob, wakeWorkers } from "./queue_ops.ts";
import { admin, counters, resetCounters } from "./sandboxes.ts";
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
  jobs: { object: string; mode: string; state: string; endedAt: number; rows: number }[];
  totalRequests: number;
}

export interface BudgetOptions {
  records: number;
  liveEveryMs: number;
  timeoutMs: number;
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
    const delta = await enqueueJob(sql, conn, "companies", "delta");
    const t0 = performance.now();
    await wakeWorkers(sql);

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
    const ended = new Map<number, { state: string; at: number }>();
    let lastLog = t0;
    try {
      for (;;) {
        const c = await counters(portal.url);
        const t = performance.now() - t0;
        const byClass = servedByClass(c.routes, REQUEST_CLASSES);
        for (const k of REQUEST_CLASSES) served[k.name].push({ t, count: byClass[k.name] });
        const states = await sql`
          select id, state from crm.jobs where id = any(${[backfill, delta]}::bigint[])`;
        for (const s of states) {
          if (!["queued", "running"].includes(s.state) && !ended.has(Number(s.id))) {
            ended.set(Number(s.id), { state: s.state, at: t });
            log(
              `  ${(t / 1000).toFixed(0)} s: ${
                Number(s.id) === backfill ? "backfill" : "delta"
              } ${s.state}`,
            );
          }
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
    }
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
    const rows = await sql`
      select j.object, j.mode, j.state, j.id,
             (select count(*)::int from crm.contacts where connection_id = ${conn}) as contacts,
             (select count(*)::int from crm.companies where connection_id = ${conn}) as companies
      from crm.jobs j where j.id = any(${[backfill, delta]}::bigint[]) order by j.id`;
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
      jobs: rows.map((r) => ({
        object: r.object,
        mode: r.mode,
        state: r.state,
        endedAt: ended.get(Number(r.id))?.at ?? NaN,
        rows: r.object === "contacts" ? r.contacts : r.companies,
      })),
      totalRequests: final.total,
    };
  } finally {
    await portal.close();
  }
}
