// The push window (issue 15), for each provider: the app edits a field, and a CRM user edits the
// same field before the engine pushes (no pull in between). The push reads the record first
// (./push_recheck.ts), sees the CRM's edit, lets the connection's policy decide through the
// inbound path, records the conflict, and pushes only what the app still wins. Before, the push
// overwrote the CRM's edit under every policy and no conflict was recorded.
// Also: a CRM edit of another field of the record is no conflict and survives the push.
// Workers are held off (max_workers 0): each push is one direct request of the function.
import assert from "node:assert/strict";
import { type ProviderName, PROVIDERS } from "../../supabase/functions/_shared/providers/types.ts";
import { admin, type Sql, triggerSync, withConnection, withSettings } from "./_harness.ts";
import { ADMIN_OBJECT, asApp, pushNow, stored } from "./_outbound.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

const PROP: Record<ProviderName, { first: string; last: string }> = {
  hubspot: { first: "firstname", last: "lastname" },
  salesforce: { first: "FirstName", last: "LastName" },
  pipedrive: { first: "first_name", last: "last_name" },
};

/** A CRM user's edit of one property of a contact, through the sandbox admin API. */
function crmEdit(url: string, p: ProviderName, id: string, prop: string, value: string) {
  const body = p === "hubspot" ? { properties: { [prop]: value } } : { [prop]: value };
  return admin(url, "PATCH", `/records/${ADMIN_OBJECT[p].contacts}/${id}`, body);
}

async function someContacts(sql: Sql, conn: string, n: number) {
  return await sql`select id, remote_id from crm.contacts
                   where connection_id = ${conn} and deleted_at is null and kind = 'contact'
                     and remote_id is not null
                   order by remote_id limit ${n}`;
}

/** Whole-second CRM times (Salesforce, Pipedrive): the CRM's edit lands in a later second. */
const nextSecond = () => new Promise((r) => setTimeout(r, 1100));

for (const provider of PROVIDERS) {
  Deno.test({
    ...opts,
    name: `e2e ${provider}: a CRM edit made while the app's edit waits to be pushed is not lost`,
    fn: async () => {
      await withConnection(provider, { seed: 47, records: 8, unlimited: true }, async (s) => {
        const { sb, sql, conn } = s;
        await triggerSync(sql, "all", conn);
        await withSettings(sql, { max_workers: 0 }, async () => {
          const policies = ["newest_wins", "crm_wins", "app_wins", "manual"] as const;
          const contacts = await someContacts(sql, conn, policies.length);
          const prop = PROP[provider].first;
          for (const [i, policy] of policies.entries()) {
            const c = contacts[i];
            await sql`update crm.connections
                      set settings = settings || ${sql.json({ conflict_policy: policy })}
                      where id = ${conn}`;
            await asApp(
              sql,
              conn,
              (tx) =>
                tx`update crm.contacts set first_name = ${`App ${policy}`} where id = ${c.id}`,
            );
            await nextSecond();
            await crmEdit(sb.url, provider, c.remote_id, prop, `CRM ${policy}`);
            await pushNow(conn);
            const remoteNow = async () =>
              (await stored(sb.url, provider, "contacts", c.remote_id)).props[prop];
            const [row] = await sql`select first_name from crm.contacts where id = ${c.id}`;
            const ks = await sql`select field, policy, resolution, local_value, remote_value
                                 from crm.conflicts where record_id = ${c.id}`;
            assert.equal(ks.length, 1, `${policy}: one conflict recorded: ${JSON.stringify(ks)}`);
            const k = ks[0];
            assert.equal(k.field, "first_name");
            assert.equal(k.policy, policy);
            assert.equal(k.local_value, `App ${policy}`);
            assert.equal(k.remote_value, `CRM ${policy}`);
            if (policy === "manual") {
              assert.equal(k.resolution, null, "manual: the conflict stays open");
              assert.equal(row.first_name, "App manual", "manual: the app keeps its value");
              assert.equal(await remoteNow(), "CRM manual", "manual: nothing pushed meanwhile");
              const [{ id }] = await sql`select id from crm.conflicts where record_id = ${c.id}`;
              await sql`select crm.resolve_conflict(${id}, 'local')`;
              await pushNow(conn);
              assert.equal(await remoteNow(), "App manual", "resolved 'local': pushed");
              continue;
            }
            // newest_wins: the CRM's edit is the later one.
            const winner = policy === "app_wins" ? `App ${policy}` : `CRM ${policy}`;
            assert.equal(k.resolution, policy === "app_wins" ? "local" : "remote");
            assert.equal(row.first_name, winner, `${policy}: local value`);
            assert.equal(await remoteNow(), winner, `${policy}: CRM value`);
            const [{ n }] = await sql`select count(*)::int as n from crm.outbox
                                      where record_id = ${c.id}`;
            assert.equal(n, 0, `${policy}: nothing left to push`);
          }
        });
      });
    },
  });

  Deno.test({
    ...opts,
    name: `e2e ${provider}: a CRM edit of another field during the push window is no conflict`,
    fn: async () => {
      await withConnection(provider, { seed: 49, records: 4, unlimited: true }, async (s) => {
        const { sb, sql, conn } = s;
        await triggerSync(sql, "all", conn);
        await withSettings(sql, { max_workers: 0 }, async () => {
          const [c] = await someContacts(sql, conn, 1);
          await asApp(
            sql,
            conn,
            (tx) => tx`update crm.contacts set first_name = 'App first' where id = ${c.id}`,
          );
          await nextSecond();
          await crmEdit(sb.url, provider, c.remote_id, PROP[provider].last, "Crmlast");
          await pushNow(conn);
          const got = (await stored(sb.url, provider, "contacts", c.remote_id)).props;
          assert.equal(got[PROP[provider].first], "App first");
          assert.equal(got[PROP[provider].last], "Crmlast");
          const [{ n }] = await sql`select count(*)::int as n from crm.conflicts
                                    where record_id = ${c.id}`;
          assert.equal(n, 0);
          const [{ left }] = await sql`select count(*)::int as left from crm.outbox
                                       where record_id = ${c.id}`;
          assert.equal(left, 0);
        });
      });
    },
  });
}
