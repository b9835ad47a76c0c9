// The outbound part's figures (issue 12, "Benchmark"), pure: the fewest write calls a push of n
// changed records can make, the documented ceiling of each provider's write API in records/s,
// the naive baseline extrapolated to n, and app→CRM latency quantiles from apply times that
// may be second-granular. Sources of the limits: ./ceiling.ts (HubSpot's burst, Salesforce's
// daily allocation) and the Pipedrive sandbox's documented burst limit (80 requests per rolling
// 2 s per token, shared/emulators/pipedrive/emulator.ts; Pipedrive's docs give 20-120 by plan).
import type { ProviderName } from "../../supabase/functions/_shared/providers/types.ts";
import { type Ceiling, HUBSPOT_TEN_SECONDLY, salesforceDailyCalls } from "./ceiling.ts";
import type { Counters } from "./sandboxes.ts";
import { quantile } from "./scale_figures.ts";

export const OUTBOUND_TARGETS = {
  /** Write calls ÷ ⌈n / max batch⌉. */
  calls: 1.05,
  /** Records/s ÷ the documented ceiling. */
  ceiling: 0.9,
  throttled: 0,
  p50Ms: 2_000,
  p99Ms: 10_000,
};

/** Records per write call the providers take (SPEC.md §1 maxBatch). */
export const MAX_BATCH: Record<ProviderName, number> = {
  hubspot: 100,
  salesforce: 200,
  pipedrive: 1,
};

/** The Pipedrive sandbox's documented burst limit (an Essential plan's api_token). */
export const PIPEDRIVE_BURST = { limit: 80, windowMs: 2_000 };

/** The documented request limits a client must stay under, per provider (null: none per
 * second); the naive baseline paces itself by them. */
export function documentedPace(
  provider: ProviderName,
): { limit: number; windowMs: number } | null {
  if (provider === "hubspot") return { limit: HUBSPOT_TEN_SECONDLY.freeStarter, windowMs: 10_000 };
  if (provider === "pipedrive") return PIPEDRIVE_BURST;
  return null;
}

export function minWriteCalls(provider: ProviderName, records: number): number {
  return Math.ceil(records / MAX_BATCH[provider]);
}

const DAY_S = 86_400;

/** The documented ceiling of a push of changed records, in records/s. */
export function outboundCeiling(provider: ProviderName): Ceiling {
  if (provider === "hubspot") {
    const t = HUBSPOT_TEN_SECONDLY.freeStarter;
    return {
      name: "batch/update under the Free/Starter burst limit",
      recordsPerSecond: (t / 10) * MAX_BATCH.hubspot,
      formula: `${t} requests/10 s × ${MAX_BATCH.hubspot}`,
    };
  }
  if (provider === "pipedrive") {
    const b = PIPEDRIVE_BURST;
    return {
      name: "one PATCH per record under the burst limit",
      recordsPerSecond: (b.limit / (b.windowMs / 1000)) * MAX_BATCH.pipedrive,
      formula: `${b.limit} requests/${b.windowMs / 1000} s × ${MAX_BATCH.pipedrive}`,
    };
  }
  const calls = salesforceDailyCalls();
  return {
    name: "the daily API allocation spread over 24 h (no per-second limit)",
    recordsPerSecond: (calls * MAX_BATCH.salesforce) / DAY_S,
    formula: `${calls.toLocaleString("en")} calls/24 h × ${MAX_BATCH.salesforce}`,
  };
}

/** Calls a counters snapshot shows on routes that write: any method but GET, except searches
 * (HubSpot's and Pipedrive's search are POST/GET reads) and the OAuth token route. */
export function writeCalls(c: Counters): { total: number; byRoute: Record<string, number> } {
  const byRoute: Record<string, number> = {};
  let total = 0;
  for (const [route, v] of Object.entries(c.routes)) {
    const [method, path = ""] = route.split(" ");
    if (method === "GET" || /\/search\b/.test(path) || /oauth|token/i.test(path)) continue;
    byRoute[route] = v.total;
    total += v.total;
  }
  return { total, byRoute };
}

/** Records/s of a push that started at `fromMs` and whose last record was applied at `toMs`. */
export function recordsPerSecond(records: number, fromMs: number, toMs: number): number {
  const s = (toMs - fromMs) / 1000;
  return s > 0 ? records / s : NaN;
}

/** The naive baseline measured on `subset` records in `wallMs`, extrapolated to `records` at
 * the same rate (its pace is steady: one request at a time, evenly spaced under the limit). */
export function extrapolate(subset: number, wallMs: number, records: number) {
  const rate = subset / (wallMs / 1000);
  return { rate, projectedMs: (records / rate) * 1000 };
}

/** One app write: when its transaction committed and when the CRM applied it, as the sandbox
 * stamps it (`precisionMs` 1 for a millisecond stamp, 1000 for a stamp truncated to seconds:
 * the change was applied in [appliedMs, appliedMs + precisionMs)). appliedMs null: not seen. */
export interface LatencySample {
  commitMs: number;
  appliedMs: number | null;
  precisionMs: number;
}

export interface LatencyStats {
  samples: number;
  missing: number;
  /** Quantiles of the earliest and latest possible latency (equal at ms precision). */
  p50: { lo: number; hi: number };
  p99: { lo: number; hi: number };
  max: { lo: number; hi: number };
}

export function latencyStats(xs: readonly LatencySample[]): LatencyStats {
  const seen = xs.filter((x) => x.appliedMs !== null);
  // A stamp truncated to seconds can fall before the commit: the earliest bound is then 0.
  const lo = seen.map((x) => Math.max(0, x.appliedMs! - x.commitMs));
  const hi = seen.map((x) =>
    Math.max(0, x.appliedMs! + (x.precisionMs > 1 ? x.precisionMs : 0) - x.commitMs)
  );
  const both = (q: number) => ({ lo: quantile(lo, q), hi: quantile(hi, q) });
  return {
    samples: xs.length,
    missing: xs.length - seen.length,
    p50: both(0.5),
    p99: both(0.99),
    max: { lo: lo.length ? Math.max(...lo) : NaN, hi: hi.length ? Math.max(...hi) : NaN },
  };
}

/** Met only when the latest possible latency meets it and every write arrived. */
export function latencyMet(s: LatencyStats): { p50: boolean; p99: boolean } {
  const all = s.missing === 0 && s.samples > 0;
  return {
    p50: all && s.p50.hi < OUTBOUND_TARGETS.p50Ms,
    p99: all && s.p99.hi < OUTBOUND_TARGETS.p99Ms,
  };
}

/** Parses a sandbox's apply stamp to ms and its precision: ISO with milliseconds (HubSpot's
 * updatedAt) is exact; Salesforce's "2026-12-04T23:50:01.000+0000" and Pipedrive's
 * "2026-12-04T23:50:01Z" are truncated to the second by the CRMs (and the sandboxes). */
export function applyStamp(
  provider: ProviderName,
  v: unknown,
): { ms: number; precisionMs: number } | null {
  if (typeof v !== "string" || !v) return null;
  const ms = Date.parse(v.replace(/([+-]\d\d)(\d\d)$/, "$1:$2"));
  if (Number.isNaN(ms)) return null;
  return { ms, precisionMs: provider === "hubspot" ? 1 : 1000 };
}

/** How the CRM's first name compares with the app's: "exact"; "altered" when it starts with the
 * app's value and goes on (Pipedrive v2 persons take `name` only and split it at the last
 * space, so a multi-word last name moves into the first name: the change arrived, reshaped);
 * else "missing". */
export function matchValue(app: string, crm: unknown): "exact" | "altered" | "missing" {
  if (crm === app) return "exact";
  return typeof crm === "string" && crm.startsWith(`${app} `) ? "altered" : "missing";
}
