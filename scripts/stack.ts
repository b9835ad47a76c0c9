// npm run stack:up | stack:down | db:reset | start — thin entry point over shared/local.
//   --records N        records per object in each CRM sandbox (env CRM_SYNC_SANDBOX_RECORDS;
//                      default 2000); applies when the sandboxes start, not to running ones
//   --no-connections   do not register the sandbox connections (env CRM_SYNC_NO_CONNECTIONS=1)
//   --fresh            (up, start) regenerate the sandboxes from their seed and rebuild the
//                      database with them; otherwise the sandboxes keep their state across
//                      restarts (.local/sandboxes, saved when the stack stops)
// The sandboxes are connected through crm-connect as the dev account's user
// (shared/local/connect_sandboxes.ts), which queues their webhook set-up and first backfill.
// `start` follows that backfill (or, when nothing is queued, runs one through the sync function),
// then shows the live status.
// `credentials <connection-id> [file.json]` stores a connection's credentials (JSON from the
// file or stdin) encrypted with the stack's CRM_ENCRYPTION_KEY, e.g. for a real CRM account.
import { parseArgs } from "node:util";
import postgres from "postgres";
import { runBackfill } from "../shared/local/backfill.ts";
import { followBackfillJobs, pendingInbound } from "../shared/local/backfill_jobs.ts";
import { activeConnections, backfillSummary, backfillView } from "../shared/local/backfill_view.ts";
import { dbUrl, type Profile, stackConfig } from "../shared/local/config.ts";
import { storeCredentials } from "../shared/local/connections.ts";
import { ensureStackSecrets } from "../shared/local/secrets.ts";
import { down, kill, sandboxStateDir, up, type UpOptions } from "../shared/local/stack.ts";
import { handleShutdown, say } from "../shared/local/shutdown.ts";
import { runStatusView } from "../shared/local/status_view.ts";
import { tryItLines } from "../shared/local/try_it.ts";
import { importKey } from "../supabase/functions/_shared/crypto.ts";

const USAGE = "usage: stack.ts up|down|reset|start [--records N] [--no-connections] [--fresh]\n" +
  "       stack.ts credentials <connection-id> [credentials.json]   (JSON on stdin without a file)";

function fail(msg: string): never {
  console.error(msg);
  Deno.exit(2);
}

const { values, positionals } = (() => {
  try {
    return parseArgs({
      args: Deno.args,
      options: {
        records: { type: "string" },
        "no-connections": { type: "boolean" },
        fresh: { type: "boolean" },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    return fail(`${(e as Error).message}\n${USAGE}`);
  }
})();

// CRM_STACK_PROFILE=test|bench runs these commands on another profile's ports and folder (the
// shutdown test starts a whole stack that way); the default is the developer's stack.
const profile = (Deno.env.get("CRM_STACK_PROFILE") || "dev") as Profile;
if (!["dev", "test", "bench"].includes(profile)) {
  fail(`CRM_STACK_PROFILE: unknown profile ${profile}`);
}
const cfg = stackConfig(profile);
const records = values.records ?? Deno.env.get("CRM_SYNC_SANDBOX_RECORDS");
if (records !== undefined && records !== "") {
  if (!/^\d+$/.test(records)) fail(`--records must be a non-negative integer (got ${records})`);
  cfg.sandboxRecords = Number(records);
}
const noConnections = values["no-connections"] ||
  ["1", "true", "yes"].includes(Deno.env.get("CRM_SYNC_NO_CONNECTIONS")?.toLowerCase() ?? "");
// The sandboxes deliver webhooks to the local gateway's crm-webhook (real-time sync).
const upOptions: UpOptions = {
  watch: true,
  connections: !noConnections,
  webhooks: true,
  connect: "crm-connect",
  sandboxState: true,
};

/** Stops the stack and throws away the database and the sandboxes' saved state together. */
async function wipe() {
  await down(cfg);
  await Deno.remove(cfg.pgDir, { recursive: true }).catch(() => {});
  await Deno.remove(sandboxStateDir(cfg), { recursive: true }).catch(() => {});
}

/** The sandbox providers the "try it" commands can use. */
async function sandboxProviders(env: Record<string, string>): Promise<string[]> {
  const sql = postgres(env.SUPABASE_DB_URL, { max: 1, onnotice: () => {} });
  try {
    const rows = await sql`select distinct provider from crm.connections
                           where status = 'active' and settings ? 'base_url'`;
    return rows.map((r) => r.provider as string);
  } finally {
    await sql.end();
  }
}

/** The initial backfill; returns the line the live status keeps showing. */
async function backfill(
  env: Record<string, string>,
  since: Date,
  signal: AbortSignal,
): Promise<string> {
  const sql = postgres(env.SUPABASE_DB_URL, { max: 1, onnotice: () => {} });
  try {
    const conns = await activeConnections(sql);
    if (conns.length === 0) return "backfill skipped: no active connections";
    const view = backfillView(sql, conns, { signal });
    const ids = conns.map((c) => c.id);
    if (await pendingInbound(sql, ids) > 0) {
      // crm-connect queued it: the workers run it.
      const result = await followBackfillJobs({
        sql,
        connectionIds: ids,
        since,
        onProgress: view.onProgress,
      });
      await view.finish(result);
      return backfillSummary(result);
    }
    const result = await runBackfill({
      url: env.SUPABASE_URL,
      serviceRoleKey: env.SUPABASE_SERVICE_ROLE_KEY,
      connectionIds: conns.map((c) => c.id),
      onProgress: view.onProgress,
    });
    await view.finish(result);
    return backfillSummary(result);
  } finally {
    await sql.end();
  }
}

/** Reads a flat JSON object of strings (the adapters' credential shape). */
async function readCredentials(file: string | undefined): Promise<Record<string, string>> {
  const text = file
    ? await Deno.readTextFile(file)
    : await new Response(Deno.stdin.readable).text();
  const value = JSON.parse(text);
  const flat = value && typeof value === "object" && !Array.isArray(value) &&
    Object.values(value).every((v) => typeof v === "string");
  if (!flat) fail('credentials must be a JSON object of strings, e.g. {"apiToken": "…"}');
  return value;
}

switch (positionals[0]) {
  case "up": {
    // Ctrl-C while it starts stops what was started; once up, the stack stays up.
    const shutdown = handleShutdown({ stop: () => down(cfg, say), kill: () => kill(cfg, say) });
    if (values.fresh) await shutdown.track(wipe());
    await shutdown.track(up(cfg, { ...upOptions, signal: shutdown.signal })).catch(async (e) => {
      if (shutdown.stopping) await shutdown.done;
      throw e;
    });
    shutdown.dispose();
    console.log(`stack is up; connection details in ${cfg.envFile}`);
    break;
  }
  case "reset": {
    // Throws the local database away and rebuilds it from the migrations; the sandboxes start
    // from their seed with it (a mirror and sandboxes of different histories would disagree).
    await wipe();
    await up(cfg, upOptions);
    console.log("stack was reset");
    break;
  }
  case "down":
    await down(cfg);
    console.log("stack is down");
    break;
  case "start": {
    const shutdown = handleShutdown({ stop: () => down(cfg, say), kill: () => kill(cfg, say) });
    // While stopping, whatever fails because the services go away waits for the exit.
    const unlessStopping = async (e: unknown): Promise<never> => {
      if (shutdown.stopping) return await shutdown.done;
      throw e;
    };
    if (values.fresh) await shutdown.track(wipe());
    const since = new Date();
    const env = await shutdown.track(up(cfg, { ...upOptions, signal: shutdown.signal }))
      .catch(unlessStopping);
    const note = await backfill(env, since, shutdown.signal).catch((e) =>
      `backfill failed: ${(e as Error).message}`
    );
    if (shutdown.stopping) await shutdown.done;
    const tryIt = note.startsWith("backfill done")
      ? tryItLines(await sandboxProviders(env).catch(() => []))
      : [];
    await runStatusView(cfg, env, { notes: [note], tryIt, signal: shutdown.signal })
      .catch(unlessStopping);
    if (shutdown.stopping) await shutdown.done;
    break;
  }
  case "credentials": {
    const [, id, file] = positionals;
    if (!id) fail(USAGE);
    const credentials = await readCredentials(file);
    const key = await importKey((await ensureStackSecrets(cfg)).CRM_ENCRYPTION_KEY);
    const sql = postgres(dbUrl(cfg), { max: 1, onnotice: () => {} });
    try {
      const stored = await storeCredentials(sql, key, id, credentials).catch((e) =>
        fail(`could not store them (is the stack up? npm run stack:up): ${e.message}`)
      );
      if (!stored) fail(`no connection ${id} in crm.connections`);
      console.log(`stored the credentials of connection ${id}, encrypted`);
    } finally {
      await sql.end();
    }
    break;
  }
  default:
    fail(USAGE);
}
