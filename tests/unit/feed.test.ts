import assert from "node:assert/strict";
import { PageFeed } from "../../supabase/functions/_shared/sync/feed.ts";
import {
  mergePages,
  type PreparedPage,
  preparePage,
} from "../../supabase/functions/_shared/sync/runlog.ts";
import type { ChangePage, RemoteRecord } from "../../supabase/functions/_shared/providers/types.ts";

/** Pages of `size` records numbered from the checkpoint; `total` records in all. */
function source(total: number, size: number, opts: { failAt?: number; delayMs?: number } = {}) {
  const calls: number[] = [];
  const fetchPage = async (cp: unknown): Promise<PreparedPage> => {
    const from = (cp as number | null) ?? 0;
    calls.push(from);
    if (opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs));
    if (opts.failAt !== undefined && from >= opts.failAt) throw new Error(`boom at ${from}`);
    const n = Math.min(size, total - from);
    const records = Array.from(
      { length: n },
      (_, i) => ({ remoteId: String(from + i) }) as unknown as RemoteRecord,
    );
    const to = from + n;
    const page: ChangePage = {
      records,
      errors: [],
      checkpoint: to,
      watermark: n ? { modifiedAt: new Date(to * 1000).toISOString(), remoteId: String(to) } : null,
      done: to >= total,
    };
    return preparePage(
      page,
      records.map((r) => ({ record: { remote_id: r.remoteId }, warnings: [] })),
    );
  };
  return { fetchPage, calls };
}

const ids = (p: PreparedPage) =>
  (JSON.parse(p.json) as { remote_id: string }[]).map((r) => Number(r.remote_id));
const options = { merge: mergePages };

Deno.test("pages that queue up while a batch is written go out merged, in order", async () => {
  const { fetchPage } = source(1_000, 100);
  const feed = new PageFeed(fetchPage, null, {
    batchRecords: 300,
    maxAhead: 300,
    mayFetch: () => true,
    ...options,
  });
  const batches: PreparedPage[] = [];
  for (let b = await feed.next(); b; b = await feed.next()) {
    batches.push(b);
    await new Promise((r) => setTimeout(r, 20)); // a slow writer
  }
  const all = batches.flatMap(ids);
  assert.deepEqual(all, Array.from({ length: 1_000 }, (_, i) => i), "every record once, in order");
  assert.ok(batches.every((b) => b.count <= 300), "no batch over the limit");
  assert.ok(batches.some((b) => b.count > 100), "queued pages were merged");
  const last = batches[batches.length - 1];
  assert.equal(last.done, true);
  assert.equal(last.checkpoint, 1_000);
  for (const b of batches) {
    assert.equal(b.watermark?.remoteId, String(ids(b).at(-1)! + 1), "the newest page's watermark");
  }
});

Deno.test("no more than maxAhead records are fetched ahead of the reader", async () => {
  const { fetchPage, calls } = source(10_000, 100);
  const feed = new PageFeed(fetchPage, null, {
    batchRecords: 200,
    maxAhead: 200,
    mayFetch: () => true,
    ...options,
  });
  const first = await feed.next();
  await new Promise((r) => setTimeout(r, 30));
  assert.ok(first);
  // Taken: the first page(s); queued: at most 200 more, plus nothing in flight beyond that.
  assert.ok(calls.length * 100 <= first.count + 200, `fetched ${calls.length} pages`);
  feed.stop();
});

Deno.test("a fetch error surfaces after the pages before it; mayFetch stops the walk", async () => {
  const failing = source(1_000, 100, { failAt: 300 });
  const feed = new PageFeed(failing.fetchPage, null, {
    batchRecords: 1_000,
    maxAhead: 1_000,
    mayFetch: () => true,
    ...options,
  });
  const got: number[] = [];
  await assert.rejects(async () => {
    for (let b = await feed.next(); b; b = await feed.next()) got.push(...ids(b));
  }, /boom at 300/);
  assert.deepEqual(got, Array.from({ length: 300 }, (_, i) => i));

  const stopping = source(1_000, 100);
  let allowed = 2;
  const feed2 = new PageFeed(stopping.fetchPage, null, {
    batchRecords: 100,
    maxAhead: 1_000,
    mayFetch: () => --allowed > 0,
    ...options,
  });
  const pages: PreparedPage[] = [];
  for (let b = await feed2.next(); b; b = await feed2.next()) pages.push(b);
  assert.equal(pages.length, 2, "the first fetch plus the one mayFetch allowed");
  assert.equal(pages[1].done, false, "the walk is left unfinished, to continue next run");
});

Deno.test("mergePages joins the JSON arrays, skips empty pages, keeps the newest cursor", () => {
  const page = (ids: number[], cp: number, wm: boolean, done = false): PreparedPage =>
    preparePage(
      {
        records: ids.map((i) => ({ remoteId: String(i) }) as unknown as RemoteRecord),
        errors: ids.length ? [] : [{ remoteId: "bad", reason: "unparsable" }],
        checkpoint: cp,
        watermark: wm ? { modifiedAt: new Date(cp).toISOString(), remoteId: String(cp) } : null,
        done,
      },
      ids.map((i) => ({ record: { remote_id: String(i) }, warnings: [] })),
    );
  const m = mergePages([page([1, 2], 10, true), page([], 20, false), page([3], 30, false, true)]);
  assert.deepEqual(JSON.parse(m.json), [{ remote_id: "1" }, { remote_id: "2" }, {
    remote_id: "3",
  }]);
  assert.equal(m.count, 3);
  assert.equal(m.errors.length, 1, "errors of every page");
  assert.equal(m.checkpoint, 30);
  assert.equal(m.done, true);
  assert.equal(m.watermark?.remoteId, "10", "the newest page that had a watermark");
  assert.equal(mergePages([page([], 1, false), page([], 2, false)]).json, "[]");
});
