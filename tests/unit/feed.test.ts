import assert from "node:assert/strict";
import { PageFeed } from "../../supabase/functions/_shared/sync/feed.ts";
import type { ChangePage, RemoteRecord } from "../../supabase/functions/_shared/providers/types.ts";

/** Pages of `size` records numbered from the checkpoint; `total` records in all. */
function source(total: number, size: number, opts: { failAt?: number; delayMs?: number } = {}) {
  const calls: number[] = [];
  const fetchPage = async (cp: unknown): Promise<ChangePage> => {
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
    return {
      records,
      errors: [],
      checkpoint: to,
      watermark: n ? { modifiedAt: new Date(to * 1000).toISOString(), remoteId: String(to) } : null,
      done: to >= total,
    };
  };
  return { fetchPage, calls };
}

const ids = (p: ChangePage) => p.records.map((r) => Number(r.remoteId));

Deno.test("pages that queue up while a batch is written go out merged, in order", async () => {
  const { fetchPage } = source(1_000, 100);
  const feed = new PageFeed(fetchPage, null, {
    batchRecords: 300,
    maxAhead: 300,
    mayFetch: () => true,
  });
  const batches: ChangePage[] = [];
  for (let b = await feed.next(); b; b = await feed.next()) {
    batches.push(b);
    await new Promise((r) => setTimeout(r, 20)); // a slow writer
  }
  const all = batches.flatMap(ids);
  assert.deepEqual(all, Array.from({ length: 1_000 }, (_, i) => i), "every record once, in order");
  assert.ok(batches.every((b) => b.records.length <= 300), "no batch over the limit");
  assert.ok(batches.some((b) => b.records.length > 100), "queued pages were merged");
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
  });
  const first = await feed.next();
  await new Promise((r) => setTimeout(r, 30));
  assert.ok(first);
  // Taken: the first page(s); queued: at most 200 more, plus nothing in flight beyond that.
  assert.ok(calls.length * 100 <= first.records.length + 200, `fetched ${calls.length} pages`);
  feed.stop();
});

Deno.test("a fetch error surfaces after the pages before it; mayFetch stops the walk", async () => {
  const failing = source(1_000, 100, { failAt: 300 });
  const feed = new PageFeed(failing.fetchPage, null, {
    batchRecords: 1_000,
    maxAhead: 1_000,
    mayFetch: () => true,
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
  });
  const pages: ChangePage[] = [];
  for (let b = await feed2.next(); b; b = await feed2.next()) pages.push(b);
  assert.equal(pages.length, 2, "the first fetch plus the one mayFetch allowed");
  assert.equal(pages[1].done, false, "the walk is left unfinished, to continue next run");
});
