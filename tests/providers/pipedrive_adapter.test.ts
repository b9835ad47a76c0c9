// The Pipedrive adapter against the Pipedrive sandbox through the official SDK (v2 + v1):
// cursor walk with updated_since, deltas, owners, 429s with their status kept, revoked token;
// and how single items become records (merge target, deactivated users).
import assert from "node:assert/strict";
import { admin, walkChanges } from "./_support.ts";
import { startPipedrive } from "../../shared/emulators/pipedrive/mod.ts";
import {
  createPipedriveAdapter,
  toRemoteRecord,
} from "../../supabase/functions/_shared/providers/pipedrive.ts";

Deno.test({
  name: "pipedrive adapter: walk, delta, owners, 429s, revoked token",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const pd = await startPipedrive({ port: 0, seed: 9, records: 350 });
    try {
      let calls = 0;
      const adapter = createPipedriveAdapter({
        baseUrl: pd.url,
        credentials: { apiToken: pd.credentials.PIPEDRIVE_API_TOKEN },
        beforeRequest: () => Promise.resolve(),
        onTokens: () => Promise.resolve(),
        countCall: (n = 1) => {
          calls += n;
        },
        log: () => {},
      });
      const { seen, watermark } = await walkChanges(adapter, "contacts", null, 100);
      const store = (await admin(pd.url, "GET", "/__admin/records/person")) as {
        id: number;
        is_deleted?: boolean;
      }[];
      const live = store.filter((p) => !p.is_deleted);
      assert.equal(new Set(seen.map((r) => r.remoteId)).size, live.length);
      assert.equal(seen.length, live.length);
      assert.ok(calls <= Math.ceil(live.length / 100) + 1, `calls ${calls}`);
      assert.ok(watermark);

      const target = live[5].id;
      await new Promise((r) => setTimeout(r, 1100)); // update_time has second precision
      await admin(pd.url, "PATCH", `/__admin/records/person/${target}`, { name: "Renamed Person" });
      const delta = await walkChanges(adapter, "contacts", watermark, 100);
      assert.ok(
        delta.seen.some((r) =>
          r.remoteId === String(target) && r.properties.name === "Renamed Person"
        ),
      );
      assert.ok(delta.seen.length < 10, `delta re-read ${delta.seen.length} records`);

      const owners = await adapter.changesSince("owners", null, null);
      assert.ok(owners.records.length > 0);
      assert.ok(owners.records.some((r) => r.properties.active_flag === false));
      assert.ok(owners.records.every((r) => !r.deleted), "a deactivated user is not deleted");

      await admin(pd.url, "PUT", "/__admin/faults", { rate429: 0.3, seed: 4 });
      const again = await walkChanges(adapter, "contacts", null, 100);
      assert.equal(again.seen.length, live.length, "429s are absorbed");
      await admin(pd.url, "DELETE", "/__admin/faults");

      await admin(pd.url, "POST", "/__admin/tokens/revoke", { kind: "all" });
      await assert.rejects(
        adapter.changesSince("contacts", null, null),
        (e: Error & { action?: string }) => {
          assert.equal(e.action, "revoked");
          return true;
        },
      );
    } finally {
      await pd.close();
    }
  },
});

Deno.test("pipedrive records: merged_to_id names the survivor; inactive users stay owners", () => {
  const loser = toRemoteRecord("contacts", {
    id: 12,
    update_time: "2026-03-02T10:00:00Z",
    is_deleted: true,
    merged_to_id: 7,
  });
  assert.ok(!("reason" in loser));
  assert.equal(loser.deleted, true);
  assert.equal(loser.mergedInto, "7");
  const plain = toRemoteRecord("deals", { id: 13, update_time: "2026-03-02T10:00:00Z" });
  assert.ok(!("reason" in plain) && plain.mergedInto === undefined && !plain.deleted);
  const user = toRemoteRecord("owners", {
    id: 4,
    name: "Grace Hopper",
    active_flag: false,
    is_deleted: false,
    modified: "2026-03-01 09:00:00",
  });
  assert.ok(!("reason" in user));
  assert.equal(user.deleted, false);
  assert.equal(user.modifiedAt, "2026-03-01T09:00:00.000Z");
  const v1Deleted = toRemoteRecord("contacts", { id: 14, active_flag: false });
  assert.ok(!("reason" in v1Deleted) && v1Deleted.deleted);
});
