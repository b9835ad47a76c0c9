// The Salesforce adapter against the Salesforce sandbox through jsforce: Contact and Lead
// walked by keyset SOQL, bulk-updated identical SystemModstamps, deletions via queryAll,
// token refresh on an expired session, revoked credentials reported as such, and merge losers
// naming their survivor.
import assert from "node:assert/strict";
import { admin, walkChanges } from "./_support.ts";
import { startSalesforce } from "../../shared/emulators/salesforce/mod.ts";
import { createSalesforceAdapter } from "../../supabase/functions/_shared/providers/salesforce.ts";

Deno.test({
  name:
    "salesforce adapter: contacts and leads, identical SystemModstamps, deletes, refresh, revoke",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const sf = await startSalesforce({ port: 0, seed: 5, records: 450 });
    try {
      let calls = 0;
      const tokens: string[] = [];
      const adapter = createSalesforceAdapter({
        baseUrl: sf.url,
        credentials: {
          accessToken: sf.credentials.SALESFORCE_ACCESS_TOKEN,
          refreshToken: sf.credentials.SALESFORCE_REFRESH_TOKEN,
          clientId: sf.credentials.SALESFORCE_CLIENT_ID,
          clientSecret: sf.credentials.SALESFORCE_CLIENT_SECRET,
          instanceUrl: sf.url,
          loginUrl: sf.url,
        },
        beforeRequest: () => Promise.resolve(),
        onTokens: (t) => {
          tokens.push(t.accessToken);
          return Promise.resolve();
        },
        countCall: (n = 1) => {
          calls += n;
        },
        log: () => {},
      }, {
        Contact: ["FirstName", "LastName", "Email", "Phone"],
        Lead: ["FirstName", "LastName", "Email", "Company"],
      });

      const { seen, watermark } = await walkChanges(adapter, "contacts", null, 200);
      const contacts = await admin(sf.url, "GET", "/__admin/records/Contact");
      const leads = await admin(sf.url, "GET", "/__admin/records/Lead");
      assert.equal(seen.length, contacts.length + leads.length);
      assert.equal(new Set(seen.map((r) => r.remoteId)).size, seen.length);
      assert.deepEqual(new Set(seen.map((r) => r.remoteType)), new Set(["Contact", "Lead"]));
      assert.ok(watermark);

      // 300 contacts bulk-updated in one second, one deleted, then a delta with small pages.
      const t = new Date(Date.now() + 120_000).toISOString().replace(/\.\d+Z$/, ".000Z");
      const bulkIds: string[] =
        (await admin(sf.url, "POST", "/__admin/records/Contact/set-modified", {
          count: 300,
          pick: "random",
          modifiedAt: t,
        })).ids;
      const victim = contacts.find((c: { Id: string }) => !bulkIds.includes(c.Id)).Id;
      await admin(sf.url, "DELETE", `/__admin/records/Contact/${victim}`);
      const delta = await walkChanges(adapter, "contacts", watermark, 50);
      const bulk = delta.seen.filter((r) => r.modifiedAt === t && r.remoteType === "Contact");
      assert.deepEqual(new Set(bulk.map((r) => r.remoteId)), new Set(bulkIds));
      assert.equal(
        new Set(delta.seen.map((r) => r.remoteId)).size,
        delta.seen.length,
        "no duplicates",
      );
      assert.ok(
        delta.seen.some((r) => r.remoteId === victim && r.deleted),
        "the delete arrives via queryAll",
      );

      // An expired session is refreshed once and the new token handed back for storage.
      const live = contacts.find((c: { Id: string }) => c.Id !== victim).Id;
      await admin(sf.url, "POST", "/__admin/tokens/expire");
      await new Promise((r) => setTimeout(r, 5)); // expiry is "before now", in ms
      const again = await adapter.readByIds("contacts", [live, "003000000000000AAA"]);
      assert.equal(again.records.length, 1);
      assert.deepEqual(again.errors, [
        { remoteId: "003000000000000AAA", reason: "not found in Salesforce", missing: true },
      ], "an id the org does not have is reported missing");
      assert.equal(tokens.length, 1);

      // A read by id queries only the types its ids can be of (key prefix 003 Contact, 00Q Lead):
      // one SOQL call for Contacts only, two for a mix.
      const lead = leads[0].Id as string;
      let before = calls;
      const onlyContacts = await adapter.readByIds("contacts", [live]);
      assert.equal(onlyContacts.records.length, 1);
      assert.equal(calls - before, 1, "Contact ids: the Lead query is not sent");
      before = calls;
      const mixed = await adapter.readByIds("contacts", [live, lead]);
      assert.deepEqual(
        new Set(mixed.records.map((r) => r.remoteType)),
        new Set(["Contact", "Lead"]),
      );
      assert.equal(calls - before, 2);

      await admin(sf.url, "POST", "/__admin/tokens/revoke", { kind: "all" });
      await assert.rejects(
        adapter.readByIds("contacts", [live]),
        (e: Error & { action?: string }) => {
          assert.equal(e.action, "revoked");
          return true;
        },
      );
      assert.ok(calls > 0);
    } finally {
      await sf.close();
    }
  },
});

Deno.test({
  name: "salesforce adapter: a merge loser arrives deleted with mergedInto = MasterRecordId",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const sf = await startSalesforce({ port: 0, seed: 6, records: 60 });
    try {
      const adapter = createSalesforceAdapter({
        baseUrl: sf.url,
        credentials: { accessToken: sf.credentials.SALESFORCE_ACCESS_TOKEN, instanceUrl: sf.url },
        beforeRequest: () => Promise.resolve(),
        onTokens: () => Promise.resolve(),
        countCall: () => {},
        log: () => {},
      }, { Contact: ["LastName"], Lead: ["LastName"] });
      const { watermark } = await walkChanges(adapter, "contacts");
      const [survivor, loser, other] = (await admin(sf.url, "GET", "/__admin/records/Contact"))
        .map((c: { Id: string }) => c.Id);
      await admin(sf.url, "POST", "/__admin/records/Contact/merge", {
        primaryId: survivor,
        mergedId: loser,
      });
      await admin(sf.url, "DELETE", `/__admin/records/Contact/${other}`);
      const delta = (await walkChanges(adapter, "contacts", watermark)).seen;
      const merged = delta.find((r) => r.remoteId === loser);
      assert.ok(merged?.deleted);
      assert.equal(merged.mergedInto, survivor);
      const deleted = delta.find((r) => r.remoteId === other);
      assert.ok(deleted?.deleted);
      assert.equal(deleted.mergedInto, undefined, "a plain delete names no survivor");

      // A read by id returns recycle-bin records deleted, at their deletion's SystemModstamp (a
      // tombstone from absence would carry the engine's clock), and a merge loser with its
      // survivor; only an id the org never had (or purged) is missing.
      const stored = await admin(sf.url, "GET", `/__admin/records/Contact/${other}`);
      const byId = await adapter.readByIds("contacts", [loser, other, "003000000000000AAA"]);
      const got = new Map(byId.records.map((r) => [r.remoteId, r]));
      assert.equal(got.get(other)?.deleted, true);
      assert.equal(
        Date.parse(got.get(other)!.modifiedAt),
        Date.parse(stored.SystemModstamp.replace("+0000", "Z")),
      );
      assert.equal(got.get(loser)?.deleted, true);
      assert.equal(got.get(loser)?.mergedInto, survivor);
      assert.deepEqual(byId.errors.map((e) => e.remoteId), ["003000000000000AAA"]);
    } finally {
      await sf.close();
    }
  },
});

Deno.test({
  name: "salesforce adapter: a describe shared by another instance spares the describe call",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const sf = await startSalesforce({ port: 0, seed: 7, records: 30 });
    try {
      const shared = new Map<string, string[]>();
      const walk = async (select: string[]) => {
        const kinds: string[] = [];
        const adapter = createSalesforceAdapter({
          baseUrl: sf.url,
          credentials: { accessToken: sf.credentials.SALESFORCE_ACCESS_TOKEN, instanceUrl: sf.url },
          beforeRequest: (kind) => {
            kinds.push(kind);
            return Promise.resolve();
          },
          onTokens: () => Promise.resolve(),
          countCall: () => {},
          log: () => {},
          describes: {
            get: (key) => Promise.resolve(shared.get(key) ?? null),
            put: (key, fields) => {
              shared.set(key, fields);
              return Promise.resolve();
            },
          },
        }, { Contact: select, Lead: select });
        const { seen } = await walkChanges(adapter, "contacts", null, 200);
        return { seen, describes: kinds.filter((k) => k === "describe").length };
      };
      // A selection no other test uses, so this process's own cache is cold.
      const select = ["FirstName", "LastName", "Email", "NoSuchField__c"];
      const first = await walk(select);
      assert.equal(first.describes, 2, "Contact and Lead described once each");
      assert.equal(shared.size, 2, "and shared");
      assert.ok([...shared.values()].every((f) => !f.includes("NoSuchField__c")));
      // Another instance described a selection this process has not seen: its answer (keyed by
      // instance, object and selection) is used as it is, without a describe.
      const other = ["FirstName", "LastName", "Title"];
      for (const type of ["Contact", "Lead"]) {
        shared.set(`${sf.url}|${type}|${other.join(",")}`, ["FirstName"]);
      }
      const second = await walk(other);
      assert.equal(second.describes, 0, "no describe call");
      assert.equal(second.seen.length, first.seen.length);
      assert.ok(second.seen.every((r) => !("LastName" in r.properties)), "only what it said");
    } finally {
      await sf.close();
    }
  },
});
