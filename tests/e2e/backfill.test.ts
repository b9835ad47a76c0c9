// Backfill through trigger_crm_sync for each provider: every record of every object lands in
// Postgres with its mapped fields exactly as the sandbox holds them, owners are linked, invalid
// phones keep the record with a warning, and sync_log's counts are what the tests observe.
import assert from "node:assert/strict";
import { PROVIDERS } from "../../supabase/functions/_shared/providers/types.ts";
import { triggerSync, withConnection } from "./_harness.ts";
import { expectedContacts, liveIds } from "./_expect.ts";

for (const provider of PROVIDERS) {
  Deno.test({
    name: `e2e ${provider}: backfill mirrors every record and mapped field`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      await withConnection(provider, { seed: 11, records: 120 }, async ({ sb, sql, conn }) => {
        const answer = await triggerSync(sql, "all", conn);
        assert.equal(answer.ok, true, JSON.stringify(answer));
        assert.equal(answer.more, false);
        const byObject = Object.fromEntries(answer.runs.map((r) => [r.object, r]));
        assert.deepEqual(Object.keys(byObject).sort(), [
          "companies",
          "contacts",
          "deals",
          "owners",
        ]);

        // Contacts: every field the mappings promise, record by record.
        const want = await expectedContacts(provider, sb.url);
        const rows = await sql`
          select remote_id, kind, first_name, last_name, email, phone, phone_raw, owner_remote_id,
                 owner_id, deleted_at is not null as deleted
          from crm.contacts where connection_id = ${conn}`;
        const got = new Map(rows.map((r) => [r.remote_id as string, r]));
        const live = [...want.values()].filter((w) => !w.deleted);
        for (const w of live) {
          const g = got.get(w.remote_id);
          assert.ok(g, `contact ${w.remote_id} missing`);
          for (
            const k of [
              "kind",
              "first_name",
              "last_name",
              "email",
              "phone_raw",
              "owner_remote_id",
            ] as const
          ) {
            assert.equal(g[k], w[k], `contact ${w.remote_id}.${k}`);
          }
          assert.equal(g.deleted, false, `contact ${w.remote_id} is live`);
          if (g.owner_remote_id) {
            assert.ok(g.owner_id, `contact ${w.remote_id} linked to its owner`);
          }
        }
        // Nothing extra: every live row in Postgres is live in the sandbox.
        const liveIdsInPg = rows.filter((r) => !r.deleted).map((r) => r.remote_id as string).sort();
        assert.deepEqual(liveIdsInPg, live.map((w) => w.remote_id).sort());

        // Companies and deals: the same ids, live.
        for (const object of ["companies", "deals"] as const) {
          const ids = await liveIds(provider, sb.url, object);
          const pg = await sql`select remote_id from crm.${sql(object)}
                               where connection_id = ${conn} and deleted_at is null`;
          assert.deepEqual(pg.map((r) => r.remote_id).sort(), [...ids].sort(), `${object} ids`);
        }

        // Invalid phones: record kept, E.164 column empty, raw kept, warning in the run.
        const invalid = rows.filter((r) => r.phone_raw && !r.phone);
        assert.ok(invalid.length > 0, "the sandbox seeds some unparseable phones");
        const [log] = await sql`select processed, created, updated, unchanged, deleted, failed,
                                       api_calls, status, details
                                from crm.sync_log where id = ${byObject.contacts.run_id}`;
        assert.ok(log.details.warnings >= invalid.length, JSON.stringify(log.details));
        assert.ok(
          log.details.warning_samples.some((w: { column: string }) => w.column === "phone"),
          "phone warnings are sampled",
        );

        // sync_log: what the test saw. Every row was created by this run, live ones as
        // created, records already deleted in the CRM as deleted (tombstones); nothing failed.
        assert.equal(log.status, "success");
        assert.equal(log.failed, 0);
        assert.equal(log.created + log.deleted, rows.length);
        assert.equal(log.created, rows.filter((r) => !r.deleted).length);
        assert.equal(log.processed, log.created + log.updated + log.unchanged + log.deleted);
        assert.ok(log.api_calls > 0);
        assert.equal(log.processed, byObject.contacts.processed);
        const [c] =
          await sql`select last_synced_at, last_error, status from crm.connections where id = ${conn}`;
        assert.ok(c.last_synced_at);
        assert.equal(c.last_error, null);
        assert.equal(c.status, "active");

        // A second run finds nothing new and changes nothing.
        const again = await triggerSync(sql, "contacts", conn);
        const run2 = again.runs.find((r) => r.object === "contacts")!;
        assert.equal(run2.created, 0);
        assert.equal(run2.updated, 0);
        assert.equal(run2.failed, 0);
      });
    },
  });
}
