// The webhooks bench part's pure figures (issue 13, "Benchmark"): latency summaries, the ratio
// of a figure to its target, CPU per request by part of the stack, and the verdicts.
import type { Verdict } from "./report_scale.ts";
import { quantile } from "./scale_figures.ts";

export const WEBHOOK_TARGETS = {
  /** Ack latency p99 with 10 concurrent senders posting 100-event batches. */
  ackP99Ms: 50,
  /** Webhook to row visible. */
  rowP50Ms: 1_000,
  rowP99Ms: 3_000,
};

export interface LatencySummary {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

export function summarize(ms: readonly number[]): LatencySummary {
  return {
    n: ms.length,
    p50: quantile(ms, 0.5),
    p99: quantile(ms, 0.99),
    max: ms.length ? Math.max(...ms) : NaN,
  };
}

/** "58.3 ms" under 10 s, else "12.4 s"; "-" when not a number. */
export function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return "-";
  return ms < 10_000 ? `${ms.toFixed(1)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** value ÷ target, as printed: "58.3 ms ÷ 50.0 ms = 1.17×" (≤ 1 meets a latency target). */
export function vsTarget(valueMs: number, targetMs: number): string {
  const r = valueMs / targetMs;
  return `${fmtMs(valueMs)} ÷ ${fmtMs(targetMs)} = ${Number.isFinite(r) ? r.toFixed(2) : "-"}×`;
}

/** CPU ms per request of each part of the stack, from a delta over `requests` requests. */
export function cpuPerRequest(
  delta: Record<string, number>,
  requests: number,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(delta)) out[k] = requests > 0 ? v / requests : NaN;
  return out;
}

export interface AckRun {
  senders: number;
  requests: number;
  events: number;
  latency: LatencySummary;
  statuses: Record<string, number>;
  wallMs: number;
  cpuMsPerRequest: Record<string, number>;
  /** crm-webhook processes the gateway started during the run, and requests they served. */
  processes: number;
}

export interface RowRun {
  changes: number;
  ratePerSecond: number;
  latency: LatencySummary;
  /** Changes whose row did not show the change within the wait. */
  missing: number;
  waitMs: number;
}

export interface WebhookBenchResult {
  baseline: AckRun;
  concurrent: AckRun;
  rows: RowRun | null;
  rowsSkipped?: string;
}

/** Every request of an ack run was answered 2xx. */
export function allAccepted(r: AckRun): boolean {
  return Object.entries(r.statuses).every(([s]) => /^2\d\d$/.test(s));
}

export function webhookVerdicts(r: WebhookBenchResult): Verdict[] {
  const t = WEBHOOK_TARGETS;
  const c = r.concurrent;
  const out: Verdict[] = [
    {
      part: "webhooks",
      target: `ack p99 < ${t.ackP99Ms} ms (${c.senders} senders × ${c.events}-event batches)`,
      value: vsTarget(c.latency.p99, t.ackP99Ms),
      met: allAccepted(c) && c.latency.p99 < t.ackP99Ms,
    },
  ];
  if (!r.rows) {
    out.push({
      part: "webhooks",
      target: "webhook → row",
      value: `not measured: ${r.rowsSkipped ?? "skipped"}`,
      met: null,
    });
    return out;
  }
  const w = r.rows;
  const missing = w.missing
    ? ` (${w.missing} of ${w.changes} not visible in ${fmtMs(w.waitMs)})`
    : "";
  out.push(
    {
      part: "webhooks",
      target: `webhook → row p50 < ${t.rowP50Ms / 1000} s`,
      value: vsTarget(w.latency.p50, t.rowP50Ms) + missing,
      met: w.missing === 0 && w.latency.p50 < t.rowP50Ms,
    },
    {
      part: "webhooks",
      target: `webhook → row p99 < ${t.rowP99Ms / 1000} s`,
      value: vsTarget(w.latency.p99, t.rowP99Ms) + missing,
      met: w.missing === 0 && w.latency.p99 < t.rowP99Ms,
    },
  );
  return out;
}

/** The part's own table, printed before the verdicts. */
export function webhookReport(r: WebhookBenchResult): string[] {
  const lines = ["", "── Webhooks: crm-webhook ack latency and webhook → row visible ──"];
  const row = (a: AckRun) => {
    const cpu = Object.entries(a.cpuMsPerRequest)
      .map(([k, v]) => `${k} ${Number.isFinite(v) ? v.toFixed(2) : "-"}`)
      .join(", ");
    return [
      `  ${a.senders} sender${
        a.senders > 1 ? "s" : ""
      } × ${a.requests} requests of ${a.events} events: ` +
      `p50 ${fmtMs(a.latency.p50)}, p99 ${fmtMs(a.latency.p99)}, max ${fmtMs(a.latency.max)}; ` +
      `${Math.round(a.senders * a.requests * a.events / (a.wallMs / 1000))} events/s; ` +
      `answers ${JSON.stringify(a.statuses)}; ${a.processes} function process(es)`,
      `    CPU ms per request: ${cpu}`,
    ];
  };
  lines.push(...row(r.baseline), ...row(r.concurrent));
  if (r.rows) {
    const w = r.rows;
    lines.push(
      `  webhook → row: ${w.changes} sandbox changes at ${w.ratePerSecond}/s, delivered signed by ` +
        `the HubSpot sandbox: p50 ${fmtMs(w.latency.p50)}, p99 ${fmtMs(w.latency.p99)}, max ${
          fmtMs(w.latency.max)
        }${w.missing ? `, ${w.missing} not visible within ${fmtMs(w.waitMs)}` : ""}`,
    );
  } else lines.push(`  webhook → row: not measured (${r.rowsSkipped ?? "skipped"})`);
  return lines;
}
