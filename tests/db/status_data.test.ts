// The status view's reading of the database (shared/local/status_data.ts) on the stack's own
// database, inside a transaction rolled back at the end: a connection's failed run is a current
// error until a success follows (and an error followed by a success is not shown), a
// function call that answered 200 with "ok":false counts as failed in pg_net, and the cron jobs
// come with their next run.
import assert from "node:assert/strict";
import postgres from "postgres";
import { readStatus } from "../../shared/local/status_data.ts";
import { need } from "../_support/env.ts";

class Rollback extends Error {}

Deno.test("status data: current errors, backlog, pg_net failures, next cron runs", async () => {
  const sql = postgres(need("SUPABASE_DB_URL"), { max: 1, onnotice: () => {} });
  try {
    await sql.begin(async (tx) => {
      const [{ id }] = await tx`
        insert into crm.connections (account_id, provider, remote_account_id, status, name)
        values (gen_random_uuid(), 'pipedrive', ${"status-data-" + crypto.randomUUID()},
                'active', 'Status probe')
        returning id::text as id`;
      await tx`
        insert into crm.sync_log (connection_id, object, direction, trigger, status, started_at,
                                  finished_at, error)
        values (${id}, 'deals', 'inbound', 'cron', 'failed', now() - interval '1 minute',
                now() - interval '1 minute', '{"message": "HTTP 503 from the CRM"}'),
               (${id}, 'contacts', 'inbound', 'cron', 'failed', now() - interval '2 minutes',
                now() - interval '2 minutes', '{"message": "an old error"}'),
               (${id}, 'contacts', 'inbound', 'cron', 'success', now() - interval '1 minute',
                now() - interval '1 minute', null)`;
      const before = await readStatus(tx as unknown as postgres.Sql);
      await tx`
        insert into net._http_response (id, status_code, content, created)
        values ((select coalesce(max(id), 0) + 1 from net._http_response), 200,
                '{"ok":false,"error":"boom"}', now())`;
      const m = await readStatus(tx as unknown as postgres.Sql);
      const mine = m.streams.filter((s) => s.connectionId === id);
      assert.deepEqual(mine.map((s) => s.object), ["contacts", "companies", "deals", "owners"]);
      const by = Object.fromEntries(mine.map((s) => [s.object, s]));
      assert.deepEqual(by.deals.errors, ["HTTP 503 from the CRM"]);
      assert.equal(by.deals.run?.status, "failed");
      assert.deepEqual(by.contacts.errors, [], "an error followed by a success is not current");
      assert.equal(by.contacts.run?.status, "success");
      assert.equal(mine[0].connection, "Status probe");
      assert.equal(m.net.failed, before.net.failed + 1, "200 with ok:false is a failed call");
      const workers = m.cron.find((j) => j.name === "crm-workers");
      assert.ok(workers?.next && workers.next > m.at, "crm-workers has a next run");
      assert.ok(+workers.next - +m.at <= 60_000, "every minute");
      throw new Rollback();
    }).catch((e) => {
      if (!(e instanceof Rollback)) throw e;
    });
  } finally {
    await sql.end();
  }
});
