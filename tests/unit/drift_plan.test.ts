import assert from "node:assert/strict";
import {
  addCounts,
  chunks,
  countsOf,
  emptyCounts,
  mergeStampPages,
  planRepair,
  stampsJson,
} from "../../supabase/functions/_shared/sync/drift_plan.ts";
import type { RemoteRecord, StampPage } from "../../supabase/functions/_shared/providers/types.ts";

const rec = (id: string): RemoteRecord => ({
  remoteId: id,
  remoteType: "contacts",
  modifiedAt: "2026-01-01T00:00:00.000Z",
  properties: { id },
  deleted: false,
  mergedIds: [],
});

const page = (o: Partial<StampPage> = {}): StampPage => ({
  stamps: [],
  errors: [],
  checkpoint: null,
  done: true,
  ...o,
});

Deno.test("drift stamps: ids with their times; ids without a stamp go with m null", () => {
  const s = stampsJson(page({
    stamps: [{ remoteId: "1", modifiedAt: "2026-01-01T00:00:00.000Z" }],
    errors: [{ remoteId: "2", reason: "no time" }, { remoteId: null, reason: "no id" }],
  }));
  assert.deepEqual(JSON.parse(s.json), [
    { id: "1", m: "2026-01-01T00:00:00.000Z" },
    { id: "2", m: null },
  ]);
  assert.equal(s.count, 2);
  assert.equal(s.unidentified, 1);
});

Deno.test("drift plan: differing ids the page carries are applied from it, the rest read by id", () => {
  const plan = planRepair(
    [
      { remote_id: "a", reason: "stale" },
      { remote_id: "b", reason: "missing" },
      { remote_id: "c", reason: "tombstoned" },
      { remote_id: "a", reason: "stale" },
    ],
    page({ records: [rec("a"), rec("z")] }),
  );
  assert.deepEqual(plan.fromPage.map((r) => r.remoteId), ["a"]);
  assert.deepEqual(plan.byId, ["b", "c"]);
  assert.deepEqual(plan.counts, { missing: 1, stale: 1, tombstoned: 1 });
});

Deno.test("drift plan: nothing differs, nothing is fetched", () => {
  const plan = planRepair([], page({ records: [rec("a")] }));
  assert.deepEqual([plan.fromPage.length, plan.byId.length], [0, 0]);
});

Deno.test("drift counts: sums, and totals read back from SQL ignore unknown keys", () => {
  const a = addCounts(emptyCounts(), { compared: 2000, stale: 1, api_calls: 1 });
  const b = addCounts(a, { compared: 10, deleted: 2 });
  assert.equal(b.compared, 2010);
  assert.equal(b.deleted, 2);
  assert.equal(b.stale, 1);
  const t = countsOf({ compared: "7", junk: 3, bytes: null, missing: 1 });
  assert.equal(t.compared, 7);
  assert.equal(t.missing, 1);
  assert.equal(t.bytes, 0);
  assert.ok(!("junk" in t));
  assert.deepEqual(countsOf(null), emptyCounts());
});

Deno.test("drift chunks: batches of the read size, none for no ids, bad sizes refused", () => {
  assert.deepEqual(chunks([1, 2, 3, 4, 5], 2), [[1, 2], [3, 4], [5]]);
  assert.deepEqual(chunks([], 100), []);
  assert.throws(() => chunks([1], 0), RangeError);
});

Deno.test("drift pages: merged for one compare, with the last page's position", () => {
  const a = page({
    stamps: [{ remoteId: "1", modifiedAt: "2026-01-01T00:00:00.000Z" }],
    checkpoint: { after: "1" },
    done: false,
  });
  const b = page({
    stamps: [{ remoteId: "2", modifiedAt: "2026-01-01T00:00:00.000Z" }],
    errors: [{ remoteId: "3", reason: "x" }],
    checkpoint: { after: "3" },
    done: false,
  });
  const m = mergeStampPages([a, b]);
  assert.deepEqual(m.stamps.map((s) => s.remoteId), ["1", "2"]);
  assert.equal(m.errors.length, 1);
  assert.deepEqual(m.checkpoint, { after: "3" });
  assert.equal(m.done, false);
  assert.ok(!("records" in m), "no page carried records");
  const carried = mergeStampPages([page({ records: [rec("1")], done: false }), page()]);
  assert.deepEqual(carried.records?.map((r) => r.remoteId), ["1"]);
  assert.equal(carried.done, true);
  assert.throws(() => mergeStampPages([]), RangeError);
});
