// HubSpot deletion detection costs O(new deletions) per delta: search never returns archived
// records and the archived listing cannot be bounded by time (it pages by id, with no sort or
// filter on archivedAt), so deltas no longer list the archive at all (it cost one call per 100
// archived records every 5 minutes); the hourly drift check (a full walk) lists it once and
// tombstones what was archived since.
import assert from "node:assert/strict";
import { admin, callFunction, triggerSync, withConnection } from "./_harness.ts";

const LIST = "GET /crm/v3/objects/:objectType";

async function listCalls(url: string): Promise<number> {
  const c = await admin(url, "GET", "/counters");
  return c.routes?.[LIST]?.total ?? 0;
}

Deno.test({
  name:
    "e2e hubspot: a delta's deletion detection costs no archive listing; the drift check lists it",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await withConnection("hubspot", { seed: 71, records: 400, unlimited: true }, async (s) => {
      const { sb, sql, conn } = s;
      await triggerSync(sql, "contacts", conn);
      // A large archive: 250 more archived contacts (HubSpot lists them 100 a page).
      const live = await sql`select remote_id from crm.contacts
                             where connection_id = ${conn} and deleted_at is null
                             order by remote_id`;
      const ids = live.map((r) => r.remote_id as string);
      for (const id of ids.slice(0, 250)) await admin(sb.url, "DELETE", `/records/contacts/${id}`);
      const store = await admin(sb.url, "GET", "/store?object=contacts") as Array<
        { archived?: boolean }
      >;
      const archived = store.filter((r) => r.archived).length;
      assert.ok(archived >= 250);

      // Deltas: no archive listing, whatever the archive's size.
      const before = await listCalls(sb.url);
      await admin(sb.url, "PATCH", `/records/contacts/${ids[300]}`, {
        properties: { firstname: "Edited" },
      });
      const delta = await triggerSync(sql, "contacts", conn);
      assert.equal(delta.runs[0].status, "success", JSON.stringify(delta.runs[0]));
      assert.equal(delta.runs[0].updated, 1);
      await triggerSync(sql, "contacts", conn);
      assert.equal(await listCalls(sb.url), before, "deltas listed the archive");

      // The drift check's full walk lists the archive once and tombstones the new deletions.
      const full = await callFunction("crm-sync-bidirectional", {
        direction: "inbound",
        objects: ["contacts"],
        mode: "full",
        connection_id: conn,
      });
      assert.equal(full.status, 200, JSON.stringify(full.json));
      // The full walk itself reads the same list route (100 live records a page), then the
      // archive once.
      const [{ alive }] = await sql`select count(*)::int as alive from crm.contacts
                                    where connection_id = ${conn} and deleted_at is null`;
      assert.equal(
        await listCalls(sb.url) - before,
        Math.ceil(alive / 100) + Math.ceil(archived / 100),
      );
      const [{ n }] = await sql`select count(*)::int as n from crm.contacts
                                where connection_id = ${conn} and deleted_at is not null
                                  and remote_id = any(${ids.slice(0, 250)})`;
      assert.equal(n, 250);
    });
  },
});
