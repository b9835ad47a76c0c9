// npm run bench — a benchmark, not a test (issue 5, item 10). Backfills N HubSpot contacts and
// N Salesforce contacts (N/2 Contacts + N/2 Leads) from sandboxes into Postgres through the real
// path (gateway -> crm-sync-bidirectional in its own Deno process), then measures a naive
// baseline the same run, and prints records/s, API calls vs. the minimum, the function's peak
// memory, where the time went and whether each target is met.
//   --records N   contacts per provider (default 100000)
//   --baseline N  records the naive baseline walks before its rate is extrapolated
//                 (default 10000, at most --records)
//   --keep        leave the bench stack up afterwards (stop it with --down)
//   --down        only stop a bench stack left up by --keep
// The bench stack is the `bench` profile (ports 583xx, .local/bench), rebuilt fresh each run
// with the same up/down the test profile uses; its sandboxes run in a child process
// (scripts/bench/sandbox_server.ts) with their rate limits lifted. Linux only (/proc).
import { parseArgs } from "node:util";
import postgres from "postgres";
import { stackConfig } from "../shared/local/config.ts";
import { down, up } from "../shared/local/stack.ts";
import { probeAdapter } from "./bench/adapter_probe.ts";
import { runBaseline } from "./bench/baseline.ts";
import { registerConnection } from "./bench/connection.ts";
import { runEngineBackfill } from "./bench/engine_run.ts";
import { derive, type Sizes } from "./bench/figures.ts";
import { initClockTicks } from "./bench/procstat.ts";
import { printProvider, printTable, type ProviderReport } from "./bench/report.ts";
import { type BenchSandboxes, startSandboxes } from "./bench/sandboxes.ts";

const USAGE = "usage: bench.ts [--records N] [--baseline N] [--keep] | --down";

function fail(msg: string): never {
  console.error(msg);
  Deno.exit(2);
}

const { values } = (() => {
  try {
    return parseArgs({
      args: Deno.args,
      options: {
        records: { type: "string" },
        baseline: { type: "string" },
        keep: { type: "boolean" },
        down: { type: "boolean" },
      },
      strict: true,
    });
  } catch (e) {
    return fail(`${(e as Error).message}\n${USAGE}`);
  }
})();

function count(v: string | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v) || Number(v) < 2) fail(`--${name} must be an integer ≥ 2 (got ${v})`);
  return Number(v);
}

const cfg = stackConfig("bench");
if (values.down) {
  await down(cfg);
  console.log("bench stack is down");
  Deno.exit(0);
}
if (Deno.build.os !== "linux") fail("the bench reads /proc and needs Linux");
const records = count(values.records, "records", 100_000);
const prefix = Math.min(records, count(values.baseline, "baseline", 10_000));
const log = (m: string) => console.log(m);
const banner = (t: string) => console.log(`\n=== ${t} ${"=".repeat(Math.max(0, 70 - t.length))}`);

function sizesOf(sb: BenchSandboxes, provider: "hubspot" | "salesforce"): Sizes {
  if (provider === "hubspot") {
    const live = sb.hubspot.contacts.live;
    return { engine: { contacts: live }, naive: { contacts: live } };
  }
  const { Contact, Lead } = sb.salesforce;
  return {
    // queryAll: the recycle bin too (the engine lands those as tombstones).
    engine: { Contact: Contact.total, Lead: Lead.total },
    naive: { Contact: Contact.total - Contact.deleted, Lead: Lead.total - Lead.deleted },
  };
}

await initClockTicks();
let sandboxes: BenchSandboxes | null = null;
let sql: postgres.Sql | null = null;
let exitCode = 0;
try {
  banner(`bench stack (${cfg.dir}, gateway ${cfg.gatewayPort}, postgres ${cfg.pgPort})`);
  await down(cfg, log);
  await Deno.remove(cfg.dir, { recursive: true }).catch(() => {});
  await Deno.mkdir(cfg.dir, { recursive: true });
  await Deno.writeTextFile(cfg.functionsEnvFile, "");
  const env = await up(cfg, { watch: false, emulators: false, connections: false, log });
  sql = postgres(env.SUPABASE_DB_URL, { max: 2, onnotice: () => {} });
  // Nothing else may call the function meanwhile: the migrations' cron jobs would sync every
  // active connection every 5 minutes. The bench database is thrown away afterwards.
  await sql`select cron.alter_job(jobid, active := false) from cron.job`;
  // Per-function timings for the SQL share (new sessions pick it up).
  await sql`alter database postgres set track_functions = 'all'`;

  banner(`sandboxes: HubSpot ${records} contacts, Salesforce ${Math.ceil(records / 2)} + Leads`);
  sandboxes = await startSandboxes(records, Math.ceil(records / 2));
  log(`seeded in ${(sandboxes.seededMs / 1000).toFixed(1)} s (pid ${sandboxes.pid})`);

  const reports: ProviderReport[] = [];
  for (const provider of ["hubspot", "salesforce"] as const) {
    const sb = { ...sandboxes[provider], pid: sandboxes.pid };
    const sizes = sizesOf(sandboxes, provider);
    banner(`${provider}: engine backfill through the gateway`);
    const conn = await registerConnection(sql, env.CRM_ENCRYPTION_KEY, sb);
    const engine = await runEngineBackfill(
      sql,
      {
        url: env.SUPABASE_URL,
        serviceRoleKey: env.SUPABASE_SERVICE_ROLE_KEY,
        pgPort: cfg.pgPort,
        pgData: cfg.pgData,
      },
      sb,
      conn.id,
      log,
    );
    banner(`${provider}: adapter alone on the first ${prefix} records`);
    const probe = await probeAdapter(sql, sb, conn.id, conn.settings, prefix);
    log(`${probe.records} records, ${probe.calls} calls, ${(probe.fetchMs / 1000).toFixed(1)} s`);
    banner(`${provider}: naive baseline on the first ${prefix} records`);
    const baseline = await runBaseline(sql, cfg.pgData, sb, conn.id, conn.settings, prefix);
    log(`${baseline.records} records in ${(baseline.wallMs / 1000).toFixed(1)} s`);
    reports.push({
      provider,
      sizes,
      engine,
      probe,
      baseline,
      derived: derive(provider, sizes, engine, baseline),
    });
  }

  banner("results");
  for (const r of reports) printProvider(r);
  printTable(reports);
} catch (e) {
  console.error(`\nbench aborted: ${(e as Error).stack ?? e}`);
  exitCode = 1;
} finally {
  await sandboxes?.close();
  await sql?.end();
  if (values.keep) console.log(`\nbench stack left up (${cfg.envFile}); stop it with --down`);
  else await down(cfg, log);
}
Deno.exit(exitCode);
