// A hung CRM through the real function path: the sandbox stops answering mid-walk, and the run
// still ends inside its budget (plus one request timeout and the close), as failed with a clear
// error and more = true, with the pages read before the hang written and their checkpoint
// saved: the next run continues from it instead of starting over.
import assert from "node:assert/strict";
import { PROVIDERS } from "../../supabase/functions/_shared/providers/types.ts";
import { admin, callFunction, syncUntilDone, withConnection } from "./_harness.ts";
import { expectedContacts } from "./_expect.ts";

const BUDGET_MS = 6_000;
const REQUEST_TIMEOUT_MS = 1_000;
/** Closing the run, the function's answer and pg overhead: generous, not a speed claim. */
const MARGIN_MS = 3_000;

for (const provider of PROVIDERS) {
  Deno.test({
    name:
      `e2e ${provider}: a CRM that stops answering ends the run inside its budget, checkpoint kept`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      await withConnection(
        provider,
        {
          seed: 51,
          // Enough pages that the walk cannot finish between the counter poll and the fault.
          records: 2_000,
          unlimited: true,
          settings: { request_timeout_ms: REQUEST_TIMEOUT_MS },
        },
        async ({ sb, sql, conn }) => {
          const started = Date.now();
          const answer = callFunction("crm-sync-bidirectional", {
            direction: "inbound",
            objects: ["contacts"],
            connection_id: conn,
            page_size: 100,
            budget_ms: BUDGET_MS,
          });
          // Let a few pages through, then hang every request.
          for (;;) {
            const c = await admin(sb.url, "GET", "/counters");
            if ((c.byStatus?.["200"] ?? 0) >= 4) break;
            await new Promise((r) => setTimeout(r, 20));
          }
          await admin(sb.url, "PUT", "/faults", { hangRate: 1 });
          const r = await answer;
          const elapsed = Date.now() - started;
          assert.equal(r.status, 200, JSON.stringify(r.json));
          assert.ok(
            elapsed < BUDGET_MS + REQUEST_TIMEOUT_MS + MARGIN_MS,
            `the run ended after ${elapsed} ms`,
          );
          const run = (r.json.runs as Array<Record<string, unknown>>)[0];
          assert.equal(run.status, "failed", JSON.stringify(run));
          assert.equal(run.more, true);
          assert.match(String(run.error), /no answer within|time budget|no time left/);
          const hung = await admin(sb.url, "GET", "/counters");
          assert.ok((hung.byStatus?.["0"] ?? 0) > 0, "requests were left unanswered");

          // What was read before the hang is written, and the checkpoint after it saved.
          const processed = Number(run.processed);
          assert.ok(processed > 0, JSON.stringify(run));
          const [{ n }] = await sql`select count(*)::int as n from crm.contacts
                                    where connection_id = ${conn}`;
          assert.equal(n, processed);
          const [cursor] = await sql`select delta_checkpoint from crm.sync_cursors
                                     where connection_id = ${conn} and object = 'contacts'`;
          assert.notEqual(cursor.delta_checkpoint, null, "the checkpoint was saved");
          const [log] = await sql`select status, error from crm.sync_log where id = ${
            Number(run.run_id)
          }`;
          assert.equal(log.status, "failed");

          // The CRM answers again: the next runs continue from the checkpoint and finish.
          await admin(sb.url, "DELETE", "/faults");
          const rest = await syncUntilDone(conn, { objects: ["contacts"], page_size: 100 });
          const again = rest.flatMap((a) => a.runs).reduce((s, x) => s + Number(x.processed), 0);
          const want = [...(await expectedContacts(provider, sb.url)).values()];
          assert.ok(again < want.length, `continued, not restarted (${again} of ${want.length})`);
          const live = await sql`select remote_id from crm.contacts
                                 where connection_id = ${conn} and deleted_at is null`;
          assert.deepEqual(
            live.map((x) => x.remote_id).sort(),
            want.filter((w) => !w.deleted).map((w) => w.remote_id).sort(),
          );
        },
      );
    },
  });
}
