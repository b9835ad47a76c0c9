// The drift bench part's pure figures: SQL time between two pg_stat_user_functions snapshots,
// a way's cost from its sync_log rows, full ÷ drift ratios and their printing.
import assert from "node:assert/strict";
import {
  compareWalks,
  comparisonRows,
  DRIFT_SQL_FUNCTIONS,
  formatBytes,
  formatRatio,
  FULL_SQL_FUNCTIONS,
  ratio,
  sqlTime,
  walkCost,
} from "../../scripts/bench/drift_figures.ts";

Deno.test("bench drift: SQL time sums the named functions' growth only", () => {
  const before = {
    save_inbound_page: { calls: 10, totalMs: 100 },
    claim_job: { calls: 5, totalMs: 50 },
  };
  const after = {
    save_inbound_page: { calls: 60, totalMs: 1100 },
    finish_full_sync_sweep: { calls: 1, totalMs: 40 },
    claim_job: { calls: 9, totalMs: 90 },
  };
  assert.deepEqual(sqlTime(before, after, FULL_SQL_FUNCTIONS), { ms: 1040, calls: 51 });
  assert.deepEqual(sqlTime(before, after, ["drift_compare_page"]), { ms: 0, calls: 0 });
  // The job queue's statements are the same for both ways and counted by neither.
  assert.ok(!FULL_SQL_FUNCTIONS.includes("claim_job" as never));
  assert.ok(DRIFT_SQL_FUNCTIONS.includes("drift_compare_page"));
});

Deno.test("bench drift: a way's cost sums its runs", () => {
  const c = walkCost([
    { status: "success", api_calls: 500, bytes: 1_000_000, written: 0, fetched: 0 },
    { status: "failed", api_calls: 3, bytes: 10, written: 2, fetched: 1 },
  ], { sandboxCalls: 510, sqlMs: 42, sqlCalls: 7, wallMs: 9000 });
  assert.deepEqual(c, {
    runs: 2,
    failed: 1,
    apiCalls: 503,
    bytes: 1_000_010,
    written: 2,
    fetched: 1,
    sandboxCalls: 510,
    sqlMs: 42,
    sqlCalls: 7,
    wallMs: 9000,
  });
});

Deno.test("bench drift: ratios are full ÷ drift; nothing paid is 1, only one paid is ∞", () => {
  assert.equal(ratio(1000, 10), 100);
  assert.equal(ratio(0, 0), 1);
  assert.equal(ratio(5, 0), Infinity);
  assert.equal(ratio(10, 20), 0.5);
  assert.equal(formatRatio(123.456), "123.5×");
  assert.equal(formatRatio(2.345), "2.35×");
  assert.equal(formatRatio(Infinity), "∞");
});

Deno.test("bench drift: bytes in powers of 1000", () => {
  assert.equal(formatBytes(999), "999 B");
  assert.equal(formatBytes(1000), "1.0 kB");
  assert.equal(formatBytes(12_345_678), "12.3 MB");
  assert.equal(formatBytes(4.2e9), "4.2 GB");
});

Deno.test("bench drift: the printed comparison", () => {
  const way = (apiCalls: number, bytes: number, sqlMs: number, wallMs: number) =>
    walkCost([{ status: "success", api_calls: apiCalls, bytes, written: 0, fetched: 0 }], {
      sandboxCalls: apiCalls,
      sqlMs,
      sqlCalls: 1,
      wallMs,
    });
  const c = compareWalks(
    "hubspot",
    100_000,
    way(1000, 80e6, 30_000, 120_000),
    way(1000, 8e6, 3_000, 40_000),
  );
  assert.deepEqual(c.ratios, { apiCalls: 1, bytes: 10, sqlMs: 10, wallMs: 3 });
  assert.deepEqual(comparisonRows(c), [
    ["SQL time", "30,000 ms", "3,000 ms", "10.0×"],
    ["API calls", "1,000", "1,000", "1.00×"],
    ["bytes fetched", "80.0 MB", "8.0 MB", "10.0×"],
    ["wall time", "120.0 s", "40.0 s", "3.00×"],
  ]);
});
