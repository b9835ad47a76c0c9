// Backfill progress end to end: a HubSpot and a Salesforce backfill (full walks of several pages
// through crm-sync-bidirectional) record at their first page an estimate equal to what the
// sandbox holds (HubSpot: search's total, the list having none; Salesforce: the COUNT() of
// Contact and Lead, recycle bin included as the walk reads it), and crm.backfill_progress()
// reads the finished walk: done, every record counted, the estimate kept. Pipedrive gives no
// total: no estimate. The estimate at each page is caught by a test-only trigger on sync_log.
import assert from "node:assert/strict";
import { admin, syncUntilDone, withConnection } from "./_harness.ts";

type Row = Record<string, unknown>;

/** What a contacts walk reads from the sandbox's store: the records the CRM counts for it, and
 * those the walk reads besides (HubSpot's archive, listed after a full walk). */
async function contactsInSandbox(provider: string, url: string) {
  if (provider === "hubspot") {
    const rows = await admin(url, "GET", "/store?object=contacts") as Row[];
    const live = rows.filter((r) => !r.archived && (r.mergedInto ?? null) === null).length;
    return { counted: live, besides: rows.filter((r) => r.archived).length };
  }
  let n = 0;
  for (const type of ["Contact", "Lead"]) {
    n += (await admin(url, "GET", `/store?object=${type}`) as Row[]).length;
  }
  return { counted: n, besides: 0 };
}

for (const provider of ["hubspot", "salesforce", "pipedrive"] as const) {
  Deno.test({
    name:
      `e2e ${provider}: a backfill records its estimate at the first page; progress reads it after`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      await withConnection(provider, { seed: 53, records: 260, unlimited: true }, async (s) => {
        const { sb, sql, conn } = s;
        const table = `e2e_estimates_${conn.replaceAll("-", "")}`;
        await sql.unsafe(`
          create table public.${table} (run_id bigint, processed integer, estimate bigint,
                                        at timestamptz default clock_timestamp());
          create function public.${table}_f() returns trigger language plpgsql as $f$
          begin
            if new.connection_id = '${conn}' and new.object = 'contacts'
               and new.details ->> 'estimated_total' is distinct from old.details ->> 'estimated_total' then
              insert into public.${table} (run_id, processed, estimate)
              values (new.id, old.processed, (new.details ->> 'estimated_total')::bigint);
            end if;
            return new;
          end $f$;
          create trigger ${table}_t after update on crm.sync_log
            for each row execute function public.${table}_f();`);
        try {
          await syncUntilDone(conn, {
            objects: ["contacts"],
            mode: "full",
            trigger: "backfill",
            page_size: 50,
          });
          const [p] = await sql`
            select state, records, estimated_total, rate, eta, runs, started_at, finished_at
            from crm.backfill_progress()
            where connection_id = ${conn} and object = 'contacts'`;
          assert.ok(p, "the backfill has a progress row");
          assert.equal(p.state, "done");
          assert.ok(Number(p.rate) > 0 && p.eta === null && p.finished_at > p.started_at);
          const estimates = await sql.unsafe(`select * from public.${table} order by at`);
          if (provider === "pipedrive") {
            assert.ok(Number(p.records) > 100);
            assert.equal(p.estimated_total, null, "Pipedrive gives no total");
            assert.equal(estimates.length, 0);
            return;
          }
          const { counted, besides } = await contactsInSandbox(provider, sb.url);
          assert.equal(Number(p.records), counted + besides, "the walk read every record");
          const expected = counted;
          assert.ok(expected > 100, `${expected} records: a walk of several pages`);
          assert.ok(estimates.length > 0, "pages recorded an estimate");
          assert.deepEqual(
            { processed: estimates[0].processed, estimate: Number(estimates[0].estimate) },
            { processed: 0, estimate: expected },
            "at the first page, nothing read yet and the sandbox's count ahead",
          );
          // HubSpot's archive listing, read whole after the walk, ends the estimate at its count.
          assert.equal(Number(p.estimated_total), counted + besides, "the estimate ends exact");
        } finally {
          await sql.unsafe(`drop trigger if exists ${table}_t on crm.sync_log;
                            drop function if exists public.${table}_f();
                            drop table if exists public.${table};`);
        }
      });
    },
  });
}
