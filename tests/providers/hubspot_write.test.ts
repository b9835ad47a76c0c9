// The HubSpot writer against the HubSpot sandbox through the official SDK: creates are upserts
// by crm_sync_id (idempotent, ⌈N/100⌉ calls), a contact whose email exists resolves to that
// contact, ops on one record are merged, associations are set and replaced with the v4 batch
// endpoints, HubSpot's rejections come back per item with its message, whole-call failures
// are thrown, and ensureExternalId creates the unique-value property or says why it cannot.
import assert from "node:assert/strict";
import { admin } from "./_support.ts";
import { startHubSpot } from "../../shared/emulators/hubspot/mod.ts";
import { createHubSpotAdapter } from "../../supabase/functions/_shared/providers/hubspot.ts";
import {
  ProviderError,
  type ProviderWriter,
  type WriteOp,
  type WriteResult,
} from "../../supabase/functions/_shared/providers/types.ts";

type Sandbox = Awaited<ReturnType<typeof startHubSpot>>;

const UPSERT = "POST /crm/v3/objects/:objectType/batch/upsert";
const UPDATE = "POST /crm/v3/objects/:objectType/batch/update";

function writerFor(sandbox: Sandbox, callTimeoutMs?: number) {
  const kinds: string[] = [];
  const adapter = createHubSpotAdapter({
    baseUrl: sandbox.url,
    callTimeoutMs,
    credentials: { accessToken: sandbox.credentials.HUBSPOT_ACCESS_TOKEN },
    beforeRequest: (kind) => {
      kinds.push(kind);
      return Promise.resolve();
    },
    onTokens: () => Promise.resolve(),
    countCall: () => {},
    log: () => {},
  }, {});
  const writer = adapter.writer as ProviderWriter;
  assert.ok(writer, "the HubSpot adapter has a writer");
  return { writer, kinds, reset: () => kinds.splice(0) };
}

async function start(records = 0) {
  const sandbox = await startHubSpot({
    port: 0,
    seed: 7,
    records,
    rateLimit: { tenSecondly: 10_000 },
  });
  const w = writerFor(sandbox);
  for (const t of ["contacts", "companies", "deals"]) {
    const r = await w.writer.ensureExternalId(t);
    assert.deepEqual(r, { ok: true, property: "crm_sync_id", created: true });
  }
  w.reset();
  return { sandbox, ...w };
}

interface AdminRecord {
  id: string;
  archived: boolean;
  properties: Record<string, string | null>;
  propertySources: Record<string, { source: string; sourceId: string }>;
  associations: Array<{ type: string; id: string }>;
}

const record = (s: Sandbox, object: string, id: string): Promise<AdminRecord> =>
  admin(s.url, "GET", `/__admin/records/${object}/${id}`);

async function live(s: Sandbox, object: string): Promise<AdminRecord[]> {
  const all: AdminRecord[] = await admin(s.url, "GET", `/__admin/records/${object}`);
  return all.filter((r) => !r.archived);
}

function ok(r: WriteResult | undefined): Extract<WriteResult, { ok: true }> {
  assert.ok(r?.ok, `expected ok, got ${JSON.stringify(r)}`);
  return r;
}

function byRef(results: WriteResult[]) {
  return new Map(results.map((r) => [r.ref, r]));
}

const create = (
  ref: string,
  externalId: string,
  properties: Record<string, unknown>,
  remoteType = "contacts",
): WriteOp => ({ kind: "create", ref, remoteType, externalId, properties });

const uuid = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;

async function routeCount(s: Sandbox, route: string): Promise<number> {
  const c = await admin(s.url, "GET", "/__admin/counters");
  return c.routes[route]?.total ?? 0;
}

Deno.test({
  name: "hubspot writer: creates, idempotent re-create, updates, deletes, stored values",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { sandbox, writer, kinds } = await start();
    try {
      const res = byRef(
        await writer.write("contacts", [
          create("a", uuid(1), { email: "Ann@Example.com", firstname: "Ann", lastname: "Lee" }),
          create("b", uuid(2), {
            email: "bob@example.com",
            firstname: "Bob",
            lastname: "Stone",
            phone: null,
          }),
        ]),
      );
      const a = ok(res.get("a")), b = ok(res.get("b"));
      assert.equal(a.created, true);
      assert.equal(b.created, true);
      assert.deepEqual(kinds, ["batch-upsert"], "two creates are one upsert call");
      const stored = await record(sandbox, "contacts", a.remoteId);
      assert.equal(stored.properties.email, "ann@example.com");
      assert.equal(stored.properties.firstname, "Ann");
      assert.equal(stored.properties.lastname, "Lee");
      assert.equal(stored.properties.crm_sync_id, uuid(1));
      assert.equal(a.remoteVersion, new Date(stored.properties.lastmodifieddate!).toISOString());
      // The engine's writes are the app's (INTEGRATION, sourceId = app id).
      assert.equal(stored.propertySources.firstname.source, "INTEGRATION");
      assert.equal(stored.propertySources.firstname.sourceId, sandbox.credentials.HUBSPOT_APP_ID);

      // The same external id again (a retried create): the record is updated, not duplicated.
      const again = ok(
        (await writer.write("contacts", [
          create("a2", uuid(1), { email: "ann@example.com", firstname: "Anne" }),
        ]))[0],
      );
      assert.equal(again.remoteId, a.remoteId);
      assert.equal(again.created, false);
      assert.equal((await live(sandbox, "contacts")).length, 2);
      assert.equal((await record(sandbox, "contacts", a.remoteId)).properties.firstname, "Anne");

      // Updates (a null clears) and deletes; deleting a missing record is ok.
      const res2 = byRef(
        await writer.write("contacts", [
          {
            kind: "update",
            ref: "u",
            remoteType: "contacts",
            remoteId: b.remoteId,
            properties: { firstname: "Robert", lastname: null, phone: "+15550100" },
          },
          { kind: "delete", ref: "d", remoteType: "contacts", remoteId: a.remoteId },
          { kind: "delete", ref: "d2", remoteType: "contacts", remoteId: "19999999" },
        ]),
      );
      const u = ok(res2.get("u"));
      assert.equal(u.remoteId, b.remoteId);
      assert.equal(u.created, false);
      const bob = await record(sandbox, "contacts", b.remoteId);
      assert.equal(bob.properties.firstname, "Robert");
      assert.equal(bob.properties.lastname, null);
      assert.equal(bob.properties.phone, "+15550100");
      assert.equal(u.remoteVersion, new Date(bob.properties.lastmodifieddate!).toISOString());
      assert.equal(ok(res2.get("d")).remoteId, a.remoteId);
      ok(res2.get("d2"));
      assert.equal((await record(sandbox, "contacts", a.remoteId)).archived, true);

      // An update of a record HubSpot no longer has: gone, with HubSpot's message.
      const gone = (await writer.write("contacts", [{
        kind: "update",
        ref: "g",
        remoteType: "contacts",
        remoteId: a.remoteId,
        properties: { firstname: "X" },
      }]))[0];
      assert.equal(gone.ok, false);
      assert.equal(!gone.ok && gone.action, "gone");
      assert.match(!gone.ok ? gone.message : "", /OBJECT_NOT_FOUND/);

      // An admin edit is the user's (CRM_UI): tests can tell it from the engine's echo.
      await admin(sandbox.url, "PATCH", `/__admin/records/contacts/${b.remoteId}`, {
        firstname: "Rob",
      });
      const edited = await record(sandbox, "contacts", b.remoteId);
      assert.equal(edited.propertySources.firstname.source, "CRM_UI");
      assert.equal(edited.propertySources.phone.source, "INTEGRATION");
    } finally {
      await sandbox.close();
    }
  },
});

Deno.test({
  name: "hubspot writer: a contact whose email exists resolves to it; merged ops",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { sandbox, writer, kinds, reset } = await start();
    try {
      const existing = await admin(sandbox.url, "POST", "/__admin/records/contacts", {
        email: "taken@example.com",
        firstname: "Old",
      });
      const res = byRef(
        await writer.write("contacts", [
          create("new1", uuid(10), { email: "fresh@example.com", firstname: "Fresh" }),
          create("dup", uuid(11), { email: "TAKEN@example.com", firstname: "New" }),
          create("new2", uuid(12), { email: "fresh2@example.com" }),
        ]),
      );
      const dup = ok(res.get("dup"));
      assert.equal(dup.remoteId, existing.id, "409 resolves to the existing contact");
      assert.equal(dup.created, false);
      assert.equal(ok(res.get("new1")).created, true);
      assert.equal(ok(res.get("new2")).created, true);
      const stored = await record(sandbox, "contacts", existing.id);
      assert.equal(stored.properties.firstname, "New");
      assert.equal(stored.properties.crm_sync_id, uuid(11));
      assert.equal((await live(sandbox, "contacts")).length, 3, "no duplicate contact");
      // The 409, the email read, the upsert of the rest, the update of the existing contact.
      assert.deepEqual(kinds, ["batch-upsert", "batch-read", "batch-upsert", "batch-update"]);

      // Now the contact carries our external id: a re-create is a plain upsert.
      reset();
      const again = ok(
        (await writer.write("contacts", [
          create("dup2", uuid(11), { email: "taken@example.com", lastname: "Z" }),
        ]))[0],
      );
      assert.equal(again.remoteId, existing.id);
      assert.deepEqual(kinds, ["batch-upsert"]);

      // Ops on one record in one batch are merged (later properties win), every ref answered.
      reset();
      const merged = byRef(
        await writer.write("contacts", [
          create("m1", uuid(20), { email: "m@example.com", firstname: "One", lastname: "L" }),
          create("m2", uuid(20), { firstname: "Two" }),
          create("m3", uuid(21), { email: "M@example.com", jobtitle: "CTO" }),
          {
            kind: "update",
            ref: "u1",
            remoteType: "contacts",
            remoteId: existing.id,
            properties: { city: "Oslo" },
          },
          {
            kind: "update",
            ref: "u2",
            remoteType: "contacts",
            remoteId: existing.id,
            properties: { city: "Bergen", country: "Norway" },
          },
        ]),
      );
      assert.deepEqual(kinds, ["batch-upsert", "batch-update"]);
      const m1 = ok(merged.get("m1"));
      assert.equal(ok(merged.get("m2")).remoteId, m1.remoteId);
      assert.equal(ok(merged.get("m3")).remoteId, m1.remoteId);
      const m = await record(sandbox, "contacts", m1.remoteId);
      assert.deepEqual(
        [m.properties.firstname, m.properties.lastname, m.properties.jobtitle],
        ["Two", "L", "CTO"],
      );
      assert.equal(m.properties.crm_sync_id, uuid(20));
      assert.equal(ok(merged.get("u2")).remoteId, existing.id);
      const e = await record(sandbox, "contacts", existing.id);
      assert.deepEqual([e.properties.city, e.properties.country], ["Bergen", "Norway"]);
    } finally {
      await sandbox.close();
    }
  },
});

Deno.test({
  name: "hubspot writer: associations set after the objects exist, then replaced",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { sandbox, writer, kinds, reset } = await start();
    try {
      const companies = await writer.write(
        "companies",
        [1, 2, 3].map((i) => create(`c${i}`, uuid(100 + i), { name: `Co ${i}` }, "companies")),
      );
      const [c1, c2, c3] = companies.map((r) => ok(r).remoteId);
      assert.deepEqual(kinds, ["batch-upsert"], "no association call without associations");
      reset();
      const deal = ok(
        (await writer.write("deals", [
          create("d", uuid(200), {
            dealname: "Big",
            amount: "1200.50",
            "associations.companies": [c1, c2],
          }, "deals"),
        ]))[0],
      );
      // A new record has no associations to read: upsert, then one associate call.
      assert.deepEqual(kinds, ["batch-upsert", "associations-create"]);
      let stored = await record(sandbox, "deals", deal.remoteId);
      assert.equal(stored.properties.amount, "1200.5");
      assert.deepEqual(stored.associations.map((a) => a.id).sort(), [c1, c2].sort());

      reset();
      ok(
        (await writer.write("deals", [{
          kind: "update",
          ref: "d2",
          remoteType: "deals",
          remoteId: deal.remoteId,
          properties: { "associations.companies": [c2, c3] },
        }]))[0],
      );
      assert.deepEqual(kinds, [
        "batch-update",
        "associations",
        "associations-create",
        "associations-archive",
      ]);
      stored = await record(sandbox, "deals", deal.remoteId);
      assert.deepEqual(stored.associations.map((a) => a.id).sort(), [c2, c3].sort());

      // Unchanged associations: read, nothing written.
      reset();
      ok(
        (await writer.write("deals", [{
          kind: "update",
          ref: "d3",
          remoteType: "deals",
          remoteId: deal.remoteId,
          properties: { dealname: "Bigger", "associations.companies": [c3, c2] },
        }]))[0],
      );
      assert.deepEqual(kinds, ["batch-update", "associations"]);

      // An association to a record HubSpot does not have: fix_data with its message.
      const bad = (await writer.write("deals", [{
        kind: "update",
        ref: "d4",
        remoteType: "deals",
        remoteId: deal.remoteId,
        properties: { "associations.companies": [c2, "29999999"] },
      }]))[0];
      assert.equal(bad.ok, false);
      assert.equal(!bad.ok && bad.action, "fix_data");
      assert.match(!bad.ok ? bad.message : "", /29999999/);
    } finally {
      await sandbox.close();
    }
  },
});

// Found by the chaos harness (issue 15, tests/chaos/regressions/hubspot-app-company-not-primary):
// associatedcompanyid is HubSpot's primary company; an unlabeled association leaves it empty,
// so the next pull read no company and the app's edit was lost on both sides.
Deno.test({
  name: "hubspot writer: associatedcompanyid is written as the primary company association",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { sandbox, writer, kinds, reset } = await start();
    try {
      const companies = await writer.write(
        "companies",
        [1, 2, 3].map((i) => create(`c${i}`, uuid(300 + i), { name: `Co ${i}` }, "companies")),
      );
      const [c1, c2, c3] = companies.map((r) => ok(r).remoteId);
      const contact = ok(
        (await writer.write("contacts", [
          create("p", uuid(400), { firstname: "Pia", associatedcompanyid: c1 }),
        ]))[0],
      );
      let stored = await record(sandbox, "contacts", contact.remoteId);
      assert.equal(stored.properties.associatedcompanyid, c1, "a new contact's primary company");

      const update = (ref: string, properties: Record<string, unknown>) =>
        writer.write("contacts", [{
          kind: "update",
          ref,
          remoteType: "contacts",
          remoteId: contact.remoteId,
          properties,
        }]);
      // Another primary: it replaces the old one, which the writer then drops.
      reset();
      ok((await update("u1", { associatedcompanyid: c2 }))[0]);
      assert.deepEqual(kinds, [
        "batch-update",
        "associations",
        "associations-create",
        "associations-archive",
      ]);
      stored = await record(sandbox, "contacts", contact.remoteId);
      assert.equal(stored.properties.associatedcompanyid, c2);
      assert.deepEqual(stored.associations.filter((a) => a.type === "companies").map((a) => a.id), [
        c2,
      ]);

      // A company already associated but not primary becomes the primary one.
      ok((await update("u2", { "associations.companies": [c2, c3] }))[0]);
      stored = await record(sandbox, "contacts", contact.remoteId);
      assert.equal(stored.properties.associatedcompanyid, c2);
      reset();
      ok((await update("u3", { associatedcompanyid: c3 }))[0]);
      stored = await record(sandbox, "contacts", contact.remoteId);
      assert.equal(stored.properties.associatedcompanyid, c3, "the existing pair is now primary");
      assert.deepEqual(stored.associations.filter((a) => a.type === "companies").map((a) => a.id), [
        c3,
      ]);

      // The primary already right: read only.
      reset();
      ok((await update("u4", { associatedcompanyid: c3 }))[0]);
      assert.deepEqual(kinds, ["batch-update", "associations"]);

      // Cleared: the association goes and with it associatedcompanyid.
      ok((await update("u5", { associatedcompanyid: null }))[0]);
      stored = await record(sandbox, "contacts", contact.remoteId);
      assert.equal(stored.properties.associatedcompanyid ?? null, null);
    } finally {
      await sandbox.close();
    }
  },
});

Deno.test({
  name: "hubspot writer: a rejected value fails its op only, with HubSpot's message",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { sandbox, writer, kinds, reset } = await start();
    try {
      const ops = Array.from(
        { length: 40 },
        (_, i) => create(`r${i}`, uuid(300 + i), { email: `p${i}@example.com` }),
      );
      ops[17] = create("r17", uuid(317), { email: "not an email" });
      ops[30] = create("r30", uuid(330), { email: "q@example.com", lifecyclestage: "royalty" });
      const res = byRef(await writer.write("contacts", ops));
      for (const op of ops) {
        if (op.ref === "r17" || op.ref === "r30") continue;
        assert.equal(ok(res.get(op.ref)).created, true);
      }
      const r17 = res.get("r17")!, r30 = res.get("r30")!;
      assert.ok(!r17.ok && r17.action === "fix_data", JSON.stringify(r17));
      assert.match(!r17.ok ? r17.message : "", /VALIDATION_ERROR.*INVALID_EMAIL/);
      assert.ok(!r30.ok && r30.action === "fix_data");
      assert.match(!r30.ok ? r30.message : "", /royalty was not one of the allowed options/);
      assert.equal((await live(sandbox, "contacts")).length, 38);
      // Halving isolates the two: at most 1 + 2·k·⌈log2 n⌉ calls (25 here), not one per op.
      const sent = kinds.filter((k) => k === "batch-upsert").length;
      assert.ok(sent <= 1 + 2 * 2 * Math.ceil(Math.log2(40)), `${sent} upsert calls`);

      // A cause common to every input (a property HubSpot does not have): 3 calls, all fail.
      reset();
      const all = await writer.write(
        "contacts",
        Array.from({ length: 100 }, (_, i) => create(`z${i}`, uuid(400 + i), { shoe_size: "9" })),
      );
      assert.deepEqual(kinds, ["batch-upsert", "batch-upsert", "batch-upsert"]);
      for (const r of all) {
        assert.ok(!r.ok && r.action === "fix_data");
        assert.match(!r.ok ? r.message : "", /PROPERTY_DOESNT_EXIST/);
      }
    } finally {
      await sandbox.close();
    }
  },
});

Deno.test({
  name: "hubspot writer: 250 creates are 3 calls; 429s are retried; 5xx and 429 storms throw",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { sandbox, writer } = await start();
    try {
      const ops = Array.from(
        { length: 250 },
        (_, i) => create(`n${i}`, uuid(1000 + i), { email: `n${i}@example.com`, lastname: "N" }),
      );
      await admin(sandbox.url, "DELETE", "/__admin/counters");
      const res = await writer.write("contacts", ops);
      assert.equal(res.length, 250);
      assert.ok(res.every((r) => r.ok && r.created));
      assert.equal(await routeCount(sandbox, UPSERT), 3, "⌈250/100⌉ upsert calls");

      // 429s on a third of the calls: retried by the call helper, everything lands once.
      await admin(sandbox.url, "PUT", "/__admin/faults", {
        rate429: 0.3,
        routeFilter: "batch/update",
        seed: 3,
      });
      const upd = await writer.write(
        "contacts",
        res.slice(0, 200).map((r, i) => ({
          kind: "update" as const,
          ref: `u${i}`,
          remoteType: "contacts",
          remoteId: ok(r).remoteId,
          properties: { lastname: "Updated" },
        })),
      );
      assert.ok(upd.every((r) => r.ok));
      const injected = (await admin(sandbox.url, "GET", "/__admin/counters")).faultsInjected;
      assert.ok(injected["429"] > 0, "429s were injected");
      const all = await live(sandbox, "contacts");
      assert.equal(all.filter((r) => r.properties.lastname === "Updated").length, 200);

      // Every attempt fails: the whole call is thrown for the engine to retry.
      for (const fault of [{ error5xxRate: 1 }, { rate429: 1 }]) {
        await admin(sandbox.url, "PUT", "/__admin/faults", { ...fault, routeFilter: "batch/" });
        const err = await writer.write("contacts", [create("x", uuid(9), { firstname: "X" })], {
          deadline: Date.now() + 1500,
        }).then(() => null, (e) => e);
        assert.ok(err instanceof ProviderError, String(err));
        assert.equal(err.action, "retry");
      }
      await admin(sandbox.url, "DELETE", "/__admin/faults");
      assert.equal((await live(sandbox, "contacts")).length, 250, "nothing written by failures");
      assert.ok(await routeCount(sandbox, UPDATE) >= 2);
    } finally {
      await sandbox.close();
    }
  },
});

Deno.test({
  name: "hubspot writer: ensureExternalId creates, finds, and reports a missing scope",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const sandbox = await startHubSpot({ port: 0, seed: 1, records: 0 });
    try {
      const { writer } = writerFor(sandbox);
      assert.deepEqual(await writer.ensureExternalId("contacts"), {
        ok: true,
        property: "crm_sync_id",
        created: true,
      });
      const prop = await (await fetch(`${sandbox.url}/crm/v3/properties/contacts/crm_sync_id`, {
        headers: { authorization: `Bearer ${sandbox.credentials.HUBSPOT_ACCESS_TOKEN}` },
      })).json();
      assert.equal(prop.hasUniqueValue, true);
      assert.equal(prop.type, "string");
      assert.equal(prop.fieldType, "text");
      assert.equal(prop.groupName, "contactinformation");
      // Another instance (another worker) finds it.
      assert.deepEqual(await writerFor(sandbox).writer.ensureExternalId("contacts"), {
        ok: true,
        property: "crm_sync_id",
        created: false,
      });
      assert.equal(await writer.externalIdProperty("contacts"), "crm_sync_id");

      await admin(sandbox.url, "PUT", "/__admin/scopes", {
        denied: ["crm.schemas.companies.write"],
      });
      const denied = await writer.ensureExternalId("companies");
      assert.equal(denied.ok, false);
      assert.match(!denied.ok ? denied.reason : "", /MISSING_SCOPES.*required scopes/);
      await admin(sandbox.url, "PUT", "/__admin/scopes", { denied: [] });
      assert.deepEqual(await writer.ensureExternalId("companies"), {
        ok: true,
        property: "crm_sync_id",
        created: true,
      });
    } finally {
      await sandbox.close();
    }
  },
});

Deno.test({
  name: "hubspot writer: an upsert HubSpot applied but never answered is retried into one record",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { sandbox } = await start();
    try {
      const { writer, kinds } = writerFor(sandbox, 500);
      await admin(sandbox.url, "PUT", "/__admin/lost-answers", {
        routeFilter: "batch/upsert",
        count: 1,
      });
      const res = await writer.write(
        "contacts",
        [1, 2, 3].map((i) => create(`l${i}`, uuid(500 + i), { email: `l${i}@example.com` })),
      );
      // The first attempt made them (its answer was lost); the retry found them by crm_sync_id.
      assert.deepEqual(kinds, ["batch-upsert", "batch-upsert"]);
      for (const r of res) assert.equal(ok(r).created, false);
      assert.equal((await live(sandbox, "contacts")).length, 3, "exactly one record each");
    } finally {
      await sandbox.close();
    }
  },
});
