// Pipedrive merge of a person with a queued app edit (chaos finding, Pipedrive seed 3 app_wins):
// Pipedrive reports a merge only in the loser's webhook v2 delete event (meta.merged_to_id; v2
// lists never return deleted persons, and the survivor names no merged ids). The event is
// stored as the receiver stores it (normalizePipedrive of the sandbox's payload shape) and
// drained by the inbox job: the loser becomes a tombstone merged into the survivor, and its
// pending app edit is settled against the survivor by the policy (app_wins: the survivor takes
// it and it is pushed there), as on HubSpot. Before, the loser read as a plain delete: under
// app_wins the row was recreated (a new CRM person) and the survivor kept the CRM's values.
// Workers are held off (max_workers 0) while the edit is queued and the merge made; the entry
// is then made not due, so the only thing the workers do is the inbox's drain.
import assert from "node:assert/strict";
import { normalizePipedrive } from "../../supabase/functions/_shared/webhooks/pipedrive.ts";
import { admin, triggerSync, until, withConnection, withSettings } from "./_harness.ts";
import { asApp, awaitOutbox, stored } from "./_outbound.ts";
import { inboxSettled } from "./_webhooks.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test({
  ...opts,
  name: "e2e pipedrive: a merge loser's queued app edit lands on the survivor (app_wins)",
  fn: async () => {
    const settings = { conflict_policy: "app_wins" };
    await withConnection("pipedrive", { seed: 58, records: 6, unlimited: true, settings }, async (
      { sb, sql, conn },
    ) => {
      await triggerSync(sql, "all", conn);
      const [survivor, loser] = await sql`
        select id, remote_id, first_name from crm.contacts
        where connection_id = ${conn} and deleted_at is null and kind = 'contact'
        order by remote_id::bigint limit 2`;
      await withSettings(sql, { max_workers: 0 }, async () => {
        await asApp(
          sql,
          conn,
          (tx) => tx`update crm.contacts set first_name = 'AppEdit' where id = ${loser.id}`,
        );
        await admin(sb.url, "POST", "/records/person/merge", {
          primaryId: survivor.remote_id,
          mergedId: loser.remote_id,
        });
        await sql`update crm.outbox set next_attempt_at = now() + interval '1 hour'
                  where record_id = ${loser.id}`;
      });
      // The loser's delete event as Pipedrive sends it: data null, the whole object in
      // previous, the survivor in meta.merged_to_id.
      const { events } = normalizePipedrive({
        data: null,
        previous: { id: Number(loser.remote_id), first_name: loser.first_name, is_deleted: false },
        meta: {
          action: "delete",
          entity: "person",
          entity_id: String(loser.remote_id),
          company_id: "1",
          id: crypto.randomUUID(),
          timestamp: new Date().toISOString(),
          version: "2.0",
          merged_to_id: String(survivor.remote_id),
        },
      }, conn);
      assert.equal(events[0].event_type, "merge");
      await sql`select * from crm.enqueue_webhook_events(${sql.json(events as never)}::jsonb)`;
      await sql`select crm.enqueue_job('inbox', ${conn}::uuid, null, null,
                                       '{"trigger":"webhook"}'::jsonb, now(), true)`;
      await until("the merge event is processed", () => inboxSettled(sql, conn), 30_000);

      const [l] = await sql`select deleted_at is not null as deleted, merged_into_remote_id
                            from crm.contacts where id = ${loser.id}`;
      assert.deepEqual({ ...l }, { deleted: true, merged_into_remote_id: survivor.remote_id });
      const [s] = await sql`select first_name from crm.contacts where id = ${survivor.id}`;
      assert.equal(s.first_name, "AppEdit", "the survivor takes the loser's app edit (app_wins)");
      const conflicts = await sql`select field, resolution, reason from crm.conflicts
                                  where record_id = ${survivor.id}`;
      assert.deepEqual(conflicts.map((c) => [c.field, c.resolution, c.reason?.slice(0, 6)]), [[
        "first_name",
        "local",
        "merge:",
      ]]);
      const recreated = await sql`select id from crm.contacts
                                  where connection_id = ${conn} and deleted_at is null
                                    and id not in (select id from crm.contacts
                                                   where remote_id is not null
                                                     and connection_id = ${conn})`;
      assert.equal(recreated.length, 0, "no row recreated for the loser");

      // The re-targeted edit reaches the survivor in the CRM.
      await sql`update crm.outbox set next_attempt_at = now() where connection_id = ${conn}`;
      await sql`select crm.enqueue_job('outbound', ${conn}::uuid, null, null, '{}'::jsonb,
                                       now(), true)`;
      await awaitOutbox(sql, conn);
      const crm = await stored(sb.url, "pipedrive", "contacts", survivor.remote_id);
      assert.equal(crm.props.first_name, "AppEdit");
    });
  },
});
