// The outbound bench part's pure figures: the fewest write calls, the documented ceilings, which
// sandbox routes count as writes, the naive extrapolation, latency quantiles from stamps that
// may be truncated to the second, and how a CRM value compares with the app's.
import assert from "node:assert/strict";
import {
  applyStamp,
  documentedPace,
  extrapolate,
  latencyMet,
  latencyStats,
  matchValue,
  minWriteCalls,
  outboundCeiling,
  recordsPerSecond,
  writeCalls,
} from "../../scripts/bench/outbound_figures.ts";

Deno.test("bench outbound: ⌈N / max batch⌉ per provider", () => {
  assert.equal(minWriteCalls("hubspot", 10_000), 100);
  assert.equal(minWriteCalls("hubspot", 10_001), 101);
  assert.equal(minWriteCalls("salesforce", 10_000), 50);
  assert.equal(minWriteCalls("salesforce", 199), 1);
  assert.equal(minWriteCalls("pipedrive", 2_000), 2_000);
});

Deno.test("bench outbound: documented ceilings in records/s", () => {
  assert.equal(outboundCeiling("hubspot").recordsPerSecond, 1_000);
  assert.equal(outboundCeiling("pipedrive").recordsPerSecond, 40);
  // 150,000 calls a day × 200 records ÷ 86,400 s.
  assert.ok(Math.abs(outboundCeiling("salesforce").recordsPerSecond - 347.22) < 0.01);
  assert.deepEqual(documentedPace("hubspot"), { limit: 100, windowMs: 10_000 });
  assert.deepEqual(documentedPace("pipedrive"), { limit: 80, windowMs: 2_000 });
  assert.equal(documentedPace("salesforce"), null);
});

Deno.test("bench outbound: write calls leave out reads, searches and token calls", () => {
  const route = (total: number) => ({ total, byStatus: { "200": total } });
  const w = writeCalls({
    total: 0,
    byStatus: {},
    routes: {
      "POST /crm/v3/objects/:objectType/batch/update": route(100),
      "POST /crm/v3/objects/:objectType/search": route(3),
      "GET /api/v2/persons/:id": route(50),
      "POST /oauth/v1/token": route(1),
      "PATCH /api/v2/persons/:id": route(50),
      "GET /api/v2/persons/search": route(2),
    },
  });
  assert.equal(w.total, 150);
  assert.deepEqual(Object.keys(w.byRoute).sort(), [
    "PATCH /api/v2/persons/:id",
    "POST /crm/v3/objects/:objectType/batch/update",
  ]);
});

Deno.test("bench outbound: rates and the naive extrapolation", () => {
  assert.equal(recordsPerSecond(1_000, 5_000, 7_000), 500);
  assert.ok(Number.isNaN(recordsPerSecond(10, 5_000, 5_000)));
  const ex = extrapolate(300, 30_000, 10_000);
  assert.equal(ex.rate, 10);
  assert.equal(ex.projectedMs, 1_000_000);
});

Deno.test("bench outbound: latency bounds from millisecond and second stamps", () => {
  const ms = latencyStats([
    { commitMs: 1_000, appliedMs: 1_400, precisionMs: 1 },
    { commitMs: 2_000, appliedMs: 2_600, precisionMs: 1 },
    { commitMs: 3_000, appliedMs: 3_200, precisionMs: 1 },
  ]);
  assert.deepEqual(ms.p50, { lo: 400, hi: 400 });
  assert.deepEqual(ms.max, { lo: 600, hi: 600 });
  assert.equal(ms.missing, 0);
  assert.deepEqual(latencyMet(ms), { p50: true, p99: true });

  // A stamp truncated to the second: applied somewhere in [stamp, stamp + 1 s); a stamp before
  // the commit (same second) gives an earliest latency of 0.
  const s = latencyStats([
    { commitMs: 10_300, appliedMs: 10_000, precisionMs: 1_000 },
    { commitMs: 10_500, appliedMs: 11_000, precisionMs: 1_000 },
    { commitMs: 10_500, appliedMs: 20_000, precisionMs: 1_000 },
  ]);
  assert.deepEqual(s.p50, { lo: 500, hi: 1_500 });
  assert.deepEqual(s.max, { lo: 9_500, hi: 10_500 });
  assert.ok(Math.abs(s.p99.lo - 9_320) < 1e-6 && Math.abs(s.p99.hi - 10_320) < 1e-6);
  // Judged on the latest possible latency: p99 may be 9.3 s, but may be 10.3 s: not met.
  assert.deepEqual(latencyMet(s), { p50: true, p99: false });

  const missing = latencyStats([
    { commitMs: 0, appliedMs: 100, precisionMs: 1 },
    { commitMs: 0, appliedMs: null, precisionMs: 1 },
  ]);
  assert.equal(missing.missing, 1);
  assert.deepEqual(latencyMet(missing), { p50: false, p99: false });
  assert.deepEqual(latencyMet(latencyStats([])), { p50: false, p99: false });
});

Deno.test("bench outbound: apply stamps of each sandbox", () => {
  assert.deepEqual(applyStamp("hubspot", "2026-12-04T23:50:01.234Z"), {
    ms: Date.parse("2026-12-04T23:50:01.234Z"),
    precisionMs: 1,
  });
  assert.deepEqual(applyStamp("salesforce", "2026-12-04T23:50:01.000+0000"), {
    ms: Date.parse("2026-12-04T23:50:01Z"),
    precisionMs: 1_000,
  });
  assert.equal(
    applyStamp("pipedrive", "2026-12-04T23:50:01Z")?.ms,
    Date.parse("2026-12-04T23:50:01Z"),
  );
  assert.equal(applyStamp("hubspot", null), null);
  assert.equal(applyStamp("pipedrive", "not a time"), null);
});

Deno.test("bench outbound: the CRM's value against the app's", () => {
  assert.equal(matchValue("Lat 2", "Lat 2"), "exact");
  assert.equal(matchValue("Lat 2", "Lat 2 van der"), "altered");
  assert.equal(matchValue("Lat 2", "Lat 20"), "missing");
  assert.equal(matchValue("Lat 2", null), "missing");
});
