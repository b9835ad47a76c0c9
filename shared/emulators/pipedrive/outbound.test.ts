/** What an outbound push needs from the sandbox, driven through the official SDK: custom fields
 * added through v1 (and the 403 without the permission), the v2 search endpoints, validation
 * messages, who made each change (admin change log, webhooks' change_source/user_id), and the
 * deterministic request faults. */
import { v1 } from "pipedrive";
import { Configuration, DealsApi, OrganizationsApi, PersonsApi } from "pipedrive/v2";
import { assert, assertEquals, assertMatch, assertRejects } from "../common/assert.ts";
import { admin, startReceiver } from "../common/testing.ts";
import { startPipedrive } from "./mod.ts";

interface Envelope {
  success: boolean;
  error: string;
  errorCode?: number;
  code?: string;
}

const v2cfg = (url: string, apiKey: string) =>
  new Configuration({ apiKey, basePath: `${url}/api/v2` });
const v1cfg = (url: string, apiKey: string) =>
  new v1.Configuration({ apiKey, basePath: `${url}/v1` });

Deno.test("POST /v1/{entity}Fields adds a varchar field with a 40-hex key; 403 without the permission", async () => {
  const pd = await startPipedrive({ seed: 81, records: 5 });
  try {
    const fieldsApi = new v1.PersonFieldsApi(v1cfg(pd.url, pd.credentials.PIPEDRIVE_API_TOKEN));
    const res = await fieldsApi.addPersonField({
      CreateFieldRequest: { name: "crm_sync_id", field_type: "varchar" },
    });
    assert(res.success);
    const key = res.data!.key!;
    assertMatch(key, /^[0-9a-f]{40}$/);
    assertEquals([res.data!.name, res.data!.field_type], ["crm_sync_id", "varchar"]);
    const listed = await fieldsApi.getPersonFields({});
    assert(listed.data!.some((f) => f.key === key && f.name === "crm_sync_id"));

    // The new key is writable under custom_fields (v2) and appears on existing records.
    const persons = new PersonsApi(v2cfg(pd.url, pd.credentials.PIPEDRIVE_API_TOKEN));
    const existing = pd.store.tables.person.bySeq.find((r) => !r.isDeleted)!;
    assertEquals(
      (await persons.getPerson({ id: Number(existing.id) })).data!.custom_fields![key],
      null,
    );
    const p = await persons.addPerson({
      AddPersonRequest: { name: "Ada", custom_fields: { [key]: "7f1c…uuid" } },
    });
    assertEquals(p.data!.custom_fields![key], "7f1c…uuid");

    const missing = await assertRejects(() =>
      fieldsApi.addPersonField({ CreateFieldRequest: { field_type: "varchar" } as never })
    ) as Envelope;
    assertEquals([missing.success, missing.errorCode], [false, 400]);

    await admin(pd.url, "/permissions", { method: "PUT", json: { customFields: false } });
    const dealFields = new v1.DealFieldsApi(v1cfg(pd.url, pd.credentials.PIPEDRIVE_API_TOKEN));
    const denied = await assertRejects(() =>
      dealFields.addDealField({
        CreateFieldRequest: { name: "crm_sync_id", field_type: "varchar" },
      })
    ) as Envelope;
    assertEquals(denied.errorCode, 403);
    assertMatch(denied.error, /permission/);
    assert(!pd.store.fields.some((f) => f.entity === "deal" && f.name === "crm_sync_id"));
    // A reset gives the permission back and drops API-added fields.
    await admin(pd.url, "/reset", { json: {} });
    assertEquals(pd.emulator.permissions.customFields, true);
    assert(!pd.store.fields.some((f) => f.name === "crm_sync_id"));
  } finally {
    await pd.close();
  }
});

Deno.test("v2 search: exact_match on custom fields, substring otherwise, deleted records never found", async () => {
  const pd = await startPipedrive({ seed: 82, records: 5 });
  try {
    const cfg = v2cfg(pd.url, pd.credentials.PIPEDRIVE_API_TOKEN);
    const ext = pd.store.fields.find((f) => f.entity === "deal" && f.name === "External ID")!;
    const deals = new DealsApi(cfg);
    const a = (await deals.addDeal({
      AddDealRequest: { title: "Alpha", custom_fields: { [ext.key]: "ABC-123" } },
    })).data!;
    await deals.addDeal({
      AddDealRequest: { title: "Beta", custom_fields: { [ext.key]: "ABC-1234" } },
    });
    const exact = await deals.searchDeals({
      term: "abc-123",
      fields: "custom_fields",
      exact_match: true,
    });
    assertEquals(exact.data!.items!.map((h) => h.item!.id), [a.id]);
    assertEquals(exact.data!.items![0].item!.custom_fields, ["ABC-123"]);
    const loose = await deals.searchDeals({ term: "ABC-12", fields: "custom_fields" });
    assertEquals(loose.data!.items!.length, 2);
    const byTitle = await deals.searchDeals({ term: "abc", fields: "title" });
    assertEquals(byTitle.data!.items!.length, 0, "only the fields asked for are searched");

    await deals.deleteDeal({ id: a.id! });
    const after = await deals.searchDeals({
      term: "ABC-123",
      fields: "custom_fields",
      exact_match: true,
    });
    assertEquals(after.data!.items!.length, 0);

    const persons = new PersonsApi(cfg);
    const short = await assertRejects(() => persons.searchPersons({ term: "a" })) as Envelope;
    assertEquals(short.code, "ERR_SCHEMA_VALIDATION_FAILED");
    const p = (await persons.addPerson({
      AddPersonRequest: { name: "Grace", emails: [{ value: "grace@navy.mil", primary: true }] },
    })).data!;
    const byEmail = await persons.searchPersons({ term: "grace@navy.mil", fields: "email" });
    assertEquals(byEmail.data!.items![0].item!.id, p.id);
    assertEquals(byEmail.data!.items![0].item!.emails, ["grace@navy.mil"]);
    const orgs = new OrganizationsApi(cfg);
    const o = (await orgs.addOrganization({ AddOrganizationRequest: { name: "Navy Labs" } })).data!;
    const found = await orgs.searchOrganization({ term: "navy", fields: "name" });
    assertEquals(found.data!.items!.map((h) => h.item!.id), [o.id]);
  } finally {
    await pd.close();
  }
});

Deno.test("validation: invalid email and missing deal title are 400s with Pipedrive's envelope", async () => {
  const pd = await startPipedrive({ seed: 83, records: 5 });
  try {
    const cfg = v2cfg(pd.url, pd.credentials.PIPEDRIVE_API_TOKEN);
    const persons = new PersonsApi(cfg);
    const bad = await assertRejects(() =>
      persons.addPerson({
        AddPersonRequest: { name: "X", emails: [{ value: "nope", primary: true }] },
      })
    ) as Envelope;
    assertEquals(bad.code, "ERR_SCHEMA_VALIDATION_FAILED");
    assertEquals(bad.error, "Validation failed: emails[0].value: Invalid email address");
    const id = Number(pd.store.tables.person.bySeq.find((r) => !r.isDeleted)!.id);
    const badUpdate = await assertRejects(() =>
      persons.updatePerson({
        id,
        UpdatePersonRequest: { emails: [{ value: "a@b", primary: true }] },
      })
    ) as Envelope;
    assertMatch(badUpdate.error, /Invalid email address/);
    const deals = new DealsApi(cfg);
    const noTitle = await assertRejects(() =>
      deals.addDeal({ AddDealRequest: { value: 5 } as never })
    ) as Envelope;
    assertEquals(noTitle.error, "Validation failed: body: title is required");
    const gone = await assertRejects(() =>
      deals.updateDeal({ id: 999_999, UpdateDealRequest: { title: "x" } })
    ) as Envelope;
    assertEquals(gone.error, "Deal not found");
  } finally {
    await pd.close();
  }
});

Deno.test("who changed what: API writes are change_source api with the token's user, admin edits app", async () => {
  const rx = await startReceiver();
  const pd = await startPipedrive({ seed: 84, records: 5 });
  try {
    await admin(pd.url, "/webhooks", { method: "PUT", json: { url: `${rx.url}/hook` } });
    const persons = new PersonsApi(v2cfg(pd.url, pd.credentials.PIPEDRIVE_API_TOKEN));
    const p = (await persons.addPerson({ AddPersonRequest: { name: "Echo Test" } })).data!;
    await persons.updatePerson({ id: p.id!, UpdatePersonRequest: { job_title: "API" } });
    await admin(pd.url, `/records/person/${p.id}`, { method: "PATCH", json: { job_title: "App" } });

    const { changes } = await admin(pd.url, `/changes?entity=person&id=${p.id}`) as {
      changes: Array<{ action: string; source: string; userId: number; fields: string[] | null }>;
    };
    assertEquals(
      changes.map((c) => [c.action, c.source, c.userId, c.fields]),
      [
        ["create", "api", 1, null],
        ["change", "api", 1, ["job_title"]],
        ["change", "app", 1, ["job_title"]],
      ],
    );
    const onlyApi = await admin(pd.url, `/changes?id=${p.id}&source=api`) as {
      changes: unknown[];
    };
    assertEquals(onlyApi.changes.length, 2);
    const rec = await admin(pd.url, `/records/person/${p.id}`) as {
      last_change: { action: string; change_source: string; user_id: number };
    };
    assertEquals(
      [rec.last_change.action, rec.last_change.change_source, rec.last_change.user_id],
      ["change", "app", 1],
    );

    await pd.webhooks.idle();
    const metas = rx.requests.map((r) =>
      (JSON.parse(r.body) as { meta: { action: string; change_source: string; user_id: string } })
        .meta
    );
    assertEquals(
      metas.map((m) => [m.action, m.change_source, m.user_id]),
      [["create", "api", "1"], ["change", "api", "1"], ["change", "app", "1"]],
    );
  } finally {
    await pd.close();
    await rx.close();
  }
});

Deno.test("request faults: the next N requests to one path get the status, then pass", async () => {
  const pd = await startPipedrive({ seed: 85, records: 5 });
  try {
    const id = Number(pd.store.tables.organization.bySeq.find((r) => !r.isDeleted)!.id);
    await admin(pd.url, "/request-faults", {
      method: "PUT",
      json: {
        rules: [{
          method: "patch",
          path: `/api/v2/organizations/${id}`,
          status: 429,
          times: 2,
          retryAfterSeconds: 3,
        }],
      },
    });
    const url = `${pd.url}/api/v2/organizations/${id}`;
    const headers = {
      "x-api-token": pd.credentials.PIPEDRIVE_API_TOKEN,
      "content-type": "application/json",
    };
    const patch = () =>
      fetch(url, { method: "PATCH", headers, body: JSON.stringify({ name: "Retry Ltd" }) });
    const other = await fetch(url, { headers });
    assertEquals(other.status, 200, "GET of the same path is not matched");
    await other.body?.cancel();
    for (let i = 0; i < 2; i++) {
      const r = await patch();
      assertEquals(r.status, 429);
      assertEquals(r.headers.get("retry-after"), "3");
      assertEquals(((await r.json()) as Envelope).error, "Request over limit");
    }
    const passed = await patch();
    assertEquals(passed.status, 200);
    await passed.body?.cancel();
    const left = await admin(pd.url, "/request-faults") as { rules: unknown[]; injected: number };
    assertEquals([left.rules.length, left.injected], [0, 2]);
  } finally {
    await pd.close();
  }
});
