// Shared by the adapter tests: walk an adapter's change pages to the end, and call a
// sandbox's admin API.
import assert from "node:assert/strict";
import type {
  ObjectType,
  ProviderAdapter,
  RemoteRecord,
  Watermark,
} from "../../supabase/functions/_shared/providers/types.ts";

export async function walkChanges(
  adapter: ProviderAdapter,
  object: ObjectType,
  from: Watermark | null = null,
  pageSize?: number,
  countTotal?: boolean,
): Promise<{ seen: RemoteRecord[]; watermark: Watermark | null; totals: (number | null)[] }> {
  const seen: RemoteRecord[] = [];
  // Each page's ChangePage.total (null when it had none).
  const totals: (number | null)[] = [];
  let checkpoint: unknown = null;
  for (let i = 0; i < 10_000; i++) {
    const page = await adapter.changesSince(object, from, checkpoint, { pageSize, countTotal });
    assert.deepEqual(page.errors, []);
    seen.push(...page.records);
    totals.push(page.total ?? null);
    checkpoint = page.checkpoint;
    if (page.done) return { seen, watermark: page.watermark, totals };
  }
  throw new Error("walk did not finish");
}

export async function admin(url: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  assert.ok(res.ok, `${path}: ${res.status} ${text}`);
  return JSON.parse(text || "null");
}
