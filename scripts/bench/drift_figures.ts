// The drift bench part's pure figures (./drift_run.ts): what one way of checking a stream cost
// (its runs in sync_log, the sandbox's counted calls, the SQL time of the engine's statements
// from pg_stat_user_functions), and the full walk against the drift check as ratios.

/** The statements each way sends from the worker (top-level crm functions; the job queue's
 * are the same for both and left out). Their total_time includes what they call. */
export const FULL_SQL_FUNCTIONS = [
  "begin_inbound_run",
  "save_inbound_page",
  "finish_full_sync_sweep",
  "due_inbound_failures",
  "close_inbound_run",
] as const;
export const DRIFT_SQL_FUNCTIONS = [
  "begin_inbound_run",
  "drift_walk_state",
  "drift_compare_page",
  "save_inbound_page",
  "drift_deletion_candidates",
  "save_drift_progress",
  "close_inbound_run",
] as const;

/** pg_stat_user_functions of schema crm: name → { calls, total_time ms }. */
export type FunctionTimes = Record<string, { calls: number; totalMs: number }>;

/** SQL time spent in `names` between two snapshots (ms). */
export function sqlTime(before: FunctionTimes, after: FunctionTimes, names: readonly string[]) {
  let ms = 0;
  let calls = 0;
  for (const f of names) {
    ms += (after[f]?.totalMs ?? 0) - (before[f]?.totalMs ?? 0);
    calls += (after[f]?.calls ?? 0) - (before[f]?.calls ?? 0);
  }
  return { ms: Math.max(0, ms), calls: Math.max(0, calls) };
}

/** One sync_log row of a measured run. */
export interface RunRow {
  status: string;
  api_calls: number;
  bytes: number;
  /** Records written (created + updated + deleted): nothing, on unchanged records. */
  written: number;
  /** Records the drift check fetched for repairs (0 for a full walk's row). */
  fetched: number;
}

export interface WalkCost {
  runs: number;
  failed: number;
  apiCalls: number;
  /** Requests the sandbox counted (every route). */
  sandboxCalls: number;
  bytes: number;
  sqlMs: number;
  sqlCalls: number;
  wallMs: number;
  written: number;
  fetched: number;
}

export function walkCost(
  rows: readonly RunRow[],
  o: { sandboxCalls: number; sqlMs: number; sqlCalls: number; wallMs: number },
): WalkCost {
  const sum = (f: (r: RunRow) => number) => rows.reduce((a, r) => a + f(r), 0);
  return {
    runs: rows.length,
    failed: rows.filter((r) => r.status === "failed").length,
    apiCalls: sum((r) => r.api_calls),
    bytes: sum((r) => r.bytes),
    written: sum((r) => r.written),
    fetched: sum((r) => r.fetched),
    ...o,
  };
}

/** full ÷ drift: how many times cheaper the drift check is (∞ when it cost nothing of what the
 * full walk paid; 1 when neither paid anything). */
export function ratio(full: number, drift: number): number {
  if (drift <= 0) return full > 0 ? Infinity : 1;
  return full / drift;
}

export interface DriftComparison {
  provider: string;
  records: number;
  full: WalkCost;
  drift: WalkCost;
  ratios: { apiCalls: number; bytes: number; sqlMs: number; wallMs: number };
}

export function compareWalks(
  provider: string,
  records: number,
  full: WalkCost,
  drift: WalkCost,
): DriftComparison {
  return {
    provider,
    records,
    full,
    drift,
    ratios: {
      apiCalls: ratio(full.apiCalls, drift.apiCalls),
      bytes: ratio(full.bytes, drift.bytes),
      sqlMs: ratio(full.sqlMs, drift.sqlMs),
      wallMs: ratio(full.wallMs, drift.wallMs),
    },
  };
}

/** "12.3×", "0.98×", "∞". */
export function formatRatio(x: number): string {
  if (!Number.isFinite(x)) return "∞";
  return `${x >= 10 ? x.toFixed(1) : x.toFixed(2)}×`;
}

/** Bytes in B / kB / MB / GB (powers of 1000, one decimal above B). */
export function formatBytes(b: number): string {
  const units = ["kB", "MB", "GB"];
  if (Math.abs(b) < 1000) return `${Math.round(b)} B`;
  let x = b;
  let u = -1;
  while (Math.abs(x) >= 1000 && u < units.length - 1) {
    x /= 1000;
    u++;
  }
  return `${x.toFixed(1)} ${units[u]}`;
}

/** The printed rows of one comparison: measure, full walk, drift check, full ÷ drift. */
export function comparisonRows(c: DriftComparison): string[][] {
  const ms = (x: number) => `${Math.round(x).toLocaleString("en")} ms`;
  const s = (x: number) => `${(x / 1000).toFixed(1)} s`;
  const int = (x: number) => Math.round(x).toLocaleString("en");
  return [
    ["SQL time", ms(c.full.sqlMs), ms(c.drift.sqlMs), formatRatio(c.ratios.sqlMs)],
    ["API calls", int(c.full.apiCalls), int(c.drift.apiCalls), formatRatio(c.ratios.apiCalls)],
    [
      "bytes fetched",
      formatBytes(c.full.bytes),
      formatBytes(c.drift.bytes),
      formatRatio(c.ratios.bytes),
    ],
    ["wall time", s(c.full.wallMs), s(c.drift.wallMs), formatRatio(c.ratios.wallMs)],
  ];
}
