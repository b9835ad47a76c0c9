// What `npm run bench` prints for the drift part (./drift_run.ts): per provider the full walk and
// the drift check over the same unchanged records, as a table with full ÷ drift, and whether
// the check fetched or wrote anything (on unchanged records it must not).
import { comparisonRows, type DriftComparison, formatRatio } from "./drift_figures.ts";
import type { DriftPartResult } from "./drift_run.ts";
import type { Verdict } from "./report_scale.ts";
import { n, verdict } from "./report.ts";

const NAME: Record<string, string> = { hubspot: "HubSpot", salesforce: "Salesforce" };

function table(head: string[], rows: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  console.log(`${line(head)}\n|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  for (const r of rows) console.log(line(r));
}

function printOne(c: DriftComparison): Verdict[] {
  const name = NAME[c.provider] ?? c.provider;
  console.log(
    `\n${name}: ${n(c.records)} unchanged contacts — full walk ${c.full.runs} runs ` +
      `(${n(c.full.sandboxCalls)} requests counted by the sandbox), drift check ${c.drift.runs} ` +
      `runs (${n(c.drift.sandboxCalls)}); SQL statements ${n(c.full.sqlCalls)} vs ${
        n(c.drift.sqlCalls)
      }`,
  );
  table(["", "full walk", "drift check", "full ÷ drift"], comparisonRows(c));
  const clean = c.drift.fetched === 0 && c.drift.written === 0 && c.drift.failed === 0;
  console.log(
    `  drift check on unchanged records: ${n(c.drift.fetched)} fetched again, ${
      n(c.drift.written)
    } written — ${verdict(clean)}`,
  );
  return [
    {
      part: `drift ${c.provider}`,
      target: "unchanged records fetched or written again: 0",
      value: `${n(c.drift.fetched)} fetched, ${n(c.drift.written)} written`,
      met: clean,
    },
    {
      part: `drift ${c.provider}`,
      target: "bytes fetched below the full walk's",
      value: formatRatio(c.ratios.bytes),
      met: c.drift.bytes < c.full.bytes,
    },
    {
      part: `drift ${c.provider}`,
      target: "SQL time below the full walk's",
      value: formatRatio(c.ratios.sqlMs),
      met: c.drift.sqlMs < c.full.sqlMs,
    },
  ];
}

export function printDrift(r: DriftPartResult): Verdict[] {
  console.log(
    `\n── Drift check vs today's full walk (same run; sandboxes seeded in ${
      n(r.seededMs / 1000, 1)
    } s) ──`,
  );
  return r.comparisons.flatMap(printOne);
}
