import assert from "node:assert/strict";
import {
  advance,
  compareIds,
  initialState,
  type Keyed,
  type KeysetState,
  nextQuery,
} from "../../supabase/functions/_shared/providers/keyset.ts";

/** A store that answers like HubSpot search: one sort key, ties in arbitrary (shuffled) order. */
function fakeSearch(records: Keyed[], seed = 7) {
  let x = seed;
  const rand = () => (x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  let calls = 0;
  return {
    get calls() {
      return calls;
    },
    run(s: KeysetState, limit: number): Keyed[] {
      calls++;
      const q = nextQuery(s);
      if (q.kind === "tie") {
        return records.filter((r) => r.modifiedMs === q.t && compareIds(r.id, q.afterId) > 0)
          .sort((a, b) => compareIds(a.id, b.id)).slice(0, limit);
      }
      const hits = records.filter((r) => q.op === "gte" ? r.modifiedMs >= q.t : r.modifiedMs > q.t)
        .map((r) => ({ r, k: rand() }))
        .sort((a, b) => a.r.modifiedMs - b.r.modifiedMs || a.k - b.k)
        .map((e) => e.r);
      // HubSpot caps paging depth (after >= 10,000 gives 400), not the match count; the
      // keyset walk only ever reads a query's first page, so it never pages deep.
      return hits.slice(0, limit);
    },
  };
}

function walk(records: Keyed[], limit: number, from = 0) {
  const api = fakeSearch(records);
  let s = initialState(from);
  const got: string[] = [];
  for (let guard = 0; guard < 100_000; guard++) {
    const page = api.run(s, limit);
    const r = advance(s, page, limit);
    got.push(...r.fresh.map((x) => x.id));
    s = r.state;
    if (r.done) return { got, calls: api.calls };
  }
  throw new Error("did not terminate");
}

Deno.test("distinct timestamps: every record once, calls within 1 % of the minimum", () => {
  const records = Array.from(
    { length: 20_000 },
    (_, i) => ({ id: String(i + 1), modifiedMs: 1000 + i }),
  );
  const { got, calls } = walk(records, 200);
  assert.equal(new Set(got).size, 20_000);
  assert.equal(got.length, 20_000, "no duplicates");
  assert.ok(calls <= Math.ceil(20_000 / 200) * 1.01 + 1, `calls ${calls}`);
});

Deno.test("5,000 records with one identical timestamp are all delivered once", () => {
  const records = [
    ...Array.from({ length: 300 }, (_, i) => ({ id: String(10_000 + i), modifiedMs: 500 + i })),
    ...Array.from({ length: 5000 }, (_, i) => ({ id: String(i + 1), modifiedMs: 2000 })),
    ...Array.from({ length: 300 }, (_, i) => ({ id: String(20_000 + i), modifiedMs: 3000 + i })),
  ];
  const { got } = walk(records, 200);
  assert.equal(got.length, 5600);
  assert.equal(new Set(got).size, 5600);
});

Deno.test("more than 10,000 matches are walked from first pages only", () => {
  const records = Array.from(
    { length: 25_000 },
    (_, i) => ({ id: String(i + 1), modifiedMs: Math.floor(i / 3) }),
  );
  const { got } = walk(records, 100);
  assert.equal(new Set(got).size, 25_000);
  assert.equal(got.length, 25_000);
});

Deno.test("groups of ties straddling page boundaries are neither lost nor duplicated", () => {
  const records: Keyed[] = [];
  let id = 1;
  for (let t = 0; t < 300; t++) {
    const n = (t * 37) % 11; // 0..10 records per timestamp
    for (let k = 0; k < n; k++) records.push({ id: String(id++), modifiedMs: t });
  }
  for (const limit of [3, 7, 10, 50]) {
    const { got } = walk(records, limit);
    assert.equal(got.length, records.length, `limit ${limit}`);
    assert.equal(new Set(got).size, records.length, `limit ${limit}`);
  }
});

Deno.test("numeric ids compare as numbers", () => {
  assert.ok(compareIds("9", "10") < 0);
  assert.ok(compareIds("0", "1") < 0);
  assert.ok(compareIds("a", "b") < 0);
});
