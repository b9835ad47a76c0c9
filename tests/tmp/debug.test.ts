import { triggerSync, withConnection } from "../e2e/_harness.ts";
import { asApp } from "../e2e/_outbound.ts";
const provider = (Deno.env.get("P") ?? "pipedrive") as "pipedrive";
Deno.test({
  name: "debug",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await withConnection(
      provider,
      { seed: 31, records: 5, unlimited: true },
      async ({ sql, conn }) => {
        await triggerSync(sql, "all", conn);
        await asApp(sql, conn, async (tx) => {
          const [co] =
            await tx`insert into crm.companies (connection_id, name) values (${conn}, 'Dbg Co') returning id`;
          await tx`insert into crm.contacts (connection_id, first_name, last_name, company_id) values (${conn}, 'A', 'B', ${co.id})`;
        });
        await new Promise((r) => setTimeout(r, 6000));
        console.log(
          await sql`select id, kind, object, state, attempts, last_error, payload, run_after from crm.jobs where connection_id = ${conn} and kind = 'outbound'`,
        );
        console.log(
          await sql`select object, op, state, attempts, changed_columns, last_error from crm.outbox where connection_id = ${conn}`,
        );
        console.log(
          await sql`select object, direction, status, processed, created, updated, failed, error, details from crm.sync_log where connection_id = ${conn} and direction = 'outbound'`,
        );
        console.log(
          await sql`select remote_id, company_id, company_remote_id, needs_sync from crm.contacts where connection_id = ${conn} and remote_id is null or (connection_id = ${conn} and first_name = 'A')`,
        );
        console.log(await sql`select * from crm.outbound_setup where connection_id = ${conn}`);
      },
    );
  },
});
