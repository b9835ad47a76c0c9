// The HubSpot adapter against the HubSpot sandbox through the official SDK: a full walk
// lists every record once (list endpoint, no search), its watermark lets the next delta find
// changes made to pages it had already read, bulk-edited identical timestamps are handled by
// the delta's search, deletes and merges surface, 429s are absorbed by the limiter and retries,
// and deal associations arrive with one v4 batch read per page and target type.
import assert from "node:assert/strict";
import { admin, walkChanges } from "./_support.ts";
import { initialState } from "../../supabase/functions/_shared/providers/keyset.ts";
import { startHubSpot } from "../../shared/emulators/hubspot/mod.ts";
import { realClock, SlidingWindowLimiter } from "../../supabase/functions/_shared/http/limiter.ts";
import { createHubSpotAdapter } from "../../supabase/functions/_shared/providers/hubspot.ts";
import type { RemoteRecord } from "../../supabase/functions/_shared/providers/types.ts";

const LIST = "GET /crm/v3/objects/:objectType";
const SEARCH = "POST /crm/v3/objects/:objectType/search";

function setup(
  sandbox: Awaited<ReturnType<typeof startHubSpot>>,
  fields: Record<string, string[]> = { contacts: ["email", "firstname", "lastname", "phone"] },
) {
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
  }, fields);
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
      const walked = await walkChanges(adapter, "contacts", null, undefined, true);
      const all = walked.seen;
      const ids = new Set(all.map((r) => r.remoteId));
      // Every seeded record is older than the walk: the watermark is the newest one listed.
      const newest = all.reduce((a, r) => (r.modifiedAt > a ? r.modifiedAt : a), "");
      assert.ok(Date.parse(newest) < Date.now() - 1000);
      assert.deepEqual(walked.watermark, { modifiedAt: newest, remoteId: "" });
      assert.equal(all.length, ids.size, "no record delivered twice");
      const store = await (await fetch(`${sandbox.url}/__admin/records/contacts`)).json();
      const live = (Array.isArray(store) ? store : store.records ?? []).filter((
        r: { archived?: boolean },
      ) => !r.archived);
      assert.equal(ids.size, live.length, "every live contact delivered");
      assert.equal(
        calls(),
        Math.ceil(live.length / 100) + 1,
        "one list call per 100 records, one search for the total",
      );
      const routes = (await admin(sandbox.url, "GET", "/__admin/counters")).routes;
      assert.equal(routes[LIST]?.total, calls() - 1, "the full walk listed");
      assert.equal(routes[SEARCH]?.total ?? 0, 1, "the full walk searched once, for its total");
      // The list has no total: the first page carries search's, the others none.
      assert.deepEqual(walked.totals, [live.length, ...walked.totals.slice(1).map(() => null)]);

      // A bulk edit: 450 contacts share one modified timestamp (more than two search pages).
      const t = Date.now() + 60_000;
      await admin(sandbox.url, "POST", "/__admin/records/contacts/set-modified", {
        count: 450,
        pick: "random",
        modifiedAt: t,
      });
      const last = all.reduce((a, r) => (r.modifiedAt > a.modifiedAt ? r : a));
      const deltaWalk = await walkChanges(adapter, "contacts", {
        modifiedAt: last.modifiedAt,
        remoteId: last.remoteId,
      });
      const delta = deltaWalk.seen;
      const bulk = delta.filter((r) => Date.parse(r.modifiedAt) === t);
      assert.equal(bulk.length, 450);
      // A search page's total comes free: what matches from its lower bound on (the overlap
      // before the watermark included).
      assert.ok(deltaWalk.totals[0]! >= delta.length, JSON.stringify(deltaWalk.totals));
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

Deno.test({
  name:
    "hubspot adapter: deal associations, inline on list pages (one call a page), batch-read by id",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const sandbox = await startHubSpot({
      port: 0,
      seed: 13,
      records: 300,
      rateLimit: { searchPerSecond: 50 },
    });
    try {
      const { adapter, calls } = setup(sandbox, {
        deals: ["dealname", "associations.companies", "associations.contacts"],
      });
      const store = (await admin(sandbox.url, "GET", "/__admin/records/deals")) as {
        id: string;
        archived: boolean;
        associations: { type: string; id: string }[];
      }[];
      const numeric = (a: string, b: string) => a.length - b.length || a.localeCompare(b);
      const expected = (id: string, type: string) =>
        store.find((d) => d.id === id)!.associations.filter((a) => a.type === type)
          .map((a) => a.id).sort(numeric);

      let checkpoint: unknown = null;
      let pages = 0;
      let nonEmpty = 0;
      const seen: RemoteRecord[] = [];
      for (;;) {
        const page = await adapter.changesSince("deals", null, checkpoint, { pageSize: 60 });
        assert.deepEqual(page.errors, []);
        pages++;
        if (page.records.length > 0) nonEmpty++;
        seen.push(...page.records);
        checkpoint = page.checkpoint;
        if (page.done) break;
      }
      assert.equal(seen.length, store.filter((d) => !d.archived).length);
      assert.ok(nonEmpty >= 5, `${nonEmpty} pages with records`);
      assert.equal(calls(), pages, "one list call a page: associations come inline");
      let none = 0;
      for (const r of seen) {
        assert.ok("dealname" in r.properties);
        assert.deepEqual(r.properties["associations.companies"], expected(r.remoteId, "companies"));
        assert.deepEqual(r.properties["associations.contacts"], expected(r.remoteId, "contacts"));
        if ((r.properties["associations.companies"] as string[]).length === 0) none++;
      }
      assert.ok(none > 0, "deals without a company get an empty list");

      // A second, lower-numbered company on one deal: ids come back in numeric order.
      const companies = (await admin(sandbox.url, "GET", "/__admin/records/companies")) as {
        id: string;
      }[];
      const other = companies.map((c) => c.id).sort(numeric)[0];
      const deal = seen.find((r) => {
        const now = expected(r.remoteId, "companies");
        return now.length === 1 && now[0] !== other;
      })!;
      await admin(sandbox.url, "PUT", "/__admin/associations", {
        fromType: "deals",
        fromId: deal.remoteId,
        toType: "companies",
        toId: other,
      });
      const before = calls();
      const read = await adapter.readByIds("deals", [deal.remoteId, seen[1].remoteId]);
      assert.deepEqual(read.errors, []);
      assert.equal(calls() - before, 3, "one batch read plus one per association type");
      const plainBefore = calls();
      const plain = await adapter.readByIds("deals", [deal.remoteId], { relations: false });
      assert.equal(calls() - plainBefore, 1, "relations: false reads the records only");
      assert.ok(
        !Object.keys(plain.records[0].properties).some((k) => k.startsWith("associations.")),
        "and the records leave the association properties out (never empty lists)",
      );
      const unknown = await adapter.readByIds("deals", ["987654321"]);
      assert.deepEqual(unknown.errors, [
        { remoteId: "987654321", reason: "not found in HubSpot", missing: true },
      ], "an id HubSpot does not have is reported missing");
      const got = read.records.find((r) => r.remoteId === deal.remoteId)!;
      assert.deepEqual(got.properties["associations.companies"], [
        other,
        expected(deal.remoteId, "companies")[0],
      ]);
    } finally {
      await sandbox.close();
    }
  },
});

Deno.test({
  name:
    "hubspot adapter: a list walk's watermark is at most its start, so the next delta finds changes to pages it had read",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const sandbox = await startHubSpot({
      port: 0,
      seed: 14,
      records: 400,
      rateLimit: { searchPerSecond: 50 },
    });
    try {
      const { adapter } = setup(sandbox);
      const before = Date.now();
      const first = await adapter.changesSince("contacts", null, null, { pageSize: 50 });
      assert.equal(first.records.length, 50);
      assert.equal(first.done, false);
      assert.equal(first.watermark, null, "a page of a list walk moves no watermark");
      const cp = first.checkpoint as { walk: string; after: string; startedAt: string };
      assert.equal(cp.walk, "list");
      // HubSpot's Date header: whole seconds, at or before the first page was answered.
      const started = Date.parse(cp.startedAt);
      assert.ok(started >= Math.floor(before / 1000) * 1000 - 1000 && started <= Date.now());

      // Edited after its page was read: the walk cannot see it again.
      await new Promise((r) => setTimeout(r, 20));
      const edited = first.records[3].remoteId;
      await admin(sandbox.url, "PATCH", `/__admin/records/contacts/${edited}`, {
        properties: { firstname: "Edited mid-walk" },
      });
      // Edited later, on a page not read yet, two minutes ahead of the clock (as another
      // integration's write may be): the walk lists it; a watermark at the newest record seen
      // would start the next delta past the page-1 edit, even with its overlap.
      const store = (await admin(sandbox.url, "GET", "/__admin/records/contacts")) as {
        id: string;
        archived?: boolean;
      }[];
      const ahead = store.filter((r) => !r.archived).map((r) => r.id)
        .sort((a, b) => a.length - b.length || a.localeCompare(b))[300];
      await new Promise((r) => setTimeout(r, 20));
      await admin(sandbox.url, "PATCH", `/__admin/records/contacts/${ahead}`, {
        properties: { firstname: "Edited ahead" },
      });
      await admin(sandbox.url, "POST", "/__admin/records/contacts/set-modified", {
        ids: [ahead],
        modifiedAt: Date.now() + 120_000,
      });

      const seen = [...first.records];
      let checkpoint: unknown = cp;
      let last = first;
      while (!last.done) {
        last = await adapter.changesSince("contacts", null, checkpoint, { pageSize: 50 });
        if (!last.done) assert.equal(last.watermark, null);
        seen.push(...last.records);
        checkpoint = last.checkpoint;
      }
      assert.equal(new Set(seen.map((r) => r.remoteId)).size, seen.length, "no duplicates");
      assert.equal(last.checkpoint, null);
      assert.deepEqual(last.watermark, { modifiedAt: cp.startedAt, remoteId: "" });
      const aheadRead = seen.find((r) => r.remoteId === ahead)!;
      assert.equal(aheadRead.properties.firstname, "Edited ahead");
      assert.ok(
        aheadRead.modifiedAt > cp.startedAt,
        "the walk listed a record newer than its start",
      );

      // The delta from the walk's watermark reads the edit.
      const delta = (await walkChanges(adapter, "contacts", last.watermark)).seen;
      const got = delta.find((r) => r.remoteId === edited);
      assert.equal(got?.properties.firstname, "Edited mid-walk");

      // A search checkpoint saved before full walks listed continues as a search.
      const routes0 = (await admin(sandbox.url, "GET", "/__admin/counters")).routes;
      const resumed = await adapter.changesSince("contacts", null, initialState(0));
      assert.ok(resumed.records.length > 0);
      const routes1 = (await admin(sandbox.url, "GET", "/__admin/counters")).routes;
      assert.equal(routes1[SEARCH].total - (routes0[SEARCH]?.total ?? 0), 1);
      assert.equal(routes1[LIST].total, routes0[LIST].total);
    } finally {
      await sandbox.close();
    }
  },
});
