// npm run stack:up | stack:down | db:reset | start — thin entry point over shared/local.
//   --records N        records per object in each CRM sandbox (env CRM_SYNC_SANDBOX_RECORDS;
//                      default 2000); applies when the sandboxes start, not to running ones
//   --no-connections   do not register the sandbox connections (env CRM_SYNC_NO_CONNECTIONS=1)
// `start` also runs the initial backfill through the sync function, then shows the live status.
import { parseArgs } from "node:util";
import postgres from "postgres";
import { runBackfill } from "../shared/local/backfill.ts";
import { activeConnections, backfillSummary, backfillView } from "../shared/local/backfill_view.ts";
import { stackConfig } from "../shared/local/config.ts";
import { down, up, type UpOptions } from "../shared/local/stack.ts";
import { runStatusView } from "../shared/local/status_view.ts";

const USAGE = "usage: stack.ts up|down|reset|start [--records N] [--no-connections]";

function fail(msg: string): never {
  console.error(msg);
  Deno.exit(2);
}

const { values, positionals } = (() => {
  try {
    return parseArgs({
      args: Deno.args,
      options: { records: { type: "string" }, "no-connections": { type: "boolean" } },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    return fail(`${(e as Error).message}\n${USAGE}`);
  }
})();

const cfg = stackConfig("dev");
const records = values.records ?? Deno.env.get("CRM_SYNC_SANDBOX_RECORDS");
if (records !== undefined && records !== "") {
  if (!/^\d+$/.test(records)) fail(`--records must be a non-negative integer (got ${records})`);
  cfg.sandboxRecords = Number(records);
}
const noConnections = values["no-connections"] ||
  ["1", "true", "yes"].includes(Deno.env.get("CRM_SYNC_NO_CONNECTIONS")?.toLowerCase() ?? "");
const upOptions: UpOptions = { watch: true, connections: !noConnections };

/** The initial backfill; returns the line the live status keeps showing. */
async function backfill(env: Record<string, string>): Promise<string> {
  const sql = postgres(env.SUPABASE_DB_URL, { max: 1, onnotice: () => {} });
  try {
    const conns = await activeConnections(sql);
    if (conns.length === 0) return "backfill skipped: no active connections";
    const view = backfillView(sql, conns);
    const result = await runBackfill({
      url: env.SUPABASE_URL,
      serviceRoleKey: env.SUPABASE_SERVICE_ROLE_KEY,
      onProgress: view.onProgress,
    });
    await view.finish(result);
    return backfillSummary(result);
  } finally {
    await sql.end();
  }
}

switch (positionals[0]) {
  case "up": {
    await up(cfg, upOptions);
    console.log(`stack is up; connection details in ${cfg.envFile}`);
    break;
  }
  case "reset": {
    // Throws the local database away and rebuilds it from the migrations.
    await down(cfg);
    await Deno.remove(cfg.pgDir, { recursive: true }).catch(() => {});
    await up(cfg, upOptions);
    console.log("stack was reset");
    break;
  }
  case "down":
    await down(cfg);
    console.log("stack is down");
    break;
  case "start": {
    const env = await up(cfg, upOptions);
    let stopping = false;
    const stop = async () => {
      if (stopping) return;
      stopping = true;
      console.log("\nstopping…");
      await down(cfg);
      Deno.exit(0);
    };
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
    const note = await backfill(env).catch((e) => `backfill failed: ${(e as Error).message}`);
    await runStatusView(cfg, env, [note]);
    break;
  }
  default:
    fail(USAGE);
}
