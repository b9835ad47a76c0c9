// The bench's pure parts: the documented ceilings it divides by, and the synthetic pages the
// bad-page figure and the A/B feed crm.apply_inbound (a clean page must be clean, a bad one
// must hold exactly one rejected value, a delta page must not repeat a record).
import assert from "node:assert/strict";
import {
  ceilings,
  HUBSPOT_ROUTES,
  hubspotWalkCeiling,
  salesforceDailyCalls,
} from "../../scripts/bench/ceiling.ts";
import {
  combinedRatio,
  countAt,
  fairnessRatio,
  flattenReason,
  flattensAt,
  memoryGrowth,
  quantile,
  rateBetween,
  servedByClass,
  speedUps,
  sustainedRate,
  utilisation,
  wholeWindows,
} from "../../scripts/bench/scale_figures.ts";
import { engineMinimum } from "../../scripts/bench/figures.ts";
import { backfillPage, contact, deltaPage, REJECTED_PHONE } from "../../scripts/bench/records.ts";

// crm.contacts' contacts_phone_e164 check.
const E164 = /^\+[1-9][0-9]{6,14}$/;

Deno.test("ceilings: HubSpot search 5/s × 200, list bursts × 100, Salesforce budget over 24 h", () => {
  const hs = ceilings("hubspot").map((c) => c.recordsPerSecond);
  assert.deepEqual(hs, [1000, 1000, 1900]);
  assert.deepEqual(salesforceDailyCalls(), 150_000);
  const [sf] = ceilings("salesforce");
  assert.ok(Math.abs(sf.recordsPerSecond - (150_000 * 2000) / 86_400) < 1e-9);
});

Deno.test("backfillPage: a clean page is clean, a bad page has exactly one rejected phone", () => {
  const clean = JSON.parse(backfillPage(0, 2000)) as Record<string, string>[];
  assert.deepEqual(clean.length, 2000);
  assert.ok(clean.every((r) => E164.test(r.phone)));
  const bad = JSON.parse(backfillPage(2000, 2000, 1000)) as Record<string, string>[];
  const rejected = bad.filter((r) => !E164.test(r.phone));
  assert.deepEqual(rejected.length, 1);
  assert.deepEqual(rejected[0].phone, REJECTED_PHONE);
  assert.deepEqual(rejected[0].remote_id, bad[1000].remote_id);
  // No remote id of the bad page repeats one of the clean page.
  const ids = new Set(clean.map((r) => r.remote_id));
  assert.ok(bad.every((r) => !ids.has(r.remote_id)));
});

Deno.test("deltaPage: distinct existing records, newer than their backfill, fields changed", () => {
  for (const total of [4000, 6000, 100_000]) {
    for (const k of [0, 1, 7]) {
      const page = JSON.parse(deltaPage(k, total, 2000, k + 1)) as Record<string, string>[];
      assert.deepEqual(page.length, 2000);
      assert.deepEqual(new Set(page.map((r) => r.remote_id)).size, 2000);
      for (const r of page) {
        const i = Number(r.remote_id) - Number(contact(0).remote_id);
        assert.ok(i >= 0 && i < total, `delta record ${r.remote_id} was never backfilled`);
        const old = contact(i);
        assert.ok(r.remote_updated_at > old.remote_updated_at!);
        assert.ok(r.job_title !== old.job_title && r.lead_status !== old.lead_status);
      }
    }
  }
});

Deno.test("deltaPage with a bad offset: exactly that record carries the rejected phone", () => {
  const page = JSON.parse(deltaPage(0, 2000, 2000, 3, 1000)) as Record<string, string>[];
  const rejected = page.flatMap((r, i) => (E164.test(r.phone) ? [] : [i]));
  assert.deepEqual(rejected, [1000]);
  assert.equal(page[1000].phone, REJECTED_PHONE);
});

// ---- issue 11: scale, shared budget, ceiling ----------------------------------------------

Deno.test("quantile: interpolates between order statistics; fairness is max ÷ median", () => {
  assert.equal(quantile([3, 1, 2], 0.5), 2);
  assert.equal(quantile([1, 2, 3, 4], 0.5), 2.5);
  assert.equal(quantile([10, 20], 0.99), 19.9);
  assert.ok(Number.isNaN(quantile([], 0.5)));
  // Uniform completion times: the last tenant waits about twice the median.
  const waits = Array.from({ length: 1000 }, (_, i) => (i + 1) * 100);
  assert.ok(Math.abs(fairnessRatio(waits) - 100_000 / 50_050) < 1e-9);
  assert.equal(fairnessRatio([5, 5, 5, 15]), 3);
});

Deno.test("speedUps and flattensAt: relative to the fewest workers, flat where a step gains < 1.1×", () => {
  const s = speedUps([
    { workers: 4, makespanMs: 50 },
    { workers: 1, makespanMs: 200 },
    { workers: 2, makespanMs: 100 },
    { workers: 8, makespanMs: 48 },
  ]);
  assert.deepEqual(s.map((x) => x.workers), [1, 2, 4, 8]);
  assert.deepEqual(s.map((x) => x.speedUp), [1, 2, 4, 200 / 48]);
  assert.ok(Number.isNaN(s[0].gain));
  assert.equal(s[2].gain, 2);
  assert.equal(flattensAt(s), 8);
  assert.equal(flattensAt(s.slice(0, 3)), null);
});

Deno.test("utilisation and flattenReason: shares of the CPUs, saturated from 85 %", () => {
  const u = utilisation({ postgres: 10_000, functions: 6_000, sandboxes: 2_000 }, 10_000, 2);
  assert.deepEqual(u.shares, { postgres: 0.5, functions: 0.3, sandboxes: 0.1 });
  assert.ok(Math.abs(u.total - 0.9) < 1e-12);
  assert.match(flattenReason(u), /^the CPUs are saturated \(90 % busy: postgres 50 %/);
  const idle = utilisation({ postgres: 2_000, functions: 1_000 }, 10_000, 2);
  assert.match(flattenReason(idle), /^the CPUs are not saturated \(15 % busy/);
  // A round whose makespan is set by streams that waited for a lease takeover says so first.
  const st = { takenOver: 2, p99Ms: 26_000, makespanMs: 178_400 };
  assert.match(
    flattenReason(idle, st),
    /^2 stream\(s\) waited for a lease takeover .*\(178\.4 s; 99 % of the streams were synced in 26\.0 s\); while the work ran, the CPUs are not saturated/,
  );
  assert.equal(flattenReason(idle, { ...st, takenOver: 0 }), flattenReason(idle));
});

Deno.test("countAt, wholeWindows, rateBetween: rates over whole rolling windows only", () => {
  const samples = [{ t: 0, count: 0 }, { t: 1000, count: 10 }, { t: 3000, count: 50 }];
  assert.equal(countAt(samples, 500), 5);
  assert.equal(countAt(samples, 2000), 30);
  assert.equal(countAt(samples, 9000), 50);
  assert.equal(rateBetween(samples, 1000, 3000), 20);
  assert.deepEqual(wholeWindows(10_000, 47_000, 10_000), { from: 10_000, to: 40_000, windows: 3 });
  assert.equal(wholeWindows(10_000, 19_999, 10_000), null);
});

Deno.test("sustainedRate: skips the first window after the first row; null when too short", () => {
  // Burst of 100 rows at once, then 10/s from t = 1 s to t = 31 s.
  const landed = [{ t: 0, count: 0 }, { t: 1000, count: 100 }];
  for (let t = 2000; t <= 31_000; t += 1000) landed.push({ t, count: 100 + (t - 1000) / 100 });
  const r = sustainedRate(landed, 10_000)!;
  assert.equal(r.from, 11_000);
  assert.equal(r.to, 31_000);
  assert.ok(Math.abs(r.rate - 10) < 1e-9);
  assert.equal(sustainedRate(landed.slice(0, 15), 10_000), null);
});

Deno.test("servedByClass and combinedRatio: 2xx per class, ceilings of the classes in use", () => {
  const classes = [
    { name: "burst", ceilingPerSecond: 10, routes: null },
    { name: "search", ceilingPerSecond: 5, routes: [HUBSPOT_ROUTES.search] },
  ];
  const served = servedByClass({
    [HUBSPOT_ROUTES.search]: { byStatus: { "200": 40, "429": 3 } },
    [HUBSPOT_ROUTES.list]: { byStatus: { "200": 90, "207": 5, "500": 1 } },
  }, classes);
  assert.deepEqual(served, { burst: 95, search: 40 });
  const both = combinedRatio({ burst: 9.5, search: 4.75 }, classes, new Set(["burst", "search"]));
  assert.deepEqual(both, { rate: 14.25, ceiling: 15, ratio: 0.95 });
  const one = combinedRatio({ burst: 9, search: 0 }, classes, new Set(["burst"]));
  assert.deepEqual(one, { rate: 9, ceiling: 10, ratio: 0.9 });
});

Deno.test("hubspotWalkCeiling: the API the walk used decides the documented ceiling", () => {
  const list = hubspotWalkCeiling({ [HUBSPOT_ROUTES.list]: { total: 601 } });
  assert.equal(list.api, "list");
  assert.equal(list.recordsPerSecond, 1000);
  assert.match(list.formula, /100 requests\/10 s × 100/);
  const search = hubspotWalkCeiling({
    [HUBSPOT_ROUTES.search]: { total: 300 },
    [HUBSPOT_ROUTES.list]: { total: 2 },
  });
  assert.equal(search.api, "search");
  assert.equal(search.formula, "5 requests/s × 200");
});

Deno.test("memoryGrowth: like for like by requests served, the largest ratio; else the maxima", () => {
  const small = [{ requests: 1, peakMb: 110 }, { requests: 2, peakMb: 124 }, {
    requests: 2,
    peakMb: 120,
  }];
  const full = [{ requests: 1, peakMb: 112 }, { requests: 2, peakMb: 150 }, {
    requests: 3,
    peakMb: 170,
  }];
  const g = memoryGrowth(small, full);
  assert.equal(g.requests, 2);
  assert.equal(g.smallMb, 124);
  assert.equal(g.fullMb, 150);
  assert.ok(Math.abs(g.ratio - 150 / 124) < 1e-12);
  // Processes that served nothing (idle since the reset) are left out.
  const none = memoryGrowth([{ requests: 1, peakMb: 100 }], [
    { requests: 0, peakMb: 0 },
    { requests: 4, peakMb: 130 },
  ]);
  assert.deepEqual(none, { ratio: 1.3, requests: null, smallMb: 100, fullMb: 130 });
});

Deno.test("engineMinimum: HubSpot's list walk ceil(n/100) pages, Salesforce's keyset floor(n/2000)+1", () => {
  const sizes = (engine: Record<string, number>) => ({ engine, naive: engine });
  assert.equal(engineMinimum("hubspot", sizes({ contacts: 4946 })), 50);
  assert.equal(engineMinimum("hubspot", sizes({ contacts: 100_000 })), 1000);
  assert.equal(engineMinimum("salesforce", sizes({ Contact: 2500, Lead: 4000 })), 2 + 3);
});
