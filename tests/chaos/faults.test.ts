// The chaos harness's stack faults on their own: a connection cut while its statement runs
// (scripts/chaos/pg_drop.ts) and the gateway restarted (shared/local/stack.ts restartGateway).
import assert from "node:assert/strict";
import postgres from "postgres";
import { dropInFlight } from "../../scripts/chaos/pg_drop.ts";
import { gatewayRestarter } from "../../scripts/chaos/gateway.ts";
import { need } from "../_support/env.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test({
  name: "drop_pg cuts an engine backend in the middle of its statement, never an idle one",
  ...opts,
  fn: async () => {
    // A name of its own, so the stack's real engine (workers the cron wakes) is left alone.
    const app = "crm-chaos-probe";
    const engine = postgres(need("SUPABASE_DB_URL"), {
      max: 2,
      onnotice: () => {},
      connection: { application_name: app },
    });
    const sql = postgres(need("SUPABASE_DB_URL"), {
      max: 1,
      onnotice: () => {},
      connection: { application_name: "crm-chaos" },
    });
    try {
      // An idle engine connection is not a target.
      await engine`select 1`;
      assert.equal(await dropInFlight(sql, 300, app), null);
      const running = engine`select pg_sleep(5), 'chaos-probe'`.then(
        () => "finished",
        (e) => String(e.message),
      );
      const cut = await dropInFlight(sql, 3000, app);
      assert.ok(cut?.includes("chaos-probe"), `cut: ${cut}`);
      // The statement failed (postgres.js reports the closed connection), it did not finish.
      assert.match(await running, /terminat|CONNECTION_CLOSED/i);
    } finally {
      await engine.end({ timeout: 1 });
      await sql.end();
    }
  },
});

Deno.test({
  name: "restart_gateway: the test stack's gateway comes back and serves functions again",
  ...opts,
  ignore: gatewayRestarter(need("SUPABASE_URL")) === undefined,
  fn: async () => {
    const restart = gatewayRestarter(need("SUPABASE_URL"))!;
    for (const hard of [true, false]) {
      await restart(hard);
      const res = await fetch(`${need("SUPABASE_URL")}/__health`);
      await res.body?.cancel();
      assert.equal(res.status, 200);
      // A function process starts again behind it.
      const hook = await fetch(`${need("SUPABASE_URL")}/functions/v1/crm-webhook/hubspot`, {
        method: "POST",
        body: "[]",
      });
      await hook.body?.cancel();
      assert.ok(hook.status >= 200 && hook.status < 500, `crm-webhook answered ${hook.status}`);
    }
  },
});
