// The scheduled path does real work: the command pg_cron runs for `crm-inbound-contacts`
// enqueues one job per active connection and wakes workers (net.http_post to
// crm-sync-bidirectional with the URL and key from Vault); the workers sync the connections
// `npm run stack:up` registered for the stack's own sandboxes, and their contacts end up in
// crm.contacts exactly.
import assert from "node:assert/strict";
import { sandboxConnections } from "../../shared/local/connections.ts";
import type { ProviderName } from "../../supabase/functions/_shared/providers/types.ts";
import { need, stackEnv } from "../_support/env.ts";
import { awaitJobs, db } from "./_harness.ts";
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
      const remoteIds = sandboxConnections(stackEnv()).map((c) => c.remoteAccountId);
      const conns = await sql`select id, provider from crm.connections
                              where remote_account_id in ${sql(remoteIds)}`;
      assert.equal(conns.length, 3);
      const [{ t0 }] = await sql`select clock_timestamp() as t0`;
      await sql.unsafe(job.command);
      const jobs = await sql`select connection_id, object, mode, payload ->> 'trigger' as trigger
                             from crm.jobs where connection_id in ${sql(conns.map((c) => c.id))}
                               and created_at >= ${t0}`;
      assert.equal(jobs.length, 3, "one contacts job per sandbox connection");
      for (const j of jobs) {
        assert.deepEqual({ object: j.object, mode: j.mode, trigger: j.trigger }, {
          object: "contacts",
          mode: "delta",
          trigger: "cron",
        });
      }
      const [woken] = await sql`select count(*)::int as n from crm.job_workers
                                where woken_at >= ${t0} and request_id is not null`;
      assert.ok(woken.n >= 1, "the tick woke a worker through pg_net");
      for (const c of conns) {
        const provider = c.provider as ProviderName;
        const answer = await awaitJobs(sql, c.id, t0);
        assert.equal(answer.ok, true, JSON.stringify(answer));
        const run = answer.runs.find((r) => r.object === "contacts");
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
