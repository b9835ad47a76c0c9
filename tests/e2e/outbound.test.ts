// Outbound push end to end, for each provider: app writes made as the account's authenticated
// user reach the sandbox CRM through the outbox trigger, the job queue and a worker (no cron,
// no manual trigger), with exact values and relations; a burst of edits is one write; the
// engine's own echo comes back as nothing; deletes archive; creates are never duplicated.
import assert from "node:assert/strict";
import { type ProviderName, PROVIDERS } from "../../supabase/functions/_shared/providers/types.ts";
import { triggerSync, withConnection } from "./_harness.ts";
import { asApp, awaitOutbox, routeCalls, stored, storedAll } from "./_outbound.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

interface Fixture {
  company: Record<string, unknown>;
  contact: Record<string, unknown>;
  deal: Record<string, unknown>;
  /** What the CRM must hold afterwards, by provider property. */
  expect: {
    company: Record<string, unknown>;
    contact: Record<string, unknown>;
    deal: Record<string, unknown>;
  };
  /** Property holding the contact's first name. */
  firstName: string;
  /** Route prefix of the contact update call. */
  updateRoute: string;
}

const base = {
  company: { name: "Hollerith Tabulating", domain: "tabulating.example" },
  contact: {
    first_name: "Grace",
    last_name: "Hopper",
    email: "grace@tabulating.example",
    phone: "+14155550142",
  },
};

const FIXTURES: Record<ProviderName, Fixture> = {
  hubspot: {
    company: { ...base.company, city: "Boston", country: "US" },
    contact: { ...base.contact, job_title: "Rear Admiral" },
    deal: {
      name: "Mark I",
      amount: "1250.50",
      currency: "USD",
      pipeline: "default",
      stage: "appointmentscheduled",
      close_date: "2027-01-15",
    },
    expect: {
      company: { name: "Hollerith Tabulating", domain: "tabulating.example", city: "Boston" },
      contact: {
        firstname: "Grace",
        lastname: "Hopper",
        email: "grace@tabulating.example",
        phone: "+14155550142",
        jobtitle: "Rear Admiral",
      },
      deal: { dealname: "Mark I", amount: 1250.5, dealstage: "appointmentscheduled" },
    },
    firstName: "firstname",
    updateRoute: "POST /crm/v3/objects/:objectType/batch/update",
  },
  salesforce: {
    company: { ...base.company, city: "Boston", country: "US" },
    contact: { ...base.contact, job_title: "Rear Admiral" },
    deal: { name: "Mark I", amount: "1250.50", stage: "Prospecting", close_date: "2027-01-15" },
    expect: {
      company: {
        Name: "Hollerith Tabulating",
        Website: "tabulating.example",
        BillingCity: "Boston",
      },
      contact: {
        FirstName: "Grace",
        LastName: "Hopper",
        Email: "grace@tabulating.example",
        Phone: "+14155550142",
        Title: "Rear Admiral",
      },
      deal: { Name: "Mark I", Amount: 1250.5, StageName: "Prospecting", CloseDate: "2027-01-15" },
    },
    firstName: "FirstName",
    updateRoute: "PATCH /services/data/:version/composite/sobjects",
  },
  pipedrive: {
    company: { name: base.company.name },
    contact: base.contact,
    deal: {
      name: "Mark I",
      amount: "1250.50",
      currency: "USD",
      pipeline: "1",
      stage: "1",
      close_date: "2027-01-15",
    },
    expect: {
      company: { name: "Hollerith Tabulating" },
      contact: { first_name: "Grace", last_name: "Hopper" },
      deal: { title: "Mark I", value: 1250.5, currency: "USD", expected_close_date: "2027-01-15" },
    },
    firstName: "first_name",
    updateRoute: "PATCH /api/v2/persons/:id",
  },
};

function assertProps(
  actual: Record<string, unknown>,
  expected: Record<string, unknown>,
  what: string,
) {
  for (const [k, v] of Object.entries(expected)) {
    const a = actual[k];
    const same = typeof v === "number" ? Number(a) === v : a === v;
    assert.ok(same, `${what}.${k}: expected ${JSON.stringify(v)}, CRM has ${JSON.stringify(a)}`);
  }
}

for (const provider of PROVIDERS) {
  Deno.test({
    ...opts,
    name: `e2e ${provider}: app inserts, updates and deletes reach the CRM in seconds, related`,
    fn: async () => {
      const f = FIXTURES[provider];
      await withConnection(provider, { seed: 31, records: 5, unlimited: true }, async (s) => {
        const { sb, sql, conn } = s;
        await triggerSync(sql, "all", conn);
        const t0 = Date.now();
        const ids = await asApp(sql, conn, async (tx) => {
          const [co] = await tx`insert into crm.companies ${
            tx({ connection_id: conn, ...f.company })
          } returning id`;
          const [ct] = await tx`insert into crm.contacts ${
            tx({ connection_id: conn, company_id: co.id, ...f.contact })
          } returning id`;
          const [dl] = await tx`insert into crm.deals ${
            tx({ connection_id: conn, company_id: co.id, primary_contact_id: ct.id, ...f.deal })
          } returning id`;
          return { company: co.id as string, contact: ct.id as string, deal: dl.id as string };
        });
        await awaitOutbox(sql, conn);
        const elapsed = Date.now() - t0;
        assert.ok(elapsed < 5_000, `the app's writes reached the CRM in ${elapsed} ms`);

        const remote: Record<string, string> = {};
        for (const object of ["companies", "contacts", "deals"] as const) {
          const key = object === "companies"
            ? "company"
            : object === "contacts"
            ? "contact"
            : "deal";
          const [row] = await sql.unsafe(
            `select remote_id, needs_sync, sync_error from crm.${object} where id = $1`,
            [ids[key]],
          );
          assert.ok(row.remote_id, `${object} got its remote id`);
          assert.equal(row.needs_sync, false);
          assert.equal(row.sync_error, null);
          remote[key] = row.remote_id;
          const rec = await stored(sb.url, provider, object, row.remote_id);
          assertProps(rec.props, f.expect[key], `${provider} ${object}`);
        }
        // Relations, as each CRM keeps them.
        const deal = await stored(sb.url, provider, "deals", remote.deal);
        const contact = await stored(sb.url, provider, "contacts", remote.contact);
        if (provider === "hubspot") {
          const types = (deal.associations ?? []).map((a) => `${a.type}:${a.id}`);
          assert.ok(types.includes(`companies:${remote.company}`), JSON.stringify(types));
          assert.ok(types.includes(`contacts:${remote.contact}`), JSON.stringify(types));
          const mine = (contact.associations ?? []).map((a) => `${a.type}:${a.id}`);
          assert.ok(mine.includes(`companies:${remote.company}`), JSON.stringify(mine));
        } else if (provider === "salesforce") {
          assert.equal(deal.props.AccountId, remote.company);
          assert.equal(deal.props.ContactId, remote.contact);
          assert.equal(contact.props.AccountId, remote.company);
        } else {
          assert.equal(String(deal.props.org_id), remote.company);
          assert.equal(String(deal.props.person_id), remote.contact);
          assert.equal(String(contact.props.org_id), remote.company);
          const emails = contact.props.emails as { value: string; primary: boolean }[];
          assert.deepEqual(emails.filter((e) => e.primary).map((e) => e.value), [
            "grace@tabulating.example",
          ]);
        }

        // What the CRM adds on create (default owner, lifecycle stage) arrives with a delta: a
        // remote change, not an echo. Pull it in before measuring the echo of an edit.
        await triggerSync(sql, "contacts", conn);

        // A burst of ten edits in one transaction is one write of the last value.
        const before = await routeCalls(sb.url, f.updateRoute);
        await asApp(sql, conn, async (tx) => {
          for (let i = 1; i <= 10; i++) {
            await tx`update crm.contacts set first_name = ${
              "Grace " + i
            } where id = ${ids.contact}`;
          }
        });
        await awaitOutbox(sql, conn);
        const calls = await routeCalls(sb.url, f.updateRoute) - before;
        assert.equal(calls, 1, `one update call, not ${calls}`);
        const edited = await stored(sb.url, provider, "contacts", remote.contact);
        assert.equal(edited.props[f.firstName], "Grace 10");

        // The echo of our own writes: the next delta writes nothing and records no conflict.
        const pulled = await triggerSync(sql, "contacts", conn);
        const run = pulled.runs.find((r) => r.object === "contacts")!;
        assert.equal(run.updated, 0, `echo applied as a change: ${JSON.stringify(run)}`);
        const [{ n: conflicts }] = await sql`select count(*)::int as n from crm.conflicts
                                             where connection_id = ${conn}`;
        assert.equal(conflicts, 0);
        const [row] = await sql`select first_name from crm.contacts where id = ${ids.contact}`;
        assert.equal(row.first_name, "Grace 10");

        // A soft delete archives (deletes) the record in the CRM.
        await asApp(
          sql,
          conn,
          (tx) => tx`update crm.deals set deleted_at = now() where id = ${ids.deal}`,
        );
        await awaitOutbox(sql, conn);
        const gone = (await storedAll(sb.url, provider, "deals")).find((r) => r.id === remote.deal);
        assert.ok(!gone || gone.deleted, `the deal is deleted in the CRM: ${JSON.stringify(gone)}`);
        // So does a hard delete.
        await asApp(sql, conn, (tx) => tx`delete from crm.contacts where id = ${ids.contact}`);
        await awaitOutbox(sql, conn);
        const removed = (await storedAll(sb.url, provider, "contacts"))
          .find((r) => r.id === remote.contact);
        assert.ok(
          !removed || removed.deleted,
          `the contact is deleted: ${JSON.stringify(removed)}`,
        );
      });
    },
  });
}

/** The route every create of a contact goes through, and the provider's batch size. */
const BULK: Partial<Record<ProviderName, { route: string; batch: number }>> = {
  hubspot: { route: "POST /crm/v3/objects/:objectType/batch/upsert", batch: 100 },
  salesforce: {
    route: "PATCH /services/data/:version/composite/sobjects/:type/:field",
    batch: 200,
  },
};

for (const provider of ["hubspot", "salesforce"] as const) {
  Deno.test({
    ...opts,
    name: `e2e ${provider}: 10,000 new contacts take ⌈10,000 / batch⌉ write calls`,
    fn: async () => {
      const { route, batch } = BULK[provider]!;
      await withConnection(provider, { seed: 33, records: 2, unlimited: true }, async (s) => {
        const { sb, sql, conn } = s;
        await triggerSync(sql, "all", conn);
        const N = 10_000;
        const before = await routeCalls(sb.url, route);
        await asApp(
          sql,
          conn,
          (tx) =>
            tx`insert into crm.contacts (connection_id, first_name, last_name, email)
             select ${conn}, 'Bulk', 'Contact ' || i, 'bulk' || i || '@example.com'
             from generate_series(1, ${N}) as i`,
        );
        await awaitOutbox(sql, conn, 240_000);
        const calls = await routeCalls(sb.url, route) - before;
        assert.ok(
          calls <= Math.ceil(N / batch) + 2,
          `${calls} write calls for ${N} creates (batch ${batch})`,
        );
        const [r] = await sql`select count(*) filter (where remote_id is not null)::int as synced,
                                     count(distinct remote_id)::int as distinct_ids
                              from crm.contacts where connection_id = ${conn} and last_name like 'Contact %'`;
        assert.deepEqual({ ...r }, { synced: N, distinct_ids: N });
        const inCrm = (await storedAll(sb.url, provider, "contacts"))
          .filter((x) => String(x.props.lastname ?? x.props.LastName).startsWith("Contact "));
        assert.equal(inCrm.length, N, "each contact exists once in the CRM");
        const [log] = await sql`select coalesce(sum(created), 0)::int as created
                                from crm.sync_log
                                where connection_id = ${conn} and direction = 'outbound'
                                  and object = 'contacts'`;
        assert.equal(log.created, N, "the outbound runs count every create");
      });
    },
  });
}
