/**
 * Multi-account sandboxes: many portals / orgs / companies behind one port, routed by
 * credential, isolated from each other, created lazily and deterministically, driven through
 * the official SDKs unmodified.
 */
import jsforce from "jsforce";
import { Configuration, OAuth2Configuration, PersonsApi } from "pipedrive/v2";
import { assert, assertEquals, assertNotEquals } from "./common/assert.ts";
import { admin } from "./common/testing.ts";
import type { AccountListing } from "./common/tenancy.ts";
import { startHubSpot } from "./hubspot/mod.ts";
import { hubspotClient } from "./hubspot/test_client.ts";
import { startPipedrive } from "./pipedrive/mod.ts";
import { startSalesforce } from "./salesforce/mod.ts";
import { sfConnection } from "./salesforce/test_client.ts";

interface Listing {
  count: number;
  accounts: AccountListing[];
}

const accountsOf = async (url: string, query = "") =>
  await admin(url, `/accounts${query}`) as Listing;

const starters = {
  hubspot: startHubSpot,
  salesforce: startSalesforce,
  pipedrive: startPipedrive,
} as const;

/** One authenticated read through each provider's API with an account's credentials. */
async function apiRead(provider: keyof typeof starters, url: string, c: Record<string, string>) {
  const res = provider === "hubspot"
    ? await fetch(`${url}/crm/v3/objects/contacts?limit=100`, {
      headers: { authorization: `Bearer ${c.HUBSPOT_ACCESS_TOKEN}` },
    })
    : provider === "salesforce"
    ? await fetch(`${url}/services/data/v62.0/query?q=SELECT+Id,LastName+FROM+Contact`, {
      headers: { authorization: `Bearer ${c.SALESFORCE_ACCESS_TOKEN}` },
    })
    : await fetch(`${url}/api/v2/persons?limit=100`, {
      headers: { "x-api-token": c.PIPEDRIVE_API_TOKEN },
    });
  return { status: res.status, body: await res.json() };
}

Deno.test("accounts: account 0 is the single-account sandbox; others are created on first use, listed, deterministic across restarts", async () => {
  for (const provider of ["hubspot", "salesforce", "pipedrive"] as const) {
    const start = starters[provider];
    const single = await start({ seed: 41, records: 3 });
    const first = await start({ seed: 41, records: 3, accounts: 6, tenantRecords: 2 });
    let second: Awaited<ReturnType<typeof start>> | undefined;
    try {
      // Account 0 keeps the single-account credentials (the ready line's env) and data.
      const norm = (c: Record<string, string>, url: string) =>
        JSON.parse(JSON.stringify(c).replaceAll(url, "URL"));
      assertEquals(norm(first.credentials, first.url), norm(single.credentials, single.url));
      assertEquals(
        await admin(first.url, "/records/" + first.emulator.adminStore.objects()[0]),
        await admin(single.url, "/records/" + single.emulator.adminStore.objects()[0]),
      );

      const listed = await accountsOf(first.url);
      assertEquals(listed.count, 6);
      assertEquals(listed.accounts.map((a) => a.account), [0, 1, 2, 3, 4, 5]);
      assertEquals(listed.accounts.map((a) => a.created), [
        true,
        false,
        false,
        false,
        false,
        false,
      ]);
      assertEquals(listed.accounts[0].credentials, first.credentials);
      assertEquals(new Set(listed.accounts.map((a) => a.id)).size, 6, "ids are unique");
      const page = await accountsOf(first.url, "?from=4&limit=10");
      assertEquals(page.accounts.map((a) => a.account), [4, 5]);

      // Account 4's credentials reach account 4 (its own data), and create it.
      const four = listed.accounts[4];
      const read = await apiRead(provider, first.url, four.credentials);
      assertEquals(read.status, 200);
      const after = await accountsOf(first.url);
      assertEquals(after.accounts.filter((a) => a.created).map((a) => a.account), [0, 4]);
      assertEquals(after.accounts[4].requests, 1);
      assertEquals(after.accounts[0].requests, 0);
      const own = await admin(first.url, "/?account=4") as { account: number; records: number };
      assertEquals([own.account, own.records], [4, 2]);

      // Same seed, new process: same accounts, same data.
      second = await start({ seed: 41, records: 3, accounts: 6, tenantRecords: 2 });
      const again = await accountsOf(second.url);
      assertEquals(
        again.accounts.map((a) => norm(a.credentials, second!.url)),
        listed.accounts.map((a) => norm(a.credentials, first.url)),
      );
      const readAgain = await apiRead(provider, second.url, four.credentials);
      assertEquals(
        JSON.stringify(readAgain.body).replaceAll(second.url, "URL"),
        JSON.stringify(read.body).replaceAll(first.url, "URL"),
      );
      // … and differs from account 0's data.
      const zero = await apiRead(provider, first.url, first.credentials);
      assertNotEquals(JSON.stringify(zero.body), JSON.stringify(read.body));

      // Unknown credentials: the provider's 401, as with one account.
      const bogus = Object.fromEntries(
        Object.entries(four.credentials).map(([k, v]) => [k, `x${v}`]),
      );
      assertEquals((await apiRead(provider, first.url, bogus)).status, 401);
    } finally {
      await single.close();
      await first.close();
      await second?.close();
    }
  }
});

Deno.test("accounts are isolated: data, 10-second window, daily budgets and counters", async () => {
  const hs = await startHubSpot({
    seed: 42,
    records: 2,
    accounts: 3,
    tenantRecords: 2,
    rateLimit: { tenSecondly: 3, intervalMs: 10_000, daily: 1000 },
  });
  const sf = await startSalesforce({
    seed: 42,
    accounts: 3,
    tenantRecords: 1,
    dailyApiRequests: 2,
  });
  const pd = await startPipedrive({
    seed: 42,
    accounts: 3,
    tenantRecords: 1,
    rateLimit: { burst: 2, windowMs: 2000 },
  });
  try {
    const [, h1, h2] = (await accountsOf(hs.url)).accounts.map((a) => a.credentials);
    const get = (token: string, path = "/crm/v3/objects/contacts?limit=1") =>
      fetch(`${hs.url}${path}`, { headers: { authorization: `Bearer ${token}` } }).then(
        async (r) => ({ status: r.status, body: await r.json() }),
      );
    // HubSpot: account 1 spends its 3 requests of the 10 s window; account 2 is untouched.
    const c1 = hubspotClient(hs.url, h1.HUBSPOT_ACCESS_TOKEN);
    const created = await c1.crm.contacts.basicApi.create({
      properties: { email: "only-in-one@example.com", firstname: "One" },
      associations: [],
    });
    for (let i = 0; i < 2; i++) assertEquals((await get(h1.HUBSPOT_ACCESS_TOKEN)).status, 200);
    const limited = await get(h1.HUBSPOT_ACCESS_TOKEN);
    assertEquals(limited.status, 429);
    assertEquals(limited.body.policyName, "TEN_SECONDLY_ROLLING");
    const other = await get(h2.HUBSPOT_ACCESS_TOKEN, `/crm/v3/objects/contacts/${created.id}`);
    assertEquals(other.status, 404, "account 2 does not see account 1's contact");
    const search = await fetch(`${hs.url}/crm/v3/objects/contacts/search`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${h2.HUBSPOT_ACCESS_TOKEN}`,
        "content-type": "application/json",
      },
      body: JSON.stringify({
        filterGroups: [{
          filters: [{ propertyName: "email", operator: "EQ", value: "only-in-one@example.com" }],
        }],
      }),
    });
    assertEquals((await search.json()).total, 0);
    const counters = async (i: number) =>
      await admin(hs.url, `/counters?account=${i}`) as {
        total: number;
        byStatus: Record<string, number>;
      };
    assertEquals((await counters(1)).total, 4);
    assertEquals((await counters(1)).byStatus["429"], 1);
    assertEquals((await counters(2)).total, 2);
    assertEquals((await counters(2)).byStatus["429"], undefined);
    assertEquals((await counters(0)).total, 0);

    // Salesforce: org 1 exhausts its daily allocation of 2; org 2 still has its own.
    const [, s1, s2] = (await accountsOf(sf.url)).accounts.map((a) => a.credentials);
    const soql = (token: string) =>
      fetch(`${sf.url}/services/data/v62.0/query?q=SELECT+Id+FROM+Account`, {
        headers: { authorization: `Bearer ${token}` },
      }).then(async (r) => ({
        status: r.status,
        limit: r.headers.get("sforce-limit-info"),
        body: await r.json(),
      }));
    assertEquals((await soql(s1.SALESFORCE_ACCESS_TOKEN)).status, 200);
    assertEquals((await soql(s1.SALESFORCE_ACCESS_TOKEN)).limit, "api-usage=2/2");
    const over = await soql(s1.SALESFORCE_ACCESS_TOKEN);
    assertEquals([over.status, over.body[0].errorCode], [403, "REQUEST_LIMIT_EXCEEDED"]);
    const fresh = await soql(s2.SALESFORCE_ACCESS_TOKEN);
    assertEquals([fresh.status, fresh.limit], [200, "api-usage=1/2"]);

    // Pipedrive: company 1's token burst (2 per 2 s) is its own.
    const [, p1, p2] = (await accountsOf(pd.url)).accounts.map((a) => a.credentials);
    const persons = (token: string) =>
      fetch(`${pd.url}/api/v2/persons?limit=1`, { headers: { "x-api-token": token } }).then(
        async (r) => ({
          status: r.status,
          remaining: r.headers.get("x-ratelimit-remaining"),
          body: await r.json(),
        }),
      );
    assertEquals((await persons(p1.PIPEDRIVE_API_TOKEN)).status, 200);
    assertEquals((await persons(p1.PIPEDRIVE_API_TOKEN)).status, 200);
    assertEquals((await persons(p1.PIPEDRIVE_API_TOKEN)).status, 429);
    assertEquals(await persons(p2.PIPEDRIVE_API_TOKEN).then((r) => [r.status, r.remaining]), [
      200,
      "1",
    ]);
  } finally {
    await hs.close();
    await sf.close();
    await pd.close();
  }
});

Deno.test("the official SDKs work unmodified against account N, OAuth refresh included", async () => {
  const hs = await startHubSpot({ seed: 43, accounts: 4, tenantRecords: 3 });
  const sf = await startSalesforce({ seed: 43, accounts: 4, tenantRecords: 3 });
  const pd = await startPipedrive({ seed: 43, accounts: 4, tenantRecords: 3, tokenTtlSeconds: 60 });
  try {
    // HubSpot: list, create and batch read on portal 3; refresh through the SDK's OAuth API.
    const h3 = (await accountsOf(hs.url)).accounts[3];
    const client = hubspotClient(hs.url, h3.credentials.HUBSPOT_ACCESS_TOKEN);
    const page = await client.crm.contacts.basicApi.getPage(100);
    assertEquals(page.results.length, 3);
    const made = await client.crm.contacts.basicApi.create({
      properties: { email: "portal3@example.com" },
      associations: [],
    });
    const batch = await client.crm.contacts.batchApi.read({
      inputs: [{ id: made.id }],
      properties: ["email"],
      propertiesWithHistory: [],
    });
    assertEquals(batch.results[0].properties.email, "portal3@example.com");
    await admin(hs.url, "/tokens/expire?account=3", { json: {} });
    const tok = await client.oauth.tokensApi.create(
      "refresh_token",
      undefined,
      undefined,
      h3.credentials.HUBSPOT_CLIENT_ID,
      h3.credentials.HUBSPOT_CLIENT_SECRET,
      h3.credentials.HUBSPOT_REFRESH_TOKEN,
    );
    const info = await hubspotClient(hs.url, tok.accessToken).oauth.accessTokensApi.get(
      tok.accessToken,
    );
    assertEquals(String(info.hubId), h3.id);
    const again = await hubspotClient(hs.url, tok.accessToken).crm.contacts.basicApi.getById(
      made.id,
      ["email"],
    );
    assertEquals(again.properties.email, "portal3@example.com");
    // Ids are per portal, so portal 0 may have a contact with that id, but not that one.
    const emailsOf = async (account: number) =>
      (await admin(hs.url, `/records/contacts?account=${account}`) as Array<{
        properties: { email?: string };
      }>).map((r) => r.properties.email);
    assert(!(await emailsOf(0)).includes("portal3@example.com"));
    assert((await emailsOf(3)).includes("portal3@example.com"));

    // Salesforce: jsforce on org 2 (shared instance URL), session expiry → refresh → org 2.
    const s2 = (await accountsOf(sf.url)).accounts[2];
    const { conn, refreshes } = sfConnection(sf.url, s2.credentials);
    const ids: string[] = [];
    conn.on("refresh", (_t: string, res: Record<string, string>) => ids.push(res.id));
    const q = await conn.query<{ Id: string }>("SELECT Id FROM Contact");
    assertEquals(q.totalSize, 3);
    await admin(sf.url, "/tokens/expire?account=2", { json: {} });
    const lead = await conn.sobject("Lead").create({ LastName: "Org2", Company: "Two" });
    assert(lead.success);
    assertEquals(refreshes(), 1);
    assertEquals(ids, [`${sf.url}/id/${s2.id}/${s2.credentials.SALESFORCE_USER_ID}`]);
    const lastNames = async (account: number) =>
      (await admin(sf.url, `/records/Lead?account=${account}`) as Array<{ LastName: string }>)
        .map((l) => l.LastName);
    assert((await lastNames(2)).includes("Org2"));
    assert(!(await lastNames(0)).includes("Org2"));
    const login = new jsforce.Connection({
      version: "62.0",
      oauth2: {
        clientId: s2.credentials.SALESFORCE_CLIENT_ID,
        clientSecret: s2.credentials.SALESFORCE_CLIENT_SECRET,
        loginUrl: sf.url,
      },
    });
    const user = await login.login(
      s2.credentials.SALESFORCE_USERNAME,
      s2.credentials.SALESFORCE_PASSWORD,
    );
    assertEquals(user.organizationId, s2.id);

    // Pipedrive: api token and OAuth (code + refresh) on company 1.
    const p1 = (await accountsOf(pd.url)).accounts[1];
    const persons = new PersonsApi(
      new Configuration({
        apiKey: p1.credentials.PIPEDRIVE_API_TOKEN,
        basePath: `${pd.url}/api/v2`,
      }),
    );
    assertEquals((await persons.getPersons({ limit: 100 })).data!.length, 3);
    const oauth = new OAuth2Configuration({
      clientId: p1.credentials.PIPEDRIVE_CLIENT_ID,
      clientSecret: p1.credentials.PIPEDRIVE_CLIENT_SECRET,
      redirectUri: "http://127.0.0.1:9/cb",
      host: pd.url,
    });
    const auth = await fetch(oauth.authorizationUrl, { redirect: "manual" });
    await auth.body?.cancel();
    await oauth.authorize(new URL(auth.headers.get("location")!).searchParams.get("code")!);
    await oauth.tokenRefresh();
    const viaOAuth = await new PersonsApi(oauth as unknown as Configuration).getPersons({
      limit: 100,
    });
    assertEquals(
      viaOAuth.data!.map((p) => p.id),
      (await persons.getPersons({ limit: 100 })).data!.map((p) => p.id),
    );
    const counters = await admin(pd.url, "/counters?account=1") as {
      routes: Record<string, { total: number }>;
    };
    assertEquals(counters.routes["POST /oauth/token"].total, 2);
  } finally {
    await hs.close();
    await sf.close();
    await pd.close();
  }
});

Deno.test("admin: ?account= selects one account, account=all writes to every one, unknown accounts 404", async () => {
  const pd = await startPipedrive({ seed: 44, accounts: 3, tenantRecords: 1 });
  try {
    const creds = (await accountsOf(pd.url)).accounts.map((a) => a.credentials);
    const status = (i: number) =>
      fetch(`${pd.url}/api/v2/persons?limit=1`, {
        headers: { "x-api-token": creds[i].PIPEDRIVE_API_TOKEN },
      }).then(async (r) => (await r.body?.cancel(), r.status));

    await admin(pd.url, "/faults?account=1", { method: "PUT", json: { error5xxRate: 1 } });
    assertEquals([await status(0), await status(1), await status(2)], [200, 503, 200]);

    const all = await admin(pd.url, "/faults?account=all", {
      method: "PATCH",
      json: { unauthorizedRate: 1 },
    }) as { accounts: number; byStatus: Record<string, number> };
    assertEquals(all, { accounts: 3, byStatus: { "200": 3 }, errors: [] } as never);
    assertEquals([await status(0), await status(1), await status(2)], [401, 503, 401]);
    await admin(pd.url, "/faults?account=all", { method: "DELETE" });
    assertEquals([await status(0), await status(1), await status(2)], [200, 200, 200]);

    const missing = await fetch(`${pd.url}/__admin/counters?account=3`);
    assertEquals(missing.status, 404);
    await missing.body?.cancel();
    const readAll = await fetch(`${pd.url}/__admin/counters?account=all`);
    assertEquals(readAll.status, 400);
    await readAll.body?.cancel();
  } finally {
    await pd.close();
  }
});
