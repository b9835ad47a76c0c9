// The scheduled path does real work: the command pg_cron runs for `crm-inbound-contacts`
// (net.http_post with the URL and key from Vault) syncs the connections `npm run stack:up`
// registered for the stack's own sandboxes, and their contacts end up in crm.contacts exactly.
import assert from "node:assert/strict";
import { sandboxConnections } from "../../shared/local/connections.ts";
import type { ProviderName } from "../../supabase/functions/_shared/providers/types.ts";
import { need, stackEnv } from "../_support/env.ts";
import { awaitResponse, db } from "./_harness.ts";
import { expectedContacts } from "./_expect.ts";

const URL_KEY: Record<ProviderName, string> = {
  hubspot: "HUBSPOT_API_URL",
  salesforce: "SALESFORCE_API_URL",
  pipedrive: "PIPEDRIVE_API_URL",
};

Deno.test({
  name: "e2e cron: the crm-inbound-contacts job syncs the stack's sandbox connections",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const sql = db();
    try {
      const [job] = await sql`select command from cron.job where jobname = 'crm-inbound-contacts'`;
      assert.ok(job, "the migration registered the job");
      const [{ request_id }] = await sql.unsafe(job.command);
      const answer = await awaitResponse(sql, Number(request_id));
      assert.equal(answer.ok, true, JSON.stringify(answer));
      const remoteIds = sandboxConnections(stackEnv()).map((c) => c.remoteAccountId);
      const conns = await sql`select id, provider from crm.connections
                              where remote_account_id in ${sql(remoteIds)}`;
      assert.equal(conns.length, 3);
      for (const c of conns) {
        const provider = c.provider as ProviderName;
        const run = answer.runs.find((r) => r.connection_id === c.id && r.object === "contacts");
        assert.equal(run?.status, "success", JSON.stringify(run));
        const want = [...(await expectedContacts(provider, need(URL_KEY[provider]))).values()]
          .filter((w) => !w.deleted).map((w) => w.remote_id).sort();
        const got = await sql`select remote_id from crm.contacts
                              where connection_id = ${c.id} and deleted_at is null`;
        assert.deepEqual(got.map((r) => r.remote_id).sort(), want, `${provider} contacts`);
        const [log] = await sql`select trigger, status from crm.sync_log
                                where connection_id = ${c.id} and object = 'contacts'
                                order by id desc limit 1`;
        assert.deepEqual({ ...log }, { trigger: "cron", status: "success" });
      }
    } finally {
      await sql.end();
    }
  },
});
