// Outbound under faults, for each provider: with 20 % of the CRM's answers 429 and 5 % 5xx, new
// contacts (40 on Pipedrive, 1,000 and 2,000 where writes are batched) still reach it, each exactly once; a change the CRM rejects becomes a dead letter
// with the CRM's own message on the row and in crm.sync_status(), and once the row is fixed (or
// the dead letter replayed) it goes through. Pushes run in direct requests, and backoffs are
// cut short by the test, so the faults are what is measured, not the waiting. Without the
// permission to create the external-id property, creates are held (never sent without it) and
// say why, and go out once it exists.
import assert from "node:assert/strict";
import { type ProviderName, PROVIDERS } from "../../supabase/functions/_shared/providers/types.ts";
import { admin, type Sql, triggerSync, withConnection, withSettings } from "./_harness.ts";
import { asApp, pushNow, storedAll } from "./_outbound.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** A contact insert each CRM rejects, the words its message must contain, and the fix. */
const REJECTED: Record<
  ProviderName,
  { row: Record<string, unknown>; message: RegExp; fix: Record<string, unknown> }
> = {
  hubspot: {
    row: { first_name: "Ada", last_name: "Rejected", lifecycle_stage: "not-a-stage" },
    message: /not-a-stage was not one of the allowed options/,
    fix: { lifecycle_stage: "lead" },
  },
  salesforce: {
    row: { first_name: "Ada", last_name: null, email: "ada.rejected@example.com" },
    message: /REQUIRED_FIELD_MISSING/,
    fix: { last_name: "Rejected" },
  },
  pipedrive: {
    row: { first_name: "Ada", last_name: "Rejected", email: "not-an-email" },
    message: /Invalid email address/,
    fix: { email: "ada.rejected@example.com" },
  },
};

/** New contacts: enough write calls for the faults to hit some (batches of 100 and 200). */
const N: Record<ProviderName, number> = { hubspot: 1000, salesforce: 2000, pipedrive: 40 };

/** Pushes until nothing is pending (dead letters aside), cutting backoffs short. */
async function drain(sql: Sql, conn: string, rounds = 40) {
  for (let i = 0; i < rounds; i++) {
    const [r] = await sql`select count(*)::int as n from crm.outbox
                          where connection_id = ${conn} and state <> 'dead'`;
    if (r.n === 0) return i;
    await sql`update crm.outbox set next_attempt_at = now()
              where connection_id = ${conn} and state = 'pending'`;
    await pushNow(conn);
  }
  throw new Error("the outbox did not drain");
}

for (const provider of PROVIDERS) {
  Deno.test({
    ...opts,
    name: `e2e ${provider}: 20 % 429s and 5 % 5xx converge; a rejection is a dead letter, fixed`,
    fn: async () => {
      await withConnection(provider, { seed: 51, records: 4 }, async (s) => {
        const { sb, sql, conn } = s;
        await triggerSync(sql, "all", conn);
        await withSettings(sql, { max_workers: 0 }, async () => {
          await admin(sb.url, "PUT", "/faults", { rate429: 0.2, error5xxRate: 0.05, seed: 7 });
          await asApp(
            sql,
            conn,
            (tx) =>
              tx`insert into crm.contacts (connection_id, first_name, last_name, email)
               select ${conn}, 'Fault', 'Tolerant' || i, 'fault' || i || '@example.com'
               from generate_series(1, ${N[provider]}) as i`,
          );
          await drain(sql, conn);
          const counters = await admin(sb.url, "GET", "/counters");
          await admin(sb.url, "DELETE", "/faults");
          const injected = counters.faultsInjected as Record<string, number>;
          assert.ok((injected["429"] ?? 0) + (injected["5xx"] ?? 0) > 0, JSON.stringify(injected));
          const names = (await storedAll(sb.url, provider, "contacts"))
            .filter((r) => !r.deleted)
            .map((r) => String(r.props.lastname ?? r.props.LastName ?? r.props.last_name))
            .filter((n) => n.startsWith("Tolerant"));
          const dead = await sql`select last_error from crm.outbox
                                 where connection_id = ${conn} and state = 'dead'`;
          assert.equal(dead.length, 0, JSON.stringify(dead.slice(0, 3)));
          assert.equal(
            new Set(names).size,
            N[provider],
            `every contact reached the CRM (${names.length} records, ${new Set(names).size} names)`,
          );
          assert.equal(names.length, N[provider], "none twice");

          // A rejection: a dead letter with the CRM's message, on the row and in sync_status.
          const bad = REJECTED[provider];
          const [{ id }] = await asApp(
            sql,
            conn,
            (tx) =>
              tx`insert into crm.contacts ${tx({ connection_id: conn, ...bad.row })} returning id`,
          );
          await drain(sql, conn);
          const [entry] =
            await sql`select state, last_error from crm.outbox where record_id = ${id}`;
          assert.equal(entry.state, "dead", JSON.stringify(entry));
          assert.match(entry.last_error, bad.message);
          const [row] = await sql`select sync_error, remote_id from crm.contacts where id = ${id}`;
          assert.match(row.sync_error, /^dead letter: /);
          assert.match(row.sync_error, bad.message);
          assert.equal(row.remote_id, null);
          const [status] = await sql`select outbox_dead from crm.sync_status()
                                     where connection_id = ${conn} and object = 'contacts'`;
          assert.equal(Number(status.outbox_dead), 1);

          // Replay alone sends the same data again: dead again, with the same message.
          const [{ n }] = await sql`select crm.replay_outbox(null, ${conn}::uuid) as n`;
          assert.equal(n, 1);
          await drain(sql, conn);
          const [again] = await sql`select state from crm.outbox where record_id = ${id}`;
          assert.equal(again.state, "dead");

          // Fixing the row revives the entry, and it goes through.
          await asApp(
            sql,
            conn,
            (tx) => tx`update crm.contacts set ${tx(bad.fix)} where id = ${id}`,
          );
          await drain(sql, conn);
          const [fixed] = await sql`select sync_error, remote_id, needs_sync from crm.contacts
                                    where id = ${id}`;
          assert.equal(fixed.sync_error, null);
          assert.ok(fixed.remote_id, "the fixed contact reached the CRM");
          assert.equal(fixed.needs_sync, false);
        });
      });
    },
  });
}

/** Takes away the permission to create the external-id property, or gives it back. */
function denyPropertyCreation(url: string, p: ProviderName, deny: boolean) {
  return p === "hubspot"
    ? admin(url, "PUT", "/scopes", { denied: deny ? ["crm.schemas.companies.write"] : [] })
    : p === "salesforce"
    ? admin(url, "PUT", "/permissions", { customizeApplication: !deny })
    : admin(url, "PUT", "/permissions", { customFields: !deny });
}

for (const provider of PROVIDERS) {
  Deno.test({
    ...opts,
    name: `e2e ${provider}: without the permission to create the external id, creates are held`,
    fn: async () => {
      await withConnection(provider, { seed: 53, records: 3, unlimited: true }, async (s) => {
        const { sb, sql, conn } = s;
        await triggerSync(sql, "all", conn);
        await withSettings(sql, { max_workers: 0 }, async () => {
          await denyPropertyCreation(sb.url, provider, true);
          const before = (await storedAll(sb.url, provider, "companies")).length;
          const [{ id }] = await asApp(
            sql,
            conn,
            (tx) =>
              tx`insert into crm.companies (connection_id, name) values (${conn}, 'Held Holdings')
               returning id`,
          );
          await pushNow(conn);
          await pushNow(conn);
          const [entry] =
            await sql`select state, last_error from crm.outbox where record_id = ${id}`;
          assert.equal(entry.state, "pending");
          assert.match(entry.last_error, /^create held: cannot create the external-id property/);
          const [st] = await sql`select outbound_setup_error from crm.sync_status()
                                 where connection_id = ${conn} and object = 'companies'`;
          assert.match(st.outbound_setup_error ?? "", /external-id property/);
          assert.equal((await storedAll(sb.url, provider, "companies")).length, before, "held");

          // The permission granted; once the set-up is looked at again, the create goes out once.
          await denyPropertyCreation(sb.url, provider, false);
          await sql`update crm.outbound_setup set checked_at = now() - interval '11 minutes'
                    where connection_id = ${conn}`;
          await sql`update crm.outbox set next_attempt_at = now() where record_id = ${id}`;
          await pushNow(conn);
          const [row] = await sql`select remote_id from crm.companies where id = ${id}`;
          assert.ok(row.remote_id, "created once the property exists");
          assert.equal((await storedAll(sb.url, provider, "companies")).length, before + 1);
        });
      });
    },
  });
}
