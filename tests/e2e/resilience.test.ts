// Failure handling end to end: a sync converges through 20 % injected 429s and 5 % 5xx without
// ever exceeding the provider's real limit; revoked credentials put the connection in the error
// state with a readable reason; a function process killed mid-walk resumes where it stopped.
import assert from "node:assert/strict";
import { PROVIDERS } from "../../supabase/functions/_shared/providers/types.ts";
import {
  admin,
  busyFunctionPids,
  callFunction,
  syncUntilDone,
  triggerSync,
  withConnection,
} from "./_harness.ts";
import { expectedContacts } from "./_expect.ts";

for (const provider of PROVIDERS) {
  Deno.test({
    name: `e2e ${provider}: converges through 20 % 429s and 5 % 5xx, never over the real limit`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      await withConnection(provider, { seed: 41, records: 400 }, async ({ sb, sql, conn }) => {
        await admin(sb.url, "PUT", "/faults", { rate429: 0.2, error5xxRate: 0.05, seed: 3 });
        await syncUntilDone(conn, { objects: ["contacts"], page_size: 100 });
        const want = [...(await expectedContacts(provider, sb.url)).values()]
          .filter((w) => !w.deleted).map((w) => w.remote_id).sort();
        const got = await sql`select remote_id from crm.contacts
                              where connection_id = ${conn} and deleted_at is null`;
        assert.deepEqual(got.map((r) => r.remote_id).sort(), want);
        const counters = await admin(sb.url, "GET", "/counters");
        const injected = counters.faultsInjected ?? {};
        assert.ok((injected["429"] ?? 0) > 0, "faults were injected");
        // Every rate-limit answer the sandbox served was an injected one: our pacing never hit
        // the real limit. (Salesforce has no 429: its limit error is 403 REQUEST_LIMIT_EXCEEDED.)
        const limited = provider === "salesforce" ? "403" : "429";
        assert.equal(
          counters.byStatus[limited] ?? 0,
          injected["429"] ?? 0,
          JSON.stringify(counters),
        );
      });
    },
  });

  Deno.test({
    name: `e2e ${provider}: revoked credentials put the connection in error with a reason`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      await withConnection(provider, { seed: 42, records: 20 }, async ({ sb, sql, conn }) => {
        await admin(sb.url, "POST", "/tokens/revoke", { kind: "all" });
        const answer = await triggerSync(sql, "contacts", conn);
        const run = answer.runs.find((r) => r.object === "contacts")!;
        assert.equal(run.status, "failed");
        assert.equal(run.revoked, true);
        // Calling again would not continue anything: the connection waits to be reconnected.
        assert.equal(run.more, false);
        assert.equal(answer.more, false);
        const [c] = await sql`select status, last_error from crm.connections where id = ${conn}`;
        assert.equal(c.status, "error");
        assert.match(c.last_error, new RegExp(`${provider} refused the stored credentials`));
        const [log] = await sql`select status, error from crm.sync_log where id = ${run.run_id}`;
        assert.equal(log.status, "failed");
        assert.equal(log.error.revoked, true);
        await assert.rejects(
          sql`select public.trigger_crm_sync('contacts', ${conn}::uuid)`,
          /is error/,
          "an errored connection is not synced until resumed",
        );
      });
    },
  });
}

for (const provider of PROVIDERS) {
  Deno.test({
    name: `e2e ${provider}: a function killed mid-walk resumes without gaps or duplicates`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      await withConnection(provider, {
        seed: 51,
        records: 3_000,
        unlimited: true,
        settings: {
          rate_limits: {
            default: { limit: 10_000, window_ms: 1_000 },
            search: { limit: 10_000, window_ms: 1_000 },
          },
        },
      }, async ({ sb, sql, conn }) => {
        // Slow enough (>= 60 pages, >= 80 ms each) that the kill lands mid-walk even on a busy machine.
        await admin(sb.url, "PUT", "/faults", { latencyMs: 80 });
        const first = callFunction("crm-sync-bidirectional", {
          direction: "inbound",
          objects: ["contacts"],
          connection_id: conn,
          page_size: 50,
        });
        let killed = false;
        for (let i = 0; i < 400 && !killed; i++) {
          await new Promise((r) => setTimeout(r, 50));
          const [run] = await sql`select processed from crm.sync_log
                                  where connection_id = ${conn} and status = 'running'`;
          if (run && run.processed >= 300) {
            const pids = await busyFunctionPids("crm-sync-bidirectional");
            assert.deepEqual(pids.length, 1, `one function process (${pids.join(", ")})`);
            Deno.kill(pids[0], "SIGKILL");
            killed = true;
          }
        }
        assert.ok(killed, "the walk was interrupted");
        const r1 = await first;
        assert.ok(r1.status >= 500, `the killed call failed (${r1.status})`);
        const [{ processed: before }] = await sql`select processed from crm.sync_log
                                                  where connection_id = ${conn} and status = 'running'`;
        // The health check closes runs whose worker died; then the next call continues.
        await sql`select count(*) from crm.check_health(interval '0 seconds')`;
        await admin(sb.url, "PUT", "/faults", {});
        const rest = await syncUntilDone(conn, { objects: ["contacts"], page_size: 50 });
        const processedAfter = rest.flatMap((a) => a.runs).reduce(
          (n, r) => n + (r.processed as number),
          0,
        );
        const all = [...(await expectedContacts(provider, sb.url)).values()];
        const want = all.filter((w) => !w.deleted).map((w) => w.remote_id).sort();
        const got = await sql`select remote_id from crm.contacts
                              where connection_id = ${conn} and deleted_at is null`;
        assert.deepEqual(got.map((r) => r.remote_id).sort(), want, "no gaps");
        // Resumed from the checkpoint: the second walk did not start over.
        assert.ok(
          processedAfter <= all.length - before + 50,
          `resumed (${before} before the kill, ${processedAfter} after, ${all.length} in the CRM)`,
        );
      });
    },
  });
}
