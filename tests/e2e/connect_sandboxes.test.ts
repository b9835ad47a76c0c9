// `npm start`'s connect step (shared/local/connect_sandboxes.ts) against the test stack: the
// sandboxes' crm-connect secrets, HubSpot and Pipedrive connected with POST /token, Salesforce
// through the OAuth flow, the webhook set-up and the first backfill queued by crm-connect, the
// Salesforce sandbox's Outbound Messages pointed at the listener URL read through /webhook-url,
// and a second run re-activating the same connections in place. Its own sandboxes and a fresh
// account, so the test stack's own sandbox rows (./connections.ts) are not touched.
import assert from "node:assert/strict";
import { startHubSpot } from "../../shared/emulators/hubspot/mod.ts";
import { startPipedrive } from "../../shared/emulators/pipedrive/mod.ts";
import { startSalesforce } from "../../shared/emulators/salesforce/mod.ts";
import {
  connectSandboxes,
  devUserJwt,
  finishSandboxWebhooks,
  sandboxConnectSecrets,
} from "../../shared/local/connect_sandboxes.ts";
import { need } from "../_support/env.ts";
import { admin, awaitJobs, db } from "./_harness.ts";
import { freePort, startConnectGateway } from "./_connect.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "npm start's connect step: the sandboxes connected through crm-connect",
  opts,
  async () => {
    const sql = db();
    const log = () => {};
    const hs = await startHubSpot({ seed: 91, records: 4, log, timeScale: 0.01 });
    const sf = await startSalesforce({ seed: 91, records: 4, log, timeScale: 0.01 });
    const pd = await startPipedrive({ seed: 91, records: 4, log, timeScale: 0.01 });
    const env: Record<string, string> = {
      HUBSPOT_API_URL: hs.url,
      SALESFORCE_API_URL: sf.url,
      PIPEDRIVE_API_URL: pd.url,
      ...hs.credentials,
      ...sf.credentials,
      ...pd.credentials,
    };
    await sql`delete from crm.connections
            where (provider = 'hubspot' and remote_account_id = ${env.HUBSPOT_PORTAL_ID})
               or (provider = 'salesforce' and remote_account_id = ${env.SALESFORCE_ORG_ID})
               or (provider = 'pipedrive' and remote_account_id = ${env.PIPEDRIVE_COMPANY_ID})`;
    const port = freePort();
    const url = `http://127.0.0.1:${port}`;
    const hookBase = `${need("SUPABASE_URL")}/functions/v1/crm-webhook`;
    const gw = await startConnectGateway(port, {
      ...sandboxConnectSecrets(env, url),
      // The test stack's workers register the webhooks at its own crm-webhook.
      CRM_WEBHOOK_PUBLIC_URL: hookBase,
    });
    const account = crypto.randomUUID();
    try {
      const jwt = await devUserJwt(need("SUPABASE_JWT_SECRET"), account);
      const t0 = new Date();
      const first = await connectSandboxes({ gatewayUrl: url, jwt, env });
      assert.deepEqual(
        first.map((c) => `${c.provider}:${c.action}`),
        ["hubspot:created", "salesforce:created", "pipedrive:created"],
        JSON.stringify(first),
      );
      const rows = await sql`select id::text, provider, remote_account_id, status
                           from crm.connections where account_id = ${account} order by provider`;
      assert.deepEqual(rows.map((r) => [r.provider, r.remote_account_id, r.status]), [
        ["hubspot", env.HUBSPOT_PORTAL_ID, "active"],
        ["pipedrive", env.PIPEDRIVE_COMPANY_ID, "active"],
        ["salesforce", env.SALESFORCE_ORG_ID, "active"],
      ]);

      const lines = await finishSandboxWebhooks(sql, {
        gatewayUrl: url,
        jwt,
        env,
        connected: first,
      });
      assert.ok(lines.includes("pipedrive: webhooks registered"), lines.join("\n"));
      assert.ok(
        lines.includes("salesforce: outbound messages → crm-webhook/salesforce/<token>"),
        lines.join("\n"),
      );
      // HubSpot's set-up runs in the test stack's workers, which have no HUBSPOT_APP_ID secret
      // (the dev stack writes it): not asserted here.
      const outbound = await admin(sf.url, "GET", "/outbound");
      assert.match(outbound.url, new RegExp(`^${hookBase}/salesforce/[A-Za-z0-9_-]{43}$`));
      assert.ok(!lines.join(" ").includes(outbound.url.split("/").pop()), "no token printed");

      // The first backfill came from the connect: every connection's rows arrive.
      for (const c of first) {
        const synced = await awaitJobs(sql, c.id!, t0);
        assert.ok(synced.runs.some((r) => r.status === "success"), JSON.stringify(synced.runs));
        const [{ n }] = await sql`select count(*)::int as n from crm.contacts
                                where connection_id = ${c.id}`;
        assert.ok(n >= 4, `${c.provider}: ${n} contacts`);
      }

      // A second `npm start`: the same connections, re-activated in place.
      const again = await connectSandboxes({ gatewayUrl: url, jwt, env });
      assert.deepEqual(again.map((c) => c.action), ["updated", "updated", "updated"]);
      assert.deepEqual(again.map((c) => c.id), first.map((c) => c.id));
      await Promise.all(first.map((c) => awaitJobs(sql, c.id!, t0)));
    } finally {
      await sql`delete from crm.connections where account_id = ${account}`;
      await gw.close();
      await Promise.all([hs.close(), sf.close(), pd.close()]);
      await sql.end();
    }
  },
);
