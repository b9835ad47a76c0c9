/**
 * HubSpot sandbox driven through the official SDK (@hubspot/api-client),
 * unmodified, pointed at the emulator with `basePath`.
 */
import {
  assert,
  assertEquals,
  assertGreater,
  assertMatch,
  assertRejects,
} from "../common/assert.ts";
import { admin } from "../common/testing.ts";
import { startHubSpot } from "./mod.ts";
import { hubspotClient } from "./test_client.ts";

// SDK enums live in deep codegen modules; plain strings are what goes on the wire.
const op = (o: string) => o as never;

interface SdkError {
  code: number;
  body: Record<string, unknown>;
  headers: Record<string, string>;
}

Deno.test("list, get, properties, archived and errors", async () => {
  const hs = await startHubSpot({ seed: 11, records: 30 });
  try {
    const client = hubspotClient(hs.url, hs.credentials.HUBSPOT_ACCESS_TOKEN);
    const page = await client.crm.contacts.basicApi.getPage(
      10,
      undefined,
      ["email", "phone"],
      undefined,
      ["companies"],
    );
    assertEquals(page.results.length, 10);
    assert(page.paging?.next?.after);
    const first = page.results[0];
    assert(
      "email" in first.properties && "phone" in first.properties &&
        "hs_object_id" in first.properties,
    );
    assert(first.createdAt instanceof Date);
    // Comma-separated properties work the same as repeated ones.
    const raw = await fetch(
      `${hs.url}/crm/v3/objects/contacts?limit=2&properties=email,firstname`,
      {
        headers: { authorization: `Bearer ${hs.credentials.HUBSPOT_ACCESS_TOKEN}` },
      },
    );
    assertEquals(raw.headers.get("content-type"), "application/json;charset=utf-8");
    const rawBody = await raw.json();
    assert("firstname" in rawBody.results[0].properties);

    const all = await client.crm.contacts.getAll(7, undefined, ["email"]);
    const live = hs.store.tables.contacts.bySeq.filter((r) => !r.archived);
    assertEquals(all.length, live.length);
    assertEquals(new Set(all.map((c) => c.id)).size, all.length);

    const archived = await client.crm.contacts.basicApi.getPage(
      100,
      undefined,
      undefined,
      undefined,
      undefined,
      true,
    );
    assert(archived.results.every((r) => r.archived));

    const one = await client.crm.contacts.basicApi.getById(first.id, ["email", "lastname"]);
    assertEquals(one.id, first.id);
    const withEmail = live.find((r) => r.properties.email)!;
    const byEmail = await client.crm.contacts.basicApi.getById(
      withEmail.properties.email!.toUpperCase(),
      ["email"],
      undefined,
      undefined,
      false,
      "email",
    );
    assertEquals(byEmail.id, withEmail.id);

    const err = await assertRejects(() => client.crm.contacts.basicApi.getById("123")) as SdkError;
    assertEquals(err.code, 404);
    assertEquals(err.body.category, "OBJECT_NOT_FOUND");
    assertMatch(String(err.body.correlationId), /^[0-9a-f-]{36}$/);

    const companies = await client.crm.companies.getAll(100, undefined, ["name", "domain"]);
    assertGreater(companies.length, 20);
    const deals = await client.crm.deals.basicApi.getPage(
      5,
      undefined,
      ["dealname", "amount", "dealstage"],
      undefined,
      ["contacts", "companies"],
    );
    assertEquals(deals.results.length, 5);

    const bad = await assertRejects(() => client.crm.contacts.basicApi.getPage(101)) as SdkError;
    assertEquals(bad.code, 400);
  } finally {
    await hs.close();
  }
});

Deno.test("create, update, archive with HubSpot's validation rules", async () => {
  const hs = await startHubSpot({ seed: 12, records: 5 });
  try {
    const client = hubspotClient(hs.url, hs.credentials.HUBSPOT_ACCESS_TOKEN);
    const company = await client.crm.companies.basicApi.create({
      properties: { name: "Sandbox GmbH", domain: "sandbox.example" },
      associations: [],
    });
    const c = await client.crm.contacts.basicApi.create({
      properties: { email: "  Ada.Lovelace@Example.COM ", firstname: "Ada" },
      associations: [{
        to: { id: company.id },
        types: [{ associationCategory: op("HUBSPOT_DEFINED"), associationTypeId: 1 }],
      }],
    });
    assertEquals(c.properties.email, "ada.lovelace@example.com");
    assertEquals(hs.store.associations("contacts", c.id, "companies"), [{
      type: "companies",
      id: company.id,
      primary: true,
    }]);

    const dup = await assertRejects(() =>
      client.crm.contacts.basicApi.create({
        properties: { email: "ADA.lovelace@example.com" },
        associations: [],
      })
    ) as SdkError;
    assertEquals(dup.code, 409);
    assertEquals(dup.body.category, "CONFLICT");
    assertMatch(String(dup.body.message), new RegExp(`Existing ID: ${c.id}`));

    const unknown = await assertRejects(() =>
      client.crm.contacts.basicApi.create({ properties: { nope: "x" }, associations: [] })
    ) as SdkError;
    assertEquals(unknown.code, 400);
    assertEquals(unknown.body.category, "VALIDATION_ERROR");
    assertMatch(String(unknown.body.message), /PROPERTY_DOESNT_EXIST/);
    const readOnly = await assertRejects(() =>
      client.crm.contacts.basicApi.update(c.id, { properties: { lastmodifieddate: "1" } })
    ) as SdkError;
    assertMatch(String(readOnly.body.message), /READ_ONLY_VALUE/);
    const badEmail = await assertRejects(() =>
      client.crm.contacts.basicApi.update(c.id, { properties: { email: "not-an-email" } })
    ) as SdkError;
    assertMatch(String(badEmail.body.message), /INVALID_EMAIL/);

    const before = hs.store.tables.contacts.get(c.id)!.modifiedAt;
    await new Promise((r) => setTimeout(r, 2));
    const u = await client.crm.contacts.basicApi.update(c.id, {
      properties: { lastname: "Lovelace" },
    });
    assertEquals(u.properties.lastname, "Lovelace");
    assertGreater(Date.parse(u.properties.lastmodifieddate!), before);

    await client.crm.contacts.basicApi.archive(c.id);
    await assertRejects(() => client.crm.contacts.basicApi.getById(c.id));
    const arch = await client.crm.contacts.basicApi.getById(
      c.id,
      undefined,
      undefined,
      undefined,
      true,
    );
    assert(arch.archived);
    // Archiving frees the email.
    const again = await client.crm.contacts.basicApi.create({
      properties: { email: "ada.lovelace@example.com" },
      associations: [],
    });
    assert(again.id !== c.id);

    const deal = await client.crm.deals.basicApi.create({
      properties: {
        dealname: "Pilot",
        amount: "1200.50",
        pipeline: "default",
        dealstage: "closedwon",
      },
      associations: [],
    });
    assertEquals(deal.properties.amount, "1200.5");
    assertEquals(hs.store.tables.deals.get(deal.id)!.properties.hs_is_closed_won, "true");
    const stage = await assertRejects(() =>
      client.crm.deals.basicApi.update(deal.id, { properties: { dealstage: "nope" } })
    ) as SdkError;
    assertMatch(String(stage.body.message), /INVALID_OPTION/);
  } finally {
    await hs.close();
  }
});

Deno.test("batch read/create/update/upsert/archive with 200/201/207/204 and the 100-input cap", async () => {
  const hs = await startHubSpot({ seed: 13, records: 5 });
  try {
    const client = hubspotClient(hs.url, hs.credentials.HUBSPOT_ACCESS_TOKEN);
    const created = await client.crm.contacts.batchApi.create({
      inputs: Array.from(
        { length: 100 },
        (_, i) => ({
          properties: { email: `batch${i}@example.com`, firstname: `B${i}` },
          associations: [],
        }),
      ),
    });
    assertEquals(created.results.length, 100);
    assertEquals(created.status, "COMPLETE");

    const tooMany = await assertRejects(() =>
      client.crm.contacts.batchApi.create({
        inputs: Array.from(
          { length: 101 },
          (_, i) => ({ properties: { email: `x${i}@example.com` }, associations: [] }),
        ),
      })
    ) as SdkError;
    assertEquals(tooMany.code, 400);
    const conflict = await assertRejects(() =>
      client.crm.contacts.batchApi.create({
        inputs: [{ properties: { email: "fresh@example.com" }, associations: [] }, {
          properties: { email: "batch3@example.com" },
          associations: [],
        }],
      })
    ) as SdkError;
    assertEquals(conflict.code, 409);
    assertEquals(
      hs.store.byUnique("contacts", "email", "fresh@example.com"),
      undefined,
      "all-or-nothing",
    );

    const ids = created.results.slice(0, 3).map((r) => r.id);
    const read = await client.crm.contacts.batchApi.read({
      inputs: ids.map((id) => ({ id })),
      properties: ["email"],
      propertiesWithHistory: [],
    });
    assertEquals(read.results.length, 3);
    const partial = await client.crm.contacts.batchApi.read({
      inputs: [{ id: ids[0] }, { id: "999" }],
      properties: ["email"],
      propertiesWithHistory: [],
    });
    assertEquals(partial.results.length, 1);
    assertEquals((partial as unknown as { numErrors: number }).numErrors, 1);
    const byEmail = await client.crm.contacts.batchApi.read({
      inputs: [{ id: "batch7@example.com" }],
      idProperty: "email",
      properties: ["firstname"],
      propertiesWithHistory: [],
    });
    assertEquals(byEmail.results[0].properties.firstname, "B7");

    const upd = await client.crm.contacts.batchApi.update({
      inputs: ids.map((id) => ({ id, properties: { jobtitle: "CTO" } })),
    });
    assertEquals(upd.results.map((r) => r.properties.jobtitle), ["CTO", "CTO", "CTO"]);
    const upd207 = await client.crm.contacts.batchApi.update({
      inputs: [{ id: ids[0], properties: { jobtitle: "CEO" } }, {
        id: "1",
        properties: { jobtitle: "x" },
      }],
    });
    assertEquals((upd207 as unknown as { numErrors: number }).numErrors, 1);

    const ups = await client.crm.contacts.batchApi.upsert({
      inputs: [
        { id: "batch1@example.com", idProperty: "email", properties: { firstname: "Updated" } },
        { id: "brand.new@example.com", idProperty: "email", properties: { firstname: "New" } },
      ],
    });
    const flags = ups.results.map((r) => (r as unknown as { _new?: boolean; "new"?: boolean }));
    assertEquals(ups.results.length, 2);
    assert(flags.some((f) => f._new === true || f.new === true));
    assertEquals(
      hs.store.byUnique("contacts", "email", "batch1@example.com")!.properties.firstname,
      "Updated",
    );
    const upsExt = await client.crm.companies.batchApi.upsert({
      inputs: [{ id: "ext-1", idProperty: "external_id", properties: { name: "Ext Co" } }],
    });
    assertEquals(upsExt.results[0].properties.external_id, "ext-1");

    await client.crm.contacts.batchApi.archive({ inputs: ids.map((id) => ({ id })) });
    assert(ids.every((id) => hs.store.tables.contacts.get(id)!.archived));
  } finally {
    await hs.close();
  }
});

Deno.test("merge and GDPR delete", async () => {
  const hs = await startHubSpot({ seed: 14, records: 5 });
  try {
    const client = hubspotClient(hs.url, hs.credentials.HUBSPOT_ACCESS_TOKEN);
    const a = await client.crm.contacts.basicApi.create({
      properties: { email: "a@merge.test", firstname: "A" },
      associations: [],
    });
    const b = await client.crm.contacts.basicApi.create({
      properties: { email: "b@merge.test", jobtitle: "Engineer" },
      associations: [],
    });
    const merged = await client.crm.contacts.basicApi.merge({
      primaryObjectId: a.id,
      objectIdToMerge: b.id,
    });
    assertEquals(merged.id, a.id);
    const viaOld = await client.crm.contacts.basicApi.getById(b.id, [
      "jobtitle",
      "hs_merged_object_ids",
      "hs_additional_emails",
    ]);
    assertEquals(viaOld.id, a.id);
    assertEquals(viaOld.properties.jobtitle, "Engineer");
    assertEquals(viaOld.properties.hs_merged_object_ids, b.id);
    assertEquals(viaOld.properties.hs_additional_emails, "b@merge.test");
    const listed = await client.crm.contacts.getAll(100);
    assert(!listed.some((r) => r.id === b.id));

    await client.crm.contacts.basicApi.purge({ objectId: a.id });
    assertEquals(hs.store.find("contacts", a.id), undefined);
  } finally {
    await hs.close();
  }
});

Deno.test("search: filters, sorts, tiebreak paging, 10k cap and its own rate limit", async () => {
  const hs = await startHubSpot({
    seed: 15,
    records: 10_300,
    rateLimit: { searchPerSecond: 1000, tenSecondly: 100_000 },
  });
  try {
    const client = hubspotClient(hs.url, hs.credentials.HUBSPOT_ACCESS_TOKEN);
    // Bulk edit: 300 contacts share one modification instant.
    const at = Date.UTC(2025, 5, 1);
    await admin(hs.url, "/records/contacts/set-modified", {
      json: { count: 300, pick: "random", modifiedAt: new Date(at).toISOString() },
    });
    const res = await client.crm.contacts.searchApi.doSearch({
      filterGroups: [{
        filters: [{ propertyName: "lastmodifieddate", operator: op("GTE"), value: String(at) }],
      }],
      sorts: [{ propertyName: "lastmodifieddate", direction: "ASCENDING" } as never],
      properties: ["email", "lastmodifieddate"],
      limit: 200,
      after: "0",
    });
    assertEquals(res.total, 300);
    assertEquals(res.results.length, 200);
    // Page with GTE + hs_object_id tiebreak instead of `after`.
    const lastId = res.results[res.results.length - 1].id;
    const next = await client.crm.contacts.searchApi.doSearch({
      filterGroups: [{
        filters: [
          { propertyName: "lastmodifieddate", operator: op("EQ"), value: String(at) },
          { propertyName: "hs_object_id", operator: op("GT"), value: lastId },
        ],
      }],
      sorts: [{ propertyName: "hs_object_id", direction: "ASCENDING" } as never],
      properties: ["email"],
      limit: 200,
      after: "0",
    });
    assertEquals(next.total, 100);
    const seen = new Set([...res.results, ...next.results].map((r) => r.id));
    assertEquals(seen.size, 300);

    // No filter: 10,000 reachable, paging.next points at 10,000, which is a 400.
    const big = await client.crm.contacts.searchApi.doSearch({
      filterGroups: [],
      sorts: [],
      properties: [],
      limit: 200,
      after: "9800",
    });
    assertGreater(big.total, 10_000);
    assertEquals(big.paging?.next?.after, "10000");
    const cap = await assertRejects(() =>
      client.crm.contacts.searchApi.doSearch({
        filterGroups: [],
        sorts: [],
        properties: [],
        limit: 200,
        after: "10000",
      })
    ) as SdkError;
    assertEquals(cap.code, 400);
    const tooBig = await assertRejects(() =>
      client.crm.contacts.searchApi.doSearch({
        filterGroups: [],
        sorts: [],
        properties: [],
        limit: 201,
        after: "0",
      })
    ) as SdkError;
    assertEquals(tooBig.code, 400);

    const q = await client.crm.companies.searchApi.doSearch({
      filterGroups: [{
        filters: [{
          propertyName: "hs_object_id",
          operator: op("IN"),
          values: ["20000001", "20000002"],
        }],
      }],
      sorts: ["-hs_object_id"],
      properties: ["name"],
      limit: 10,
      after: "0",
    });
    assertEquals(q.results.map((r) => r.id), ["20000002", "20000001"]);

    // Search limit: 5/s, 429 "secondly" body, no rate-limit headers.
    await admin(hs.url, "/rate-limit", { method: "PUT", json: { searchPerSecond: 5 } });
    const statuses: number[] = [];
    let limited: Response | undefined;
    for (let i = 0; i < 7; i++) {
      const r = await fetch(`${hs.url}/crm/v3/objects/deals/search`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${hs.credentials.HUBSPOT_ACCESS_TOKEN}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({ limit: 1 }),
      });
      statuses.push(r.status);
      if (r.status === 429) limited = r;
      assertEquals(r.headers.get("x-hubspot-ratelimit-max"), null);
      await r.body?.cancel();
    }
    assertEquals(statuses.filter((s) => s === 429).length, 2);
    assert(limited);
  } finally {
    await hs.close();
  }
});

Deno.test("owners, properties and associations v4", async () => {
  const hs = await startHubSpot({ seed: 16, records: 20 });
  try {
    const client = hubspotClient(hs.url, hs.credentials.HUBSPOT_ACCESS_TOKEN);
    const owners = await client.crm.owners.ownersApi.getPage(undefined, undefined, 2);
    assertEquals(owners.results.length, 2);
    assert(owners.paging?.next?.after);
    const o = await client.crm.owners.ownersApi.getById(Number(owners.results[0].id));
    assertEquals(o.email, owners.results[0].email);
    const byEmail = await client.crm.owners.ownersApi.getPage(owners.results[1].email);
    assertEquals(byEmail.results.map((x) => x.id), [owners.results[1].id]);

    const pipelines = await client.crm.pipelines.pipelinesApi.getAll("deals");
    assertEquals(pipelines.results.map((p) => p.id), [
      "default",
      "75e28846-ad0d-4be2-a027-5e1da6590b98",
    ]);
    assert(
      pipelines.results[0].stages.some((s) =>
        s.id === "closedwon" && s.metadata?.isClosed === "true"
      ),
    );
    const props = await client.crm.properties.coreApi.getAll("contacts");
    assert(props.results.some((p) => p.name === "lastmodifieddate"));
    await client.crm.properties.coreApi.create("deals", {
      name: "sync_hash",
      label: "Sync hash",
      type: op("string"),
      fieldType: op("text"),
      groupName: "dealinformation",
    });
    const d = await client.crm.deals.basicApi.create({
      properties: { dealname: "With custom", sync_hash: "abc" },
      associations: [],
    });
    assertEquals(d.properties.sync_hash, "abc");

    const contact = hs.store.tables.contacts.bySeq.find((r) => !r.archived)!;
    const company = hs.store.tables.companies.bySeq.find((r) => !r.archived)!;
    const deal = hs.store.tables.deals.bySeq.find((r) => !r.archived)!;
    await client.crm.associations.v4.basicApi.createDefault(
      "deals",
      deal.id,
      "contacts",
      contact.id,
    );
    const page = await client.crm.associations.v4.basicApi.getPage("deals", deal.id, "contacts");
    assert(
      page.results.some((r) =>
        String(r.toObjectId) === contact.id && r.associationTypes.some((t) => t.typeId === 3)
      ),
    );
    const labelled = await client.crm.associations.v4.basicApi.create(
      "contacts",
      contact.id,
      "companies",
      company.id,
      [
        { associationCategory: op("HUBSPOT_DEFINED"), associationTypeId: 1 },
      ],
    );
    assertEquals(labelled.labels, ["Primary"]);
    assertEquals(
      hs.store.tables.contacts.get(contact.id)!.properties.associatedcompanyid,
      company.id,
    );
    const batch = await client.crm.associations.v4.batchApi.getPage("contacts", "companies", {
      inputs: [{ id: contact.id }],
    });
    assert(
      batch.results[0].to.some((t) =>
        String(t.toObjectId) === company.id && t.associationTypes.some((x) => x.typeId === 1)
      ),
    );
    await client.crm.associations.v4.batchApi.create("companies", "deals", {
      inputs: [{
        _from: { id: company.id },
        to: { id: deal.id },
        types: [{ associationCategory: op("HUBSPOT_DEFINED"), associationTypeId: 342 }],
      }],
    } as never);
    assert(hs.store.associations("deals", deal.id, "companies").some((a) => a.id === company.id));
    await client.crm.associations.v4.basicApi.archive("deals", deal.id, "contacts", contact.id);
    assert(!hs.store.associations("deals", deal.id, "contacts").some((a) => a.id === contact.id));
    await client.crm.associations.v4.batchApi.archive(
      "companies",
      "deals",
      { inputs: [{ _from: { id: company.id }, to: [{ id: deal.id }] }] } as never,
    );
    assert(!hs.store.associations("deals", deal.id, "companies").some((a) => a.id === company.id));
  } finally {
    await hs.close();
  }
});

Deno.test("OAuth: refresh, authorization code, expiry and revocation", async () => {
  const hs = await startHubSpot({ seed: 17, records: 3 });
  try {
    const creds = hs.credentials;
    const client = hubspotClient(hs.url, creds.HUBSPOT_ACCESS_TOKEN);
    await client.crm.contacts.basicApi.getPage(1);

    await admin(hs.url, "/tokens/expire", { json: {} });
    const expired = await assertRejects(() => client.crm.contacts.basicApi.getPage(1)) as SdkError;
    assertEquals(expired.code, 401);
    assertEquals(expired.body.category, "EXPIRED_AUTHENTICATION");

    const tok = await client.oauth.tokensApi.create(
      "refresh_token",
      undefined,
      undefined,
      creds.HUBSPOT_CLIENT_ID,
      creds.HUBSPOT_CLIENT_SECRET,
      creds.HUBSPOT_REFRESH_TOKEN,
    );
    assertEquals(tok.expiresIn, 1800);
    assertEquals(tok.refreshToken, creds.HUBSPOT_REFRESH_TOKEN);
    const fresh = hubspotClient(hs.url, tok.accessToken);
    assertEquals((await fresh.crm.contacts.basicApi.getPage(1)).results.length, 1);

    const badSecret = await assertRejects(() =>
      client.oauth.tokensApi.create(
        "refresh_token",
        undefined,
        undefined,
        creds.HUBSPOT_CLIENT_ID,
        "wrong",
        creds.HUBSPOT_REFRESH_TOKEN,
      )
    ) as SdkError;
    assertEquals(badSecret.code, 400);

    const redirect = "http://127.0.0.1:9/callback";
    const auth = await fetch(
      `${hs.url}/oauth/authorize?client_id=${creds.HUBSPOT_CLIENT_ID}&redirect_uri=${
        encodeURIComponent(redirect)
      }&scope=crm.objects.contacts.read&state=s1`,
      { redirect: "manual" },
    );
    await auth.body?.cancel();
    assertEquals(auth.status, 302);
    const loc = new URL(auth.headers.get("location")!);
    assertEquals(loc.searchParams.get("state"), "s1");
    const byCode = await client.oauth.tokensApi.create(
      "authorization_code",
      loc.searchParams.get("code")!,
      redirect,
      creds.HUBSPOT_CLIENT_ID,
      creds.HUBSPOT_CLIENT_SECRET,
    );
    assert(byCode.accessToken && byCode.refreshToken);
    const info = await client.oauth.accessTokensApi.get(byCode.accessToken);
    assertEquals(info.hubId, Number(creds.HUBSPOT_PORTAL_ID));

    await admin(hs.url, "/tokens/revoke", { json: { kind: "all" } });
    const revoked = await assertRejects(() => fresh.crm.contacts.basicApi.getPage(1)) as SdkError;
    assertEquals(revoked.code, 401);
    const noRefresh = await assertRejects(() =>
      client.oauth.tokensApi.create(
        "refresh_token",
        undefined,
        undefined,
        creds.HUBSPOT_CLIENT_ID,
        creds.HUBSPOT_CLIENT_SECRET,
        creds.HUBSPOT_REFRESH_TOKEN,
      )
    ) as SdkError;
    assertEquals(noRefresh.body.status, "BAD_REFRESH_TOKEN");
  } finally {
    await hs.close();
  }
});

Deno.test("rate limit headers and 429 bodies; the SDK's own retry handles 10-second, secondly and injected 429s", async () => {
  // The SDK waits 10 s × attempt after TEN_SECONDLY_ROLLING and 1 s × attempt after a
  // secondly 429 (RetryDecorator); those real waits run concurrently here.
  const hs = await startHubSpot({
    seed: 18,
    records: 3,
    rateLimit: { tenSecondly: 5, intervalMs: 2000, daily: 1000 },
  });
  const faulty = await startHubSpot({
    seed: 19,
    records: 40,
    faults: { rate429: 0.3, error5xxRate: 0.1 },
    fault429Policy: "SECONDLY",
  });
  try {
    const token = hs.credentials.HUBSPOT_PRIVATE_APP_TOKEN;
    const statuses: number[] = [];
    let last: Response | undefined;
    for (let i = 0; i < 6; i++) {
      last = await fetch(`${hs.url}/crm/v3/objects/contacts?limit=1`, {
        headers: { authorization: `Bearer ${token}` },
      });
      statuses.push(last.status);
      if (i === 0) {
        assertEquals(last.headers.get("x-hubspot-ratelimit-max"), "5");
        assertEquals(last.headers.get("x-hubspot-ratelimit-remaining"), "4");
        assertEquals(last.headers.get("x-hubspot-ratelimit-interval-milliseconds"), "2000");
        assertEquals(last.headers.get("x-hubspot-ratelimit-daily"), "1000");
      }
      if (i < 5) await last.body?.cancel();
    }
    assertEquals(statuses, [200, 200, 200, 200, 200, 429]);
    const body = await last!.json();
    assertEquals(body.policyName, "TEN_SECONDLY_ROLLING");
    assertEquals(body.errorType, "RATE_LIMIT");
    assertEquals(last!.headers.get("content-type"), "application/json;charset=utf-8");

    // Both clients are created before either runs: they share the SDK's singleton retry setting.
    const client = hubspotClient(hs.url, token, 3);
    const faultyClient = hubspotClient(faulty.url, faulty.credentials.HUBSPOT_ACCESS_TOKEN, 6);
    const [page, all] = await Promise.all([
      client.crm.contacts.basicApi.getPage(1),
      faultyClient.crm.contacts.getAll(5, undefined, ["email"]),
    ]);
    assertEquals(page.results.length, 1);
    assertEquals(hs.counters.status(429), 2);
    assertEquals(all.length, faulty.store.tables.contacts.bySeq.filter((r) => !r.archived).length);
    const counters = await admin(faulty.url, "/counters") as {
      byStatus: Record<string, number>;
      faultsInjected: Record<string, number>;
    };
    assertGreater(counters.byStatus["429"] ?? 0, 0);
    assertEquals(counters.faultsInjected["429"], counters.byStatus["429"]);
    assertEquals(counters.byStatus["200"], 8);
  } finally {
    await hs.close();
    await faulty.close();
  }
});

Deno.test("faults are deterministic for a seed and a request sequence", async () => {
  const run = async () => {
    const e = await startHubSpot({
      seed: 21,
      records: 3,
      faults: { rate429: 0.3, error5xxRate: 0.2, unauthorizedRate: 0.1 },
    });
    try {
      const out: number[] = [];
      for (let i = 0; i < 40; i++) {
        const r = await fetch(`${e.url}/crm/v3/objects/deals?limit=1`, {
          headers: { authorization: `Bearer ${e.credentials.HUBSPOT_ACCESS_TOKEN}` },
        });
        await r.body?.cancel();
        out.push(r.status);
      }
      return out;
    } finally {
      await e.close();
    }
  };
  const a = await run();
  assertEquals(await run(), a);
  assert(a.includes(429) && a.includes(502) && a.includes(401) && a.includes(200));
});
