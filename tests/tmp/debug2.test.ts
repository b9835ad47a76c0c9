import { triggerSync, withConnection } from "../e2e/_harness.ts";
import { asApp, awaitOutbox } from "../e2e/_outbound.ts";
const provider = (Deno.env.get("P") ?? "salesforce") as "salesforce";
Deno.test({
  name: "debug",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await withConnection(
      provider,
      { seed: 31, records: 5, unlimited: true },
      async ({ sql, conn }) => {
        let t = Date.now();
        const lap = (m: string) => {
          console.log(m, Date.now() - t);
          t = Date.now();
        };
        await triggerSync(sql, "all", conn);
        lap("all");
        await asApp(sql, conn, async (tx) => {
          const [co] =
            await tx`insert into crm.companies (connection_id, name) values (${conn}, 'Dbg Co') returning id`;
          await tx`insert into crm.contacts (connection_id, first_name, last_name, company_id) values (${conn}, 'A', 'B', ${co.id})`;
        });
        await awaitOutbox(sql, conn);
        lap("push");
        await triggerSync(sql, "contacts", conn);
        lap("contacts");
        await asApp(
          sql,
          conn,
          (tx) =>
            tx`update crm.contacts set first_name = 'C' where connection_id = ${conn} and first_name = 'A'`,
        );
        await awaitOutbox(sql, conn);
        lap("push2");
        await triggerSync(sql, "contacts", conn);
        lap("contacts2");
        console.log(
          await sql`select id, kind, object, state, attempts, claims, last_error, created_at, updated_at, run_after from crm.jobs where connection_id = ${conn} order by id`,
        );
      },
    );
  },
});
