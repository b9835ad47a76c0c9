// The stack registers one connection per CRM sandbox: after `up`, crm.connections holds three
// active rows whose credentials decrypt, with the profile's CRM_ENCRYPTION_KEY, to what the
// adapters need for the running sandboxes; registering again changes rows in place (fresh
// credentials and base_url, the developer's other settings kept) and never adds any; a
// connection pointed at a real account is left alone.
import assert from "node:assert/strict";
import { stat } from "node:fs/promises";
import postgres from "postgres";
import { dbUrl, stackConfig } from "../../shared/local/config.ts";
import {
  connectionCredentials,
  DEV_ACCOUNT_ID,
  registerSandboxConnections,
  SANDBOX_PROVIDERS,
  sandboxConnections,
} from "../../shared/local/connections.ts";
import { ensureStackSecrets } from "../../shared/local/secrets.ts";
import { decryptJson, importKey } from "../../supabase/functions/_shared/crypto.ts";
import { need, stackEnv } from "../_support/env.ts";

const env = stackEnv();
const cfg = [stackConfig("test"), stackConfig("dev")].find((c) =>
  dbUrl(c) === need("SUPABASE_DB_URL")
)!;

async function rows(sql: postgres.Sql) {
  return await sql`
    select id::text, account_id::text, provider, remote_account_id, name, status, settings,
           convert_from(credentials, 'UTF8') as ciphertext
    from crm.connections
    where (provider, remote_account_id) in
      (select * from unnest(${SANDBOX_PROVIDERS as string[]}::text[], ${
    sandboxConnections(env).map((c) => c.remoteAccountId)
  }::text[]))
    order by provider`;
}

Deno.test({
  name: "the stack registers one active connection per sandbox, credentials decrypt",
  ignore: !cfg,
  fn: async () => {
    const key = await importKey(need("CRM_ENCRYPTION_KEY"));
    // The key in stack.env is the one the functions get: the stack-owned secret, 0600.
    assert.equal((await ensureStackSecrets(cfg)).CRM_ENCRYPTION_KEY, need("CRM_ENCRYPTION_KEY"));
    assert.equal((await stat(cfg.stackSecretsFile)).mode & 0o777, 0o600);

    const sql = postgres(need("SUPABASE_DB_URL"), { max: 1, onnotice: () => {} });
    try {
      const found = await rows(sql);
      assert.deepEqual(found.map((r) => r.provider), ["hubspot", "pipedrive", "salesforce"]);
      const urls: Record<string, string> = {
        hubspot: need("HUBSPOT_API_URL"),
        salesforce: need("SALESFORCE_API_URL"),
        pipedrive: need("PIPEDRIVE_API_URL"),
      };
      for (const r of found) {
        assert.equal(r.status, "active");
        assert.equal(r.account_id, DEV_ACCOUNT_ID);
        assert.equal(r.settings.base_url, urls[r.provider]);
        assert.equal(r.settings.default_phone_region, "US");
        assert.equal(r.settings.conflict_policy, "newest_wins");
        assert.deepEqual(r.settings.objects, ["contacts", "companies", "deals", "owners"]);
        assert.deepEqual(
          await decryptJson(key, r.ciphertext, r.id),
          connectionCredentials(r.provider, env),
        );
        await assert.rejects(
          decryptJson(key, r.ciphertext, crypto.randomUUID()),
          "bound to its connection id",
        );
      }
      const sf = connectionCredentials("salesforce", env);
      assert.equal(sf.instanceUrl, urls.salesforce);
      assert.equal(sf.loginUrl, urls.salesforce);
      assert.deepEqual(Object.keys(connectionCredentials("pipedrive", env)), ["apiToken"]);
    } finally {
      await sql.end();
    }
  },
});

Deno.test({
  name: "re-registering updates in place: no duplicates, credentials and base_url refreshed",
  ignore: !cfg,
  fn: async () => {
    const sql = postgres(need("SUPABASE_DB_URL"), { max: 1, onnotice: () => {} });
    const key = need("CRM_ENCRYPTION_KEY");
    try {
      const before = await rows(sql);
      const total = (await sql`select count(*)::int as n from crm.connections`)[0].n;
      // As if the sandboxes had restarted elsewhere, the engine had marked one connection as
      // failing, and a developer had changed a setting.
      await sql`update crm.connections
                set settings = settings || '{"base_url": "http://127.0.0.1:9", "conflict_policy": "crm_wins"}',
                    credentials = convert_to('v1:stale:stale', 'UTF8')
                where id = ${before[0].id}`;
      await sql`update crm.connections set status = 'error' where id = ${before[1].id}`;
      await sql`update crm.connections set status = 'paused' where id = ${before[2].id}`;

      const again = await registerSandboxConnections(sql, env, key);
      assert.deepEqual(again.map((r) => r.action), ["updated", "updated", "updated"]);
      const after = await rows(sql);
      assert.deepEqual(after.map((r) => r.id), before.map((r) => r.id), "same rows");
      assert.equal((await sql`select count(*)::int as n from crm.connections`)[0].n, total);
      assert.equal(after[0].settings.base_url, before[0].settings.base_url, "base_url refreshed");
      assert.equal(after[0].settings.conflict_policy, "crm_wins", "other settings kept");
      assert.deepEqual(
        await decryptJson(await importKey(key), after[0].ciphertext, after[0].id),
        connectionCredentials(after[0].provider, env),
      );
      assert.equal(after[1].status, "active", "new credentials clear the error state");
      assert.equal(after[2].status, "paused", "a paused connection stays paused");
    } finally {
      await sql`update crm.connections
                set status = 'active', settings = settings || '{"conflict_policy": "newest_wins"}'
                where (provider, remote_account_id) in
                  (select * from unnest(${SANDBOX_PROVIDERS as string[]}::text[], ${
        sandboxConnections(env).map((c) => c.remoteAccountId)
      }::text[]))`;
      await sql.end();
    }
  },
});

Deno.test({
  name: "a sandbox connection pointed at a real account (base_url null) is left alone",
  ignore: !cfg,
  fn: async () => {
    const sql = postgres(need("SUPABASE_DB_URL"), { max: 1, onnotice: () => {} });
    const key = need("CRM_ENCRYPTION_KEY");
    const [hubspot] = (await rows(sql)).filter((r) => r.provider === "hubspot");
    try {
      await sql`update crm.connections
                set settings = settings || '{"base_url": null}',
                    credentials = convert_to('real-account-ciphertext', 'UTF8')
                where id = ${hubspot.id}`;
      const again = await registerSandboxConnections(sql, env, key);
      assert.deepEqual(
        again.map((r) => [r.provider, r.action]),
        [["hubspot", "skipped"], ["salesforce", "updated"], ["pipedrive", "updated"]],
      );
      const [kept] = (await rows(sql)).filter((r) => r.provider === "hubspot");
      assert.equal(kept.id, hubspot.id);
      assert.equal(kept.settings.base_url, null);
      assert.equal(kept.ciphertext, "real-account-ciphertext");
    } finally {
      await sql`update crm.connections
                set settings = settings || ${sql.json({ base_url: hubspot.settings.base_url })}
                where id = ${hubspot.id}`;
      await registerSandboxConnections(sql, env, key);
      await sql.end();
    }
  },
});
