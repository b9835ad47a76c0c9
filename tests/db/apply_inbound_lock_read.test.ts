// crm.apply_inbound reads a record's outbox entry only after it holds the row's lock. Found by
// the chaos harness (issue 15: seed 3, 150 ops, Salesforce, app_wins): an app edit committed
// while the apply waited for the row lock was overwritten by the CRM's older value and its
// field dropped from the outbox, so the edit never reached the CRM. The lock statement re-read
// the row at its newest version but the outbox entry as it was when the statement began, so
// the field looked unedited ('take'). Two real sessions; runs against the shared stack database
// with a connection of its own.
import assert from "node:assert/strict";
import { twoSessions } from "../_support/db.ts";

Deno.test("apply_inbound: an app edit committed while the apply waits for the row lock stays pending", async () => {
  await twoSessions("hubspot", { "conflict_policy": "app_wins" }, async (a, b, connectionId) => {
    const [{ id: rowId }] = await a.begin(async (tx) => {
      await tx`select set_config('crm.engine', 'on', true)`;
      return await tx`
        insert into crm.contacts (connection_id, remote_id, remote_updated_at, first_name, job_title)
        values (${connectionId}::uuid, 'lr-1', '2026-01-01T00:00:00Z', 'F0', 'J0')
        returning id::text as id`;
    });
    // An app edit of first_name, queued (the entry the apply will find).
    await a`update crm.contacts set first_name = 'AF1' where id = ${rowId}::uuid`;
    const [{ pid }] = await b`select pg_backend_pid() as pid`;
    // A CRM read newer than the row, with the CRM's (unchanged) values.
    const page = [{
      remote_id: "lr-1",
      remote_updated_at: "2026-01-01T00:00:05Z",
      first_name: "F0",
      job_title: "J0",
    }];
    let applied: Promise<unknown[]> | undefined;
    await a.begin(async (tx) => {
      // The app edits job_title; this transaction holds the row lock until it commits.
      await tx`update crm.contacts set job_title = 'AJ2' where id = ${rowId}::uuid`;
      applied = b`select * from crm.apply_inbound(${connectionId}::uuid, 'contacts', ${
        b.json(page)
      })`.execute();
      for (let i = 0;; i++) {
        const [{ waiting }] = await tx`select exists (
            select 1 from pg_stat_activity where pid = ${pid} and wait_event_type = 'Lock') as waiting`;
        if (waiting) break;
        assert.ok(i < 200, "the apply never waited for the app's row lock");
        await new Promise((r) => setTimeout(r, 25));
      }
    });
    await applied!;
    const [row] = await a`select first_name, job_title from crm.contacts where id = ${rowId}::uuid`;
    assert.deepEqual([row.first_name, row.job_title], ["AF1", "AJ2"], "the app's edits stay");
    const [ob] = await a`select changed_columns from crm.outbox
                         where object = 'contacts' and record_id = ${rowId}::uuid`;
    assert.ok(ob, "the outbox entry stays");
    assert.deepEqual([...ob.changed_columns].sort(), ["first_name", "job_title"]);
  });
});
