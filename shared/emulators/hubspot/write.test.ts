// The sandbox's write endpoints as HubSpot documents them: batch upsert by a unique-value
// property (creates or updates, `new`, all or nothing), unique values enforced with HubSpot's
// 409 for contact emails, ids named twice refused, batch update's 207 for missing ids, batch
// archive's 204, the 403 of a missing scope, and who made each change (INTEGRATION + app id for
// API writes, CRM_UI for admin edits) in the admin API and in property histories.
import { assert, assertEquals, assertMatch } from "../common/assert.ts";
import { startHubSpot } from "./mod.ts";

type Sandbox = Awaited<ReturnType<typeof startHubSpot>>;

function api(s: Sandbox) {
  return async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${s.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${s.credentials.HUBSPOT_ACCESS_TOKEN}`,
        "content-type": "application/json",
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };
}

async function adminCall(s: Sandbox, method: string, path: string, body?: unknown) {
  const res = await fetch(`${s.url}${path}`, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  assert(res.ok, `${path}: ${res.status}`);
  return await res.json();
}

const SYNC_ID = {
  name: "crm_sync_id",
  label: "CRM sync ID",
  type: "string",
  fieldType: "text",
  groupName: "contactinformation",
  hasUniqueValue: true,
};

const upsert = (id: string, properties: Record<string, string>) => ({
  id,
  idProperty: "crm_sync_id",
  properties,
});

Deno.test("batch upsert by a unique-value property: creates, updates, all or nothing", async () => {
  const s = await startHubSpot({ port: 0, seed: 5, records: 0 });
  const call = api(s);
  try {
    assertEquals((await call("POST", "/crm/v3/properties/contacts", SYNC_ID)).status, 201);
    const first = await call("POST", "/crm/v3/objects/contacts/batch/upsert", {
      inputs: [
        upsert("u-1", { email: "one@example.com", firstname: "One" }),
        upsert("u-2", { email: "two@example.com" }),
      ],
    });
    assertEquals(first.status, 200);
    assertEquals(first.body.status, "COMPLETE");
    for (const r of first.body.results) {
      assertEquals(r.new, true);
      assert(Date.parse(r.createdAt) > 0 && Date.parse(r.updatedAt) > 0);
    }
    const one = first.body.results.find((r: { properties: Record<string, string> }) =>
      r.properties.crm_sync_id === "u-1"
    );
    assertEquals(one.properties.firstname, "One");

    // u-1 exists (updated, new false), u-3 does not (created).
    const second = await call("POST", "/crm/v3/objects/contacts/batch/upsert", {
      inputs: [upsert("u-1", { firstname: "Uno" }), upsert("u-3", { firstname: "Three" })],
    });
    assertEquals(second.status, 200);
    const byId = new Map(
      second.body.results.map((r: { properties: Record<string, string> }) => [
        r.properties.crm_sync_id,
        r,
      ]),
    );
    const u1 = byId.get("u-1") as { id: string; new: boolean };
    assertEquals(u1.id, one.id);
    assertEquals(u1.new, false);
    assertEquals((byId.get("u-3") as { new: boolean }).new, true);
    assertEquals(s.store.live("contacts", one.id)?.properties.firstname, "Uno");

    // A create whose email another contact has: 409 naming it, and nothing of the batch written.
    const taken = s.store.create("contacts", { email: "taken@example.com" }, "CRM_UI");
    const before = s.store.tables.contacts.bySeq.length;
    const conflict = await call("POST", "/crm/v3/objects/contacts/batch/upsert", {
      inputs: [
        upsert("u-4", { email: "new4@example.com" }),
        upsert("u-5", {
          email: "TAKEN@example.com",
        }),
      ],
    });
    assertEquals(conflict.status, 409);
    assertEquals(conflict.body.category, "CONFLICT");
    assertEquals(conflict.body.message, `Contact already exists. Existing ID: ${taken.id}`);
    assertEquals(s.store.tables.contacts.bySeq.length, before);

    // An update to another contact's email: the same 409, the batch's other input untouched.
    const clash = await call("POST", "/crm/v3/objects/contacts/batch/upsert", {
      inputs: [
        upsert("u-2", { firstname: "Changed" }),
        upsert("u-1", {
          email: "taken@example.com",
        }),
      ],
    });
    assertEquals(clash.status, 409);
    assertEquals(
      s.store.byUnique("contacts", "crm_sync_id", "u-2")?.properties.firstname,
      undefined,
    );

    // One record named twice: 400, nothing written.
    const dup = await call("POST", "/crm/v3/objects/contacts/batch/upsert", {
      inputs: [upsert("u-6", { firstname: "A" }), upsert("u-6", { firstname: "B" })],
    });
    assertEquals(dup.status, 400);
    assertMatch(dup.body.message, /Duplicate IDs found in batch input: \[u-6\]/);
    assertEquals(s.store.byUnique("contacts", "crm_sync_id", "u-6"), undefined);

    // Upsert needs a unique-value id property.
    const notUnique = await call("POST", "/crm/v3/objects/contacts/batch/upsert", {
      inputs: [{ id: "x", idProperty: "firstname", properties: {} }],
    });
    assertEquals(notUnique.status, 400);
    assertMatch(notUnique.body.message, /non-unique/);

    // Unique values hold on plain creates too.
    const again = await call("POST", "/crm/v3/objects/contacts", {
      properties: { crm_sync_id: "u-1" },
    });
    assertEquals(again.status, 400);
    assertMatch(again.body.message, /already has that value/);
  } finally {
    await s.close();
  }
});

Deno.test("batch update answers 207 for missing ids; batch archive 204; ids named twice 400", async () => {
  const s = await startHubSpot({ port: 0, seed: 5, records: 0 });
  const call = api(s);
  try {
    const a = s.store.create("contacts", { email: "a@example.com" }, "CRM_UI");
    const b = s.store.create("contacts", { email: "b@example.com" }, "CRM_UI");
    const res = await call("POST", "/crm/v3/objects/contacts/batch/update", {
      inputs: [{ id: a.id, properties: { firstname: "A" } }, {
        id: "19999999",
        properties: { firstname: "X" },
      }],
    });
    assertEquals(res.status, 207);
    assertEquals(res.body.results.length, 1);
    assertEquals(res.body.errors[0].category, "OBJECT_NOT_FOUND");
    assertEquals(res.body.errors[0].context.ids, ["19999999"]);
    assertEquals(s.store.live("contacts", a.id)?.properties.firstname, "A");

    const clash = await call("POST", "/crm/v3/objects/contacts/batch/update", {
      inputs: [{ id: a.id, properties: { firstname: "AA" } }, {
        id: b.id,
        properties: { email: "a@example.com" },
      }],
    });
    assertEquals(clash.status, 409);
    assertEquals(s.store.live("contacts", a.id)?.properties.firstname, "A", "nothing written");

    const twice = await call("POST", "/crm/v3/objects/contacts/batch/update", {
      inputs: [{ id: a.id, properties: {} }, { id: a.id, properties: {} }],
    });
    assertEquals(twice.status, 400);

    const archive = await call("POST", "/crm/v3/objects/contacts/batch/archive", {
      inputs: [{ id: b.id }, { id: "19999999" }],
    });
    assertEquals(archive.status, 204);
    assertEquals(s.store.live("contacts", b.id), undefined);
  } finally {
    await s.close();
  }
});

Deno.test("a denied scope makes property creation answer 403 MISSING_SCOPES", async () => {
  const s = await startHubSpot({ port: 0, seed: 5, records: 0 });
  const call = api(s);
  try {
    await adminCall(s, "PUT", "/__admin/scopes", { denied: ["crm.schemas.contacts.write"] });
    assertEquals(await adminCall(s, "GET", "/__admin/scopes"), {
      denied: ["crm.schemas.contacts.write"],
    });
    const res = await call("POST", "/crm/v3/properties/contacts", SYNC_ID);
    assertEquals(res.status, 403);
    assertEquals(res.body.category, "MISSING_SCOPES");
    assertEquals(res.body.errors[0].context.requiredGranularScopes, [
      "crm.schemas.contacts.write",
    ]);
    assertEquals(s.store.props.get("contacts", "crm_sync_id"), undefined);
    // Other object types keep their scope.
    assertEquals(
      (await call("POST", "/crm/v3/properties/companies", {
        ...SYNC_ID,
        groupName: "companyinformation",
      })).status,
      201,
    );
    await adminCall(s, "POST", "/__admin/reset", {});
    assertEquals(await adminCall(s, "GET", "/__admin/scopes"), { denied: [] });
  } finally {
    await s.close();
  }
});

Deno.test("who changed what: INTEGRATION + app id for API writes, CRM_UI for admin edits", async () => {
  const s = await startHubSpot({ port: 0, seed: 5, records: 0 });
  const call = api(s);
  try {
    const made = await call("POST", "/crm/v3/objects/contacts", {
      properties: { email: "w@example.com", firstname: "Api" },
    });
    assertEquals(made.status, 201);
    const id = made.body.id;
    await adminCall(s, "PATCH", `/__admin/records/contacts/${id}`, { lastname: "User" });
    const rec = await adminCall(s, "GET", `/__admin/records/contacts/${id}`);
    assertEquals(rec.properties.firstname, "Api");
    assertEquals(rec.propertySources.firstname.source, "INTEGRATION");
    assertEquals(rec.propertySources.firstname.sourceId, s.credentials.HUBSPOT_APP_ID);
    assertEquals(rec.propertySources.lastname.source, "CRM_UI");
    assertMatch(rec.propertySources.lastname.sourceId, /^userId:\d+$/);
    const read = await call(
      "GET",
      `/crm/v3/objects/contacts/${id}?propertiesWithHistory=firstname,lastname`,
    );
    assertEquals(read.body.propertiesWithHistory.firstname[0].sourceType, "INTEGRATION");
    assertEquals(read.body.propertiesWithHistory.lastname[0].sourceType, "CRM_UI");
  } finally {
    await s.close();
  }
});
