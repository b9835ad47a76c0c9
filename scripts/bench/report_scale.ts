// What `npm run bench` prints for the issue-11 parts: scale (./scale.ts), shared budget
// (./shared_budget.ts) and ceiling (./ceiling_run.ts), each figure as a ratio of figures
// measured or documented in the same run, with its target verdict; then one line per target.
import type { CeilingRunResult } from "./ceiling_run.ts";
import { n, verdict } from "./report.ts";
import type { Counters } from "./sandboxes.ts";
import type { ScaleResult, ScaleRound } from "./scale.ts";
import {
  BUDGET_TARGETS,
  CEILING_TARGET,
  flattenReason,
  flattensAt,
  memoryGrowth,
  quantile,
  SCALE_TARGETS,
  speedUps,
  utilisation,
} from "./scale_figures.ts";
import { type BudgetResult, REQUEST_CLASSES } from "./shared_budget.ts";

const s = (ms: number) => `${n(ms / 1000, 1)} s`;
const pct = (x: number) => `${n(x * 100, 0)} %`;
/** Ratios judged against a floor or a cap are shown rounded towards failing, so a printed
 * figure never looks met when its verdict is not (0.9498 shows as 0.949, not 0.950). */
const atLeast = (x: number, d: number) => n(Math.floor(x * 10 ** d) / 10 ** d, d);
const atMost = (x: number, d: number) => n(Math.ceil(x * 10 ** d) / 10 ** d, d);
const CPUS = navigator.hardwareConcurrency;

/** Which routes the sandbox answered 429 on, and how often. */
function throttledRoutes(c: Counters): string {
  return Object.entries(c.routes)
    .filter(([, v]) => (v.byStatus["429"] ?? 0) > 0)
    .map(([k, v]) => `${k} ${v.byStatus["429"]}`)
    .join(", ");
}

/** One target's outcome, for the summary at the end. */
export interface Verdict {
  part: string;
  target: string;
  value: string;
  met: boolean | null;
}

function table(head: string[], rows: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  console.log(`${line(head)}\n|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  for (const r of rows) console.log(line(r));
}

function busy(r: ScaleRound) {
  return utilisation({ ...r.cpuMs }, r.busyMs, CPUS);
}

export function printScale(r: ScaleResult): Verdict[] {
  const o = r.options;
  console.log(
    `\n── Scale: ${n(o.connections)} connections over the multi-tenant sandboxes (${
      Object.entries(r.accounts).map(([p, k]) => `${p} ${n(k)} accounts`).join(", ")
    }), ~${o.perTenant} changed contacts each, all due at once ──`,
  );
  const sm = r.small;
  console.log(
    `small round: ${sm.connections} connections, max_workers ${sm.workers}: synced in ${
      s(sm.makespanMs)
    } by ${sm.invocations} worker invocations; peak RSS per worker process ${
      n(sm.memory.peakMaxMb, 1)
    } MB (median ${n(sm.memory.peakMedianMb, 1)} MB)`,
  );
  const su = speedUps(r.rounds);
  const rows = r.rounds.map((x) => {
    const sp = su.find((y) => y.workers === x.workers)!;
    const u = busy(x);
    return [
      String(x.workers),
      s(x.makespanMs),
      `${s(x.p99Ms)}${x.takenOver ? ` (${x.takenOver} taken over)` : ""}`,
      `${n(sp.speedUp, 2)}×`,
      Number.isFinite(sp.gain) ? `${n(sp.gain, 2)}×` : "–",
      `${s(quantile(x.waitsMs, 0.5))} / ${s(quantile(x.waitsMs, 0.95))} / ${
        s(Math.max(...x.waitsMs))
      }`,
      `${n(x.fairness, 2)}×`,
      `${n(x.memory.peakMaxMb, 1)} (${n(x.memory.peakMedianMb, 1)}) MB`,
      `${x.memory.processes} / ${x.invocations}`,
      Object.values(u.shares).map((v) => pct(v)).join(" / "),
      pct(u.total),
      `${n(x.load[0], 1)} → ${n(x.load[1], 1)}`,
    ];
  });
  table([
    "max_workers",
    "all synced in",
    "99 % synced in",
    "speed-up",
    "vs previous",
    "tenant wait p50 / p95 / max",
    "max ÷ median",
    "peak RSS/process max (median)",
    "processes / invocations",
    `CPU ${Object.keys(r.rounds[0]?.cpuMs ?? {}).join(" / ")}`,
    `busy (${CPUS} CPUs)`,
    "load avg",
  ], rows);
  console.log(
    "(wait: enqueue to the tenant's job done, database clock; peak RSS: VmHWM of each worker " +
      "process that served the round; CPU: each part's user + system time until 99 % were " +
      "synced ÷ (that time × CPUs); taken over: jobs resumed by another worker after their " +
      "worker's lease expired; load avg: the machine's, other sessions included)",
  );
  const flat = flattensAt(su);
  const at = r.rounds.find((x) => x.workers === flat);
  console.log(
    flat === null
      ? `speed-up: every doubling of workers gained ≥ ${SCALE_TARGETS.flattenGain}× (no flattening up to ${
        su.at(-1)?.workers
      } workers)`
      : `speed-up flattens at ${flat} workers (${
        n(su.find((x) => x.workers === flat)!.gain, 2)
      }× ` +
        `over ${su[su.findIndex((x) => x.workers === flat) - 1].workers}): ${
          flattenReason(busy(at!), at)
        }`,
  );
  const out: Verdict[] = [];
  const worst = Math.max(...r.rounds.map((x) => x.fairness));
  console.log(
    `fairness: longest ÷ median wait per tenant, worst round ${
      atMost(worst, 2)
    }× — target ≤ ${SCALE_TARGETS.fairness}×: ${verdict(worst <= SCALE_TARGETS.fairness)}`,
  );
  out.push({
    part: "scale",
    target: `longest ÷ median tenant wait ≤ ${SCALE_TARGETS.fairness}×`,
    value: `${atMost(worst, 2)}×`,
    met: worst <= SCALE_TARGETS.fairness,
  });
  const same = r.rounds.find((x) => x.workers === sm.workers);
  const g = same
    ? memoryGrowth(sm.memory.perProcess, same.memory.perProcess)
    : { ratio: NaN, requests: null, smallMb: NaN, fullMb: NaN };
  if (same && !same.memory.perProcess.length) {
    g.smallMb = sm.memory.peakMaxMb;
    g.fullMb = same.memory.peakMaxMb;
    g.ratio = g.fullMb / g.smallMb;
  }
  const byReq = (x: ScaleRound) =>
    [...Map.groupBy(x.memory.perProcess.filter((p) => p.requests > 0), (p) => p.requests)]
      .sort((a, b) => a[0] - b[0])
      .map(([k, ps]) => `${k} req: ${n(Math.max(...ps.map((p) => p.peakMb)), 1)} MB (${ps.length})`)
      .join(", ");
  const memOk = g.ratio <= SCALE_TARGETS.memoryGrowth;
  console.log(
    `memory: peak RSS per worker process with ${n(o.connections)} connections ${
      n(g.fullMb, 1)
    } MB vs ${n(g.smallMb, 1)} MB with ${sm.connections} (both at max_workers ${sm.workers}${
      g.requests === null
        ? "; processes spawned in the round"
        : `; processes spawned in the round that served ${g.requests} request(s) each`
    }) → ${atMost(g.ratio, 2)}× — target ≤ ${SCALE_TARGETS.memoryGrowth}× (flat): ${
      verdict(memOk)
    }; highest in any round ${
      n(Math.max(...r.rounds.map((x) => x.memory.peakMaxMb)), 1)
    } MB; CPU kills ${r.rounds.map((x) => x.memory.cpuKills).join(", ")} (source: ${
      r.rounds[0]?.memory.source === "gateway"
        ? "the gateway's VmHWM per process"
        : "RSS at exit in crm.job_workers.stats; the gateway's stats were unavailable"
    })`,
  );
  if (same?.memory.perProcess.length) {
    console.log(
      `         peak by requests served (processes spawned in the round): small round ${
        byReq(sm)
      }; full round ${byReq(same)}`,
    );
  }
  out.push({
    part: "scale",
    target: `peak RSS per worker flat (≤ ${SCALE_TARGETS.memoryGrowth}× the small round)`,
    value: `${n(g.fullMb, 1)} MB vs ${n(g.smallMb, 1)} MB = ${atMost(g.ratio, 2)}×`,
    met: memOk,
  });
  const complete = r.rounds.every((x) => x.jobs.done === x.connections && x.landed.empty === 0);
  console.log(
    `completeness: ${
      r.rounds.map((x) =>
        `${x.workers}w ${n(x.jobs.done)}/${
          n(x.connections)
        } jobs done (${x.jobs.dead} dead, ${x.jobs.claims} claims), ${
          n(x.landed.total)
        } rows, ${x.landed.empty} connections empty, ${x.throttled} 429s`
      ).join("; ")
    }${
      r.rounds.some((x) => x.jobs.errors.length)
        ? `; errors: ${
          [...new Set(r.rounds.flatMap((x) => x.jobs.errors))].slice(0, 3).join(" | ")
        }`
        : ""
    }`,
  );
  out.push({
    part: "scale",
    target: "every stream synced in every round",
    value: complete ? "all" : "NOT all",
    met: complete,
  });
  return out;
}

export function printBudget(r: BudgetResult, records: number, liveEveryMs: number): Verdict[] {
  console.log(
    `\n── Shared budget: one HubSpot portal (${
      n(records)
    } records per object, documented limits on): a backfill, a delta and live reads ──`,
  );
  for (const j of r.jobs) {
    console.log(
      `${j.consumer}: ${j.object} (${j.mode}) ${j.state} at ${s(j.endedAt)}, ${n(j.rows)} rows`,
    );
  }
  const w = r.window;
  console.log(
    w
      ? `measured interval ${s(w.from)} → ${
        s(w.to)
      } (${w.windows} whole windows of 10 s, from one ` +
        "window after the first request until the backfill or the delta finished)"
      : "measured interval: NONE (the jobs ended before one whole window after the burst)",
  );
  for (const c of REQUEST_CLASSES) {
    console.log(
      `  ${c.name} class: ${n(r.perClass[c.name], 2)} requests/s served of ${
        n(c.ceilingPerSecond, 0)
      }/s documented → ${pct(r.perClass[c.name] / c.ceilingPerSecond)}${
        r.used.includes(c.name) ? "" : " (no demand in the interval: not in the ceiling)"
      }`,
    );
  }
  if (r.cpuMs) {
    const u = utilisation({ ...r.cpuMs }, r.cpuWallMs, CPUS);
    console.log(
      `  CPU over the interval: ${
        Object.entries(u.shares).map(([k, v]) => `${k} ${pct(v)}`).join(", ")
      } = ${pct(u.total)} of ${CPUS} CPUs (load average ${n(r.load, 1)} at the end)`,
    );
  }
  const waits = Object.entries(r.waiting).sort((a, b) => b[1] - a[1]);
  console.log(
    `  lanes waiting in the interval (crm.budget_status(), share of 1 s samples): ${
      waits.length ? waits.map(([k, v]) => `${k} ${pct(v)}`).join(", ") : "none"
    }`,
  );
  const out: Verdict[] = [];
  console.log(
    `combined ${n(r.combined.rate, 2)} requests/s of ${
      n(r.combined.ceiling, 0)
    }/s (the documented ceilings of the classes in use; search is counted apart from the 10 s ` +
      `burst, as in the sandbox) → ${
        atLeast(r.combined.ratio, 3)
      }× — target ≥ ${BUDGET_TARGETS.throughput}×: ${
        verdict(r.combined.ratio >= BUDGET_TARGETS.throughput)
      }`,
  );
  out.push({
    part: "budget",
    target: `combined throughput ≥ ${BUDGET_TARGETS.throughput}× the documented ceiling`,
    value: `${atLeast(r.combined.ratio, 3)}×`,
    met: r.combined.ratio >= BUDGET_TARGETS.throughput,
  });
  console.log(
    `429s served by the sandbox (all our own traffic): ${r.throttled} of ${
      n(r.totalRequests)
    } requests${
      r.throttled ? ` (${throttledRoutes(r.counters)})` : ""
    } — target ${BUDGET_TARGETS.throttled}: ${verdict(r.throttled === 0)}`,
  );
  out.push({
    part: "budget",
    target: "zero 429s",
    value: String(r.throttled),
    met: r.throttled === 0,
  });
  const l = r.live;
  console.log(
    `live reads: ${l.reads.length} (one every ${liveEveryMs} ms, open loop), ${l.failed} failed; ` +
      `end-to-end latency (gateway, function, budget wait, CRM call) p50 ${n(l.p50)} ms, p99 ${
        n(l.p99)
      } ms, max ${n(l.max)} ms — target p99 wait < ${BUDGET_TARGETS.liveP99Ms} ms: ${
        verdict(l.p99 < BUDGET_TARGETS.liveP99Ms && l.failed === 0)
      }${l.failed ? ` (failures: ${l.reads.find((x) => !x.ok)?.error})` : ""}`,
  );
  out.push({
    part: "budget",
    target: `live reads p99 < ${BUDGET_TARGETS.liveP99Ms / 1000} s, none failed`,
    value: `${n(l.p99)} ms, ${l.failed} failed`,
    met: l.p99 < BUDGET_TARGETS.liveP99Ms && l.failed === 0,
  });
  return out;
}

export function printCeiling(r: CeilingRunResult, records: number): Verdict[] {
  const routes = Object.entries(r.counters.routes).map(([k, v]) => `${k} ${v.total}`).join(", ");
  console.log(
    `\n── Ceiling: HubSpot backfill of ${n(records)} contacts, documented limits on ──`,
  );
  console.log(
    `engine ${n(r.landed)} rows in ${s(r.wallMs)} (enqueue to done; job ${r.state}, ${r.claims} ` +
      `claims over ${r.invocations} worker invocations) = ${n(r.overallRate)} records/s overall`,
  );
  console.log(
    r.sustained
      ? `         sustained ${n(r.sustained.rate)} records/s (${s(r.sustained.from)} → ${
        s(r.sustained.to)
      }: from one window after the first row, past the fresh window's burst)`
      : "         sustained: NOT measured (the walk was shorter than two windows)",
  );
  console.log(`         API calls: ${routes}; 429s ${r.throttled}`);
  console.log(
    `ceiling  ${r.ceiling.name} (the API the walk used: ${r.ceiling.api}): ${r.ceiling.formula} = ${
      n(r.ceiling.recordsPerSecond)
    } records/s → ${atLeast(r.ratio, 3)}× — target ≥ ${CEILING_TARGET}×: ${
      verdict(r.ratio >= CEILING_TARGET)
    }`,
  );
  return [
    {
      part: "ceiling",
      target: `HubSpot backfill ≥ ${CEILING_TARGET}× the documented ceiling`,
      value: `${n(r.sustained?.rate ?? NaN)} rec/s ÷ ${n(r.ceiling.recordsPerSecond)} = ${
        atLeast(r.ratio, 3)
      }× (${r.ceiling.api})`,
      met: r.ratio >= CEILING_TARGET,
    },
    { part: "ceiling", target: "zero 429s", value: String(r.throttled), met: r.throttled === 0 },
  ];
}

/** A part that could not run, and why: never a figure. */
export function notMeasured(part: string, reason: string): Verdict {
  console.log(`\n── ${part}: NOT MEASURED — ${reason} ──`);
  return { part, target: "(all)", value: `not measured: ${reason}`, met: null };
}

export function printVerdicts(vs: Verdict[]): void {
  if (!vs.length) return;
  console.log("\ntargets (issues 11, 12 and 13):");
  for (const v of vs) {
    console.log(
      `  ${v.part.padEnd(8)} ${v.target}: ${v.value} — ${
        v.met === null ? "not measured" : verdict(v.met)
      }`,
    );
  }
}
