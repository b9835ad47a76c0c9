// A push stalled past its lease must not write (chaos finding, Salesforce seed 1 at 1,000 ops):
// the push's read before write hung 30 s, its entry was claimed meanwhile by another worker,
// which pushed the app's second edit; the stalled push's retried read then returned and it
// wrote the first edit over the second. The CRM takes no fencing token, so the push re-reads
// its leases right before the write (sync/outbox.ts heldLeases) and leaves out what it no
// longer holds. Here the read is held while the test hands the entry to another worker.
import assert from "node:assert/strict";
import { importKey } from "../../supabase/functions/_shared/crypto.ts";
import { loadConnections } from "../../supabase/functions/_shared/sync/connections.ts";
import { createSyncContext } from "../../supabase/functions/_shared/sync/context.ts";
import { runOutbound } from "../../supabase/functions/_shared/sync/outbound.ts";
import type { ProviderAdapter, WriteOp } from "../../supabase/functions/_shared/providers/types.ts";
import { need } from "../_support/env.ts";
import { triggerSync, withConnection, withSettings } from "./_harness.ts";
import { asApp, stored } from "./_outbound.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test({
  ...opts,
  name: "e2e salesforce: a push whose lease was taken while its read hung writes nothing",
  fn: async () => {
    await withConnection("salesforce", { seed: 71, records: 3, unlimited: true }, async (
      { sb, sql, conn },
    ) => {
      await triggerSync(sql, "all", conn);
      const [row] = await sql<{ id: string; remote_id: string; last_name: string }[]>`
        select id, remote_id, last_name from crm.contacts
        where connection_id = ${conn} and deleted_at is null and kind = 'contact'
        order by remote_id limit 1`;
      const key = await importKey(need("CRM_ENCRYPTION_KEY"));
      const { connections } = await loadConnections(sql, key, { connectionId: conn });
      const ctx = await createSyncContext(sql, key, connections[0], () => {});
      // The read before write "hangs" until another worker has taken the entry over.
      const adapter: ProviderAdapter = Object.create(ctx.adapter);
      adapter.readByIds = async (...args) => {
        await sql`update crm.outbox set lease = gen_random_uuid(), locked_by = 'other worker',
                  locked_until = now() + interval '2 minutes'
                  where record_id = ${row.id}`;
        return await ctx.adapter.readByIds(...args);
      };
      const written: WriteOp[] = [];
      const writer = Object.create(ctx.adapter.writer);
      writer.write = async (...args: Parameters<typeof ctx.adapter.writer.write>) => {
        written.push(...args[1]);
        return await ctx.adapter.writer.write(...args);
      };
      Object.defineProperty(adapter, "writer", { value: writer });

      await withSettings(sql, { max_workers: 0 }, async () => {
        await asApp(
          sql,
          conn,
          (tx) => tx`update crm.contacts set last_name = 'StalledEdit' where id = ${row.id}`,
        );
        const summary = await runOutbound(sql, { ...ctx, adapter }, {
          trigger: "manual",
          worker: "stalled push",
          deadline: Date.now() + 60_000,
          cpuLeftMs: () => 1_000,
        });
        await ctx.budget.flush();
        assert.deepEqual(written, [], "nothing is written for an entry the push no longer holds");
        const pushes = summary.pushes.filter((p) => p.object === "contacts");
        assert.equal(pushes[0]?.updated ?? 0, 0, JSON.stringify(summary));
      });
      const [entry] =
        await sql`select state, locked_by from crm.outbox where record_id = ${row.id}`;
      assert.deepEqual({ ...entry }, { state: "processing", locked_by: "other worker" });
      const crm = await stored(sb.url, "salesforce", "contacts", row.remote_id);
      assert.equal(crm.props.LastName, row.last_name, "the CRM keeps its value");
    });
  },
});
