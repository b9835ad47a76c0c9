// Pipedrive merge of a person with a queued app edit (chaos finding, Pipedrive seed 3 app_wins):
// Pipedrive reports a merge only in the loser's webhook v2 delete event (meta.merged_to_id; v2
// lists never return deleted persons, and the survivor names no merged ids). The event is
// stored as the receiver stores it (normalizePipedrive of the sandbox's payload shape) and
// drained by the inbox job: the loser becomes a tombstone merged into the survivor, and its
// pending app edit is settled against the survivor by the policy (app_wins: the survivor takes
// it and it is pushed there), as on HubSpot. Before, the loser read as a plain delete: under
// app_wins the row was recreated (a new CRM person) and the survivor kept the CRM's values.
// The second test: the push reaches the loser (404, "gone") before the inbox applies the merge
// event; the entry waits for the inbox instead of being settled as a delete (sync/gone_merges).
// Workers are held off (max_workers 0) while the edit is queued and the merge made.
import assert from "node:assert/strict";
import { importKey } from "../../supabase/functions/_shared/crypto.ts";
import { loadConnections } from "../../supabase/functions/_shared/sync/connections.ts";
import { createSyncContext } from "../../supabase/functions/_shared/sync/context.ts";
import { holdGoneMerges, mergeStoreOf } from "../../supabase/functions/_shared/sync/gone_merges.ts";
import {
  claimOutbox,
  failOutbox,
  type Failure,
  type OutboxEntry,
} from "../../supabase/functions/_shared/sync/outbox.ts";
import { planPush } from "../../supabase/functions/_shared/sync/push_ops.ts";
import { normalizePipedrive } from "../../supabase/functions/_shared/webhooks/pipedrive.ts";
import { need } from "../_support/env.ts";
import {
  admin,
  type ConnectionScope,
  type Sql,
  triggerSync,
  until,
  withConnection,
  withSettings,
} from "./_harness.ts";
import { asApp, awaitOutbox, pushNow, stored } from "./_outbound.ts";
import { inboxSettled } from "./_webhooks.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

interface Row {
  id: string;
  remote_id: string;
  first_name: string | null;
}

/** Two synced persons; the app edits the loser (queued), a CRM user merges it into the other. */
async function mergeWithQueuedEdit(
  { sb, sql, conn }: ConnectionScope,
  beforeWorkers: (survivor: Row, loser: Row) => Promise<void>,
): Promise<{ survivor: Row; loser: Row }> {
  await triggerSync(sql, "all", conn);
  const [survivor, loser] = await sql<Row[]>`
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
    await beforeWorkers(survivor, loser);
  });
  return { survivor, loser };
}

/** The loser's delete event as Pipedrive sends it (data null, the whole object in previous,
 * the survivor in meta.merged_to_id), stored as the receiver stores it. */
async function storeMergeEvent(sql: Sql, conn: string, survivor: Row, loser: Row) {
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
}

async function drainInbox(sql: Sql, conn: string) {
  await sql`select crm.enqueue_job('inbox', ${conn}::uuid, null, null,
                                   '{"trigger":"webhook"}'::jsonb, now(), true)`;
  await until("the merge event is processed", () => inboxSettled(sql, conn), 30_000);
}

/** The merge as the engine must end it: loser merged away, the survivor with the app's edit
 * (app_wins) in the mirror and, once pushed, in the CRM; no row recreated for the loser. */
async function assertRetargeted({ sb, sql, conn }: ConnectionScope, survivor: Row, loser: Row) {
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
                              where connection_id = ${conn} and remote_id is null`;
  assert.equal(recreated.length, 0, "no row recreated for the loser");
  await sql`update crm.outbox set next_attempt_at = now() where connection_id = ${conn}`;
  await sql`select crm.enqueue_job('outbound', ${conn}::uuid, null, null, '{}'::jsonb, now(), true)`;
  await awaitOutbox(sql, conn);
  const crm = await stored(sb.url, "pipedrive", "contacts", survivor.remote_id);
  assert.equal(crm.props.first_name, "AppEdit", "the re-targeted edit reaches the survivor");
}

const settings = { conflict_policy: "app_wins" };

Deno.test({
  ...opts,
  name: "e2e pipedrive: a merge loser's queued app edit lands on the survivor (app_wins)",
  fn: async () => {
    await withConnection("pipedrive", { seed: 58, records: 6, unlimited: true, settings }, async (
      scope,
    ) => {
      const { sql, conn } = scope;
      const { survivor, loser } = await mergeWithQueuedEdit(scope, async (_s, l) => {
        // Not due: the workers only drain the inbox.
        await sql`update crm.outbox set next_attempt_at = now() + interval '1 hour'
                  where record_id = ${l.id}`;
      });
      await storeMergeEvent(sql, conn, survivor, loser);
      await drainInbox(sql, conn);
      await assertRetargeted(scope, survivor, loser);
    });
  },
});

Deno.test({
  ...opts,
  name: "e2e pipedrive: a push that finds the merge loser gone waits for the merge event",
  fn: async () => {
    await withConnection("pipedrive", { seed: 59, records: 6, unlimited: true, settings }, async (
      scope,
    ) => {
      const { sql, conn } = scope;
      const { survivor, loser } = await mergeWithQueuedEdit(scope, async (s, l) => {
        await storeMergeEvent(sql, conn, s, l);
        // The push first (a direct request: no worker runs the inbox meanwhile).
        await pushNow(conn);
        const [e] = await sql`select state, last_error, attempts from crm.outbox
                              where record_id = ${l.id}`;
        assert.equal(e?.state, "pending", `the entry waits: ${JSON.stringify(e)}`);
        assert.match(e.last_error, /merge event waits in the inbox/);
        assert.equal(e.attempts, 0, "a hold gives its attempt back: no dead letter for waiting");
        const [row] = await sql`select remote_id, deleted_at from crm.contacts where id = ${l.id}`;
        assert.deepEqual({ ...row }, { remote_id: l.remote_id, deleted_at: null });
      });
      await drainInbox(sql, conn);
      await assertRetargeted(scope, survivor, loser);
    });
  },
});

Deno.test({
  ...opts,
  name: "e2e pipedrive: a push in flight when the merge is applied still lands on the survivor",
  fn: async () => {
    await withConnection("pipedrive", { seed: 61, records: 6, unlimited: true, settings }, async (
      scope,
    ) => {
      const { sql, conn } = scope;
      const key = await importKey(need("CRM_ENCRYPTION_KEY"));
      const { connections } = await loadConnections(sql, key, { connectionId: conn });
      const ctx = await createSyncContext(sql, key, connections[0], () => {}, { lane: "realtime" });
      let entries: OutboxEntry[] = [];
      const { survivor, loser } = await mergeWithQueuedEdit(scope, async (s, l) => {
        // This test is the push: it holds the entry while the inbox applies the merge.
        entries = await claimOutbox(sql, "e2e push", conn, "contacts", 10, 120);
        assert.equal(entries.length, 1);
        await storeMergeEvent(sql, conn, s, l);
      });
      await drainInbox(sql, conn);
      const [e] = await sql`select state from crm.outbox where record_id = ${loser.id}`;
      assert.equal(e?.state, "processing", "the claimed entry is left to its push");
      // The push's write meets the loser gone; its failure is recorded as outbound.ts does.
      const batch = planPush("contacts", entries, ctx.outbound, () => null);
      const [r] = await ctx.adapter.writer.write("contacts", batch.ops);
      await ctx.budget.flush();
      assert.equal(r.ok ? "ok" : r.action, "gone", JSON.stringify(r));
      const failed: Failure[] = [{
        id: entries[0].id,
        lease: entries[0].lease,
        action: "gone",
        error: "404",
      }];
      const merges = mergeStoreOf(sql);
      const moved = await holdGoneMerges(
        merges,
        ctx.conn,
        "contacts",
        failed,
        new Map([[entries[0].id, entries[0]]]),
      );
      assert.deepEqual(moved, [loser.id]);
      await failOutbox(sql, failed);
      assert.equal(await merges.retarget(conn, "contacts", moved), 1);
      await assertRetargeted(scope, survivor, loser);
    });
  },
});
