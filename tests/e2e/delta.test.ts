// Deltas through trigger_crm_sync for each provider: N edits in the CRM update exactly N rows;
// deletes, archives and merges become tombstones (and aliases where the CRM says who survived);
// 5,000 records bulk-edited to one identical timestamp are all synced, once.
import assert from "node:assert/strict";
import { type ProviderName, PROVIDERS } from "../../supabase/functions/_shared/providers/types.ts";
import { admin, callFunction, db, triggerSync, withConnection } from "./_harness.ts";

const CONTACT: Record<ProviderName, string> = {
  hubspot: "contacts",
  salesforce: "Contact",
  pipedrive: "person",
};
const edit = (p: ProviderName, i: number) =>
  p === "hubspot"
    ? { properties: { firstname: `Edited ${i}` } }
    : p === "salesforce"
    ? { FirstName: `Edited ${i}` }
    : { first_name: `Edited ${i}` };

async function liveContactIds(sql: ReturnType<typeof db>, conn: string): Promise<string[]> {
  const rows = await sql`select remote_id from crm.contacts
                         where connection_id = ${conn} and deleted_at is null and kind = 'contact'
                         order by remote_id`;
  return rows.map((r) => r.remote_id as string);
}

for (const provider of PROVIDERS) {
  Deno.test({
    name: `e2e ${provider}: delta applies exactly the edits; deletes and merges are tombstoned`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      await withConnection(provider, { seed: 21, records: 60 }, async ({ sb, sql, conn }) => {
        await triggerSync(sql, "all", conn);
        const ids = await liveContactIds(sql, conn);
        const N = 7;
        for (let i = 0; i < N; i++) {
          await admin(
            sb.url,
            "PATCH",
            `/records/${CONTACT[provider]}/${ids[i]}`,
            edit(provider, i),
          );
        }
        // A dry run previews exactly these changes and writes nothing.
        const [cursorBefore] = await sql`select watermark_at, watermark_id from crm.sync_cursors
                                         where connection_id = ${conn} and object = 'contacts'`;
        const runsBefore =
          await sql`select count(*)::int as n from crm.sync_log where connection_id = ${conn}`;
        const preview = await callFunction("crm-sync-bidirectional", {
          direction: "inbound",
          objects: ["contacts"],
          connection_id: conn,
          dry_run: true,
        });
        const planned = (preview.json.runs as Array<Record<string, unknown>>)[0];
        assert.equal(planned.dry_run, true);
        assert.equal(planned.updated, N, JSON.stringify(planned));
        const [{ n: untouched }] = await sql`select count(*)::int as n from crm.contacts
                                             where connection_id = ${conn} and first_name like 'Edited %'`;
        assert.equal(untouched, 0, "the dry run wrote nothing");
        const [cursorAfter] = await sql`select watermark_at, watermark_id from crm.sync_cursors
                                        where connection_id = ${conn} and object = 'contacts'`;
        assert.deepEqual({ ...cursorAfter }, { ...cursorBefore }, "nor moved the cursor");
        const runsAfter =
          await sql`select count(*)::int as n from crm.sync_log where connection_id = ${conn}`;
        assert.equal(runsAfter[0].n, runsBefore[0].n, "nor logged a run");

        const answer = await triggerSync(sql, "contacts", conn);
        const run = answer.runs.find((r) => r.object === "contacts")!;
        assert.equal(run.status, "success", JSON.stringify(run));
        assert.equal(run.updated, N, JSON.stringify(run));
        assert.equal(run.created, 0);
        const edited = await sql`select remote_id, first_name from crm.contacts
                                 where connection_id = ${conn} and first_name like 'Edited %'
                                 order by first_name`;
        assert.deepEqual(edited.map((r) => r.remote_id), ids.slice(0, N));
        const [log] = await sql`select updated, created from crm.sync_log where id = ${run.run_id}`;
        assert.deepEqual({ ...log }, { updated: N, created: 0 });

        // Delete one, merge two.
        const [gone, survivor, loser] = [ids[N], ids[N + 1], ids[N + 2]];
        await admin(sb.url, "DELETE", `/records/${CONTACT[provider]}/${gone}`);
        await admin(sb.url, "POST", `/records/${CONTACT[provider]}/merge`, {
          primaryId: survivor,
          mergedId: loser,
        });
        if (provider !== "salesforce") {
          // Pipedrive v2 lists omit deleted items, and HubSpot's archive listing is read by full
          // walks only (hubspot_deletions.test.ts): the hourly drift check finds them.
          const r = await callFunction("crm-sync-bidirectional", {
            direction: "inbound",
            objects: ["contacts"],
            mode: "full",
            connection_id: conn,
          });
          assert.equal(r.status, 200, JSON.stringify(r.json));
        } else {
          await triggerSync(sql, "contacts", conn);
        }
        const rows =
          await sql`select remote_id, deleted_at is not null as deleted, merged_into_remote_id
                               from crm.contacts where connection_id = ${conn}
                                 and remote_id in (${gone}, ${survivor}, ${loser}) order by remote_id`;
        const byId = Object.fromEntries(rows.map((r) => [r.remote_id, r]));
        assert.equal(byId[gone].deleted, true, "deleted record tombstoned");
        assert.equal(byId[loser].deleted, true, "merged-away record tombstoned");
        assert.equal(byId[survivor].deleted, false, "survivor live");
        if (provider !== "pipedrive") {
          assert.equal(byId[loser].merged_into_remote_id, survivor, "loser points at the survivor");
          const alias = await sql`select 1 from crm.record_aliases
                                  where connection_id = ${conn} and alias_remote_id = ${loser}`;
          assert.equal(alias.length, 1, "alias recorded");
        }
        const dupes = await sql`select remote_id from crm.contacts where connection_id = ${conn}
                                group by remote_id having count(*) > 1`;
        assert.equal(dupes.length, 0);
      });
    },
  });

  Deno.test({
    name:
      `e2e ${provider}: 5,000 contacts with one identical modification time are all synced once`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      await withConnection(provider, { seed: 31, records: 5_200 }, async ({ sb, sql, conn }) => {
        await triggerSync(sql, "contacts", conn);
        const at = new Date(Date.now() - 60_000);
        at.setUTCMilliseconds(0);
        const object = provider === "salesforce" ? "Contact" : CONTACT[provider];
        await admin(sb.url, "POST", `/records/${object}/set-modified`, {
          count: 5_000,
          pick: "random",
          modifiedAt: at.toISOString(),
        });
        const answer = await triggerSync(sql, "contacts", conn);
        // One run, or several when a request's CPU budget ended it and a continuation resumed
        // from its checkpoint (a slower machine): the walk is judged over all of them.
        const runs = answer.runs.filter((r) => r.object === "contacts");
        assert.ok(
          runs.length >= 1 && runs.every((r) => r.status === "success"),
          JSON.stringify(runs),
        );
        assert.equal(answer.more, false);
        const [{ n }] = await sql`select count(*)::int as n from crm.contacts
                                  where connection_id = ${conn} and remote_updated_at = ${at}`;
        assert.equal(n, 5_000, "every bulk-edited record carries the new time");
        // Read once: the walk re-reads at most its small overlap window, never the tie twice.
        const processed = runs.reduce((t, r) => t + (r.processed as number), 0);
        assert.ok(processed >= 5_000 && processed < 5_200, JSON.stringify(runs));
      });
    },
  });
}
