// What `npm run bench` prints: per provider the engine's figures, where its time went, both
// baselines and the documented limits' ceiling; then one table with every target marked met or
// not. (The SQL-only figures, bad page and A/B, are printed by ./report_sql.ts.)
import type { ProbeResult } from "./adapter_probe.ts";
import type { BaselineResult } from "./baseline.ts";
import { CAREFUL_FETCH, CAREFUL_UPSERT, type CarefulResult } from "./careful.ts";
import { ceilingNotes } from "./ceiling.ts";
import type { EngineResult } from "./engine_run.ts";
import { type Derived, ENGINE_PAGE, naiveCalls, type Sizes, TARGETS } from "./figures.ts";
import { NAIVE_PAGE } from "./naive_pages.ts";

export interface ProviderReport {
  provider: "hubspot" | "salesforce";
  sizes: Sizes;
  engine: EngineResult;
  probe: ProbeResult;
  baseline: BaselineResult;
  careful: CarefulResult;
  derived: Derived;
}

export const n = (x: number, digits = 0) =>
  x.toLocaleString("en", { minimumFractionDigits: digits, maximumFractionDigits: digits });
const s = (ms: number) => `${n(ms / 1000, 1)} s`;
export const verdict = (ok: boolean) => (ok ? "met" : "NOT met");
const NAME = { hubspot: "HubSpot", salesforce: "Salesforce" };
/** Sandbox route patterns by their last segment. */
const ROUTE: Record<string, string> = {
  "/crm/v3/objects/:objectType/search": "search",
  "/crm/v3/objects/:objectType": "list",
  "/services/data/:version/queryAll": "queryAll",
  "/services/data/:version/sobjects/:type/describe": "describe",
};

export function printProvider(r: ProviderReport): void {
  const { engine: e, baseline: b, probe, derived: d } = r;
  const routes = Object.entries(e.counters.routes)
    .map(([route, c]) => `${ROUTE[route.split(" ").at(-1)!] ?? route} ${c.total}`).join(", ");
  const sizes = Object.entries(r.sizes.engine).map(([t, x]) => `${n(x)} ${t}`).join(" + ");
  const crossCheck = e.log.apiCalls === d.callsMade
    ? "the same"
    : `differs by ${e.log.apiCalls - d.callsMade}`;
  const perCall = e.calls.map((c) => n(c.processed / (c.ms / 1000))).join(", ");
  const minText = Object.entries(r.sizes.engine)
    .map(([t, x]) =>
      r.provider === "hubspot"
        ? `ceil(${x}/${ENGINE_PAGE.hubspot})`
        : `floor(${x}/${ENGINE_PAGE[r.provider]})+1 ${t}`
    )
    .join(" + ");
  const save = e.sqlFunctions.find((f) => f.name === "save_inbound_page");
  const apply = e.sqlFunctions.find((f) => f.name === "apply_inbound");
  // Every page goes through _apply_in_halves once; calls beyond that are halves of rejected pages.
  const halves = e.sqlFunctions.find((f) => f.name === "_apply_in_halves");
  const perRecord = (ms: number, count: number) => `${n((ms / count) * 1000, 0)} µs/record`;
  const fetchEst = (probe.fetchMs / probe.records) * e.landed;
  const mapEst = (probe.mapMs / probe.records) * e.landed;
  const m = e.memory;

  console.log(`\n── ${NAME[r.provider]}: ${sizes} for the engine's contacts walk ──`);
  console.log(
    `engine   ${n(d.engineRate)} records/s: ${n(e.landed)} rows landed in crm.contacts ` +
      `(${n(e.landedLive)} live) in ${s(e.wallMs)} wall; ${e.calls.length} function call(s) ` +
      `of ${e.calls.map((c) => s(c.ms)).join(", ")} at ${perCall} records/s`,
  );
  console.log(
    `         API calls ${n(d.callsMade)} made (sandbox counters: ${routes}; sync_log.api_calls ` +
      `${n(e.log.apiCalls)} over ${e.log.runs} run(s), ${crossCheck}) vs minimum ${n(d.callsMin)}`,
  );
  console.log(
    `         (data pages only, ${minText}; one-off calls count as made, not in the minimum) ` +
      `→ ${n(d.callRatio, 3)}× — target ≤ ${TARGETS.callRatio}×: ${verdict(d.met.calls)}`,
  );
  console.log(
    e.processes > 0
      ? `         peak memory ${n(m.peakMb, 1)} MB (the highest VmHWM of the ${e.processes} ` +
        `function process(es) that served the backfill, boot included, by the gateway's stats) ` +
        `— target < ${TARGETS.peakMb} MB: ${verdict(d.met.memory)}`
      : `         peak memory ${n(m.peakMb, 1)} MB (VmHWM of pid ${m.pid}, ${
        m.peakReset
          ? `reset after boot at ${n(m.bootRssMb, 1)} MB RSS`
          : "NOT reset (clear_refs refused): includes the boot"
      }; sampled max RSS ${n(m.sampledMb, 1)} MB${
        e.restarts ? `; the process was replaced ${e.restarts}×` : ""
      }) — target < ${TARGETS.peakMb} MB: ${verdict(d.met.memory)}`,
  );
  console.log(
    `         CPU during the backfill: function ${s(e.cpuMs.fn)}${
      e.processes > 0 ? ` (the requests' CPU over ${e.calls.length} calls)` : ""
    }, Postgres ${s(e.cpuMs.pg)}, ` +
      `sandbox ${s(e.cpuMs.sandbox)}; load average ${n(e.load[0], 2)} → ${
        n(e.load[1], 2)
      } on ${navigator.hardwareConcurrency} CPUs`,
  );
  if (save) {
    console.log(
      `         SQL: crm.save_inbound_page ${save.calls} calls, ${s(save.totalMs)} ` +
        `(${n(save.totalMs / Math.max(1, save.calls), 1)} ms/page, ${
          perRecord(save.totalMs, e.landed)
        }); apply_inbound ${s(apply?.totalMs ?? 0)}; halving fallback ${
          Math.max(0, (halves?.calls ?? 0) - save.calls)
        } split apply call(s)`,
    );
    const top = [...e.sqlFunctions].sort((a, b) => b.selfMs - a.selfMs).slice(0, 5);
    console.log(
      `         SQL self time by function: ${
        top.map((f) => `${f.name} ${s(f.selfMs)} (${n(f.calls)} calls)`).join(", ")
      }`,
    );
  }
  console.log(
    `         adapter alone (first ${n(probe.records)} records, bench process, no prefetch, ` +
      `${probe.calls} calls): fetch ${perRecord(probe.fetchMs, probe.records)}, mapping ${
        perRecord(probe.mapMs, probe.records)
      }, ${n(probe.jsonBytesPerRecord)} B/record of JSON to Postgres`,
  );
  console.log(
    `         → for ${n(e.landed)} records: fetch ≈ ${s(fetchEst)}, mapping ≈ ${s(mapEst)}, ` +
      `SQL ${s(save?.totalMs ?? NaN)}, of ${s(e.wallMs)} wall (fetch overlaps the write)`,
  );
  const calls = naiveCalls(r.provider, r.sizes, NAIVE_PAGE);
  console.log(
    `baseline ${n(d.naiveRate)} records/s, ${
      b.records < d.naiveRecords ? "MEASURED ON A PREFIX of" : "measured on all"
    } ${n(b.records)} records ` +
      `(${b.pages} calls) in ${s(b.wallMs)}: fetch ${s(b.fetchMs)}, mapping ${s(b.mapMs)}, ` +
      `INSERTs ${s(b.insertMs)} (${n(b.insertMs / b.records, 2)} ms/row)`,
  );
  console.log(
    `         EXTRAPOLATED to all ${n(d.naiveRecords)} records its plain list returns: ${
      s(d.naiveWallMs)
    }, ${n(calls)} calls (one per page of ${NAIVE_PAGE}); CPU on the prefix: bench ${
      s(b.cpuMs.bench)
    }, Postgres ${s(b.cpuMs.pg)}, sandbox ${s(b.cpuMs.sandbox)}`,
  );
  console.log(
    `speed-up engine/baseline ${n(d.speedUp, 1)}× — target ≥ ${TARGETS.speedUp}×: ${
      verdict(d.met.speedUp)
    }${d.met.speedUp ? "" : ` (${n(TARGETS.speedUp / d.speedUp, 1)}× short)`}`,
  );
  const c = r.careful;
  console.log(
    `careful  ${n(d.carefulRate)} records/s, measured on all ${n(c.records)} records (${c.pages} ` +
      `calls of ${CAREFUL_FETCH[r.provider]}, ${
        n(c.upserts)
      } multi-row upserts of ${CAREFUL_UPSERT}) ` +
      `in ${s(c.wallMs)}: fetch ${s(c.fetchMs)}, mapping ${s(c.mapMs)}, upserts ${s(c.upsertMs)} (${
        n(c.upsertMs / Math.max(1, c.upserts), 2)
      } ms each); CPU: bench ${s(c.cpuMs.bench)}, Postgres ${s(c.cpuMs.pg)}, sandbox ${
        s(c.cpuMs.sandbox)
      }`,
  );
  console.log(
    `engine/careful ${n(d.vsCareful, 2)}× (no target; engine/naive above ${n(d.speedUp, 1)}×)`,
  );
  for (const [i, h] of d.headroom.entries()) {
    console.log(
      `${i === 0 ? "ceiling " : "        "} ${h.name}: ${h.formula} = ${
        n(h.recordsPerSecond)
      } records/s → engine headroom ${n(h.ratio, 1)}×`,
    );
  }
  for (const line of ceilingNotes(r.provider)) console.log(`         ${line}`);
}

export function printTable(reports: ProviderReport[]): void {
  const head = [
    "provider",
    "records",
    "engine wall",
    "engine rec/s",
    "API calls made/min",
    "peak RSS",
    "baseline rec/s*",
    "speed-up",
    "careful rec/s",
    "vs careful",
    "ceiling rec/s",
    "headroom",
  ];
  const rows = reports.map((r) => [
    NAME[r.provider],
    n(r.engine.landed),
    s(r.engine.wallMs),
    n(r.derived.engineRate),
    `${n(r.derived.callsMade)}/${n(r.derived.callsMin)} = ${n(r.derived.callRatio, 3)}×`,
    `${n(r.engine.memory.peakMb, 0)} MB`,
    n(r.derived.naiveRate),
    `${n(r.derived.speedUp, 1)}×`,
    n(r.derived.carefulRate),
    `${n(r.derived.vsCareful, 2)}×`,
    n(r.derived.headroom[0].recordsPerSecond),
    `${n(r.derived.headroom[0].ratio, 1)}×`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  console.log(`\n${line(head)}\n|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  for (const row of rows) console.log(line(row));
  console.log(
    `* baseline measured on a prefix of ${
      reports.map((r) => `${n(r.baseline.records)} (${NAME[r.provider]})`).join(", ")
    } records and extrapolated; rate limits lifted in the sandboxes and raised in the`,
  );
  console.log("  connection's settings.rate_limits for both sides.");
  console.log(
    [
      "  careful: the plain list at its largest page (HubSpot 100, Salesforce 2,000) and one multi-row",
      "  upsert per 100 records, over every record. ceiling: the documented limit of the engine's walk",
      "  (HubSpot: the API its walk used, by the sandbox's counters; Salesforce's daily budget × 2,000",
      "  over 24 h); headroom = engine",
      "  rec/s ÷ ceiling.",
    ].join("\n"),
  );
  console.log(
    `targets: API calls ≤ ${TARGETS.callRatio}× the minimum, peak < ${TARGETS.peakMb} MB, ` +
      `speed-up ≥ ${TARGETS.speedUp}×`,
  );
  for (const r of reports) {
    const met = r.derived.met;
    console.log(
      `  ${NAME[r.provider].padEnd(10)} calls ${verdict(met.calls)}, memory ${
        verdict(met.memory)
      }, speed-up ${verdict(met.speedUp)}`,
    );
  }
}
