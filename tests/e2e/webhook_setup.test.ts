// The webhook set-up around the registration itself: what `npm start` does for the sandbox
// connections (shared/local/webhooks.ts: crm.register_webhooks for each, then the Salesforce
// sandbox's Outbound Messages pointed at the listener URL), and failures that must be visible:
// a missing HubSpot app configuration ends the setup job dead with the reason on the connection
// (which stays active), and credentials the CRM refuses put the connection in error.
import assert from "node:assert/strict";
import { startHubSpot } from "../../shared/emulators/hubspot/mod.ts";
import { startPipedrive } from "../../shared/emulators/pipedrive/mod.ts";
import { startSalesforce } from "../../shared/emulators/salesforce/mod.ts";
import { storeCredentials } from "../../shared/local/connections.ts";
import { awaitWebhookSetup, enableSandboxWebhooks } from "../../shared/local/webhooks.ts";
import { importKey } from "../../supabase/functions/_shared/crypto.ts";
import type { ProviderName } from "../../supabase/functions/_shared/providers/types.ts";
import { need } from "../_support/env.ts";
import { admin, connect, db, type Sandbox, type Sql, until } from "./_harness.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const REMOTE: Record<ProviderName, string> = {
  hubspot: "HUBSPOT_PORTAL_ID",
  salesforce: "SALESFORCE_ORG_ID",
  pipedrive: "PIPEDRIVE_COMPANY_ID",
};

async function sandbox(provider: ProviderName, seed: number): Promise<Sandbox> {
  const base = { port: 0, seed, records: 10, log: () => {}, timeScale: 0.01 };
  const s = provider === "hubspot"
    ? await startHubSpot(base)
    : provider === "salesforce"
    ? await startSalesforce(base)
    : await startPipedrive(base);
  return { provider, url: s.url, credentials: s.credentials, close: () => s.close() };
}

/** A connection routed by the sandbox's real account id (leftovers of earlier runs removed). */
async function routedConnection(sql: Sql, sb: Sandbox): Promise<string> {
  const remote = sb.credentials[REMOTE[sb.provider]];
  await sql`delete from crm.connections
            where provider = ${sb.provider} and remote_account_id = ${remote}`;
  const conn = await connect(sql, sb);
  await sql`update crm.connections set remote_account_id = ${remote} where id = ${conn}`;
  return conn;
}

Deno.test({
  name: "e2e npm start: the sandbox connections' webhooks are registered and Salesforce's " +
    "outbound messages point at the listener",
  ...opts,
  fn: async () => {
    const sql = db();
    const sbs = [
      await sandbox("hubspot", 63),
      await sandbox("salesforce", 63),
      await sandbox("pipedrive", 63),
    ];
    const conns: { provider: ProviderName; id: string }[] = [];
    try {
      for (const sb of sbs) {
        conns.push({ provider: sb.provider, id: await routedConnection(sql, sb) });
      }
      const [hs, sf, pd] = sbs;
      const base = `${need("SUPABASE_URL")}/functions/v1/crm-webhook`;
      const lines = await enableSandboxWebhooks(sql, {
        connections: conns,
        env: { SUPABASE_URL: need("SUPABASE_URL"), SALESFORCE_API_URL: sf.url },
        functionEnv: {},
        base64Key: need("CRM_ENCRYPTION_KEY"),
      });
      console.log(lines.join("\n"));
      assert.deepEqual(lines, [
        `hubspot: webhooks → ${base}/hubspot`,
        `pipedrive: webhooks → ${base}/pipedrive`,
        "salesforce: outbound messages → crm-webhook/salesforce/<token>",
      ]);
      assert.equal((await admin(hs.url, "GET", "/webhooks")).targetUrl, `${base}/hubspot`);
      const hooks = (await admin(pd.url, "GET", "/webhooks")).webhooks as {
        subscription_url: string;
      }[];
      assert.equal(hooks.filter((h) => h.subscription_url === `${base}/pipedrive`).length, 4);
      const outbound = await admin(sf.url, "GET", "/outbound");
      assert.match(outbound.url, new RegExp(`^${base}/salesforce/[A-Za-z0-9_-]{43}$`));
      assert.ok(!lines.join(" ").includes(outbound.url.split("/").pop()), "no token printed");

      // Real time: a Salesforce edit reaches Postgres through the configured outbound message.
      const [contact] = await admin(sf.url, "GET", "/records/Contact") as { Id: string }[];
      await admin(sf.url, "PATCH", `/records/Contact/${contact.Id}`, { FirstName: "Started" });
      await until("the Salesforce edit lands", async () => {
        const [r] = await sql`select first_name from crm.contacts
                              where connection_id = ${conns[1].id} and remote_id = ${contact.Id}`;
        return r?.first_name === "Started";
        // Latency is measured in webhook_delivery.test.ts; here a lost wake may wait for the
        // next crm-workers tick.
      }, 90_000).catch(async (e) => {
        const log = await admin(sf.url, "GET", "/webhooks/deliveries");
        const events = await sql`select state, attempts, last_error from crm.webhook_events
                                 where connection_id = ${conns[1].id}`;
        const jobs = await sql`select kind, state, last_error, run_after from crm.jobs
                               where connection_id = ${conns[1].id}`;
        const sent = (log.deliveries as Record<string, unknown>[])
          .map((d) => ({ status: d.status, error: d.error, attempt: d.attempt }));
        console.log(JSON.stringify({ stats: log.stats, sent, events, jobs }));
        throw e;
      });
    } finally {
      for (const c of conns) await sql`delete from crm.connections where id = ${c.id}`;
      await sql.end();
      for (const sb of sbs) await sb.close();
    }
  },
});

Deno.test({
  name: "e2e webhook set-up failures: no HubSpot app is a visible configuration error, " +
    "refused Pipedrive credentials put the connection in error",
  ...opts,
  fn: async () => {
    const sql = db();
    const key = await importKey(need("CRM_ENCRYPTION_KEY"));
    const hs = await sandbox("hubspot", 64);
    const pd = await sandbox("pipedrive", 64);
    const conns: string[] = [];
    try {
      const h = await routedConnection(sql, hs);
      const p = await routedConnection(sql, pd);
      conns.push(h, p);
      // No app of its own, and the test stack sets no HUBSPOT_APP_ID function secret.
      const noApp = {
        accessToken: hs.credentials.HUBSPOT_ACCESS_TOKEN,
        refreshToken: hs.credentials.HUBSPOT_REFRESH_TOKEN,
        clientId: hs.credentials.HUBSPOT_CLIENT_ID,
        clientSecret: hs.credentials.HUBSPOT_CLIENT_SECRET,
      };
      await storeCredentials(sql, key, h, noApp);
      await storeCredentials(sql, key, p, { apiToken: "not-a-valid-token" });
      for (const id of conns) await sql`select crm.register_webhooks(${id}::uuid)`;
      const states = await awaitWebhookSetup(sql, conns, 90_000);
      const by = Object.fromEntries(states.map((s) => [s.provider, s]));
      assert.equal(by.hubspot.state, "failed");
      assert.equal(by.hubspot.job, "dead", "a configuration error is not retried");
      assert.match(by.hubspot.error ?? "", /HUBSPOT_APP_ID/);
      assert.equal(by.pipedrive.state, "failed");
      assert.equal(by.pipedrive.job, "dead");
      const rows = await sql`select provider, status, last_error from crm.connections
                             where id in ${sql(conns)} order by provider`;
      assert.equal(rows[0].status, "active", "a configuration error leaves the connection active");
      assert.equal(rows[1].status, "error", "refused credentials put it in error");
      assert.match(rows[1].last_error, /refused the stored credentials/);
      const hooks = (await admin(pd.url, "GET", "/webhooks")).webhooks as unknown[];
      assert.equal(hooks.length, 0, "nothing was registered");
    } finally {
      for (const id of conns) await sql`delete from crm.connections where id = ${id}`;
      await sql.end();
      await hs.close();
      await pd.close();
    }
  },
});

Deno.test({
  name: "e2e webhook set-up: a transport failure during HubSpot registration leaves the " +
    "developer key out of webhook_setup, crm.jobs and the functions' log",
  ...opts,
  fn: async () => {
    const sql = db();
    const key = await importKey(need("CRM_ENCRYPTION_KEY"));
    const hs = await sandbox("hubspot", 65);
    // A port nothing listens on: Deno's fetch error quotes the whole URL, ?hapikey= included.
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const closed = `http://127.0.0.1:${(l.addr as Deno.NetAddr).port}`;
    l.close();
    const devKey = `devkey-${crypto.randomUUID()}`;
    const logFile = new URL("../../.local/test/logs/gateway.log", import.meta.url);
    const logStart = (await Deno.stat(logFile)).size;
    let conn = "";
    try {
      conn = await routedConnection(sql, { ...hs, url: closed });
      await storeCredentials(sql, key, conn, {
        accessToken: hs.credentials.HUBSPOT_ACCESS_TOKEN,
        refreshToken: hs.credentials.HUBSPOT_REFRESH_TOKEN,
        clientId: hs.credentials.HUBSPOT_CLIENT_ID,
        clientSecret: hs.credentials.HUBSPOT_CLIENT_SECRET,
        appId: "1492740",
        developerApiKey: devKey,
      });
      await sql`select crm.register_webhooks(${conn}::uuid)`;
      const [state] = await awaitWebhookSetup(sql, [conn], 90_000);
      assert.equal(state.state, "failed");
      assert.match(state.error ?? "", /network error/, "the failure is still explained");
      const [setup] = await sql`select webhook_setup::text as s from crm.connections
                                where id = ${conn}`;
      assert.match(setup.s, /"reason": "transient"/);
      assert.doesNotMatch(setup.s, new RegExp(devKey));
      assert.doesNotMatch(setup.s, /hapikey=(?!\[redacted\])/);
      const jobs = await sql`select to_jsonb(j)::text as t from crm.jobs j
                             where connection_id = ${conn}`;
      assert.ok(jobs.length > 0);
      for (const j of jobs) assert.doesNotMatch(j.t, new RegExp(devKey));
      // The worker logs the retry reasons and the job's outcome.
      await until(
        "the worker logged",
        async () => (await Deno.stat(logFile)).size > logStart,
        10_000,
      );
      const f = await Deno.open(logFile);
      await f.seek(logStart, Deno.SeekMode.Start);
      const tail = new TextDecoder().decode(await new Response(f.readable).arrayBuffer());
      assert.match(tail, /webhook-settings/, "the failing registration was logged");
      assert.doesNotMatch(tail, new RegExp(devKey));
    } finally {
      if (conn) await sql`delete from crm.connections where id = ${conn}`;
      await sql.end();
      await hs.close();
    }
  },
});
