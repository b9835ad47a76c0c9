// The Pipedrive fields mapped by 20261205090100 (issue 16, point 7) travel both ways through
// the real engine: a person's job title and notes and an organization's website and annual
// revenue edited in the sandbox arrive in the mirror with a delta; the same columns edited by
// the app reach the sandbox (annual revenue as a number, as API v2 requires).
import assert from "node:assert/strict";
import { admin, triggerSync, withConnection } from "./_harness.ts";
import { asApp, awaitOutbox, pullNow, stored } from "./_outbound.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test({
  ...opts,
  name: "e2e pipedrive: job title, notes, website and annual revenue sync inbound and outbound",
  fn: async () => {
    await withConnection("pipedrive", { seed: 45, records: 5, unlimited: true }, async (s) => {
      const { sb, sql, conn } = s;
      await triggerSync(sql, "all", conn);
      const [person] = await sql`
        select id, remote_id from crm.contacts
        where connection_id = ${conn} and deleted_at is null and remote_id is not null
        order by remote_id limit 1`;
      const [org] = await sql`
        select id, remote_id from crm.companies
        where connection_id = ${conn} and deleted_at is null and remote_id is not null
        order by remote_id limit 1`;
      assert.ok(person && org, "the backfill mirrored persons and organizations");

      // Inbound: edits made in the sandbox, pulled by a delta.
      await admin(sb.url, "PATCH", `/records/person/${person.remote_id}`, {
        job_title: "Chief Tabulator",
        notes: "Met at the census office",
      });
      await admin(sb.url, "PATCH", `/records/organization/${org.remote_id}`, {
        website: "https://tabulating.example",
        annual_revenue: 1234567.5,
      });
      await pullNow(conn, ["contacts", "companies"]);
      const [c1] = await sql`select job_title, description from crm.contacts
                             where id = ${person.id}`;
      assert.deepEqual({ ...c1 }, {
        job_title: "Chief Tabulator",
        description: "Met at the census office",
      });
      const [o1] = await sql`select domain, annual_revenue::text as revenue from crm.companies
                             where id = ${org.id}`;
      assert.equal(o1.domain, "https://tabulating.example");
      assert.equal(Number(o1.revenue), 1234567.5);

      // Outbound: the app edits the same columns.
      await asApp(sql, conn, async (tx) => {
        await tx`update crm.contacts set job_title = 'Rear Admiral', description = 'Compiler'
                 where id = ${person.id}`;
        await tx`update crm.companies set domain = 'hollerith.example', annual_revenue = 42000
                 where id = ${org.id}`;
      });
      await awaitOutbox(sql, conn);
      const p = await stored(sb.url, "pipedrive", "contacts", person.remote_id);
      assert.equal(p.props.job_title, "Rear Admiral");
      assert.equal(p.props.notes, "Compiler");
      const o = await stored(sb.url, "pipedrive", "companies", org.remote_id);
      assert.equal(o.props.website, "hollerith.example");
      assert.equal(o.props.annual_revenue, 42000, "annual_revenue is sent as a number");
      const [after] = await sql`select needs_sync, sync_error from crm.companies
                                where id = ${org.id}`;
      assert.deepEqual({ ...after }, { needs_sync: false, sync_error: null });
    });
  },
});
