/** Salesforce sandbox driven through jsforce 3.10.16, unmodified. */
import jsforce from "jsforce";
import {
  assert,
  assertAtLeast,
  assertEquals,
  assertGreater,
  assertMatch,
  assertRejects,
} from "../common/assert.ts";
import { admin } from "../common/testing.ts";
import { startSalesforce } from "./mod.ts";
import { sfConnection } from "./test_client.ts";

type Rec = Record<string, unknown> & { Id: string };
interface SfErr {
  errorCode: string;
  name: string;
  message: string;
  data?: unknown;
}

Deno.test("SOQL query/queryAll: delta pattern with Id tiebreak, nextRecordsUrl paging, COUNT()", async () => {
  const sf = await startSalesforce({ seed: 41, records: 2500 });
  try {
    const { conn } = sfConnection(sf.url, sf.credentials);
    // A bulk edit leaves 300 contacts with one SystemModstamp.
    const at = "2024-06-01T12:00:00.000Z";
    await admin(sf.url, "/records/Contact/set-modified", {
      json: { count: 300, pick: "random", modifiedAt: at },
    });
    const wm = "2024-06-01T12:00:00Z";
    const first = await conn.query<Rec>(
      `SELECT Id, LastName, Email, SystemModstamp FROM Contact WHERE SystemModstamp >= ${wm} ORDER BY SystemModstamp, Id LIMIT 200`,
    );
    assertEquals(first.records.length, 200);
    assertEquals(first.totalSize, 200);
    assert(first.done);
    const last = first.records[199];
    const rest = await conn.query<Rec>(
      `SELECT Id FROM Contact WHERE (SystemModstamp > ${wm} OR (SystemModstamp = ${wm} AND Id > '${last.Id}')) ORDER BY SystemModstamp ASC, Id ASC LIMIT 200`,
    );
    const ids = new Set([...first.records, ...rest.records].map((r) => r.Id));
    assertEquals(ids.size, first.records.length + rest.records.length, "no overlap");
    const all300 = first.records.slice(0, 300).concat(rest.records).filter((r) =>
      sf.store.tables.Contact.get(r.Id)!.fields.SystemModstamp === "2024-06-01T12:00:00.000+0000"
    );
    assertEquals(all300.length, 300);
    const ordered = [...first.records, ...rest.records].map((r) => r.Id);
    const sameStamp = ordered.slice(0, 300);
    assertEquals(sameStamp, [...sameStamp].sort(), "Id order inside one SystemModstamp");

    // Paging through nextRecordsUrl (batch 2000 → 2 round trips for ~2,480 live contacts).
    const before = sf.counters.count("GET /services/data/:version/query/:locator");
    const all = await conn.query<Rec>("SELECT Id, Name FROM Contact").execute({
      autoFetch: true,
      maxFetch: 100_000,
    });
    const live = sf.store.tables.Contact.bySeq.filter((r) => !r.isDeleted).length;
    assertEquals(all.records.length, live);
    assertEquals(sf.counters.count("GET /services/data/:version/query/:locator") - before, 1);
    const page1 = await conn.query<Rec>("SELECT Id FROM Lead");
    assertEquals(page1.done, false);
    assertMatch(
      String(page1.nextRecordsUrl),
      /\/services\/data\/v62\.0\/query\/01g[0-9A-Za-z]+-2000$/,
    );
    const page2 = await conn.queryMore<Rec>(String(page1.nextRecordsUrl));
    assertEquals(page1.records.length + page2.records.length, page1.totalSize);

    const deleted = await conn.query<Rec>(
      "SELECT Id, IsDeleted FROM Account WHERE IsDeleted = true",
    ).scanAll(true).execute();
    const inBin = sf.store.tables.Account.bySeq.filter((r) => r.isDeleted).length;
    assertEquals(deleted.totalSize, inBin);
    const notAll = await conn.query<Rec>("SELECT Id FROM Account WHERE IsDeleted = true");
    assertEquals(notAll.totalSize, 0);

    const count = await conn.query(
      "SELECT COUNT() FROM Opportunity WHERE StageName = 'Closed Won'",
    );
    assertEquals(
      count.totalSize,
      sf.store.tables.Opportunity.bySeq.filter((r) =>
        !r.isDeleted && r.fields.StageName === "Closed Won"
      ).length,
    );
    const rel = await conn.query<Rec>(
      "SELECT Id, Account.Name, Owner.Email FROM Opportunity WHERE AccountId != null LIMIT 1",
    );
    assert((rel.records[0].Account as Record<string, unknown>).Name);
    const like = await conn.query<Rec>(
      "SELECT Id, Email FROM Contact WHERE Email LIKE '%GMAIL.com' LIMIT 5",
    );
    assert(like.records.every((r) => String(r.Email).toLowerCase().endsWith("gmail.com")));
    const inList = await conn.query<Rec>(
      `SELECT Id FROM Contact WHERE Id IN ('${ordered[0]}', '${ordered[1].slice(0, 15)}')`,
    );
    assertEquals(inList.totalSize, 2);
  } finally {
    await sf.close();
  }
});

Deno.test("SOQL outside the subset is a clear MALFORMED_QUERY; bad fields and literals are INVALID_FIELD", async () => {
  const sf = await startSalesforce({ seed: 42, records: 5 });
  try {
    const { conn } = sfConnection(sf.url, sf.credentials);
    const cases: Array<[string, string]> = [
      ["SELECT LeadSource, COUNT(Id) FROM Contact GROUP BY LeadSource", "MALFORMED_QUERY"],
      [
        "SELECT Id FROM Contact WHERE LastName = 'a' AND FirstName = 'b' OR Email = null",
        "MALFORMED_QUERY",
      ],
      ["SELECT Id, (SELECT Id FROM Contacts) FROM Account", "MALFORMED_QUERY"],
      ["SELECT Id FROM Contact WHERE AccountId IN (SELECT Id FROM Account)", "MALFORMED_QUERY"],
      ["SELECT Id FROM Contact LIMIT", "MALFORMED_QUERY"],
      ["SELECT Nope FROM Contact", "INVALID_FIELD"],
      ["SELECT Id FROM Contact WHERE SystemModstamp > '2024-01-01T00:00:00Z'", "INVALID_FIELD"],
      ["SELECT Id FROM Widget__c", "INVALID_TYPE"],
    ];
    for (const [soql, code] of cases) {
      const e = await assertRejects(() => conn.query(soql)) as SfErr;
      assertEquals(e.errorCode, code, soql);
    }
    const e = await assertRejects(() =>
      conn.request(
        `/services/data/v62.0/query?q=${encodeURIComponent("SELECT Id FROM Contact GROUP BY Id")}`,
      )
    ) as SfErr;
    assertMatch(e.message, /GROUP is not supported/);
  } finally {
    await sf.close();
  }
});

Deno.test("single-record CRUD, external-id upsert, describe", async () => {
  const sf = await startSalesforce({ seed: 43, records: 5 });
  try {
    const { conn } = sfConnection(sf.url, sf.credentials);
    const acc = await conn.sobject("Account").create({
      Name: "Acme Sandbox",
      Website: "acme.test",
    });
    assert(acc.success && acc.id);
    const c = await conn.sobject("Contact").create({
      LastName: "Doe",
      FirstName: "Jane",
      Email: "Jane.Doe@Example.com",
      AccountId: acc.id,
    });
    const got = await conn.sobject("Contact").retrieve(c.id!) as unknown as Rec;
    assertEquals(got.Name, "Jane Doe");
    assertEquals(got.Email, "Jane.Doe@Example.com");
    const upd = await conn.sobject("Contact").update({ Id: c.id!, Title: "CTO" });
    assert(upd.success);
    assertEquals(sf.store.find("Contact", c.id!)!.fields.Title, "CTO");

    const missing = await assertRejects(() =>
      conn.sobject("Contact").create({ FirstName: "x" })
    ) as SfErr;
    assertEquals(missing.errorCode, "REQUIRED_FIELD_MISSING");
    const ro = await assertRejects(() =>
      conn.sobject("Contact").update({ Id: c.id!, CreatedDate: "2020-01-01T00:00:00Z" })
    ) as SfErr;
    assertEquals(ro.errorCode, "INVALID_FIELD_FOR_INSERT_UPDATE");
    const email = await assertRejects(() =>
      conn.sobject("Lead").create({ LastName: "x", Company: "y", Email: "nope" })
    ) as SfErr;
    assertEquals(email.errorCode, "INVALID_EMAIL_ADDRESS");
    const stage = await assertRejects(() =>
      conn.sobject("Opportunity").create({
        Name: "x",
        StageName: "Dreaming",
        CloseDate: "2025-01-01",
      })
    ) as SfErr;
    assertEquals(stage.errorCode, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST");
    const opp = await conn.sobject("Opportunity").create({
      Name: "Deal",
      StageName: "Closed Won",
      CloseDate: "2025-02-01",
      AccountId: acc.id,
      Amount: 1000,
    });
    const oppRec = sf.store.find("Opportunity", opp.id!)!;
    assertEquals([oppRec.fields.IsClosed, oppRec.fields.IsWon, oppRec.fields.Probability], [
      true,
      true,
      100,
    ]);

    const ups1 = await conn.sobject("Contact").upsert(
      { External_Id__c: "ext-42", LastName: "Ext" },
      "External_Id__c",
    ) as unknown as Record<string, unknown>;
    assertEquals(ups1.created, true);
    const ups2 = await conn.sobject("Contact").upsert({
      External_Id__c: "ext-42",
      LastName: "Ext2",
    }, "External_Id__c") as unknown as Record<string, unknown>;
    assertEquals(ups2.created, false);
    assertEquals(ups2.id, ups1.id);

    await conn.sobject("Contact").destroy(c.id!);
    const gone = await assertRejects(() => conn.sobject("Contact").retrieve(c.id!)) as SfErr;
    assertEquals(gone.errorCode, "ENTITY_IS_DELETED");
    const nf = await assertRejects(() =>
      conn.sobject("Contact").retrieve("003000000000000AAA")
    ) as SfErr;
    assertEquals(nf.errorCode, "NOT_FOUND");

    const d = await conn.sobject("Opportunity").describe();
    assertEquals(d.keyPrefix, "006");
    const stageField = d.fields.find((f) => f.name === "StageName")!;
    assert(
      stageField.restrictedPicklist &&
        stageField.picklistValues!.some((v) => v.value === "Closed Won"),
    );
    assert(d.fields.find((f) => f.name === "External_Id__c")!.externalId);
    const g = await conn.describeGlobal();
    assertEquals(g.sobjects.map((s) => s.name).sort(), [
      "Account",
      "Contact",
      "Lead",
      "Opportunity",
      "User",
    ]);
    const users = await conn.query<Rec>("SELECT Id, Email, IsActive FROM User");
    assertEquals(users.records[0].Id, sf.credentials.SALESFORCE_USER_ID);
  } finally {
    await sf.close();
  }
});

Deno.test("sObject Collections: ≤200 records, per-record statusCode errors, allOrNone", async () => {
  const sf = await startSalesforce({ seed: 44, records: 5 });
  try {
    const { conn } = sfConnection(sf.url, sf.credentials);
    const recs = Array.from(
      { length: 200 },
      (_, i) => ({ LastName: `Bulk${i}`, External_Id__c: `b-${i}` }),
    );
    const created = await conn.sobject("Contact").create(recs);
    assertEquals(created.length, 200);
    assert(created.every((r) => r.success));

    const tooMany = await assertRejects(() =>
      conn.sobject("Contact").create(
        [...recs, { LastName: "x" }].map((r, i) => ({ ...r, External_Id__c: `t-${i}` })),
      )
    ) as SfErr;
    assertEquals(tooMany.errorCode, "EXCEEDED_ID_LIMIT");

    const partial = await conn.sobject("Contact").create([{ LastName: "ok" }, {
      FirstName: "no last name",
    }], { allOrNone: false });
    assertEquals(partial.map((r) => r.success), [true, false]);
    const err =
      (partial[1] as unknown as { errors: Array<{ statusCode: string; fields: string[] }> })
        .errors[0];
    assertEquals(err.statusCode, "REQUIRED_FIELD_MISSING");
    assertEquals(err.fields, ["LastName"]);

    const countBefore = sf.store.tables.Contact.size;
    const rolled = await conn.sobject("Contact").create([{ LastName: "ok" }, {
      LastName: "dup",
      External_Id__c: "b-1",
    }], { allOrNone: true });
    assertEquals(rolled.map((r) => r.success), [false, false]);
    assertEquals(
      (rolled[0] as unknown as { errors: Array<{ statusCode: string }> }).errors[0].statusCode,
      "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    );
    assertEquals(
      (rolled[1] as unknown as { errors: Array<{ statusCode: string }> }).errors[0].statusCode,
      "DUPLICATE_VALUE",
    );
    assertEquals(sf.store.tables.Contact.size, countBefore, "nothing written");

    const ids = created.slice(0, 3).map((r) => r.id!);
    const upd = await conn.sobject("Contact").update([...ids.map((Id) => ({ Id, Title: "Dev" })), {
      Id: "0035g000000zzzzAAA",
      Title: "x",
    }]);
    assertEquals(upd.map((r) => r.success), [true, true, true, false]);
    const ups = await conn.sobject("Contact").upsert([
      { External_Id__c: "b-0", Title: "Lead Dev" },
      { External_Id__c: "new-1", LastName: "New" },
    ], "External_Id__c");
    assertEquals((ups as unknown as Array<{ created: boolean }>).map((r) => r.created), [
      false,
      true,
    ]);
    const retrieved = await conn.sobject("Contact").retrieve(ids, {
      fields: ["Id", "Title"],
    }) as unknown as Rec[];
    assertEquals(retrieved.map((r) => r.Title), ["Lead Dev", "Dev", "Dev"]);

    const del = await conn.sobject("Contact").destroy([...ids, ids[0]]);
    assertEquals(del.map((r) => r.success), [true, true, true, false]);
    const delAll = await conn.sobject("Contact").destroy([created[5].id!, created[4].id!, ids[1]], {
      allOrNone: true,
    });
    assertEquals(delAll.map((r) => r.success), [false, false, false]);
    assert(!sf.store.find("Contact", created[5].id!)!.isDeleted);
  } finally {
    await sf.close();
  }
});

Deno.test("sobjects/<T>/updated and /deleted", async () => {
  // The emulator clock is controlled: Salesforce only covers whole minutes
  // (latestDateCovered), so changes show up once their minute has passed.
  let clock = Date.UTC(2026, 0, 10, 9, 30, 20);
  const sf = await startSalesforce({ seed: 45, records: 20, now: () => clock });
  try {
    const { conn } = sfConnection(sf.url, sf.credentials);
    const start = new Date(clock - 60_000);
    const c = await conn.sobject("Contact").create({ LastName: "Fresh" });
    const old = sf.store.tables.Contact.bySeq.find((r) => !r.isDeleted && r.id !== c.id)!;
    await conn.sobject("Contact").update({ Id: old.id, Title: "Changed" });
    await conn.sobject("Contact").destroy(old.id);
    const end = new Date(clock + 120_000);
    const early = await conn.sobject("Contact").updated(start, end);
    assertEquals(early.ids, [], "the current minute is not covered yet");
    clock += 60_000;
    const upd = await conn.sobject("Contact").updated(start, end);
    assertEquals(upd.ids, [c.id]);
    assertMatch(upd.latestDateCovered, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:00\.000\+0000$/);
    const del = await conn.sobject("Contact").deleted(start, end);
    assertEquals(del.deletedRecords.map((r) => r.id), [old.id]);
    const tooOld = await assertRejects(() =>
      conn.sobject("Contact").updated(new Date(clock - 31 * 86_400_000), end)
    ) as SfErr;
    assertEquals(tooOld.errorCode, "INVALID_REPLICATION_DATE");
  } finally {
    await sf.close();
  }
});

Deno.test("auth: INVALID_SESSION_ID → jsforce refresh (id + instance_url), capped on persistent 401, OAuth flows", async () => {
  const sf = await startSalesforce({ seed: 46, records: 3 });
  try {
    const creds = sf.credentials;
    const { conn, refreshes } = sfConnection(sf.url, creds);
    let refreshed: string | undefined;
    let refreshRes: Record<string, string> = {};
    conn.on("refresh", (token: string, res: Record<string, string>) => {
      refreshed = token;
      refreshRes = res;
    });
    await admin(sf.url, "/tokens/expire", { json: {} });
    const raw = await fetch(`${sf.url}/services/data/v62.0/query?q=SELECT+Id+FROM+User`, {
      headers: { authorization: `Bearer ${creds.SALESFORCE_ACCESS_TOKEN}` },
    });
    assertEquals(raw.status, 401);
    assertEquals(await raw.json(), [{
      message: "Session expired or invalid",
      errorCode: "INVALID_SESSION_ID",
    }]);
    const res = await conn.sobject("Lead").create({ LastName: "After", Company: "Refresh" });
    assert(res.success);
    assertEquals(refreshes(), 1);
    assert(refreshed && refreshed !== creds.SALESFORCE_ACCESS_TOKEN);
    assertEquals(
      refreshRes.id,
      `${sf.url}/id/${creds.SALESFORCE_ORG_ID}/${creds.SALESFORCE_USER_ID}`,
    );
    assertEquals(refreshRes.instance_url, sf.url);
    assertEquals(refreshRes.refresh_token, undefined);

    // Every request rejected: the capped refresh function stops jsforce's loop.
    await admin(sf.url, "/faults", { method: "PUT", json: { unauthorizedRate: 1 } });
    const capped = sfConnection(sf.url, creds, { maxRefreshes: 2, accessToken: refreshed });
    const loop = await assertRejects(() => capped.conn.query("SELECT Id FROM Account")) as Error;
    assertMatch(loop.message, /refresh cap of 2/);
    assertEquals(capped.refreshes(), 3);
    await admin(sf.url, "/faults", { method: "DELETE" });

    // Revoked refresh token: the refresh itself fails with invalid_grant.
    await admin(sf.url, "/tokens/revoke", { json: { kind: "all" } });
    const dead = await assertRejects(() => conn.query("SELECT Id FROM Account")) as Error;
    assertMatch(dead.message, /expired access\/refresh token/);

    // Password and authorization-code flows through jsforce's OAuth2 client.
    await admin(sf.url, "/reset", { json: {} });
    const login = new jsforce.Connection({
      loginUrl: sf.url,
      version: "62.0",
      oauth2: {
        clientId: creds.SALESFORCE_CLIENT_ID,
        clientSecret: creds.SALESFORCE_CLIENT_SECRET,
        loginUrl: sf.url,
      },
    });
    const ui = await login.login(creds.SALESFORCE_USERNAME, creds.SALESFORCE_PASSWORD);
    assertEquals(ui.organizationId, creds.SALESFORCE_ORG_ID);
    const identity = await login.identity();
    assertEquals(identity.user_id, creds.SALESFORCE_USER_ID);
    const redirectUri = "http://127.0.0.1:9/cb";
    const oauth2 = new jsforce.OAuth2({
      clientId: creds.SALESFORCE_CLIENT_ID,
      clientSecret: creds.SALESFORCE_CLIENT_SECRET,
      redirectUri,
      loginUrl: sf.url,
    });
    const auth = await fetch(oauth2.getAuthorizationUrl({ state: "xyz" }), { redirect: "manual" });
    await auth.body?.cancel();
    const code = new URL(auth.headers.get("location")!).searchParams.get("code")!;
    const tok = await oauth2.requestToken(code);
    assert(tok.access_token && tok.refresh_token && tok.id && tok.instance_url === sf.url);
  } finally {
    await sf.close();
  }
});

Deno.test("limits: Sforce-Limit-Info and REQUEST_LIMIT_EXCEEDED", async () => {
  const sf = await startSalesforce({ seed: 47, records: 3, dailyApiRequests: 5 });
  try {
    const { conn } = sfConnection(sf.url, sf.credentials);
    for (let i = 0; i < 5; i++) await conn.query("SELECT Id FROM Account LIMIT 1");
    assertEquals(conn.limitInfo.apiUsage, { used: 5, limit: 5 });
    const e = await assertRejects(() => conn.query("SELECT Id FROM Account LIMIT 1")) as SfErr;
    assertEquals(e.errorCode, "REQUEST_LIMIT_EXCEEDED");
    assertEquals(sf.counters.status(403), 1);
    const limits = await admin(sf.url, "/limits") as { used: number };
    assertEquals(limits.used, 5);
  } finally {
    await sf.close();
  }
});

Deno.test("admin merge: loser goes to the recycle bin with MasterRecordId, children move", async () => {
  const sf = await startSalesforce({ seed: 48, records: 10 });
  try {
    const { conn } = sfConnection(sf.url, sf.credentials);
    const a = await conn.sobject("Account").create({ Name: "Winner" });
    const b = await conn.sobject("Account").create({ Name: "Loser", Phone: "+49 30 1234567" });
    const kid = await conn.sobject("Contact").create({ LastName: "Kid", AccountId: b.id });
    await admin(sf.url, "/records/Account/merge", { json: { primaryId: a.id, mergedId: b.id } });
    const res = await conn.query<Rec>(
      `SELECT Id, IsDeleted, MasterRecordId FROM Account WHERE Id = '${b.id}'`,
    ).scanAll(true).execute();
    assertEquals(res.records[0].IsDeleted, true);
    assertEquals(res.records[0].MasterRecordId, a.id);
    assertEquals(sf.store.find("Contact", kid.id!)!.fields.AccountId, a.id);
    assertEquals(sf.store.find("Account", a.id!)!.fields.Phone, "+49 30 1234567");
    assertGreater(sf.counters.total, 0);
    assertAtLeast(sf.store.tables.Account.size, 12);
  } finally {
    await sf.close();
  }
});
