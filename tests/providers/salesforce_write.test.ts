// The Salesforce writer against the Salesforce sandbox through jsforce: upserts by
// Crm_Sync_Id__c (idempotent creates), collections updates and deletes, per-record errors typed
// by what to do next, ⌈N / 200⌉ calls per sObject and kind, the external-id field created
// through the Tooling API (or refused), and whole-call failures thrown as ProviderError.
import assert from "node:assert/strict";
import { admin } from "./_support.ts";
import { startSalesforce } from "../../shared/emulators/salesforce/mod.ts";
import type { SalesforceOptions } from "../../shared/emulators/salesforce/mod.ts";
import { createSalesforceAdapter } from "../../supabase/functions/_shared/providers/salesforce.ts";
import {
  type ProviderDeps,
  ProviderError,
  type ProviderWriter,
  type WriteOp,
  type WriteResult,
} from "../../supabase/functions/_shared/providers/types.ts";

const EXT_FIELD = {
  Metadata: { type: "Text", length: 36, externalId: true, unique: true },
};
const withExternalIds = (...types: string[]): SalesforceOptions["customFields"] =>
  types.map((t) => ({ FullName: `${t}.Crm_Sync_Id__c`, ...EXT_FIELD }));

type Sandbox = Awaited<ReturnType<typeof startSalesforce>>;

function writerFor(
  sf: Sandbox,
  extra: Partial<ProviderDeps> = {},
): { writer: ProviderWriter; calls: () => number; kinds: string[] } {
  let calls = 0;
  const kinds: string[] = [];
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
    beforeRequest: (kind) => {
      kinds.push(kind);
      return Promise.resolve();
    },
    onTokens: () => Promise.resolve(),
    countCall: (n = 1) => {
      calls += n;
    },
    log: () => {},
    callTimeoutMs: 5_000,
    ...extra,
  }, {});
  assert.ok(adapter.writer, "the adapter has a writer");
  return { writer: adapter.writer, calls: () => calls, kinds };
}

const byRef = (results: WriteResult[]) => new Map(results.map((r) => [r.ref, r]));
const ok = (r: WriteResult | undefined) => {
  assert.ok(r?.ok, `expected ok: ${JSON.stringify(r)}`);
  return r;
};

async function stored(sf: Sandbox, type: string, id: string) {
  return await admin(sf.url, "GET", `/__admin/records/${type}/${id}`);
}

Deno.test({
  name:
    "salesforce writer: ensureExternalId creates the field, then finds it; refused without Customize Application",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const sf = await startSalesforce({ port: 0, seed: 71, records: 10 });
    try {
      await admin(sf.url, "PUT", "/__admin/permissions", { customizeApplication: false });
      const a = writerFor(sf);
      const denied = await a.writer.ensureExternalId("Contact");
      assert.equal(denied.ok, false);
      assert.match((denied as { reason: string }).reason, /INSUFFICIENT_ACCESS_OR_READONLY/);
      assert.match((denied as { reason: string }).reason, /Customize Application/);
      assert.deepEqual(await admin(sf.url, "GET", "/__admin/custom-fields"), []);

      await admin(sf.url, "PUT", "/__admin/permissions", { customizeApplication: true });
      const before = a.calls();
      const made = await a.writer.ensureExternalId("Contact");
      assert.deepEqual(made, { ok: true, property: "Crm_Sync_Id__c", created: true });
      assert.equal(a.calls() - before, 2, "one describe, one Tooling API create");
      assert.deepEqual(a.kinds.slice(-2), ["describe", "tooling"]);
      const fields = await admin(sf.url, "GET", "/__admin/custom-fields");
      assert.deepEqual(fields, [{
        object: "Contact",
        name: "Crm_Sync_Id__c",
        length: 36,
        externalId: true,
        unique: true,
      }]);
      // Remembered by this writer: no call.
      const again = a.calls();
      assert.deepEqual(await a.writer.ensureExternalId("Contact"), {
        ok: true,
        property: "Crm_Sync_Id__c",
        created: false,
      });
      assert.equal(a.calls(), again, "no call for a known field");

      // Another instance: one describe finds it; with a shared describe cache, none.
      const cache = new Map<string, string[]>();
      const describes = {
        get: (k: string) => Promise.resolve(cache.get(k) ?? null),
        put: (k: string, f: string[]) => Promise.resolve(void cache.set(k, f)),
      };
      const b = writerFor(sf, { describes });
      assert.deepEqual(await b.writer.ensureExternalId("Contact"), {
        ok: true,
        property: "Crm_Sync_Id__c",
        created: false,
      });
      assert.equal(b.calls(), 1);
      const c = writerFor(sf, { describes });
      await c.writer.ensureExternalId("Contact");
      assert.equal(c.calls(), 0, "the shared cache says it is there");
      // Lead is its own sObject.
      assert.equal((await c.writer.ensureExternalId("Lead")).ok, true);
      assert.equal((await admin(sf.url, "GET", "/__admin/custom-fields")).length, 2);
      assert.equal(await a.writer.externalIdProperty("Lead"), "Crm_Sync_Id__c");
    } finally {
      await sf.close();
    }
  },
});

Deno.test({
  name:
    "salesforce writer: exact values, idempotent creates, mixed Contact/Lead, per-record errors, deletes",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const sf = await startSalesforce({
      port: 0,
      seed: 72,
      records: 20,
      customFields: withExternalIds("Account", "Contact", "Lead", "Opportunity"),
    });
    try {
      const { writer, calls } = writerFor(sf);
      assert.equal(writer.maxBatch, 200);
      const users = await admin(sf.url, "GET", "/__admin/users");
      const owner = users.adminUserId;

      const acc = byRef(
        await writer.write("companies", [{
          kind: "create",
          ref: "acc",
          remoteType: "Account",
          externalId: "4f7d3c2a-0000-4000-8000-00000000000a",
          properties: { Name: "Acme GmbH", Website: "acme.example", AnnualRevenue: 1250000.5 },
        }]),
      );
      const accountId = ok(acc.get("acc")).remoteId;
      assert.equal((acc.get("acc") as { created: boolean }).created, true);

      const before = calls();
      const ops: WriteOp[] = [
        {
          kind: "create",
          ref: "c1",
          remoteType: "Contact",
          externalId: "00000000-0000-4000-8000-0000000000c1",
          properties: {
            FirstName: "Ada",
            LastName: "Lovelace",
            Email: "ada@example.com",
            Phone: "+4930123456",
            AccountId: accountId,
            OwnerId: owner,
          },
        },
        {
          kind: "create",
          ref: "l1",
          remoteType: "Lead",
          externalId: "00000000-0000-4000-8000-0000000000l1",
          properties: { LastName: "Hopper", Company: "Navy", Email: "grace@example.com" },
        },
        {
          kind: "create",
          ref: "l-bad",
          remoteType: "Lead",
          externalId: "00000000-0000-4000-8000-00000000bad1",
          properties: { LastName: "No Company" },
        },
        // The same record twice in one call: one input, both refs answered.
        {
          kind: "create",
          ref: "c2a",
          remoteType: "Contact",
          externalId: "00000000-0000-4000-8000-0000000000c2",
          properties: { LastName: "Twice", Title: "first" },
        },
        {
          kind: "create",
          ref: "c2b",
          remoteType: "Contact",
          externalId: "00000000-0000-4000-8000-0000000000c2",
          properties: { Title: "second" },
        },
        {
          kind: "create",
          ref: "wrong",
          remoteType: "Account",
          externalId: "00000000-0000-4000-8000-00000000000e",
          properties: { Name: "x" },
        },
      ];
      const res = byRef(await writer.write("contacts", ops));
      assert.equal(res.size, ops.length, "one result per op");
      assert.equal(calls() - before, 2, "one upsert call per sObject");
      const c1 = ok(res.get("c1")) as Extract<WriteResult, { ok: true }>;
      assert.equal(c1.created, true);
      assert.equal(c1.remoteVersion, null);
      const c1Rec = await stored(sf, "Contact", c1.remoteId);
      assert.deepEqual(
        [
          c1Rec.FirstName,
          c1Rec.LastName,
          c1Rec.Email,
          c1Rec.Phone,
          c1Rec.AccountId,
          c1Rec.OwnerId,
          c1Rec.Crm_Sync_Id__c,
        ],
        [
          "Ada",
          "Lovelace",
          "ada@example.com",
          "+4930123456",
          accountId,
          owner,
          "00000000-0000-4000-8000-0000000000c1",
        ],
      );
      assert.equal(c1Rec.LastModifiedById, users.apiUserId, "API writes name the API user");
      const l1 = ok(res.get("l1")) as Extract<WriteResult, { ok: true }>;
      assert.ok(l1.remoteId.startsWith("00Q"), "a Lead");
      assert.equal((await stored(sf, "Lead", l1.remoteId)).Company, "Navy");
      const bad = res.get("l-bad") as Extract<WriteResult, { ok: false }>;
      assert.equal(bad.ok, false);
      assert.equal(bad.action, "fix_data");
      assert.match(
        bad.message,
        /^REQUIRED_FIELD_MISSING: Required fields are missing: \[Company\]/,
      );
      const c2a = ok(res.get("c2a")) as Extract<WriteResult, { ok: true }>;
      const c2b = ok(res.get("c2b")) as Extract<WriteResult, { ok: true }>;
      assert.equal(c2a.remoteId, c2b.remoteId);
      assert.equal((await stored(sf, "Contact", c2a.remoteId)).Title, "second", "later op wins");
      const wrong = res.get("wrong") as Extract<WriteResult, { ok: false }>;
      assert.equal(wrong.action, "dead_letter");

      // The same create again (a retry whose first attempt succeeded): the same record.
      const contactsBefore = (await admin(sf.url, "GET", "/__admin/records/Contact")).length;
      const again = byRef(
        await writer.write("contacts", [{
          ...ops[0],
          ref: "c1-again",
          properties: {
            ...(ops[0] as { properties: Record<string, unknown> }).properties,
            Title: "Countess",
          },
        } as WriteOp]),
      );
      const c1Again = ok(again.get("c1-again")) as Extract<WriteResult, { ok: true }>;
      assert.equal(c1Again.remoteId, c1.remoteId);
      assert.equal(c1Again.created, false);
      assert.equal((await admin(sf.url, "GET", "/__admin/records/Contact")).length, contactsBefore);
      assert.equal((await stored(sf, "Contact", c1.remoteId)).Title, "Countess");

      // A validation rule's message comes back as the CRM's.
      await admin(sf.url, "PUT", "/__admin/validation-rules", [{
        object: "Contact",
        name: "Email_Domain",
        field: "Email",
        op: "matches",
        value: "@blocked\\.example$",
        message: "Use a company address",
        errorDisplayField: "Email",
      }]);
      // An admin deletes c2 in the UI meanwhile.
      await admin(sf.url, "DELETE", `/__admin/records/Contact/${c2a.remoteId}`);
      const upd = byRef(
        await writer.write("contacts", [
          {
            kind: "update",
            ref: "u1",
            remoteType: "Contact",
            remoteId: c1.remoteId,
            properties: { Email: "ada@blocked.example" },
          },
          {
            kind: "update",
            ref: "u2",
            remoteType: "Lead",
            remoteId: l1.remoteId,
            properties: { Title: "Rear Admiral", Email: null },
          },
          {
            kind: "update",
            ref: "u3",
            remoteType: "Contact",
            remoteId: c2a.remoteId,
            properties: { Title: "x" },
          },
          {
            kind: "update",
            ref: "u4",
            remoteType: "Contact",
            remoteId: "003000000000000AAA",
            properties: { Title: "x" },
          },
        ]),
      );
      const u1 = upd.get("u1") as Extract<WriteResult, { ok: false }>;
      assert.equal(u1.action, "fix_data");
      assert.equal(u1.message, "FIELD_CUSTOM_VALIDATION_EXCEPTION: Use a company address [Email]");
      assert.equal(
        (await stored(sf, "Contact", c1.remoteId)).Email,
        "ada@example.com",
        "not saved",
      );
      ok(upd.get("u2"));
      const l1Rec = await stored(sf, "Lead", l1.remoteId);
      assert.deepEqual([l1Rec.Title, l1Rec.Email], ["Rear Admiral", null]);
      assert.equal((upd.get("u3") as { action: string }).action, "gone", "deleted in the CRM");
      assert.match((upd.get("u3") as { message: string }).message, /ENTITY_IS_DELETED/);
      assert.equal((upd.get("u4") as { action: string }).action, "gone", "never existed");

      // Deletes: twice, and of a record the CRM no longer has: all ok.
      for (let i = 0; i < 2; i++) {
        const del = byRef(
          await writer.write("contacts", [
            { kind: "delete", ref: "d1", remoteType: "Contact", remoteId: c1.remoteId },
            { kind: "delete", ref: "d2", remoteType: "Contact", remoteId: c2a.remoteId },
            { kind: "delete", ref: "d3", remoteType: "Lead", remoteId: l1.remoteId },
          ]),
        );
        for (const ref of ["d1", "d2", "d3"]) ok(del.get(ref));
      }
      assert.equal((await stored(sf, "Contact", c1.remoteId)).IsDeleted, true);
      assert.equal((await stored(sf, "Lead", l1.remoteId)).IsDeleted, true);
    } finally {
      await sf.close();
    }
  },
});

Deno.test({
  name:
    "salesforce writer: 450 creates, updates and deletes of one sObject take 3 calls each; mixed updates and deletes share calls",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const sf = await startSalesforce({
      port: 0,
      seed: 73,
      records: 5,
      customFields: withExternalIds("Contact", "Lead"),
    });
    try {
      const { writer, calls } = writerFor(sf);
      const n = 450;
      const ext = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`;
      const creates: WriteOp[] = Array.from({ length: n }, (_, i) => ({
        kind: "create",
        ref: `c${i}`,
        remoteType: "Contact",
        externalId: ext(i),
        properties: { LastName: `Bulk ${i}`, Email: `bulk${i}@example.com` },
      }));
      let before = calls();
      const made = await writer.write("contacts", creates);
      assert.equal(calls() - before, 3, "⌈450 / 200⌉ upsert calls");
      assert.equal(made.length, n);
      assert.ok(made.every((r) => r.ok && r.created));
      const ids = made.map((r) => (r as { remoteId: string }).remoteId);
      assert.equal(new Set(ids).size, n);
      const rec = await stored(
        sf,
        "Contact",
        (byRef(made).get("c321") as { remoteId: string }).remoteId,
      );
      assert.deepEqual([rec.LastName, rec.Email, rec.Crm_Sync_Id__c], [
        "Bulk 321",
        "bulk321@example.com",
        ext(321),
      ]);

      before = calls();
      const updated = await writer.write(
        "contacts",
        ids.map((remoteId, i) => ({
          kind: "update",
          ref: `u${i}`,
          remoteType: "Contact",
          remoteId,
          properties: { Title: `T${i}` },
        })),
      );
      assert.equal(calls() - before, 3);
      assert.ok(updated.every((r) => r.ok && !r.created));
      assert.equal((await stored(sf, "Contact", ids[449])).Title, "T449");

      // 450 of each sObject mixed in one write: 3 calls per sObject.
      before = calls();
      const mixed = await writer.write("contacts", [
        ...ids.map((remoteId, i): WriteOp => ({
          kind: "delete",
          ref: `d${i}`,
          remoteType: "Contact",
          remoteId,
        })),
        ...Array.from({ length: n }, (_, i): WriteOp => ({
          kind: "create",
          ref: `l${i}`,
          remoteType: "Lead",
          externalId: ext(10_000 + i),
          properties: { LastName: `Lead ${i}`, Company: "Co" },
        })),
      ]);
      assert.equal(calls() - before, 6);
      assert.equal(mixed.length, 2 * n);
      assert.ok(mixed.every((r) => r.ok));
      const live = (await admin(sf.url, "GET", "/__admin/records/Contact"))
        .filter((c: { IsDeleted: boolean; Crm_Sync_Id__c: string | null }) =>
          !c.IsDeleted && c.Crm_Sync_Id__c
        );
      assert.equal(live.length, 0);

      // Updates of Contacts and Leads interleaved share their calls: ⌈N / 200⌉, not per type.
      const leads = mixed.filter((r) => r.ref.startsWith("l")).map((r) =>
        (r as { remoteId: string }).remoteId
      );
      const contacts = (await writer.write(
        "contacts",
        Array.from({ length: 150 }, (_, i): WriteOp => ({
          kind: "create",
          ref: `k${i}`,
          remoteType: "Contact",
          externalId: ext(20_000 + i),
          properties: { LastName: `Again ${i}` },
        })),
      )).map((r) => (r as { remoteId: string }).remoteId);
      before = calls();
      const interleaved = await writer.write(
        "contacts",
        contacts.flatMap((c, i): WriteOp[] => [
          {
            kind: "update",
            ref: `uc${i}`,
            remoteType: "Contact",
            remoteId: c,
            properties: { Title: `C${i}` },
          },
          {
            kind: "update",
            ref: `ul${i}`,
            remoteType: "Lead",
            remoteId: leads[i],
            properties: { Title: `L${i}` },
          },
        ]),
      );
      assert.equal(calls() - before, 2, "300 mixed updates: 2 calls");
      assert.ok(interleaved.every((r) => r.ok), JSON.stringify(interleaved.find((r) => !r.ok)));
      assert.equal((await stored(sf, "Lead", leads[7])).Title, "L7");
      assert.equal((await stored(sf, "Contact", contacts[7])).Title, "C7");
      before = calls();
      const removed = await writer.write("contacts", [
        ...contacts.map((c, i): WriteOp => ({
          kind: "delete",
          ref: `dc${i}`,
          remoteType: "Contact",
          remoteId: c,
        })),
        ...leads.slice(0, 50).map((l, i): WriteOp => ({
          kind: "delete",
          ref: `dl${i}`,
          remoteType: "Lead",
          remoteId: l,
        })),
      ]);
      assert.equal(calls() - before, 1, "200 mixed deletes: 1 call");
      assert.ok(removed.every((r) => r.ok));
    } finally {
      await sf.close();
    }
  },
});

Deno.test({
  name:
    "salesforce writer: 5xx retried inside the call (no duplicates), persistent 5xx and REQUEST_LIMIT_EXCEEDED thrown as ProviderError retry",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const sf = await startSalesforce({
      port: 0,
      seed: 74,
      records: 5,
      customFields: withExternalIds("Contact"),
    });
    try {
      const { writer, calls } = writerFor(sf);
      const ops = (from: number, n: number): WriteOp[] =>
        Array.from({ length: n }, (_, i) => ({
          kind: "create",
          ref: `r${from + i}`,
          remoteType: "Contact",
          externalId: `00000000-0000-4000-8000-${String(from + i).padStart(12, "0")}`,
          properties: { LastName: `F${from + i}` },
        }));
      await admin(sf.url, "PUT", "/__admin/faults", {
        error5xxRate: 0.5,
        routeFilter: "composite",
        seed: 3,
      });
      const before = calls();
      const res = await writer.write("contacts", ops(0, 600));
      assert.ok(res.every((r) => r.ok));
      const faults = await admin(sf.url, "GET", "/__admin/counters");
      assert.ok(faults.faultsInjected["5xx"] > 0, "some calls failed");
      assert.equal(calls() - before, 3 + faults.faultsInjected["5xx"], "each failure retried once");
      const mine = (await admin(sf.url, "GET", "/__admin/records/Contact"))
        .filter((c: { Crm_Sync_Id__c: string | null }) => c.Crm_Sync_Id__c);
      assert.equal(mine.length, 600, "exactly one record per create");

      await admin(sf.url, "PUT", "/__admin/faults", { error5xxRate: 1, routeFilter: "composite" });
      await assert.rejects(
        writer.write("contacts", ops(600, 5), { deadline: Date.now() + 1500 }),
        (e: unknown) => {
          assert.ok(e instanceof ProviderError);
          assert.equal(e.action, "retry");
          return true;
        },
      );
      await admin(sf.url, "DELETE", "/__admin/faults");

      // Salesforce's rate-limit answer (the sandbox's injected "429") and the org's spent daily
      // allocation are both 403 REQUEST_LIMIT_EXCEEDED: nothing applied, retry later.
      const limited = (e: unknown) => {
        assert.ok(e instanceof ProviderError);
        assert.equal(e.action, "retry");
        assert.equal(e.status, 403);
        assert.match(e.message, /REQUEST_LIMIT_EXCEEDED/);
        return true;
      };
      await admin(sf.url, "PUT", "/__admin/faults", { rate429: 1, routeFilter: "composite" });
      const callsBefore = calls();
      await assert.rejects(writer.write("contacts", ops(700, 5)), limited);
      assert.equal(calls() - callsBefore, 1, "not retried inside the call");
      await admin(sf.url, "DELETE", "/__admin/faults");
      await admin(sf.url, "PUT", "/__admin/limits", { dailyApiRequests: 1 });
      await assert.rejects(writer.write("contacts", ops(800, 5)), limited);
      const none = (await admin(sf.url, "GET", "/__admin/records/Contact"))
        .filter((c: { Crm_Sync_Id__c: string | null }) =>
          (c.Crm_Sync_Id__c ?? "").endsWith("00000700")
        );
      assert.equal(none.length, 0);
    } finally {
      await sf.close();
    }
  },
});

Deno.test({
  name:
    "salesforce writer: an expired session is refreshed inside the write; a hang times out; revoked credentials are reported",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const sf = await startSalesforce({
      port: 0,
      seed: 75,
      records: 5,
      customFields: withExternalIds("Contact"),
    });
    try {
      const tokens: string[] = [];
      const { writer } = writerFor(sf, {
        onTokens: (t) => Promise.resolve(void tokens.push(t.accessToken)),
        callTimeoutMs: 300,
      });
      const create = (i: number): WriteOp => ({
        kind: "create",
        ref: `r${i}`,
        remoteType: "Contact",
        externalId: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`,
        properties: { LastName: `S${i}` },
      });
      await admin(sf.url, "POST", "/__admin/tokens/expire");
      await new Promise((r) => setTimeout(r, 5));
      const [first] = await writer.write("contacts", [create(1)]);
      ok(first);
      assert.equal(tokens.length, 1, "the refreshed token is handed over for storage");

      await admin(sf.url, "PUT", "/__admin/faults", { hangRate: 1, routeFilter: "composite" });
      await assert.rejects(
        writer.write("contacts", [create(2)], { deadline: Date.now() + 1200 }),
        (e: unknown) => e instanceof ProviderError && e.action === "retry",
      );
      await admin(sf.url, "DELETE", "/__admin/faults");
      // The create sent again after the timeout: upserted once.
      const [again] = await writer.write("contacts", [create(2)]);
      ok(again);

      await admin(sf.url, "POST", "/__admin/tokens/revoke", { kind: "all" });
      await assert.rejects(
        writer.write("contacts", [create(3)]),
        (e: unknown) => e instanceof ProviderError && e.action === "revoked",
      );
    } finally {
      await sf.close();
    }
  },
});
