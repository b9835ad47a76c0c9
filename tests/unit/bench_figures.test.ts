// The bench's pure parts: the documented ceilings it divides by, and the synthetic pages the
// bad-page figure and the A/B feed crm.apply_inbound (a clean page must be clean, a bad one
// must hold exactly one rejected value, a delta page must not repeat a record).
import assert from "node:assert/strict";
import { ceilings, salesforceDailyCalls } from "../../scripts/bench/ceiling.ts";
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
