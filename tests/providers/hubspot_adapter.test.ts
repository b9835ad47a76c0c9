// The HubSpot adapter against the HubSpot sandbox through the official SDK: a full walk
// returns every record once, bulk-edited identical timestamps are handled, deletes and
// merges surface, and 429s are absorbed by the limiter and retries.
import assert from "node:assert/strict";
import { admin, walkChanges } from "./_support.ts";
import { startHubSpot } from "../../shared/emulators/hubspot/mod.ts";
import { realClock, SlidingWindowLimiter } from "../../supabase/functions/_shared/http/limiter.ts";
import { createHubSpotAdapter } from "../../supabase/functions/_shared/providers/hubspot.ts";

function setup(sandbox: Awaited<ReturnType<typeof startHubSpot>>) {
  let calls = 0;
  const limiter = new SlidingWindowLimiter(90, 10_000, realClock);
  const search = new SlidingWindowLimiter(4, 1000, realClock);
  const adapter = createHubSpotAdapter({
    baseUrl: sandbox.url,
    credentials: {
      accessToken: sandbox.credentials.HUBSPOT_ACCESS_TOKEN,
      refreshToken: sandbox.credentials.HUBSPOT_REFRESH_TOKEN,
      clientId: sandbox.credentials.HUBSPOT_CLIENT_ID,
      clientSecret: sandbox.credentials.HUBSPOT_CLIENT_SECRET,
    },
    beforeRequest: async (kind) => {
      await limiter.acquire();
      if (kind === "search") await search.acquire();
    },
    onTokens: () => Promise.resolve(),
    countCall: (n = 1) => {
      calls += n;
    },
    log: () => {},
  }, { contacts: ["email", "firstname", "lastname", "phone"] });
  return { adapter, calls: () => calls };
}

Deno.test({
  name: "hubspot adapter: full walk, identical timestamps, deletes, merges",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const sandbox = await startHubSpot({
      port: 0,
      seed: 11,
      records: 700,
      rateLimit: { searchPerSecond: 50 },
    });
    try {
      const { adapter, calls } = setup(sandbox);
      const all = (await walkChanges(adapter, "contacts")).seen;
      const ids = new Set(all.map((r) => r.remoteId));
      assert.equal(all.length, ids.size, "no record delivered twice");
      const store = await (await fetch(`${sandbox.url}/__admin/records/contacts`)).json();
      const live = (Array.isArray(store) ? store : store.records ?? []).filter((
        r: { archived?: boolean },
      ) => !r.archived);
      assert.equal(ids.size, live.length, "every live contact delivered");
      assert.ok(calls() <= Math.ceil(live.length / 199) + 2, `api calls ${calls()}`);

      // A bulk edit: 450 contacts share one modified timestamp (more than two search pages).
      const t = Date.now() + 60_000;
      await admin(sandbox.url, "POST", "/__admin/records/contacts/set-modified", {
        count: 450,
        pick: "random",
        modifiedAt: t,
      });
      const last = all.reduce((a, r) => (r.modifiedAt > a.modifiedAt ? r : a));
      const delta = (await walkChanges(adapter, "contacts", {
        modifiedAt: last.modifiedAt,
        remoteId: last.remoteId,
      })).seen;
      const bulk = delta.filter((r) => Date.parse(r.modifiedAt) === t);
      assert.equal(bulk.length, 450);
      assert.equal(new Set(bulk.map((r) => r.remoteId)).size, 450);

      const [a, b] = [...ids].slice(0, 2);
      await admin(sandbox.url, "POST", `/__admin/records/contacts/merge`, {
        primaryId: a,
        mergedId: b,
      });
      const merged = await adapter.readByIds("contacts", [a]);
      assert.deepEqual(merged.records[0].mergedIds.includes(b), true);
      // HubSpot redirects a merged-away id to the survivor (an alias, not an archive);
      // a deleted record is listed as archived.
      const c = [...ids][2];
      const del = await fetch(`${sandbox.url}/__admin/records/contacts/${c}`, { method: "DELETE" });
      assert.ok(del.ok);
      await del.body?.cancel();
      const gone = await adapter.deletedSince(
        "contacts",
        new Date(Date.now() - 3600_000).toISOString(),
      );
      assert.ok(gone.some((r) => r.remoteId === c && r.deleted), "the deleted contact is reported");
      assert.ok(!gone.some((r) => r.remoteId === a), "the survivor is not");
    } finally {
      await sandbox.close();
    }
  },
});

Deno.test({
  name:
    "hubspot adapter: 20 % 429s and 5 % 5xx are absorbed; a revoked token is reported as revoked",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const sandbox = await startHubSpot({
      port: 0,
      seed: 12,
      records: 300,
      rateLimit: { searchPerSecond: 50 },
    });
    try {
      const { adapter } = setup(sandbox);
      await fetch(`${sandbox.url}/__admin/faults`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ rate429: 0.2, error5xxRate: 0.05, seed: 3 }),
      }).then((r) => r.body?.cancel());
      const all = (await walkChanges(adapter, "contacts")).seen;
      assert.equal(new Set(all.map((r) => r.remoteId)).size, all.length);
      assert.ok(all.length >= 290);
      const counters = await (await fetch(`${sandbox.url}/__admin/counters`)).json();
      assert.ok(JSON.stringify(counters).includes("429"), "the sandbox really served 429s");

      await fetch(`${sandbox.url}/__admin/faults`, { method: "DELETE" }).then((r) =>
        r.body?.cancel()
      );
      await fetch(`${sandbox.url}/__admin/tokens/revoke`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ kind: "all" }),
      }).then((r) => r.body?.cancel());
      await assert.rejects(
        adapter.changesSince("contacts", null, null),
        (e: Error & { action?: string }) => {
          assert.equal(e.action, "revoked");
          return true;
        },
      );
    } finally {
      await sandbox.close();
    }
  },
});
