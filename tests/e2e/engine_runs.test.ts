// The inbound engine (runInbound) against the test stack's Postgres and a HubSpot sandbox, with
// the adapter swapped where a test needs a fault the sandbox cannot make (a record the adapter
// cannot parse) or a look from outside while a CRM call is in flight:
// - a record the database rejects is kept in crm.inbound_failures, retried by the next run,
//   and cleared once fixed in the sandbox;
// - a full walk's sweep never tombstones a record it read but could not parse, and skips when
//   it read one without an id;
// - a dry run holds no transaction while the CRM is called, and writes nothing;
// - a run whose lease was taken over stops with CRM10 and writes nothing more.
import assert from "node:assert/strict";
import postgres from "postgres";
import { importKey } from "../../supabase/functions/_shared/crypto.ts";
import type { Sql as EngineSql } from "../../supabase/functions/_shared/db.ts";
import type { ProviderAdapter } from "../../supabase/functions/_shared/providers/types.ts";
import { loadConnections } from "../../supabase/functions/_shared/sync/connections.ts";
import {
  createSyncContext,
  type SyncContext,
} from "../../supabase/functions/_shared/sync/context.ts";
import { type InboundOptions, runInbound } from "../../supabase/functions/_shared/sync/inbound.ts";
import { need } from "../_support/env.ts";
import { admin, type Sql, withConnection } from "./_harness.ts";

async function context(sql: Sql, connectionId: string): Promise<SyncContext> {
  const key = await importKey(need("CRM_ENCRYPTION_KEY"));
  const { connections } = await loadConnections(sql as unknown as EngineSql, key, {
    connectionId,
  });
  return await createSyncContext(sql as unknown as EngineSql, key, connections[0], () => {});
}

const run = (
  sql: Sql,
  ctx: SyncContext,
  o: Partial<InboundOptions> & Pick<InboundOptions, "object">,
) =>
  runInbound(sql as unknown as EngineSql, ctx, {
    mode: "delta",
    trigger: "manual",
    deadline: Date.now() + 60_000,
    ...o,
  });

/** The context with some adapter methods replaced. */
const withAdapter = (ctx: SyncContext, patch: Partial<ProviderAdapter>): SyncContext => ({
  ...ctx,
  adapter: { ...ctx.adapter, ...patch } as ProviderAdapter,
});

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test({
  ...opts,
  name: "engine: a rejected record is kept, retried by the next run, and cleared when fixed",
  fn: async () => {
    await withConnection(
      "hubspot",
      { seed: 61, records: 20, unlimited: true },
      async ({ sb, sql, conn }) => {
        const ctx = await context(sql, conn);
        const first = await run(sql, ctx, { object: "deals" });
        assert.equal(first.status, "success", JSON.stringify(first));
        const [deal] = await sql`select remote_id, remote_updated_at from crm.deals
                               where connection_id = ${conn} and deleted_at is null
                               order by remote_id limit 1`;
        // crm.deals.currency must be an ISO code: the database rejects this one record.
        await admin(sb.url, "PATCH", `/records/deals/${deal.remote_id}`, {
          deal_currency_code: "usd",
        });
        const bad = await run(sql, ctx, { object: "deals" });
        assert.equal(bad.status, "partial");
        assert.equal(bad.failed, 1);
        const failures = () =>
          sql`select remote_id, stage, attempts, reason from crm.inbound_failures
            where connection_id = ${conn} and object = 'deals'`;
        let rows = await failures();
        assert.equal(rows.length, 1);
        assert.equal(rows[0].remote_id, deal.remote_id);
        assert.equal(rows[0].stage, "apply");
        assert.equal(rows[0].attempts, 1);
        assert.match(rows[0].reason, /currency/);
        const [status] = await sql`select open_failures from crm.sync_status()
                                 where connection_id = ${conn} and object = 'deals'`;
        assert.equal(Number(status.open_failures), 1);

        // Still bad, but moved back out of the delta walk's reach: only the retry reads it.
        const outOfReach = () =>
          admin(sb.url, "POST", "/records/deals/set-modified", {
            ids: [deal.remote_id],
            modifiedAt: new Date(deal.remote_updated_at).toISOString(),
          });
        await outOfReach();
        const again = await run(sql, ctx, { object: "deals" });
        assert.equal(again.failed, 1, "the next run retried the record");
        assert.equal(again.processed, 1, JSON.stringify(again));
        rows = await failures();
        assert.equal(rows[0].attempts, 2);

        // Fixed in the CRM, again without a newer modification time.
        await admin(sb.url, "PATCH", `/records/deals/${deal.remote_id}`, {
          deal_currency_code: "EUR",
        });
        await outOfReach();
        // Stands for the backoff having passed.
        await sql`update crm.inbound_failures set next_retry_at = now() where connection_id = ${conn}`;
        const fixed = await run(sql, ctx, { object: "deals" });
        assert.equal(fixed.status, "success", JSON.stringify(fixed));
        assert.equal((await failures()).length, 0, "the failure is cleared");
        const [row] = await sql`select currency from crm.deals
                              where connection_id = ${conn} and remote_id = ${deal.remote_id}`;
        assert.equal(row.currency, "EUR");
      },
    );
  },
});

Deno.test({
  ...opts,
  name: "engine: the sweep never tombstones a record the walk read but could not parse",
  fn: async () => {
    await withConnection(
      "hubspot",
      { seed: 62, records: 12, unlimited: true },
      async ({ sb, sql, conn }) => {
        const ctx = await context(sql, conn);
        const first = await run(sql, ctx, { object: "contacts", mode: "full" });
        assert.equal(first.status, "success", JSON.stringify(first));
        const live = await sql`select remote_id from crm.contacts
                             where connection_id = ${conn} and deleted_at is null order by remote_id`;
        const unparsed = live[0].remote_id as string;
        // The adapter reports one record as unparseable (with its id), as a schema change would.
        const failing = (ids: (string | null)[]) =>
          withAdapter(ctx, {
            async changesSince(object, from, checkpoint, o) {
              const page = await ctx.adapter.changesSince(object, from, checkpoint, o);
              const hit = page.records.filter((r) => ids.includes(r.remoteId));
              return {
                ...page,
                records: page.records.filter((r) => !ids.includes(r.remoteId)),
                errors: [
                  ...page.errors,
                  ...hit.map((r) => ({ remoteId: r.remoteId, reason: "cannot parse" })),
                  ...(ids.includes(null) && page.done
                    ? [{ remoteId: null, reason: "a record without an id" }]
                    : []),
                ],
              };
            },
          });
        const second = await run(sql, failing([unparsed]), { object: "contacts", mode: "full" });
        assert.equal(second.failed, 1);
        assert.equal(second.tombstoned, 0, JSON.stringify(second));
        const [kept] = await sql`select deleted_at from crm.contacts
                               where connection_id = ${conn} and remote_id = ${unparsed}`;
        assert.equal(kept.deleted_at, null, "a record read but not parsed is not swept");
        const [failure] = await sql`select stage from crm.inbound_failures
                                  where connection_id = ${conn} and remote_id = ${unparsed}`;
        assert.equal(failure.stage, "read");

        // Gone from the CRM without a trace (a GDPR purge is in no archive listing, so only a
        // sweep can find it), but this walk also read a record without an id: no tombstones.
        const gone = live[1].remote_id as string;
        await admin(sb.url, "POST", `/records/contacts/${gone}/gdpr-delete`, {});
        const blind = await run(sql, failing([null]), { object: "contacts", mode: "full" });
        assert.equal(blind.tombstoned, 0);
        assert.match(blind.sweep_skipped ?? "", /without a usable remote id/);
        const [log] = await sql`select details from crm.sync_log where id = ${blind.run_id}`;
        assert.match(log.details.sweep_skipped, /without a usable remote id/);
        const [still] = await sql`select deleted_at from crm.contacts
                                where connection_id = ${conn} and remote_id = ${gone}`;
        assert.equal(still.deleted_at, null);

        // A clean walk sweeps it, marked as a sweep tombstone.
        const clean = await run(sql, ctx, { object: "contacts", mode: "full" });
        assert.equal(clean.tombstoned, 1, JSON.stringify(clean));
        const [swept] = await sql`select deleted_at, swept_at from crm.contacts
                                where connection_id = ${conn} and remote_id = ${gone}`;
        assert.ok(swept.deleted_at && swept.swept_at);
      },
    );
  },
});

Deno.test({
  ...opts,
  name: "engine: a dry run holds no transaction while the CRM is called, and writes nothing",
  fn: async () => {
    await withConnection(
      "hubspot",
      { seed: 63, records: 30, unlimited: true },
      async ({ sql, conn }) => {
        // The engine's own single-connection pool, so its backend can be watched.
        const engine = postgres(need("SUPABASE_DB_URL"), { max: 1, onnotice: () => {} });
        try {
          const [{ pid }] = await engine`select pg_backend_pid() as pid`;
          const ctx = await context(engine as unknown as Sql, conn);
          const states: string[] = [];
          const watched = withAdapter(ctx, {
            async changesSince(object, from, checkpoint, o) {
              const [a] = await sql`select state from pg_stat_activity where pid = ${pid}`;
              states.push(a?.state ?? "gone");
              return await ctx.adapter.changesSince(object, from, checkpoint, o);
            },
          });
          for (const mode of ["delta", "full"] as const) {
            const r = await run(engine as unknown as Sql, watched, {
              object: "contacts",
              mode,
              dryRun: true,
              pageSize: 10,
            });
            assert.equal(r.dry_run, true);
            assert.equal(r.status, "success", JSON.stringify(r));
            assert.ok(r.created > 0, "the preview counts what a real run would create");
          }
          assert.ok(states.length >= 6, `pages were fetched: ${states}`);
          assert.ok(
            states.every((s) => !s.startsWith("idle in transaction")),
            `no transaction open during CRM calls: ${states}`,
          );
          const [w] = await sql`
          select (select count(*)::int from crm.contacts where connection_id = ${conn}) as contacts,
                 (select count(*)::int from crm.sync_log where connection_id = ${conn}) as runs,
                 (select count(*)::int from crm.sync_cursors where connection_id = ${conn}) as cursors,
                 (select count(*)::int from crm.inbound_leases where connection_id = ${conn}) as leases,
                 (select count(*)::int from crm.full_sync_seen where connection_id = ${conn}) as seen`;
          assert.deepEqual({ ...w }, { contacts: 0, runs: 0, cursors: 0, leases: 0, seen: 0 });
        } finally {
          await engine.end();
        }
      },
    );
  },
});

Deno.test({
  ...opts,
  name: "engine: a run whose lease was taken over stops with CRM10 and writes nothing more",
  fn: async () => {
    await withConnection(
      "hubspot",
      { seed: 64, records: 40, unlimited: true },
      async ({ sql, conn }) => {
        const other = postgres(need("SUPABASE_DB_URL"), { max: 1, onnotice: () => {} });
        try {
          const ctx = await context(sql, conn);
          let pages = 0;
          let taker: number | null = null;
          const slow = withAdapter(ctx, {
            async changesSince(object, from, checkpoint, o) {
              if (++pages === 3) {
                // Another session finds the lease expired and takes the stream over. The holder
                // may be writing an earlier page (fetched ahead) and extend its lease in between:
                // expire it again until the takeover happens.
                for (let i = 0; i < 50 && taker === null; i++) {
                  await other`update crm.inbound_leases set expires_at = now() - interval '1 second'
                            where connection_id = ${conn} and object = 'contacts'`;
                  const [b] = await other`select run_id from crm.begin_inbound_run(
                                          ${conn}, 'contacts', 'manual', 'delta')`;
                  if (b) taker = Number(b.run_id);
                }
              }
              return await ctx.adapter.changesSince(object, from, checkpoint, o);
            },
          });
          const r = await run(sql, slow, { object: "contacts", pageSize: 5 });
          assert.ok(taker !== null, `the stream was taken over mid-walk: ${JSON.stringify(r)}`);
          assert.equal(r.status, "failed");
          assert.match(r.error ?? "", /lease lost/);
          assert.equal(r.more, false, "a lost run does not claim to continue");
          const [log] =
            await sql`select status, error, processed from crm.sync_log where id = ${r.run_id}`;
          assert.equal(log.status, "failed");
          assert.match(log.error.message, /taken over by run/);
          const [{ n }] =
            await sql`select count(*)::int as n from crm.contacts where connection_id = ${conn}`;
          assert.equal(n, log.processed, "no page landed after the takeover");
          assert.ok(n < 40);
          const [lease] = await sql`select run_id from crm.inbound_leases
                                  where connection_id = ${conn} and object = 'contacts'`;
          assert.equal(Number(lease.run_id), taker, "the taker still holds the stream");
        } finally {
          await other.end();
        }
      },
    );
  },
});

Deno.test({
  ...opts,
  name: "engine: a retry that cannot read neither fails the run nor stops its sweep",
  fn: async () => {
    await withConnection(
      "hubspot",
      { seed: 65, records: 12, unlimited: true },
      async ({ sb, sql, conn }) => {
        const ctx = await context(sql, conn);
        const first = await run(sql, ctx, { object: "contacts", mode: "full" });
        assert.equal(first.status, "success", JSON.stringify(first));
        // An earlier failure is due, and the CRM now refuses to read it back (HubSpot answers
        // 404 for an owner it no longer has, for instance).
        await sql`insert into crm.inbound_failures (connection_id, object, remote_id, stage, reason)
                  values (${conn}, 'contacts', 'gone-1', 'apply', 'bad value')`;
        const [purged] = await sql`select remote_id from crm.contacts
                                  where connection_id = ${conn} and deleted_at is null
                                  order by remote_id limit 1`;
        await admin(sb.url, "POST", `/records/contacts/${purged.remote_id}/gdpr-delete`, {});
        const refusing = withAdapter(ctx, {
          readByIds() {
            return Promise.reject(new Error("404: not found"));
          },
        });
        const r = await run(sql, refusing, { object: "contacts", mode: "full" });
        assert.equal(r.status, "success", JSON.stringify(r));
        assert.equal(r.tombstoned, 1, "the sweep ran before the retry");
        const [log] = await sql`select status, details from crm.sync_log where id = ${r.run_id}`;
        assert.equal(log.status, "success");
        assert.match(log.details.retry_error, /not found/);
        const [kept] = await sql`select remote_id from crm.inbound_failures
                                 where connection_id = ${conn} and remote_id = 'gone-1'`;
        assert.ok(kept, "the failure waits for a later run");
      },
    );
  },
});

Deno.test({
  ...opts,
  name: "engine: a failed record the CRM no longer has leaves crm.inbound_failures",
  fn: async () => {
    await withConnection(
      "hubspot",
      { seed: 66, records: 8, unlimited: true },
      async ({ sql, conn }) => {
        const ctx = await context(sql, conn);
        await sql`insert into crm.inbound_failures (connection_id, object, remote_id, stage, reason)
                  values (${conn}, 'contacts', '987654321', 'apply', 'bad value')`;
        const r = await run(sql, ctx, { object: "contacts" });
        assert.equal(r.status, "success", JSON.stringify(r));
        const left = await sql`select remote_id from crm.inbound_failures
                               where connection_id = ${conn} and remote_id = '987654321'`;
        assert.deepEqual([...left], [], "not retried a day for ever");
      },
    );
  },
});
