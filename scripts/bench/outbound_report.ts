// What `npm run bench` prints for the outbound part (./outbound_run.ts): per provider the bulk
// push against ⌈N / max batch⌉, the documented ceiling and the naive baseline of the same run,
// then the app→CRM latency under steady load, each with its target verdict.
import type { ProviderName } from "../../supabase/functions/_shared/providers/types.ts";
import { latencyMet, MAX_BATCH, OUTBOUND_TARGETS } from "./outbound_figures.ts";
import type { BulkResult, LatencyResult, OutboundOptions, OutboundResult } from "./outbound_run.ts";
import { notMeasured, type Verdict } from "./report_scale.ts";
import { n, verdict } from "./report.ts";

const s = (ms: number) => `${n(ms / 1000, 1)} s`;
/** Rounded towards failing, as report_scale.ts does. */
const atLeast = (x: number, d: number) => n(Math.floor(x * 10 ** d) / 10 ** d, d);
const atMost = (x: number, d: number) => n(Math.ceil(x * 10 ** d) / 10 ** d, d);
const NAME: Record<ProviderName, string> = {
  hubspot: "HubSpot",
  salesforce: "Salesforce",
  pipedrive: "Pipedrive",
};
const NAIVE_ROUTE: Record<ProviderName, string> = {
  hubspot: "PATCH /crm/v3/objects/contacts/{id}",
  salesforce: "PATCH /sobjects/Contact/{id}",
  pipedrive: "PATCH /api/v2/persons/{id}",
};
const NAIVE_PACE: Record<ProviderName, string> = {
  hubspot: "paced at 100 requests/10 s",
  salesforce: "no per-second limit: back to back",
  pipedrive: "paced at 80 requests/2 s",
};
const precision = (ms: number) =>
  ms > 1 ? "the CRM's stamps have 1 s precision: upper bound" : "ms stamps";

function printBulk(b: BulkResult): Verdict[] {
  const part = `outbound ${b.provider}`;
  console.log(
    `${NAME[b.provider]}: ${n(b.records)} contacts${
      b.leads ? ` (${n(b.records - b.leads)} Contacts, ${n(b.leads)} Leads: mixed chunks)` : ""
    } changed in one app statement${b.fewer ? ` (${b.fewer})` : ""}: ${n(b.applied)} applied${
      b.altered ? ` (${n(b.altered)} of them reshaped by the CRM)` : ""
    }, ${b.dead} dead letters, ${b.runs} outbound runs${
      b.mismatches.length ? `; not as the app wrote them, e.g. ${b.mismatches.join("; ")}` : ""
    }`,
  );
  console.log(
    `  commit → last record applied ${s(b.wallMs)} (${precision(b.precisionMs)}; first → last ${
      s(b.pushMs)
    }) = ${n(b.rate)} records/s`,
  );
  const routes = Object.entries(b.writes.byRoute).map(([k, v]) => `${k} ${v}`).join(", ");
  const callsOk = b.callRatio <= OUTBOUND_TARGETS.calls && b.applied === b.records;
  console.log(
    `  write calls ${n(b.writes.total)} (${routes || "none"}; all calls ${n(b.allCalls)}) vs ⌈${
      n(b.records)
    } / ${MAX_BATCH[b.provider]}⌉ = ${n(b.minCalls)} → ${
      atMost(b.callRatio, 3)
    }× — target ≤ ${OUTBOUND_TARGETS.calls}×: ${verdict(callsOk)}`,
  );
  const rateOk = b.ratio >= OUTBOUND_TARGETS.ceiling && b.applied === b.records;
  console.log(
    `  ceiling ${b.ceiling.name}: ${b.ceiling.formula} = ${
      n(b.ceiling.recordsPerSecond)
    } records/s → ${atLeast(b.ratio, 3)}× — target ≥ ${OUTBOUND_TARGETS.ceiling}×: ${
      verdict(rateOk)
    }${
      b.provider === "salesforce"
        ? " (no per-second limit applies: the day's allocation is the only documented ceiling; " +
          "what binds is calls per day, ⌈N / 200⌉ of them)"
        : ""
    }`,
  );
  console.log(
    `  429s served to our own traffic: ${b.throttled} of ${
      n(b.allCalls)
    } requests — target ${OUTBOUND_TARGETS.throttled}: ${verdict(b.throttled === 0)}`,
  );
  const nv = b.naive;
  console.log(
    `  naive baseline (the seeds' way: one ${
      b.leads ? NAIVE_ROUTE[b.provider].replace("Contact", "Contact|Lead") : NAIVE_ROUTE[b.provider]
    } per record through the SDK, ${NAIVE_PACE[b.provider]}): ${n(nv.records)} records in ${
      s(nv.wallMs)
    } = ${n(nv.rate, 1)} records/s, ${
      n(nv.calls)
    } calls, ${nv.throttled} 429s, ${nv.failed} failed${
      nv.firstError ? ` (first: ${nv.firstError.replace(/\s+/g, " ").slice(0, 140)})` : ""
    } → ${n(b.records)} would take ${s(nv.projectedMs)} and ${n(b.records)} calls`,
  );
  console.log(
    `  engine vs naive: ${n(b.rate / nv.rate, 1)}× the records/s, ${
      n(b.records / Math.max(1, b.writes.total), 1)
    }× fewer write calls`,
  );
  if (b.allCalls > b.writes.total) {
    const perRecord = b.allCalls / b.records;
    console.log(
      `  reads besides the writes: ${n(b.allCalls - b.writes.total)} (${
        Object.entries(b.counters.routes).filter(([k]) => !(k in b.writes.byRoute))
          .map(([k, v]) => `${k} ${v.total}`).join(", ")
      }): all calls ${n(b.allCalls)} = ${atMost(b.allCallRatio, 3)}× ⌈N / ${
        MAX_BATCH[b.provider]
      }⌉; at ${n(perRecord, 2)} calls per record the limit allows ${
        n(b.ceiling.recordsPerSecond / perRecord / MAX_BATCH[b.provider], 1)
      } records/s → ${atLeast(b.ratio * perRecord * MAX_BATCH[b.provider], 3)}× of that`,
    );
  }
  return [
    {
      part,
      target: `write calls ≤ ${OUTBOUND_TARGETS.calls}× ⌈N / max batch⌉`,
      value: `${b.writes.total} / ${b.minCalls} = ${atMost(b.callRatio, 3)}×`,
      met: callsOk,
    },
    {
      part,
      target: `records/s ≥ ${OUTBOUND_TARGETS.ceiling}× the documented ceiling`,
      value: `${n(b.rate)} ÷ ${n(b.ceiling.recordsPerSecond)} = ${atLeast(b.ratio, 3)}×`,
      met: rateOk,
    },
    { part, target: "zero 429s", value: String(b.throttled), met: b.throttled === 0 },
  ];
}

function printLatency(l: LatencyResult, o: OutboundOptions): Verdict[] {
  const st = l.stats;
  const met = latencyMet(st);
  const both = (x: { lo: number; hi: number }) =>
    l.precisionMs > 1 ? `${s(x.lo)}–${s(x.hi)}` : s(x.hi);
  console.log(
    `${NAME[l.provider]}: ${n(l.writes)} app writes (one contact each, own transaction) at ${
      n(l.achievedRate, 1)
    }/s (target ${o.ratePerSecond}/s; loop at most ${
      n(l.maxLagMs)
    } ms late), ${st.missing} not applied${
      l.altered ? `, ${l.altered} reshaped by the CRM` : ""
    }, ${l.dead} dead, ${l.throttled} 429s${
      l.mismatches.length ? `; not as written, e.g. ${l.mismatches.join("; ")}` : ""
    }`,
  );
  console.log(
    `  commit → applied in the CRM (${
      l.precisionMs > 1 ? "1 s stamps: earliest–latest possible" : "ms stamps"
    }): p50 ${both(st.p50)}, p99 ${both(st.p99)}, max ${both(st.max)} — targets p50 < ${
      s(OUTBOUND_TARGETS.p50Ms)
    }: ${verdict(met.p50)}, p99 < ${s(OUTBOUND_TARGETS.p99Ms)}: ${verdict(met.p99)}`,
  );
  if (l.worst) {
    console.log(
      `  slowest: write ${l.worst.index + 1} of ${l.writes} (committed ${
        s(l.worst.atMs)
      } into the load) took ${s(l.worst.latencyMs)}; workers woken meanwhile by ${
        Object.entries(l.wakes).map(([k, v]) => `${k} ${v}`).join(", ") || "nobody"
      }`,
    );
  }
  const part = `latency ${l.provider}`;
  return [
    {
      part,
      target: `p50 < ${s(OUTBOUND_TARGETS.p50Ms)}`,
      value: `${s(st.p50.hi)}${st.missing ? `, ${st.missing} missing` : ""}`,
      met: met.p50,
    },
    {
      part,
      target: `p99 < ${s(OUTBOUND_TARGETS.p99Ms)}`,
      value: `${s(st.p99.hi)}${st.missing ? `, ${st.missing} missing` : ""}`,
      met: met.p99,
    },
    { part, target: "zero 429s", value: String(l.throttled), met: l.throttled === 0 },
  ];
}

export function printOutbound(r: OutboundResult, o: OutboundOptions): Verdict[] {
  const out: Verdict[] = [];
  console.log(
    `\n── Outbound: changed contacts pushed as in production (app UPDATE → outbox trigger → job → ` +
      `worker through pg_net and the gateway), documented limits on; sandboxes seeded in ${
        s(r.seededMs)
      }, backfilled in ${s(r.backfillMs)} ──`,
  );
  for (const p of o.providers) {
    const b = r.bulk[p];
    if (!b) continue;
    if (b.ok) out.push(...printBulk(b.value));
    else out.push(notMeasured(`outbound ${p}`, b.reason));
  }
  if (!o.latencyProviders.length) return out;
  console.log(
    `\n── App→CRM latency: ${o.ratePerSecond} app writes/s for ${o.seconds} s (open loop, no cron) ──`,
  );
  for (const p of o.latencyProviders) {
    const l = r.latency[p];
    if (!l) continue;
    if (l.ok) out.push(...printLatency(l.value, o));
    else out.push(notMeasured(`latency ${p}`, l.reason));
  }
  return out;
}
