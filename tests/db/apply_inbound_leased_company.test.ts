// The chaos finding "Pipedrive: an app edit of a contact's company lost on both sides when two
// worker kills follow it" (tests/chaos/regressions/pipedrive-company-lost-after-worker-kill.json),
// pinned without timing. The trace of a failing run (CRM_CHAOS_TRACE) showed the chain: a push
// of the contact's last name was claimed and written; its completion failed (a deadlock with
// the app's update of another contact of the same push, before
// 20261206060100_crm_outbox_lock_order.sql) and its worker was then killed, so the entry stayed
// leased; the app set the company (crm._enqueue_outbox adds the field to the leased entry); the
// webhook of the last-name write (the CRM's record, no company) was applied as the app's
// transaction committed, and the apply took the CRM's empty company over the app's edit because
// its locking statement read the outbox as it was before the app queued the field (fixed by
// 20261206010100_crm_inbound_lock_then_read.sql). The leased entry still listed the company, so
// its next claim pushed the row's value, null: both sides lost the company, with no conflict.
// Two real sessions against the shared stack database, a connection of its own; newest_wins as
// in the chaos run.
import assert from "node:assert/strict";
import { twoSessions } from "../_support/db.ts";

Deno.test("apply_inbound: a company the app sets while the apply waits for the row lock, with the record's push leased, is pushed by the next claim", async () => {
  await twoSessions(
    "pipedrive",
    { "conflict_policy": "newest_wins" },
    async (a, b, connectionId) => {
      const [{ id: rowId }] = await a.begin(async (tx) => {
        await tx`select set_config('crm.engine', 'on', true)`;
        return await tx`
        insert into crm.contacts (connection_id, remote_id, remote_updated_at, first_name, last_name)
        values (${connectionId}::uuid, 'lc-1', '2026-01-01T00:00:04Z', 'F0', 'L0')
        returning id::text as id`;
      });
      // The app's last-name edit, claimed by a worker that then dies before completing it (the
      // entry stays leased; its write reached the CRM).
      await a`update crm.contacts set last_name = 'AL1' where id = ${rowId}::uuid`;
      const [first] = await b`
      select id::text as id, pushed from crm.claim_outbox('killed-worker', 10, '5 minutes',
                                                         ${connectionId}::uuid)`;
      assert.deepEqual(first?.pushed, { last_name: "AL1" }, "the last-name edit was claimed");
      // The webhook of that write: the CRM's record, newer than the row, with no company.
      const page = [{
        remote_id: "lc-1",
        remote_updated_at: "2026-01-01T00:00:05Z",
        first_name: "F0",
        last_name: "AL1",
        company_remote_id: null,
      }];
      const [{ pid }] = await b`select pg_backend_pid() as pid`;
      let applied: Promise<unknown[]> | undefined;
      await a.begin(async (tx) => {
        // The app sets the company; this transaction holds the row lock until it commits.
        await tx`update crm.contacts set company_remote_id = '2' where id = ${rowId}::uuid`;
        applied = b`select * from crm.apply_inbound(${connectionId}::uuid, 'contacts', ${
          b.json(page)
        })`.execute();
        applied.catch(() => {}); // awaited below
        for (let i = 0;; i++) {
          const [{ waiting }] = await tx`select exists (
            select 1 from pg_stat_activity where pid = ${pid} and wait_event_type = 'Lock') as waiting`;
          if (waiting) break;
          assert.ok(i < 200, "the apply never waited for the app's row lock");
          await new Promise((r) => setTimeout(r, 25));
        }
      });
      await applied!;
      const [row] = await a`select last_name, company_remote_id from crm.contacts
                          where id = ${rowId}::uuid`;
      assert.deepEqual(
        [row.last_name, row.company_remote_id],
        ["AL1", "2"],
        "the app's company stays in the row",
      );
      // The dead worker's lease runs out; the next claim pushes what the row holds.
      await a`update crm.outbox set locked_until = now() - interval '1 second'
            where id = ${first.id}::bigint`;
      const [again] = await b`
      select id::text as id, pushed from crm.claim_outbox('next-worker', 10, '5 minutes',
                                                         ${connectionId}::uuid)`;
      assert.equal(again?.id, first.id, "the leased entry is claimed again");
      assert.equal(again.pushed.company_remote_id, "2", "the app's company is pushed, not null");
    },
  );
});
