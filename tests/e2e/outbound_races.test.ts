// Outbound under races, for each provider. Workers are held off (max_workers 0) so the test
// decides when a push (and a pull) happens, each in a direct request of the function:
// - the L1/L2 race: the echo of a pushed value L1 arriving after the app edited L2 keeps L2,
//   records no conflict, and L2 is pushed next;
// - both sides edit one field, under each policy: the expected winner on both sides, the
//   conflict recorded, and under `manual` nothing pushed until crm.resolve_conflict;
// - a CRM delete of a record the app edited meanwhile: a recorded conflict, the delete wins
//   (by default), the stale edit is dropped and nothing is resurrected;
// - a worker that wrote the create and died before complete_outbox, and a create the CRM
//   applied but never answered, both end with exactly one remote record.
import assert from "node:assert/strict";
import { importKey } from "../../supabase/functions/_shared/crypto.ts";
import { type ProviderName, PROVIDERS } from "../../supabase/functions/_shared/providers/types.ts";
import { loadConnections } from "../../supabase/functions/_shared/sync/connections.ts";
import { createSyncContext } from "../../supabase/functions/_shared/sync/context.ts";
import { externalIdGate } from "../../supabase/functions/_shared/sync/external_id.ts";
import { claimOutbox } from "../../supabase/functions/_shared/sync/outbox.ts";
import { planPush } from "../../supabase/functions/_shared/sync/push_ops.ts";
import { need } from "../_support/env.ts";
import { admin, type Sql, triggerSync, withConnection, withSettings } from "./_harness.ts";
import { ADMIN_OBJECT, asApp, pullNow, pushNow, stored, storedAll } from "./_outbound.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

const FIRST_NAME: Record<ProviderName, string> = {
  hubspot: "firstname",
  salesforce: "FirstName",
  pipedrive: "first_name",
};

/** The route a company create goes through. */
const CREATE_ROUTE: Record<ProviderName, string> = {
  hubspot: "POST /crm/v3/objects/:objectType/batch/upsert",
  salesforce: "PATCH /services/data/:version/composite/sobjects/:type/:field",
  pipedrive: "POST /api/v2/organizations",
};

/** A CRM user's edit of a contact's first name, through the sandbox admin API. */
function crmEdit(url: string, p: ProviderName, id: string, value: string) {
  const body = p === "hubspot"
    ? { properties: { firstname: value } }
    : p === "salesforce"
    ? { FirstName: value }
    : { first_name: value };
  return admin(url, "PATCH", `/records/${ADMIN_OBJECT[p].contacts}/${id}`, body);
}

async function firstNameOf(sql: Sql, id: string): Promise<string> {
  const [r] = await sql`select first_name from crm.contacts where id = ${id}`;
  return r.first_name;
}

/** A synced contact of the connection (kind contact: Salesforce leads are another object). */
async function someContacts(sql: Sql, conn: string, n: number) {
  return await sql`select id, remote_id from crm.contacts
                   where connection_id = ${conn} and deleted_at is null and kind = 'contact'
                     and remote_id is not null
                   order by remote_id limit ${n}`;
}

for (const provider of PROVIDERS) {
  Deno.test({
    ...opts,
    name: `e2e ${provider}: an echo of L1 arriving after the app's L2 keeps L2 and pushes it`,
    fn: async () => {
      await withConnection(provider, { seed: 41, records: 6, unlimited: true }, async (s) => {
        const { sb, sql, conn } = s;
        await triggerSync(sql, "all", conn);
        await withSettings(sql, { max_workers: 0 }, async () => {
          const [c] = await someContacts(sql, conn, 1);
          await asApp(
            sql,
            conn,
            (tx) => tx`update crm.contacts set first_name = 'Lovelace L1' where id = ${c.id}`,
          );
          await pushNow(conn);
          assert.equal(
            (await stored(sb.url, provider, "contacts", c.remote_id)).props[
              FIRST_NAME[provider]
            ],
            "Lovelace L1",
          );
          await asApp(
            sql,
            conn,
            (tx) => tx`update crm.contacts set first_name = 'Lovelace L2' where id = ${c.id}`,
          );
          const runs = await pullNow(conn);
          assert.equal(runs[0].updated, 0, JSON.stringify(runs));
          assert.equal(await firstNameOf(sql, c.id), "Lovelace L2");
          const [{ n }] = await sql`select count(*)::int as n from crm.conflicts
                                    where connection_id = ${conn}`;
          assert.equal(n, 0, "an echo is never a conflict");
          const [entry] = await sql`select changed_columns from crm.outbox
                                    where record_id = ${c.id} and state = 'pending'`;
          assert.deepEqual(entry?.changed_columns, ["first_name"], "L2 is still to be pushed");
          await pushNow(conn);
          assert.equal(
            (await stored(sb.url, provider, "contacts", c.remote_id)).props[
              FIRST_NAME[provider]
            ],
            "Lovelace L2",
          );
          // And L2's own echo is nothing either.
          const again = await pullNow(conn);
          assert.equal(again[0].updated, 0);
          assert.equal(await firstNameOf(sql, c.id), "Lovelace L2");
        });
      });
    },
  });

  Deno.test({
    ...opts,
    name: `e2e ${provider}: both sides edit a field: each policy's winner on both sides`,
    fn: async () => {
      await withConnection(provider, { seed: 43, records: 8, unlimited: true }, async (s) => {
        const { sb, sql, conn } = s;
        await triggerSync(sql, "all", conn);
        await withSettings(sql, { max_workers: 0 }, async () => {
          const policies = ["newest_wins", "crm_wins", "app_wins", "manual"] as const;
          const contacts = await someContacts(sql, conn, policies.length);
          for (const [i, policy] of policies.entries()) {
            const c = contacts[i];
            await sql`update crm.connections
                      set settings = settings || ${sql.json({ conflict_policy: policy })}
                      where id = ${conn}`;
            await crmEdit(sb.url, provider, c.remote_id, `CRM ${policy}`);
            // The app edits after the CRM user did: newest_wins picks the app's value.
            await new Promise((r) => setTimeout(r, 1100));
            await asApp(
              sql,
              conn,
              (tx) =>
                tx`update crm.contacts set first_name = ${`App ${policy}`} where id = ${c.id}`,
            );
            await pullNow(conn);
            await pushNow(conn);
            const local = await firstNameOf(sql, c.id);
            const remote = (await stored(sb.url, provider, "contacts", c.remote_id))
              .props[FIRST_NAME[provider]];
            const [k] = await sql`select policy, resolution, local_value, remote_value
                                  from crm.conflicts where record_id = ${c.id}`;
            assert.ok(k, `${policy}: the conflict is recorded`);
            assert.equal(k.policy, policy);
            if (policy === "manual") {
              assert.equal(k.resolution, null);
              assert.equal(local, "App manual", "manual: the app keeps its value meanwhile");
              assert.equal(remote, "CRM manual", "manual: nothing pushed until resolved");
              const [{ id }] = await sql`select id from crm.conflicts where record_id = ${c.id}`;
              await sql`select crm.resolve_conflict(${id}, 'local')`;
              await pushNow(conn);
              assert.equal(
                (await stored(sb.url, provider, "contacts", c.remote_id)).props[
                  FIRST_NAME[provider]
                ],
                "App manual",
              );
              continue;
            }
            const winner = policy === "crm_wins" ? `CRM ${policy}` : `App ${policy}`;
            assert.equal(k.resolution, policy === "crm_wins" ? "remote" : "local");
            assert.equal(local, winner, `${policy}: local value`);
            assert.equal(remote, winner, `${policy}: CRM value`);
          }
        });
      });
    },
  });

  Deno.test({
    ...opts,
    name: `e2e ${provider}: a CRM delete beats a pending app edit, and nothing comes back`,
    fn: async () => {
      await withConnection(provider, { seed: 45, records: 6, unlimited: true }, async (s) => {
        const { sb, sql, conn } = s;
        await triggerSync(sql, "all", conn);
        await withSettings(sql, { max_workers: 0 }, async () => {
          const [c] = await someContacts(sql, conn, 1);
          await admin(
            sb.url,
            "DELETE",
            `/records/${ADMIN_OBJECT[provider].contacts}/${c.remote_id}`,
          );
          await asApp(
            sql,
            conn,
            (tx) => tx`update crm.contacts set first_name = 'Edited meanwhile' where id = ${c.id}`,
          );
          // HubSpot and Pipedrive deltas do not list deletions; the drift check's full walk does.
          await pullNow(conn, ["contacts"], "full");
          const [row] = await sql`select deleted_at from crm.contacts where id = ${c.id}`;
          assert.ok(row.deleted_at, "the default policy: the delete wins, the row is a tombstone");
          const [k] =
            await sql`select field, resolution from crm.conflicts where record_id = ${c.id}`;
          assert.deepEqual({ ...k }, { field: "deleted_at", resolution: "remote" });
          await pushNow(conn);
          const [{ n }] = await sql`select count(*)::int as n from crm.outbox
                                    where record_id = ${c.id}`;
          assert.equal(n, 0, "the stale edit is dropped");
          const back = (await storedAll(sb.url, provider, "contacts"))
            .filter((r) => r.id === c.remote_id && !r.deleted);
          assert.equal(back.length, 0, "the CRM record was not resurrected");
        });
      });
    },
  });

  Deno.test({
    ...opts,
    name:
      `e2e ${provider}: a create written by a worker that died, and one never answered, exist once`,
    fn: async () => {
      await withConnection(provider, {
        seed: 47,
        records: 3,
        unlimited: true,
        settings: { request_timeout_ms: 800 },
      }, async (s) => {
        const { sb, sql, conn } = s;
        await triggerSync(sql, "all", conn);
        const companiesBefore = (await storedAll(sb.url, provider, "companies")).length;
        await withSettings(sql, { max_workers: 0 }, async () => {
          // 1. A worker claims the create, writes it to the CRM and dies before complete_outbox.
          const [{ id: doomed }] = await asApp(
            sql,
            conn,
            (tx) =>
              tx`insert into crm.companies (connection_id, name) values (${conn}, 'Doomed Works')
               returning id`,
          );
          const key = await importKey(need("CRM_ENCRYPTION_KEY"));
          const { connections } = await loadConnections(sql, key, { connectionId: conn });
          const ctx = await createSyncContext(sql, key, connections[0], () => {}, {
            lane: "realtime",
          });
          const entries = await claimOutbox(sql, "doomed worker", conn, "companies", 10, 1);
          assert.equal(entries.length, 1);
          const gate = externalIdGate(sql, ctx.conn, ctx.adapter.writer);
          await gate.prepare([ctx.outbound.remoteType("companies", entries[0].record!)!], {});
          const batch = planPush("companies", entries, ctx.outbound, gate.hold);
          const written = await ctx.adapter.writer.write("companies", batch.ops);
          assert.equal(written[0].ok, true, JSON.stringify(written));
          await ctx.budget.flush();
          await new Promise((r) => setTimeout(r, 1200)); // its lease expires
          await pushNow(conn);
          const [row] = await sql`select remote_id from crm.companies where id = ${doomed}`;
          assert.equal(row.remote_id, (written[0] as { remoteId: string }).remoteId);

          // 2. The CRM applies the create and never answers; the retry finds it.
          await admin(sb.url, "PUT", "/faults", {
            lostAnswerRate: 1,
            routeFilter: CREATE_ROUTE[provider],
          });
          const [{ id: unanswered }] = await asApp(
            sql,
            conn,
            (tx) =>
              tx`insert into crm.companies (connection_id, name) values (${conn}, 'Unanswered Ltd')
               returning id`,
          );
          const first = await pushNow(conn);
          const [pending] = await sql`select state, last_error from crm.outbox
                                      where record_id = ${unanswered}`;
          assert.equal(pending?.state, "pending", `retried later: ${JSON.stringify(first)}`);
          assert.ok(pending.last_error, "with the reason it is retried");
          await admin(sb.url, "DELETE", "/faults");
          await sql`update crm.outbox set next_attempt_at = now() where record_id = ${unanswered}`;
          await pushNow(conn);
          const [r2] = await sql`select remote_id from crm.companies where id = ${unanswered}`;
          assert.ok(r2.remote_id, "the unanswered create got its remote id");
        });
        const names = (await storedAll(sb.url, provider, "companies"))
          .filter((r) => !r.deleted)
          .map((r) => String(r.props.name ?? r.props.Name));
        assert.equal(names.filter((n) => n === "Doomed Works").length, 1, "one Doomed Works");
        assert.equal(names.filter((n) => n === "Unanswered Ltd").length, 1, "one Unanswered Ltd");
        assert.equal(
          (await storedAll(sb.url, provider, "companies")).length,
          companiesBefore + 2,
        );
      });
    },
  });
}
