// Webhook processing end to end, for each provider: events stored in crm.webhook_events as the
// receiver stores them (SPEC13) after records changed in the sandbox, then the inbox job the
// receiver enqueues (crm.enqueue_job('inbox', ...)), drained by a worker woken through pg_net.
// The rows land within a second; duplicated and reordered events end in the state one clean
// event (and a delta) gives; a deletion event tombstones, a merge event aliases; a paused
// connection's events wait until it is resumed; events without a connection are never
// processed; the echo of the engine's own push writes nothing.
import assert from "node:assert/strict";
import { type ProviderName, PROVIDERS } from "../../supabase/functions/_shared/providers/types.ts";
import { admin, type Sql, triggerSync, until, withConnection, withSettings } from "./_harness.ts";
import { ADMIN_OBJECT, asApp, awaitOutbox, pushNow } from "./_outbound.ts";
import { inboxSettled } from "./_webhooks.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

const FIRST_NAME: Record<ProviderName, string> = {
  hubspot: "firstname",
  salesforce: "FirstName",
  pipedrive: "first_name",
};
const edit = (p: ProviderName, name: string) =>
  p === "hubspot" ? { properties: { firstname: name } } : { [FIRST_NAME[p]]: name };

interface Event {
  remote_id: string;
  event_type: "upsert" | "delete" | "merge";
  occurred_at: string;
  dedupe_key: string;
  payload?: Record<string, unknown>;
  connection_id?: string | null;
}

/** Stores events as the receiver does: one call of crm.enqueue_webhook_events. */
async function store(sql: Sql, provider: ProviderName, conn: string, events: Event[]) {
  const rows = events.map((e) => ({
    provider,
    connection_id: e.connection_id === undefined ? conn : e.connection_id,
    object: "contacts",
    remote_id: e.remote_id,
    event_type: e.event_type,
    occurred_at: e.occurred_at,
    dedupe_key: `${conn}:${e.dedupe_key}`,
    payload: e.payload ?? { objectId: e.remote_id },
  }));
  const [r] = await sql`select * from crm.enqueue_webhook_events(${
    sql.json(rows as never)
  }::jsonb)`;
  return { inserted: Number(r.inserted), duplicates: Number(r.duplicates) };
}

/** The receiver's enqueue after storing. */
async function enqueueInbox(sql: Sql, conn: string) {
  await sql`select crm.enqueue_job('inbox', ${conn}::uuid, null, null, '{"trigger":"webhook"}'::jsonb,
                                   now(), true)`;
}

async function liveContactIds(sql: Sql, conn: string): Promise<string[]> {
  const rows = await sql`select remote_id from crm.contacts
                         where connection_id = ${conn} and deleted_at is null and kind = 'contact'
                         order by remote_id`;
  return rows.map((r) => r.remote_id as string);
}

const iso = (ms: number) => new Date(ms).toISOString();

for (const provider of PROVIDERS) {
  Deno.test({
    name: `e2e ${provider}: webhook events are re-read and applied within a second`,
    ...opts,
    fn: async () => {
      await withConnection(provider, { seed: 41, records: 30 }, async ({ sb, sql, conn }) => {
        await triggerSync(sql, "all", conn);
        const ids = await liveContactIds(sql, conn);
        const obj = ADMIN_OBJECT[provider].contacts;
        const [a, b, gone, survivor, loser, kept] = ids;

        // Warm the worker path (first invocation of the function) with one clean event.
        await admin(sb.url, "PATCH", `/records/${obj}/${kept}`, edit(provider, "Warm"));
        await store(sql, provider, conn, [
          { remote_id: kept, event_type: "upsert", occurred_at: iso(Date.now()), dedupe_key: "w" },
        ]);
        await enqueueInbox(sql, conn);
        await until("the warm-up event is processed", () => inboxSettled(sql, conn), 30_000);

        // Changes in the CRM, then their events: duplicated (two deliveries of one event, and
        // several events of one record), reordered (older occurred_at stored last), a deletion
        // and a merge.
        await admin(sb.url, "PATCH", `/records/${obj}/${a}`, edit(provider, "First"));
        await admin(sb.url, "PATCH", `/records/${obj}/${a}`, edit(provider, "Second"));
        await admin(sb.url, "PATCH", `/records/${obj}/${b}`, edit(provider, "Bee"));
        await admin(sb.url, "DELETE", `/records/${obj}/${gone}`);
        await admin(sb.url, "POST", `/records/${obj}/merge`, {
          primaryId: survivor,
          mergedId: loser,
        });
        const t = Date.now();
        const merge: Event = provider === "pipedrive"
          ? {
            remote_id: loser,
            event_type: "merge",
            occurred_at: iso(t),
            dedupe_key: "m",
            // Webhooks v2: the loser's delete event, the survivor in meta.merged_to_id.
            payload: {
              data: null,
              previous: { id: Number(loser) },
              meta: { action: "delete", entity_id: loser, merged_to_id: survivor },
            },
          }
          : {
            remote_id: survivor,
            event_type: "merge",
            occurred_at: iso(t),
            dedupe_key: "m",
            payload: { objectId: survivor, mergedObjectIds: [loser], primaryObjectId: survivor },
          };
        const first = await store(sql, provider, conn, [
          { remote_id: a, event_type: "upsert", occurred_at: iso(t - 1), dedupe_key: "a2" },
          { remote_id: b, event_type: "upsert", occurred_at: iso(t - 1), dedupe_key: "b1" },
          { remote_id: gone, event_type: "delete", occurred_at: iso(t), dedupe_key: "g" },
          merge,
        ]);
        // A later request: a repeat delivery and the older event of `a`, after the newer one.
        const second = await store(sql, provider, conn, [
          { remote_id: a, event_type: "upsert", occurred_at: iso(t - 1), dedupe_key: "a2" },
          { remote_id: a, event_type: "upsert", occurred_at: iso(t - 2), dedupe_key: "a1" },
          { remote_id: b, event_type: "upsert", occurred_at: iso(t - 1), dedupe_key: "b1" },
        ]);
        assert.deepEqual(first, { inserted: 4, duplicates: 0 });
        assert.deepEqual(second, { inserted: 1, duplicates: 2 }, "repeat deliveries are dropped");

        const t0 = Date.now();
        await enqueueInbox(sql, conn);
        let landed = 0;
        await until("the events are applied", async () => {
          const rows = await sql`select remote_id, first_name, deleted_at is not null as deleted
                                 from crm.contacts where connection_id = ${conn}
                                   and remote_id in (${a}, ${b}, ${gone}, ${loser})`;
          const by = Object.fromEntries(rows.map((r) => [r.remote_id, r]));
          const ok = by[a]?.first_name === "Second" && by[b]?.first_name === "Bee" &&
            by[gone]?.deleted === true && by[loser]?.deleted === true;
          if (ok && !landed) landed = Date.now() - t0;
          return ok;
        }, 10_000);
        console.log(`${provider}: webhook events to rows: ${landed} ms`);
        assert.ok(landed < 1_000, `rows landed after ${landed} ms, not within a second`);
        await until("the inbox is drained", () => inboxSettled(sql, conn), 10_000);

        const events = await sql`select state, count(*)::int as n from crm.webhook_events
                                 where connection_id = ${conn} group by state`;
        assert.deepEqual(events.map((e) => ({ ...e })), [{ state: "done", n: 6 }]);
        const [srv] = await sql`select deleted_at is null as live from crm.contacts
                                where connection_id = ${conn} and remote_id = ${survivor}`;
        assert.equal(srv.live, true, "the merge survivor stays live");
        if (provider !== "salesforce") {
          const [l] = await sql`select merged_into_remote_id from crm.contacts
                                where connection_id = ${conn} and remote_id = ${loser}`;
          assert.equal(
            l.merged_into_remote_id,
            survivor,
            "the merged-away record points at the survivor",
          );
        }
        const runs = await sql`select object, direction, trigger, status from crm.sync_log
                               where connection_id = ${conn} and trigger = 'webhook'`;
        assert.ok(runs.length >= 2, "one run per drain and object");
        assert.ok(
          runs.every((r) =>
            r.object === "contacts" && r.direction === "inbound" && r.status === "success"
          ),
          JSON.stringify(runs),
        );

        // Same state as polling: a delta now finds nothing the webhooks did not already apply
        // (records the delta listing cannot see deleted aside, which it does not touch).
        const delta = await triggerSync(sql, "contacts", conn);
        const run = delta.runs.find((r) => r.object === "contacts")!;
        assert.equal(run.status, "success", JSON.stringify(run));
        assert.equal(
          run.updated,
          0,
          `the delta found changes the webhooks missed: ${JSON.stringify(run)}`,
        );
        assert.equal(run.created, 0);
      });
    },
  });

  Deno.test({
    name:
      `e2e ${provider}: paused connections wait, connection-less events are never processed, echoes write nothing`,
    ...opts,
    fn: async () => {
      await withConnection(provider, { seed: 43, records: 20 }, async ({ sb, sql, conn }) => {
        await triggerSync(sql, "all", conn);
        const ids = await liveContactIds(sql, conn);
        const obj = ADMIN_OBJECT[provider].contacts;
        const [p, orphan] = ids;

        // A connection-less event naming a real record of this sandbox.
        await admin(sb.url, "PATCH", `/records/${obj}/${orphan}`, edit(provider, "Orphan"));
        await store(sql, provider, conn, [{
          remote_id: orphan,
          event_type: "upsert",
          occurred_at: iso(Date.now()),
          dedupe_key: "orphan",
          connection_id: null,
        }]);

        // A paused connection: its event waits, and no drain starts for it.
        await sql`select crm.pause_connection(${conn}::uuid)`;
        await admin(sb.url, "PATCH", `/records/${obj}/${p}`, edit(provider, "Paused"));
        await store(sql, provider, conn, [
          { remote_id: p, event_type: "upsert", occurred_at: iso(Date.now()), dedupe_key: "p" },
        ]);
        await assert.rejects(enqueueInbox(sql, conn), /paused/);
        await sql`select crm.enqueue_inbox(p_trigger => 'cron')`;
        const [{ n: jobs }] = await sql`select count(*)::int as n from crm.jobs
                                        where connection_id = ${conn} and kind = 'inbox'
                                          and state in ('queued', 'running')`;
        assert.equal(jobs, 0, "the cron safety net queues no drain for a paused connection");
        await sql`select crm.wake_workers('test')`;
        await new Promise((r) => setTimeout(r, 1_500));
        const [waiting] = await sql`select state, attempts from crm.webhook_events
                                    where connection_id = ${conn}`;
        assert.deepEqual({ ...waiting }, { state: "pending", attempts: 0 }, "the event waits");
        const [row0] = await sql`select first_name from crm.contacts
                                 where connection_id = ${conn} and remote_id = ${p}`;
        assert.notEqual(row0.first_name, "Paused");

        // Resumed: the cron safety net (crm-inbox) drains it.
        await sql`select crm.resume_connection(${conn}::uuid)`;
        const [{ n }] = await sql`select crm.enqueue_inbox(${conn}::uuid, 'cron') as n`;
        assert.equal(Number(n), 1);
        await until("the waiting event is applied", async () => {
          const [r] = await sql`select first_name from crm.contacts
                                where connection_id = ${conn} and remote_id = ${p}`;
          return r.first_name === "Paused";
        }, 10_000);
        await until("the inbox is drained", () => inboxSettled(sql, conn), 10_000);

        // The connection-less event was never claimed, and its record never written.
        const orphans = await sql`select state, attempts, locked_by from crm.webhook_events
                                  where connection_id is null
                                    and dedupe_key = ${`${conn}:orphan`}`;
        assert.deepEqual(orphans.map((o) => ({ ...o })), [{
          state: "pending",
          attempts: 0,
          locked_by: null,
        }]);
        const [o] = await sql`select first_name from crm.contacts
                              where connection_id = ${conn} and remote_id = ${orphan}`;
        assert.notEqual(o.first_name, "Orphan");
        await sql`delete from crm.webhook_events where dedupe_key = ${`${conn}:orphan`}`;

        // The echo of our own push: app edit → push → the CRM's webhook for it → nothing written.
        const [{ id: local }] = await sql`select id from crm.contacts
                                          where connection_id = ${conn} and remote_id = ${p}`;
        await asApp(
          sql,
          conn,
          (tx) => tx`update crm.contacts set first_name = 'Pushed' where id = ${local}`,
        );
        await awaitOutbox(sql, conn);
        const [{ v: before }] =
          await sql`select xmin::text as v from crm.contacts where id = ${local}`;
        await store(sql, provider, conn, [
          { remote_id: p, event_type: "upsert", occurred_at: iso(Date.now()), dedupe_key: "echo" },
        ]);
        await enqueueInbox(sql, conn);
        await until("the echo is processed", () => inboxSettled(sql, conn), 10_000);
        const [echo] = await sql`select l.updated, l.created, l.deleted, l.unchanged, l.status
                                 from crm.sync_log l join crm.webhook_events w
                                   on w.connection_id = l.connection_id
                                 where l.connection_id = ${conn} and l.trigger = 'webhook'
                                   and w.dedupe_key = ${`${conn}:echo`}
                                 order by l.id desc limit 1`;
        assert.deepEqual({ ...echo }, {
          updated: 0,
          created: 0,
          deleted: 0,
          unchanged: 1,
          status: "success",
        });
        const [{ v: after }] =
          await sql`select xmin::text as v from crm.contacts where id = ${local}`;
        assert.equal(after, before, "the echo did not write the row");
        const [{ n: conflicts }] = await sql`select count(*)::int as n from crm.conflicts
                                             where connection_id = ${conn}`;
        assert.equal(conflicts, 0);
      });
    },
  });
}

for (const provider of PROVIDERS) {
  Deno.test({
    name:
      `e2e ${provider}: a failed re-read sends the events back with backoff; a later drain applies them`,
    ...opts,
    fn: async () => {
      await withConnection(provider, { seed: 47, records: 12 }, async ({ sb, sql, conn }) => {
        await triggerSync(sql, "contacts", conn);
        const [id] = await liveContactIds(sql, conn);
        const obj = ADMIN_OBJECT[provider].contacts;
        await admin(sb.url, "PATCH", `/records/${obj}/${id}`, edit(provider, "Later"));
        await admin(sb.url, "PUT", "/faults", { error5xxRate: 1 });
        await store(sql, provider, conn, [
          { remote_id: id, event_type: "upsert", occurred_at: iso(Date.now()), dedupe_key: "f1" },
          { remote_id: id, event_type: "upsert", occurred_at: iso(Date.now()), dedupe_key: "f2" },
        ]);
        await enqueueInbox(sql, conn);
        await until("the events are sent back", async () => {
          const rows =
            await sql`select state, attempts, last_error, next_attempt_at > now() as later
                                 from crm.webhook_events where connection_id = ${conn}`;
          return rows.every((r) => r.state === "pending" && r.attempts === 1 && r.later);
        }, 60_000);
        const [e] =
          await sql`select last_error from crm.webhook_events where connection_id = ${conn}
                              limit 1`;
        assert.ok(e.last_error, "the failure is kept on the event");
        // The job records its deferral just after the events went back.
        await until("the drain is deferred to the backoff", async () => {
          const [job] = await sql`select state, run_after > now() as later from crm.jobs
                                  where connection_id = ${conn} and kind = 'inbox'`;
          return job?.state === "queued" && job.later === true;
        }, 10_000);
        const [row] = await sql`select first_name from crm.contacts
                                where connection_id = ${conn} and remote_id = ${id}`;
        assert.notEqual(row.first_name, "Later");

        // The CRM is back and the backoff has passed: the next drain applies the change once.
        await admin(sb.url, "PUT", "/faults", {});
        await sql`update crm.webhook_events set next_attempt_at = now() where connection_id = ${conn}`;
        await sql`update crm.jobs set run_after = now() where connection_id = ${conn} and kind = 'inbox'`;
        await sql`select crm.wake_workers('test')`;
        await until("the change is applied", async () => {
          const [r] = await sql`select first_name from crm.contacts
                                where connection_id = ${conn} and remote_id = ${id}`;
          return r.first_name === "Later";
        }, 30_000);
        await until("the inbox is drained", () => inboxSettled(sql, conn), 10_000);
        const states = await sql`select state, attempts from crm.webhook_events
                                 where connection_id = ${conn}`;
        assert.deepEqual(states.map((s) => ({ ...s })), [
          { state: "done", attempts: 2 },
          { state: "done", attempts: 2 },
        ]);
        const [{ status }] = await sql`select status from crm.connections where id = ${conn}`;
        assert.equal(status, "active");
      });
    },
  });
}

for (const provider of PROVIDERS) {
  Deno.test({
    name:
      `e2e ${provider}: the webhook echo of L1 arriving after the app's L2 keeps L2 (write ledger)`,
    ...opts,
    fn: async () => {
      await withConnection(provider, { seed: 53, records: 6 }, async ({ sql, conn }) => {
        await triggerSync(sql, "all", conn);
        const [id] = await liveContactIds(sql, conn);
        const [{ id: local }] = await sql`select id from crm.contacts
                                          where connection_id = ${conn} and remote_id = ${id}`;
        // No worker runs while the app edits: L1 is pushed directly, L2 stays queued.
        await withSettings(sql, { max_workers: 0 }, async () => {
          await asApp(
            sql,
            conn,
            (tx) => tx`update crm.contacts set first_name = 'Echo L1' where id = ${local}`,
          );
          await pushNow(conn);
          await asApp(
            sql,
            conn,
            (tx) => tx`update crm.contacts set first_name = 'Echo L2' where id = ${local}`,
          );
          await sql`select crm.cancel_jobs(${conn}::uuid, 'outbound')`;
        });
        // The CRM's webhook for L1 (our own push) reaches the inbox now.
        await store(sql, provider, conn, [
          { remote_id: id, event_type: "upsert", occurred_at: iso(Date.now()), dedupe_key: "l1" },
        ]);
        await enqueueInbox(sql, conn);
        await until("the echo is processed", () => inboxSettled(sql, conn), 15_000);
        const [row] = await sql`select first_name from crm.contacts where id = ${local}`;
        assert.equal(row.first_name, "Echo L2", "the echo of L1 did not overwrite L2");
        const [{ n }] = await sql`select count(*)::int as n from crm.conflicts
                                  where connection_id = ${conn}`;
        assert.equal(n, 0, "an echo is never a conflict");
        const [entry] = await sql`select changed_columns from crm.outbox
                                  where record_id = ${local} and state = 'pending'`;
        assert.deepEqual(entry?.changed_columns, ["first_name"], "L2 is still to be pushed");
        const [run] = await sql`select updated, status from crm.sync_log
                                where connection_id = ${conn} and trigger = 'webhook'
                                order by id desc limit 1`;
        assert.deepEqual({ ...run }, { updated: 0, status: "success" });
      });
    },
  });
}
