// crm-connect and webhooks, end to end: a connection made through crm-connect gets its webhook
// set-up queued by the connect itself (Pipedrive's webhooks exist in the sandbox afterwards);
// the owner reads the Salesforce listener URL through POST /webhook-url (nobody else can, and
// it is never logged); a disconnect deletes our Pipedrive webhooks in the sandbox and leaves
// the old Salesforce URL and the old Pipedrive basic-auth pair answering 401, storing nothing.
import assert from "node:assert/strict";
import { startPipedrive } from "../../shared/emulators/pipedrive/mod.ts";
import { startSalesforce } from "../../shared/emulators/salesforce/mod.ts";
import { awaitWebhookSetup, configureSandboxOutbound } from "../../shared/local/webhooks.ts";
import { decryptJson, importKey } from "../../supabase/functions/_shared/crypto.ts";
import { need } from "../_support/env.ts";
import { admin, db, until } from "./_harness.ts";
import { APP, freePort, newUser, req, startConnectGateway } from "./_connect.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const sql = db();
const port = freePort();
const hookBase = `${need("SUPABASE_URL")}/functions/v1/crm-webhook`;
const log = () => {};
const sf = await startSalesforce({ seed: 81, records: 5, log, timeScale: 0.01 });
const pd = await startPipedrive({ seed: 82, records: 5, log, timeScale: 0.01 });
await sql`delete from crm.connections
          where (provider = 'salesforce' and remote_account_id = ${sf.credentials.SALESFORCE_ORG_ID})
             or (provider = 'pipedrive' and remote_account_id = ${pd.credentials.PIPEDRIVE_COMPANY_ID})`;
const gw = await startConnectGateway(port, {
  CRM_SALESFORCE_CLIENT_ID: sf.credentials.SALESFORCE_CLIENT_ID,
  CRM_SALESFORCE_CLIENT_SECRET: sf.credentials.SALESFORCE_CLIENT_SECRET,
  CRM_SALESFORCE_LOGIN_URL: sf.url,
  CRM_PIPEDRIVE_API_URL: pd.url,
  CRM_CONNECT_REDIRECT_ALLOW_LIST: APP,
  // The crm-webhook the test stack's workers register (their SUPABASE_URL), not this gateway's.
  CRM_WEBHOOK_PUBLIC_URL: hookBase,
  CRM_CONNECT_TIMEOUT_MS: "5000",
});
const key = await importKey(need("CRM_ENCRYPTION_KEY"));
// What the functions print (their logs), to look for the token in it.
const printed: string[] = [];
const write = Deno.stdout.write.bind(Deno.stdout);
Deno.stdout.write = (b: Uint8Array) => {
  printed.push(new TextDecoder().decode(b));
  return write(b);
};
const owner = await newUser();
const ids: Record<string, string> = {};

const ourPipedriveHooks = async () =>
  ((await admin(pd.url, "GET", "/webhooks")).webhooks as { subscription_url: string }[])
    .filter((h) => h.subscription_url === `${hookBase}/pipedrive`).length;
const eventsOf = async (id: string) =>
  Number(
    (await sql`select count(*) as n from crm.webhook_events where connection_id = ${id}`)[0].n,
  );
const credentialsOf = async (id: string) => {
  const [r] = await sql`select convert_from(credentials, 'UTF8') as c from crm.connections
                        where id = ${id}`;
  return await decryptJson<Record<string, string>>(key, r.c, id);
};

Deno.test(
  "connects queue the webhook set-up: Pipedrive's webhooks exist after a token connect",
  opts,
  async () => {
    const r = await req(`${gw.fn}/token`, {
      jwt: owner.jwt,
      body: { provider: "pipedrive", token: pd.credentials.PIPEDRIVE_API_TOKEN },
    });
    assert.equal(r.status, 201, r.text);
    ids.pipedrive = String(r.body.connection_id);
    const [s] = await awaitWebhookSetup(sql, [ids.pipedrive], 60_000);
    assert.equal(s.state, "registered", JSON.stringify(s));
    assert.equal(await ourPipedriveHooks(), 4);
    const [{ n }] =
      await sql`select count(*) as n from crm.jobs where connection_id = ${ids.pipedrive}
                            and kind = 'inbound'`;
    assert.ok(Number(n) >= 1, "the first backfill was queued by the connect");
  },
);

Deno.test(
  "the owner reads the Salesforce listener URL; nobody else can; it is never logged",
  opts,
  async () => {
    const s = await req(`${gw.fn}/start`, { jwt: owner.jwt, body: { provider: "salesforce" } });
    assert.equal(s.status, 200, s.text);
    const consent = await fetch(String(s.body.authorize_url), { redirect: "manual" });
    await consent.body?.cancel();
    const done = await req(consent.headers.get("location")!);
    assert.equal(done.status, 303, done.text);
    ids.salesforce = new URL(done.location!).searchParams.get("connection_id")!;
    const [st] = await awaitWebhookSetup(sql, [ids.salesforce], 60_000);
    assert.equal(st.state, "manual_step", JSON.stringify(st));

    const shown = await req(`${gw.fn}/webhook-url`, {
      jwt: owner.jwt,
      body: { connection_id: ids.salesforce },
    });
    assert.equal(shown.status, 200, shown.text);
    const url = String(shown.body.salesforce_listener_url);
    const token = (await credentialsOf(ids.salesforce)).webhook_token;
    assert.equal(url, `${hookBase}/salesforce/${token}`);
    const [row] = await sql`select webhook_setup::text as s from crm.connections
                          where id = ${ids.salesforce}`;
    assert.ok(!row.s.includes(token), "webhook_setup shows it masked only");

    // Another account, an unknown id: the same 404. No JWT: 401. A GET: 405. Not Salesforce: 400.
    const intruder = await newUser();
    const other = await req(`${gw.fn}/webhook-url`, {
      jwt: intruder.jwt,
      body: { connection_id: ids.salesforce },
    });
    const unknown = await req(`${gw.fn}/webhook-url`, {
      jwt: intruder.jwt,
      body: { connection_id: crypto.randomUUID() },
    });
    assert.equal(other.status, 404);
    assert.equal(other.text, unknown.text);
    assert.equal(
      (await req(`${gw.fn}/webhook-url`, { body: { connection_id: ids.salesforce } })).status,
      401,
    );
    assert.equal((await req(`${gw.fn}/webhook-url`, { jwt: owner.jwt })).status, 405);
    const pdUrl = await req(`${gw.fn}/webhook-url`, {
      jwt: owner.jwt,
      body: { connection_id: ids.pipedrive },
    });
    assert.equal(pdUrl.status, 400);
    assert.ok(gw.logs.length > 0 || true);
    assert.ok(!gw.logs.some((l) => l.includes(token)), "the token is not in the gateway's logs");

    // The sandbox's admin pastes it: an edit is delivered and accepted.
    await configureSandboxOutbound(sf.url, url);
    const [contact] = await admin(sf.url, "GET", "/records/Contact") as { Id: string }[];
    await admin(sf.url, "PATCH", `/records/Contact/${contact.Id}`, { FirstName: "Before" });
    await until("the delivery is stored", async () => (await eventsOf(ids.salesforce)) > 0, 30_000);
  },
);

Deno.test(
  "disconnect deletes our Pipedrive webhooks; old Salesforce and Pipedrive secrets get 401, nothing stored",
  opts,
  async () => {
    const pdCreds = await credentialsOf(ids.pipedrive);
    const sfToken = (await credentialsOf(ids.salesforce)).webhook_token;
    // Another deployment's webhook in the same Pipedrive account is not ours: it stays.
    const foreign = await fetch(`${pd.url}/v1/webhooks`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-api-token": pd.credentials.PIPEDRIVE_API_TOKEN,
      },
      body: JSON.stringify({
        subscription_url: "https://elsewhere.example/hooks",
        event_action: "*",
        event_object: "deal",
        version: "2.0",
      }),
    });
    assert.equal(foreign.status < 300, true, await foreign.text());

    const d = await req(`${gw.fn}/disconnect`, {
      jwt: owner.jwt,
      body: { connection_id: ids.pipedrive },
    });
    assert.equal(d.status, 200, d.text);
    assert.deepEqual(d.body.webhooks, {
      action: "removed",
      removed: 4,
      note: "4 Pipedrive webhook(s) deleted",
    });
    assert.equal(await ourPipedriveHooks(), 0, "the sandbox lists none of our webhooks");
    const left = (await admin(pd.url, "GET", "/webhooks")).webhooks as {
      subscription_url: string;
    }[];
    assert.ok(left.some((h) => h.subscription_url === "https://elsewhere.example/hooks"));
    const twice = await req(`${gw.fn}/disconnect`, {
      jwt: owner.jwt,
      body: { connection_id: ids.pipedrive },
    });
    assert.equal(twice.status, 200, twice.text);
    assert.equal((twice.body.webhooks as { action: string }).action, "none");

    const s = await req(`${gw.fn}/disconnect`, {
      jwt: owner.jwt,
      body: { connection_id: ids.salesforce },
    });
    assert.equal(s.status, 200, s.text);
    assert.equal((s.body.webhooks as { action: string }).action, "manual");
    const [row] = await sql`select webhook_token_hash, webhook_user_hash,
                                 webhook_setup ->> 'state' as state
                          from crm.connections where id = ${ids.salesforce}`;
    assert.deepEqual({ ...row }, {
      webhook_token_hash: null,
      webhook_user_hash: null,
      state: "removed",
    });
    const gone = await req(`${gw.fn}/webhook-url`, {
      jwt: owner.jwt,
      body: { connection_id: ids.salesforce },
    });
    assert.equal(gone.status, 409);

    // The old routes: 401 and nothing stored, even after the receiver's route memory (10 s).
    await new Promise((r) => setTimeout(r, 10_500));
    const sfBefore = await eventsOf(ids.salesforce);
    const pdBefore = await eventsOf(ids.pipedrive);
    await admin(sf.url, "DELETE", "/webhooks/deliveries");
    const [contact] = await admin(sf.url, "GET", "/records/Contact") as { Id: string }[];
    await admin(sf.url, "PATCH", `/records/Contact/${contact.Id}`, { FirstName: "After" });
    await until("the sandbox delivered", async () => {
      const log = await admin(sf.url, "GET", "/webhooks/deliveries");
      return (log.deliveries as unknown[]).length > 0;
    }, 30_000);
    const sent = (await admin(sf.url, "GET", "/webhooks/deliveries")).deliveries as {
      status: number;
    }[];
    assert.equal(sent[0].status, 401, JSON.stringify(sent[0]));
    const direct = await fetch(`${hookBase}/salesforce/${sfToken}`, {
      method: "POST",
      headers: { "content-type": "text/xml" },
      body: "<x/>",
    });
    await direct.body?.cancel();
    assert.equal(direct.status, 401);
    const auth = btoa(`${pdCreds.webhook_user}:${pdCreds.webhook_password}`);
    const pdHook = await fetch(`${hookBase}/pipedrive`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Basic ${auth}` },
      body: JSON.stringify({
        meta: {
          action: "change",
          entity: "person",
          company_id: pd.credentials.PIPEDRIVE_COMPANY_ID,
        },
        data: { id: 1 },
      }),
    });
    await pdHook.body?.cancel();
    assert.equal(pdHook.status, 401);
    assert.equal(await eventsOf(ids.salesforce), sfBefore);
    assert.equal(await eventsOf(ids.pipedrive), pdBefore);
  },
);

Deno.test({
  name: "teardown",
  ...opts,
  fn: async () => {
    Deno.stdout.write = write;
    for (const id of Object.values(ids)) await sql`delete from crm.connections where id = ${id}`;
    await gw.close();
    await Promise.all([sf.close(), pd.close()]);
    await sql.end();
  },
});
