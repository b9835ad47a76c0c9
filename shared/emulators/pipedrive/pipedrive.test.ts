/** Pipedrive sandbox driven through the official SDK (pipedrive@33, v2 and v1), unmodified. */
import { v1 } from "pipedrive";
import {
  Configuration,
  DealsApi,
  OAuth2Configuration,
  OrganizationsApi,
  PersonsApi,
  PipelinesApi,
  StagesApi,
} from "pipedrive/v2";
import {
  assert,
  assertEquals,
  assertGreater,
  assertMatch,
  assertRejects,
} from "../common/assert.ts";
import { admin } from "../common/testing.ts";
import { startPipedrive } from "./mod.ts";

interface Envelope {
  success: boolean;
  error: string;
  error_info: string;
  errorCode?: number;
  code?: string;
  data: null;
}

const v2 = (url: string, apiKey: string) =>
  new Configuration({ apiKey, basePath: `${url}/api/v2` });

Deno.test("v2 list: cursor paging, limit ≤ 500, updated_since/until, sort_by=update_time", async () => {
  const pd = await startPipedrive({ seed: 61, records: 1200 });
  try {
    const persons = new PersonsApi(v2(pd.url, pd.credentials.PIPEDRIVE_API_TOKEN));
    const seen: number[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const res = await persons.getPersons({ limit: 500, cursor });
      assert(res.success);
      seen.push(...res.data!.map((p) => p.id!));
      cursor = res.additional_data?.next_cursor ?? undefined;
      pages++;
    } while (cursor);
    const live = pd.store.tables.person.bySeq.filter((r) => !r.isDeleted).map((r) => Number(r.id));
    assertEquals(seen, live);
    assertEquals(pages, 3);

    const over = await assertRejects(() => persons.getPersons({ limit: 501 })) as Envelope;
    assertEquals(over.success, false);
    assertMatch(over.error, /less than or equal to 500/);
    assertEquals(
      over.error_info,
      "Please check developers.pipedrive.com for more information about Pipedrive API.",
    );

    // Bulk edit: 700 deals share one update_time; page through it by update_time.
    await admin(pd.url, "/records/deal/set-modified", {
      json: { count: 700, pick: "random", modifiedAt: "2024-09-01T08:00:00Z" },
    });
    const deals = new DealsApi(v2(pd.url, pd.credentials.PIPEDRIVE_API_TOKEN));
    const got: Array<{ id: number; update_time: string }> = [];
    cursor = undefined;
    do {
      const res = await deals.getDeals({
        updated_since: "2024-09-01T08:00:00Z",
        updated_until: "2024-09-01T08:00:01Z",
        sort_by: "update_time",
        sort_direction: "asc",
        limit: 250,
        cursor,
      });
      got.push(...res.data!.map((d) => ({ id: d.id!, update_time: d.update_time! })));
      cursor = res.additional_data?.next_cursor ?? undefined;
    } while (cursor);
    assertEquals(got.length, 700);
    assert(got.every((d) => d.update_time === "2024-09-01T08:00:00Z"));
    assertEquals(got.map((d) => d.id), [...got.map((d) => d.id)].sort((a, b) => a - b));
    const newest = await deals.getDeals({
      sort_by: "update_time",
      sort_direction: "desc",
      limit: 3,
    });
    const times = newest.data!.map((d) => d.update_time!);
    assertEquals(times, [...times].sort().reverse());

    const orgs = new OrganizationsApi(v2(pd.url, pd.credentials.PIPEDRIVE_API_TOKEN));
    const org = (await orgs.getOrganizations({ limit: 1 })).data![0];
    const orgPersons = await persons.getPersons({ org_id: org.id, limit: 500 });
    assert(orgPersons.data!.every((p) => p.org_id === org.id));
    const badTime = await assertRejects(() =>
      persons.getPersons({ updated_since: "yesterday" })
    ) as Envelope;
    assertEquals(badTime.code, "ERR_SCHEMA_VALIDATION_FAILED");
  } finally {
    await pd.close();
  }
});

Deno.test("v2 get/POST/PATCH/DELETE with custom_fields; 404 envelope", async () => {
  const pd = await startPipedrive({ seed: 62, records: 10 });
  try {
    const cfg = v2(pd.url, pd.credentials.PIPEDRIVE_API_TOKEN);
    const persons = new PersonsApi(cfg);
    const tier = pd.store.fields.find((f) => f.entity === "person" && f.name === "Customer tier")!;
    const ext = pd.store.fields.find((f) => f.entity === "person" && f.name === "External ID")!;
    const created = await persons.addPerson({
      AddPersonRequest: {
        name: "Grace Hopper",
        emails: [{ value: "Grace@Navy.MIL", primary: true, label: "work" }],
        phones: [{ value: "+1 (202) 555-0199", primary: true, label: "work" }],
        custom_fields: { [tier.key]: 11, [ext.key]: "ext-1" },
      },
    });
    const p = created.data!;
    assertEquals([p.first_name, p.last_name], ["Grace", "Hopper"]);
    assertEquals(p.emails![0].value, "Grace@Navy.MIL");
    assertEquals(p.custom_fields![tier.key], 11);
    assertMatch(p.add_time!, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);

    const upd = await persons.updatePerson({
      id: p.id!,
      UpdatePersonRequest: { job_title: "Rear Admiral", custom_fields: { [tier.key]: 12 } },
    });
    assertEquals(upd.data!.job_title, "Rear Admiral");
    const got = await persons.getPerson({ id: p.id! });
    assertEquals(got.data!.custom_fields![tier.key], 12);
    const badEnum = await assertRejects(() =>
      persons.updatePerson({
        id: p.id!,
        UpdatePersonRequest: { custom_fields: { [tier.key]: 99 } },
      })
    ) as Envelope;
    assertEquals(badEnum.code, "ERR_SCHEMA_VALIDATION_FAILED");

    const del = await persons.deletePerson({ id: p.id! });
    assertEquals(del.data!.id, p.id);
    const afterDel = await persons.getPerson({ id: p.id! });
    assertEquals(afterDel.data!.is_deleted, true);
    const nf = await assertRejects(() => persons.getPerson({ id: 999_999 })) as Envelope;
    assertEquals(nf, {
      success: false,
      error: "Person not found",
      code: "ERR_ENTITY_NOT_FOUND",
      error_info: "Please check developers.pipedrive.com for more information about Pipedrive API.",
      data: null,
      additional_data: null,
    } as unknown as Envelope);

    const deals = new DealsApi(cfg);
    const org = await new OrganizationsApi(cfg).addOrganization({
      AddOrganizationRequest: { name: "Navy" },
    });
    const deal = await deals.addDeal({
      AddDealRequest: {
        title: "Compiler",
        value: 5000,
        currency: "EUR",
        org_id: org.data!.id,
        stage_id: 3,
      },
    });
    assertEquals([deal.data!.pipeline_id, deal.data!.status], [1, "open"]);
    const won = await deals.updateDeal({
      id: deal.data!.id!,
      UpdateDealRequest: { status: "won" },
    });
    assert(won.data!.won_time);
    const noTitle = await assertRejects(() =>
      deals.addDeal({ AddDealRequest: {} as never })
    ) as Envelope;
    assertMatch(noTitle.error, /title is required/);

    const pipelines = await new PipelinesApi(cfg).getPipelines();
    assertEquals(pipelines.data!.map((x) => x.name), ["Sales Pipeline", "Renewals"]);
    const stages = await new StagesApi(cfg).getStages({ pipeline_id: 2 });
    assertEquals(stages.data!.length, 2);
  } finally {
    await pd.close();
  }
});

Deno.test("v1 users and leads, merges", async () => {
  const pd = await startPipedrive({ seed: 63, records: 20 });
  try {
    const cfg = new v1.Configuration({
      apiKey: pd.credentials.PIPEDRIVE_API_TOKEN,
      basePath: `${pd.url}/v1`,
    });
    const users = await new v1.UsersApi(cfg).getUsers();
    assertGreater(users.data!.length, 1);
    const me = await new v1.UsersApi(cfg).getCurrentUser();
    assertEquals(me.data!.id, 1);
    const leadsApi = new v1.LeadsApi(cfg);
    const leads = await leadsApi.getLeads({ limit: 3, start: 0, sort: "update_time" });
    assertEquals(leads.data!.length, 3);
    assert(leads.additional_data?.more_items_in_collection);
    const person = pd.store.tables.person.bySeq.find((r) => !r.isDeleted)!;
    const lead = await leadsApi.addLead({
      AddLeadRequest: {
        title: "New lead",
        person_id: Number(person.id),
        value: { amount: 100, currency: "EUR" },
      },
    });
    assertMatch(lead.data!.id, /^[0-9a-f-]{36}$/);
    const upd = await leadsApi.updateLead({
      id: lead.data!.id,
      UpdateLeadRequest: { title: "Renamed lead" },
    });
    assertEquals(upd.data!.title, "Renamed lead");
    await leadsApi.deleteLead({ id: lead.data!.id });
    const gone = await assertRejects(() => leadsApi.getLead({ id: lead.data!.id })) as Envelope;
    assertEquals(gone.error, "Lead not found");

    const [a, b] = pd.store.tables.person.bySeq.filter((r) => !r.isDeleted).slice(0, 2);
    await new v1.PersonsApi(cfg).mergePersons({
      id: Number(b.id),
      MergePersonsRequest: { merge_with_id: Number(a.id) },
    });
    assert(pd.store.get("person", b.id)!.isDeleted);
    assertEquals(pd.store.get("person", b.id)!.mergedTo, a.id);
  } finally {
    await pd.close();
  }
});

Deno.test("auth: x-api-token, OAuth bearer with token endpoint refresh, 401 envelope", async () => {
  const pd = await startPipedrive({ seed: 64, records: 5, tokenTtlSeconds: 60 });
  try {
    const bad = await assertRejects(() =>
      new PersonsApi(v2(pd.url, "nope")).getPersons()
    ) as Envelope;
    assertEquals(bad.errorCode, 401);
    assertEquals(bad.error, "unauthorized access");

    const redirectUri = "http://127.0.0.1:9/cb";
    const oauth = new OAuth2Configuration({
      clientId: pd.credentials.PIPEDRIVE_CLIENT_ID,
      clientSecret: pd.credentials.PIPEDRIVE_CLIENT_SECRET,
      redirectUri,
      host: pd.url,
    });
    const auth = await fetch(oauth.authorizationUrl, { redirect: "manual" });
    await auth.body?.cancel();
    const code = new URL(auth.headers.get("location")!).searchParams.get("code")!;
    const token = await oauth.authorize(code) as unknown as {
      access_token: string;
      api_domain: string;
      expires_in: number;
    };
    assertEquals(token.api_domain, pd.url);
    assertEquals(token.expires_in, 60);
    assertEquals(oauth.basePath, `${pd.url}/api/v2`);
    const viaOAuth = await new DealsApi(oauth as unknown as Configuration).getDeals({ limit: 2 });
    assertEquals(viaOAuth.data!.length, 2);

    await admin(pd.url, "/tokens/expire", { json: {} });
    const expired = await assertRejects(() =>
      new DealsApi(oauth as unknown as Configuration).getDeals({ limit: 2 })
    ) as Envelope;
    assertEquals(expired.errorCode, 401);
    const tokenOf = () => (oauth as unknown as { accessToken: string }).accessToken;
    const before = tokenOf();
    await oauth.tokenRefresh();
    assert(tokenOf() !== before);
    const again = await new DealsApi(oauth as unknown as Configuration).getDeals({ limit: 2 });
    assertEquals(again.data!.length, 2);
  } finally {
    await pd.close();
  }
});

Deno.test("burst rate limit: x-ratelimit-* headers and 429 envelope (the SDK does not retry)", async () => {
  const pd = await startPipedrive({
    seed: 65,
    records: 3,
    rateLimit: { burst: 3, windowMs: 2000 },
  });
  try {
    const res = await fetch(`${pd.url}/api/v2/persons?limit=1`, {
      headers: { "x-api-token": pd.credentials.PIPEDRIVE_API_TOKEN },
    });
    await res.body?.cancel();
    assertEquals(res.headers.get("x-ratelimit-limit"), "3");
    assertEquals(res.headers.get("x-ratelimit-remaining"), "2");
    assertEquals(res.headers.get("x-ratelimit-reset"), "2");
    const persons = new PersonsApi(v2(pd.url, pd.credentials.PIPEDRIVE_API_TOKEN));
    await persons.getPersons({ limit: 1 });
    await persons.getPersons({ limit: 1 });
    const limited = await assertRejects(() => persons.getPersons({ limit: 1 })) as Envelope;
    assertEquals(limited.errorCode, 429);
    assertEquals(limited.success, false);
    assertEquals(pd.counters.count("GET /api/v2/persons", 429), 1);
  } finally {
    await pd.close();
  }
});
