/** Salesforce sandbox: what an outbound writer meets (Tooling API custom fields, upsert by an
 * external-id field, collections limits and per-record results, validation rules, who made a
 * change), over plain HTTP so statuses and bodies are checked as sent. */
import { assert, assertEquals } from "../common/assert.ts";
import { admin } from "../common/testing.ts";
import { startSalesforce } from "./mod.ts";

type Json = Record<string, unknown>;
type Item = { id: string | null; success: boolean; created?: boolean; errors: Json[] };

function client(url: string, token: string) {
  return async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${url}/services/data/v62.0${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };
}

const FIELD = {
  FullName: "Contact.Crm_Sync_Id__c",
  Metadata: { type: "Text", label: "Crm Sync Id", length: 36, externalId: true, unique: true },
};

Deno.test("Tooling API CustomField: created, read back, in describe and DML; duplicate and permission errors; gone after reset", async () => {
  const sf = await startSalesforce({ seed: 61, records: 5 });
  try {
    const api = client(sf.url, sf.credentials.SALESFORCE_ACCESS_TOKEN);
    const before = await api("PATCH", "/composite/sobjects/Contact/Crm_Sync_Id__c", {
      allOrNone: false,
      records: [{ attributes: { type: "Contact" }, Crm_Sync_Id__c: "x", LastName: "X" }],
    });
    assertEquals(before.status, 400);
    assertEquals(before.body[0].errorCode, "INVALID_FIELD");

    await admin(sf.url, "/permissions", { method: "PUT", json: { customizeApplication: false } });
    const denied = await api("POST", "/tooling/sobjects/CustomField", FIELD);
    assertEquals(denied.status, 403);
    assertEquals(denied.body[0].errorCode, "INSUFFICIENT_ACCESS_OR_READONLY");
    assertEquals(await admin(sf.url, "/custom-fields"), []);
    await admin(sf.url, "/permissions", { method: "PUT", json: { customizeApplication: true } });

    const made = await api("POST", "/tooling/sobjects/CustomField", FIELD);
    assertEquals(made.status, 201);
    assertEquals(made.body.success, true);
    assert(/^00N/.test(made.body.id));
    const got = await api("GET", `/tooling/sobjects/CustomField/${made.body.id}`);
    assertEquals(got.body.FullName, "Contact.Crm_Sync_Id__c");
    assertEquals(got.body.Metadata.externalId, true);
    assertEquals(got.body.Metadata.length, 36);

    const dup = await api("POST", "/tooling/sobjects/CustomField", FIELD);
    assertEquals(dup.status, 400);
    assertEquals(dup.body[0].errorCode, "DUPLICATE_DEVELOPER_NAME");

    const d = await api("GET", "/sobjects/Contact/describe");
    const f = d.body.fields.find((x: Json) => x.name === "Crm_Sync_Id__c");
    assertEquals([f.externalId, f.unique, f.length, f.custom], [true, true, 36, true]);
    const lead = await api("GET", "/sobjects/Lead/describe");
    assert(!lead.body.fields.some((x: Json) => x.name === "Crm_Sync_Id__c"), "per object");

    const ups = await api("PATCH", "/composite/sobjects/Contact/Crm_Sync_Id__c", {
      allOrNone: false,
      records: [{ attributes: { type: "Contact" }, Crm_Sync_Id__c: "u-1", LastName: "One" }],
    });
    assertEquals(ups.status, 200);
    assertEquals((ups.body as Item[])[0].created, true);
    const q = await api(
      "GET",
      `/query?q=${
        encodeURIComponent("SELECT Id, Crm_Sync_Id__c FROM Contact WHERE Crm_Sync_Id__c = 'u-1'")
      }`,
    );
    assertEquals(q.body.records.map((r: Json) => r.Id), [(ups.body as Item[])[0].id]);

    // Another org of the process (another sandbox) does not see the field.
    const other = await startSalesforce({ seed: 62, records: 2 });
    try {
      const o = client(other.url, other.credentials.SALESFORCE_ACCESS_TOKEN);
      const od = await o("GET", "/sobjects/Contact/describe");
      assert(!od.body.fields.some((x: Json) => x.name === "Crm_Sync_Id__c"));
    } finally {
      await other.close();
    }

    await admin(sf.url, "/reset", { method: "POST", json: {} });
    const after = await api("GET", "/sobjects/Contact/describe");
    assert(!after.body.fields.some((x: Json) => x.name === "Crm_Sync_Id__c"), "reset drops it");
  } finally {
    await sf.close();
  }
});

Deno.test("upsert collections: created true/false, duplicate values in one request, non-unique external ids, 200-record limit", async () => {
  const sf = await startSalesforce({
    seed: 63,
    records: 5,
    customFields: [
      FIELD,
      {
        FullName: "Contact.Legacy_Key__c",
        Metadata: { type: "Text", length: 20, externalId: true, unique: false },
      },
    ],
  });
  try {
    const api = client(sf.url, sf.credentials.SALESFORCE_ACCESS_TOKEN);
    const upsert = (field: string, records: Json[]) =>
      api("PATCH", `/composite/sobjects/Contact/${field}`, {
        allOrNone: false,
        records: records.map((r) => ({ attributes: { type: "Contact" }, ...r })),
      });
    const first = await upsert("Crm_Sync_Id__c", [
      { Crm_Sync_Id__c: "a", LastName: "A" },
      { Crm_Sync_Id__c: "b", LastName: "B" },
    ]);
    assertEquals((first.body as Item[]).map((r) => r.created), [true, true]);
    const second = await upsert("Crm_Sync_Id__c", [
      { Crm_Sync_Id__c: "a", LastName: "A2" },
      { Crm_Sync_Id__c: "c", LastName: "C" },
    ]);
    const s = second.body as Item[];
    assertEquals(s.map((r) => [r.success, r.created]), [[true, false], [true, true]]);
    assertEquals(s[0].id, (first.body as Item[])[0].id);
    assertEquals(sf.store.find("Contact", s[0].id!)!.fields.LastName, "A2");

    const dup = await upsert("Crm_Sync_Id__c", [
      { Crm_Sync_Id__c: "d", LastName: "D1" },
      { Crm_Sync_Id__c: "d", LastName: "D2" },
      { Crm_Sync_Id__c: "e", LastName: "E" },
    ]);
    const du = dup.body as Item[];
    assertEquals(du.map((r) => r.success), [false, false, true]);
    assertEquals(du[0].errors[0].statusCode, "DUPLICATE_VALUE");
    assertEquals(du[0].errors[0].message, "Duplicate external id specified: d");
    assertEquals(sf.store.matching("Contact", "Crm_Sync_Id__c", "d"), []);

    // A non-unique external-id field with two records of one value.
    const ids = (await upsert("Legacy_Key__c", [{ Legacy_Key__c: "k1", LastName: "K" }]))
      .body as Item[];
    await api("PATCH", "/composite/sobjects", {
      allOrNone: false,
      records: [{ attributes: { type: "Contact" }, id: s[1].id, Legacy_Key__c: "k1" }],
    });
    const multi = (await upsert("Legacy_Key__c", [{ Legacy_Key__c: "k1", Title: "x" }]))
      .body as Item[];
    assertEquals(multi[0].errors[0].statusCode, "DUPLICATE_EXTERNAL_ID");
    assert(String(multi[0].errors[0].message).includes(ids[0].id!));

    const tooMany = await upsert(
      "Crm_Sync_Id__c",
      Array.from({ length: 201 }, (_, i) => ({ Crm_Sync_Id__c: `m${i}`, LastName: "M" })),
    );
    assertEquals(tooMany.status, 400);
    assertEquals(tooMany.body[0].errorCode, "EXCEEDED_ID_LIMIT");
    assertEquals(sf.store.matching("Contact", "Crm_Sync_Id__c", "m0"), []);
    const upTo = await upsert(
      "Crm_Sync_Id__c",
      Array.from({ length: 200 }, (_, i) => ({ Crm_Sync_Id__c: `m${i}`, LastName: "M" })),
    );
    assert((upTo.body as Item[]).every((r) => r.success && r.created));
  } finally {
    await sf.close();
  }
});

Deno.test("collections update/delete with allOrNone=false: per-record results, deleted and missing records, id limit", async () => {
  const sf = await startSalesforce({ seed: 64, records: 20 });
  try {
    const api = client(sf.url, sf.credentials.SALESFORCE_ACCESS_TOKEN);
    const [a, b] = (await admin(sf.url, "/records/Contact") as Json[]).filter((c) => !c.IsDeleted)
      .map((c) => c.Id as string);
    await api("DELETE", `/composite/sobjects?ids=${b}&allOrNone=false`);
    const upd = await api("PATCH", "/composite/sobjects", {
      allOrNone: false,
      records: [
        { attributes: { type: "Contact" }, id: a, Title: "T" },
        { attributes: { type: "Contact" }, id: b, Title: "T" },
        { attributes: { type: "Contact" }, id: "003000000000000AAA", Title: "T" },
      ],
    });
    const u = upd.body as Item[];
    assertEquals(u.map((r) => r.success), [true, false, false]);
    assertEquals(u[1].errors[0].statusCode, "ENTITY_IS_DELETED");
    assertEquals(u[2].errors[0].statusCode, "INVALID_CROSS_REFERENCE_KEY");

    const del = await api("DELETE", `/composite/sobjects?ids=${a},${b}&allOrNone=false`);
    const dl = del.body as Item[];
    assertEquals(dl.map((r) => r.success), [true, false]);
    assertEquals(dl[1].errors[0].statusCode, "ENTITY_IS_DELETED");
    assert(sf.store.find("Contact", a)!.isDeleted);

    const ids = Array.from({ length: 201 }, () => a).join(",");
    const tooMany = await api("DELETE", `/composite/sobjects?ids=${ids}&allOrNone=false`);
    assertEquals(tooMany.status, 400);
    assertEquals(tooMany.body[0].errorCode, "EXCEEDED_ID_LIMIT");
  } finally {
    await sf.close();
  }
});

Deno.test("validation rules reject API and admin saves with their message; changes name their user", async () => {
  const sf = await startSalesforce({ seed: 65, records: 10 });
  try {
    const api = client(sf.url, sf.credentials.SALESFORCE_ACCESS_TOKEN);
    await admin(sf.url, "/validation-rules", {
      method: "PUT",
      json: [{
        object: "Contact",
        name: "No_Test_Titles",
        field: "Title",
        op: "contains",
        value: "TEST",
        message: "Titles may not contain TEST",
        errorDisplayField: "Title",
      }],
    });
    const made = await api("POST", "/composite/sobjects", {
      allOrNone: false,
      records: [
        { attributes: { type: "Contact" }, LastName: "Ok", Title: "CEO" },
        { attributes: { type: "Contact" }, LastName: "Bad", Title: "TEST lead" },
      ],
    });
    const m = made.body as Item[];
    assertEquals(m.map((r) => r.success), [true, false]);
    assertEquals(m[1].errors[0], {
      statusCode: "FIELD_CUSTOM_VALIDATION_EXCEPTION",
      message: "Titles may not contain TEST",
      fields: ["Title"],
    });
    // Updates are checked too (the rule sees the record as it would be saved).
    const id = m[0].id!;
    const upd = await api("PATCH", "/composite/sobjects", {
      allOrNone: false,
      records: [{ attributes: { type: "Contact" }, id, Title: "TEST" }],
    });
    assertEquals((upd.body as Item[])[0].errors[0].statusCode, "FIELD_CUSTOM_VALIDATION_EXCEPTION");
    await assertAdminRejects(sf.url, `/records/Contact/${id}`, { Title: "xTESTx" });

    const users = await admin(sf.url, "/users") as { apiUserId: string; adminUserId: string };
    assert(users.apiUserId !== users.adminUserId);
    assertEquals(users.apiUserId, sf.credentials.SALESFORCE_USER_ID);
    let rec = await admin(sf.url, `/records/Contact/${id}`) as Json;
    assertEquals([rec.CreatedById, rec.LastModifiedById], [users.apiUserId, users.apiUserId]);
    await admin(sf.url, `/records/Contact/${id}`, { method: "PATCH", json: { Title: "CTO" } });
    rec = await admin(sf.url, `/records/Contact/${id}`) as Json;
    assertEquals(rec.LastModifiedById, users.adminUserId);
    const q = await api(
      "GET",
      `/query?q=${encodeURIComponent(`SELECT LastModifiedById FROM Contact WHERE Id = '${id}'`)}`,
    );
    assertEquals(q.body.records[0].LastModifiedById, users.adminUserId);
    const byAdmin = await admin(sf.url, "/records/Contact", {
      method: "POST",
      json: { LastName: "Typed in the UI" },
    }) as Json;
    assertEquals(byAdmin.CreatedById, users.adminUserId);

    await admin(sf.url, "/validation-rules", { method: "DELETE" });
    const fine = await api("PATCH", "/composite/sobjects", {
      allOrNone: false,
      records: [{ attributes: { type: "Contact" }, id, Title: "TEST" }],
    });
    assertEquals((fine.body as Item[])[0].success, true);
    assertEquals(sf.store.find("Contact", id)!.fields.LastModifiedById, users.apiUserId);
  } finally {
    await sf.close();
  }
});

async function assertAdminRejects(url: string, path: string, body: Json) {
  const res = await fetch(`${url}/__admin${path}`, {
    method: "PATCH",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  assertEquals(res.status, 400, text);
  assert(text.includes("Titles may not contain TEST"), text);
}
