// npm run bench — a benchmark, not a test (issue 5, item 10; issue 10). Backfills N HubSpot
// contacts and N Salesforce contacts (N/2 Contacts + N/2 Leads) from sandboxes into Postgres
// through the real path (gateway -> crm-sync-bidirectional in its own Deno process), then
// measures two baselines the same run — naive (one INSERT per row) and careful (one multi-row
// upsert per 100 records) — and prints records/s, API calls vs. the minimum, the function's
// peak memory, where the time went, the providers' documented ceiling and the engine's headroom
// over it, and whether each target is met. Then the SQL-only figures: a page with one bad
// record vs a clean one through crm.save_inbound_page (new and existing records), and with
// --ab an A/B of crm.apply_inbound between a git ref's migrations and the working tree's.
//   --records N     contacts per provider (default 100000)
//   --baseline N    records the naive baseline walks before its rate is extrapolated
//                   (default 10000, at most --records); the careful one walks them all
//   --ab REF        also run the A/B: REF's migrations vs the working tree's, each in a fresh
//                   cluster (ports 18 and 19 above the bench database's), pages alternating;
//                   the bad page is then measured on both sides instead of the bench stack
//   --ab-records N  rows the A/B backfills in pages of 2,000 (default 100000)
//   --ab-deltas N   delta pages of 2,000 existing records it applies afterwards (default 20)
//   --only PARTS    comma-separated subset of engine,badpage,ab,ceiling,budget,scale,outbound
//                   (default: all that apply)
// The issue-11 parts run on the same bench stack, each with sandboxes of its own (documented
// rate limits ON, many accounts per process) and connections it removes afterwards; their work
// runs as jobs (crm.enqueue_job / crm.enqueue_inbound, crm.wake_workers), i.e. as real worker
// requests through pg_net and the gateway:
//   ceiling: a HubSpot backfill vs the documented ceiling of the API it used
//     --ceiling-records N   contacts (default 60000)
//   budget: a backfill, a delta and live reads sharing one HubSpot portal's budget
//     --budget-records N    records per object (default 50000); --live-every MS (default 500)
//   scale: many connections, one CRM account each, all due at once, per worker cap
//     --scale-connections N (default 1000), --scale-records N changed contacts each (50),
//     --scale-workers LIST (1,2,4,8), --scale-providers LIST (hubspot,salesforce,pipedrive)
// The issue-12 part, on the same stack, with sandboxes of its own (documented limits ON):
//   outbound: N synced contacts per provider changed by the app in one statement and pushed as
//     in production (outbox trigger → outbound job → worker through pg_net), against
//     ⌈N / max batch⌉ write calls, the documented ceiling and the naive one-PATCH-per-record
//     baseline; then app→CRM latency under a steady load of app writes (./bench/outbound_run.ts)
//     --outbound-records N    changed contacts per provider (default 10000)
//     --outbound-pipedrive N  Pipedrive's count (default 2000: one PATCH per record at 80
//                             requests/2 s makes 10,000 a 4-minute push)
//     --outbound-naive N      records the naive baseline patches before extrapolating (300)
//     --outbound-providers LIST, --latency-providers LIST (hubspot,salesforce,pipedrive;
//                             "none" skips that half)
//     --latency-rate N (app writes/s, default 20), --latency-seconds N (default 60)
//     --outbound-leads        Salesforce: change Contacts and Leads as they come (chunks of
//                             both types) instead of Contacts only
// The issue-13 part, on the same stack, with sandboxes of its own (rate limits lifted):
//   drift: N unchanged contacts per provider (HubSpot N, Salesforce N/2 Contacts + N/2 Leads):
//     today's full walk against the drift check in the same run — SQL time, API calls, bytes
//     fetched, wall time, as ratios (./bench/drift_run.ts)
//     --drift-records N       contacts per provider (default 100000)
// The second issue-13 part, on the same stack (./bench/webhooks_run.ts):
//   webhooks: crm-webhook's ack latency, one sender then N concurrent senders posting signed
//     100-event HubSpot batches, and webhook → row visible for changes made in a HubSpot
//     sandbox whose signed webhooks go to the gateway; against p99 ack < 50 ms and row
//     p50 < 1 s, p99 < 3 s
//     --webhook-senders N (10), --webhook-requests N per sender (60),
//     --webhook-baseline N (300), --webhook-changes N (100; 0 skips), --webhook-rate N (10/s)
// The issue-15 part, on the same stack, with sandboxes of its own (./bench/chaos_run.ts):
//   chaos: the convergence harness's long version, N seeded ops per provider on both sides
//     under the issue's faults: ops/s, convergence time after quiesce, API calls per op
//     --chaos-ops N (10000 per provider), --chaos-seed N (1), --chaos-providers LIST (all),
//     --chaos-policy P (newest_wins), --chaos-faults issue|ci (issue: with hung requests)
//   --keep          leave the bench stack (and A/B clusters) up afterwards (stop with --down)
//   --down          only stop what --keep left up
// The bench stack is the `bench` profile (ports 283xx, or CRM_STACK_PORT_BASE + 100 + …;
// .local/bench), rebuilt fresh each run with the same up/down the test profile uses; its
// sandboxes run in a child process (scripts/bench/sandbox_server.ts) with their rate limits
// lifted. Linux only (/proc).
import { parseArgs } from "node:util";
import postgres from "postgres";
import { stackConfig } from "../shared/local/config.ts";
import { down, up } from "../shared/local/stack.ts";
import { runAb } from "./bench/ab.ts";
import { type AbSide, sideConfig, startSide, stopSide } from "./bench/ab_cluster.ts";
import { probeAdapter } from "./bench/adapter_probe.ts";
import { type BadPageResult, measureBadPage } from "./bench/bad_page.ts";
import { runBaseline } from "./bench/baseline.ts";
import { runCareful } from "./bench/careful.ts";
import { registerConnection } from "./bench/connection.ts";
import { runEngineBackfill } from "./bench/engine_run.ts";
import { derive, type Sizes } from "./bench/figures.ts";
import { printProvider, printTable, type ProviderReport } from "./bench/report.ts";
import { printAb, printBadPage } from "./bench/report_sql.ts";
import { type BenchSandboxes, startSandboxes } from "./bench/sandboxes.ts";
import { type PortalStack, runCeiling } from "./bench/ceiling_run.ts";
import { functionExists } from "./bench/proc_call.ts";
import {
  notMeasured,
  printBudget,
  printCeiling,
  printScale,
  printVerdicts,
  type Verdict,
} from "./bench/report_scale.ts";
import { runScale } from "./bench/scale.ts";
import { runBudget } from "./bench/shared_budget.ts";
import { type OutboundOptions, runOutboundPart } from "./bench/outbound_run.ts";
import { printOutbound } from "./bench/outbound_report.ts";
import { runDriftPart } from "./bench/drift_run.ts";
import { printDrift } from "./bench/drift_report.ts";
import { webhookReport, webhookVerdicts } from "./bench/webhook_figures.ts";
import { runWebhooks, type WebhookBenchOptions } from "./bench/webhooks_run.ts";
import { chaosReport, runChaosPart } from "./bench/chaos_run.ts";
import type { Policy } from "./chaos/model.ts";
import { type ProviderName, PROVIDERS } from "../supabase/functions/_shared/providers/types.ts";

const USAGE = "usage: bench.ts [--records N] [--baseline N] [--ab REF [--ab-records N] " +
  "[--ab-deltas N]] [--ceiling-records N] [--budget-records N] [--live-every MS] " +
  "[--scale-connections N] [--scale-records N] [--scale-workers 1,2,4,8] " +
  "[--scale-providers hubspot,salesforce,pipedrive] " +
  "[--outbound-records N] [--outbound-pipedrive N] [--outbound-naive N] " +
  "[--outbound-providers LIST] [--latency-providers LIST] [--latency-rate N] " +
  "[--latency-seconds N] [--outbound-leads] [--drift-records N] [--webhook-senders N] " +
  "[--webhook-requests N] [--webhook-baseline N] [--webhook-changes N] [--webhook-rate N] " +
  "[--chaos-ops N] [--chaos-seed N] [--chaos-providers LIST] [--chaos-policy P] " +
  "[--chaos-faults issue|ci] " +
  "[--only engine,badpage,ab,ceiling,budget,scale,outbound,drift,webhooks,chaos] [--keep] | --down";
const PARTS = [
  "engine",
  "badpage",
  "ab",
  "ceiling",
  "budget",
  "scale",
  "outbound",
  "drift",
  "webhooks",
  "chaos",
] as const;
/** The parts that run on the bench stack. */
const STACK_PARTS: readonly Part[] = [
  "engine",
  "ceiling",
  "budget",
  "scale",
  "outbound",
  "drift",
  "webhooks",
  "chaos",
];
type Part = typeof PARTS[number];
/** Records per page of the SQL-only figures: the engine's write batch (WRITE_BATCH_RECORDS). */
const SQL_PAGE = 2000;

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
        ab: { type: "string" },
        "ab-records": { type: "string" },
        "ab-deltas": { type: "string" },
        only: { type: "string" },
        "ceiling-records": { type: "string" },
        "budget-records": { type: "string" },
        "live-every": { type: "string" },
        "scale-connections": { type: "string" },
        "scale-records": { type: "string" },
        "scale-workers": { type: "string" },
        "scale-providers": { type: "string" },
        "outbound-records": { type: "string" },
        "outbound-pipedrive": { type: "string" },
        "outbound-naive": { type: "string" },
        "outbound-providers": { type: "string" },
        "latency-providers": { type: "string" },
        "latency-rate": { type: "string" },
        "latency-seconds": { type: "string" },
        "outbound-leads": { type: "boolean" },
        "drift-records": { type: "string" },
        "webhook-senders": { type: "string" },
        "webhook-requests": { type: "string" },
        "webhook-baseline": { type: "string" },
        "webhook-changes": { type: "string" },
        "webhook-rate": { type: "string" },
        "chaos-ops": { type: "string" },
        "chaos-seed": { type: "string" },
        "chaos-providers": { type: "string" },
        "chaos-policy": { type: "string" },
        "chaos-faults": { type: "string" },
        keep: { type: "boolean" },
        down: { type: "boolean" },
      },
      strict: true,
    });
  } catch (e) {
    return fail(`${(e as Error).message}\n${USAGE}`);
  }
})();

function count(v: string | undefined, name: string, dflt: number, min = 2): number {
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v) || Number(v) < min) fail(`--${name} must be an integer ≥ ${min} (got ${v})`);
  return Number(v);
}

const cfg = stackConfig("bench");
if (values.down) {
  await down(cfg);
  for (const side of ["ref", "tree"] as const) {
    await stopSide(cfg, side);
    await Deno.remove(sideConfig(cfg, side).dir, { recursive: true }).catch(() => {});
  }
  console.log("bench stack is down");
  Deno.exit(0);
}
if (Deno.build.os !== "linux") fail("the bench reads /proc and needs Linux");
const records = count(values.records, "records", 100_000);
const prefix = Math.min(records, count(values.baseline, "baseline", 10_000));
const abRecords = count(values["ab-records"], "ab-records", 100_000, SQL_PAGE);
const abDeltas = count(values["ab-deltas"], "ab-deltas", 20, 1);
const parts = new Set<Part>(
  values.only === undefined
    ? PARTS.filter((p) => p !== "ab" || values.ab !== undefined)
    : values.only.split(",").map((p) =>
      (PARTS as readonly string[]).includes(p) ? p as Part : fail(`--only: unknown part ${p}`)
    ),
);
if (parts.has("ab") && values.ab === undefined) fail("--only ab needs --ab REF");
const ceilingRecords = count(values["ceiling-records"], "ceiling-records", 60_000, 100);
const budgetRecords = count(values["budget-records"], "budget-records", 50_000, 100);
const liveEveryMs = count(values["live-every"], "live-every", 500, 50);
const scaleConnections = count(values["scale-connections"], "scale-connections", 1_000, 2);
const scaleRecords = count(values["scale-records"], "scale-records", 50, 1);
const scaleWorkers = (values["scale-workers"] ?? "1,2,4,8").split(",").map((w) =>
  /^\d+$/.test(w) && Number(w) >= 1 ? Number(w) : fail(`--scale-workers: bad count ${w}`)
);
/** A comma-separated list of providers (default all; "none" for none). */
function providerList(name: string): ProviderName[] {
  const v = values[name as keyof typeof values] as string | undefined ?? PROVIDERS.join(",");
  if (v === "none") return [];
  return v.split(",")
    .map((p) =>
      (PROVIDERS as readonly string[]).includes(p)
        ? p as ProviderName
        : fail(`--${name}: unknown provider ${p}`)
    );
}
const scaleProviders = providerList("scale-providers");
const outboundRecords = count(values["outbound-records"], "outbound-records", 10_000, 1);
const outboundPipedrive = Math.min(
  outboundRecords,
  count(values["outbound-pipedrive"], "outbound-pipedrive", 2_000, 1),
);
const outbound: OutboundOptions = {
  providers: providerList("outbound-providers"),
  records: { hubspot: outboundRecords, salesforce: outboundRecords, pipedrive: outboundPipedrive },
  fewer: outboundPipedrive < outboundRecords
    ? {
      pipedrive: `not ${outboundRecords.toLocaleString("en")}: one PATCH per record at the ` +
        `documented 80 requests/2 s makes that a ${
          Math.ceil(outboundRecords / 40 / 60)
        }-minute push; --outbound-pipedrive ${outboundRecords} measures it all`,
    }
    : {},
  naive: count(values["outbound-naive"], "outbound-naive", 300, 1),
  latencyProviders: providerList("latency-providers"),
  ratePerSecond: count(values["latency-rate"], "latency-rate", 20, 1),
  seconds: count(values["latency-seconds"], "latency-seconds", 60, 1),
  leads: values["outbound-leads"] === true,
};
const driftRecords = count(values["drift-records"], "drift-records", 100_000, 100);
const webhooks: WebhookBenchOptions = {
  senders: count(values["webhook-senders"], "webhook-senders", 10, 1),
  requests: count(values["webhook-requests"], "webhook-requests", 60, 1),
  baselineRequests: count(values["webhook-baseline"], "webhook-baseline", 300, 1),
  events: 100,
  changes: count(values["webhook-changes"], "webhook-changes", 100, 0),
  ratePerSecond: count(values["webhook-rate"], "webhook-rate", 10, 1),
};
const POLICIES = ["newest_wins", "crm_wins", "app_wins", "manual"];
const chaos = {
  providers: providerList("chaos-providers"),
  ops: count(values["chaos-ops"], "chaos-ops", 10_000, 10),
  seed: count(values["chaos-seed"], "chaos-seed", 1, 1),
  policy:
    (POLICIES.includes(values["chaos-policy"] ?? "newest_wins")
      ? values["chaos-policy"] ?? "newest_wins"
      : fail(`--chaos-policy: one of ${POLICIES.join(", ")}`)) as Policy,
  faults: (values["chaos-faults"] ?? "issue") === "ci" ? "ci" as const : "issue" as const,
};
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

/** The bench stack's part: the engine against both baselines and the ceiling, and (without
 * --ab) the bad page on this checkout's save_inbound_page. */
async function stackPart(): Promise<void> {
  let sandboxes: BenchSandboxes | null = null;
  let sql: postgres.Sql | null = null;
  try {
    banner(`bench stack (${cfg.dir}, gateway ${cfg.gatewayPort}, postgres ${cfg.pgPort})`);
    await down(cfg, log);
    await Deno.remove(cfg.dir, { recursive: true }).catch(() => {});
    await Deno.mkdir(cfg.dir, { recursive: true });
    await Deno.writeTextFile(cfg.functionsEnvFile, "");
    const env = await up(cfg, { watch: false, emulators: false, connections: false, log });
    sql = postgres(env.SUPABASE_DB_URL, { max: 2, onnotice: () => {} });
    // Nothing else may call the function meanwhile: the migrations' cron jobs would sync every
    // active connection every 5 minutes. The bench database is thrown away afterwards. Only
    // 'crm-workers' stays on (it wakes workers for due continuations, backoffs and deferrals,
    // as in production; with no job queued it wakes none).
    await sql`select cron.alter_job(jobid, active := false) from cron.job
              where jobname is distinct from 'crm-workers'`;
    // Per-function timings for the SQL share (new sessions pick it up).
    await sql`alter database postgres set track_functions = 'all'`;

    const reports: ProviderReport[] = [];
    if (parts.has("engine")) {
      banner(
        `sandboxes: HubSpot ${records} contacts, Salesforce ${Math.ceil(records / 2)} + Leads`,
      );
      sandboxes = await startSandboxes(records, Math.ceil(records / 2));
      log(`seeded in ${(sandboxes.seededMs / 1000).toFixed(1)} s (pid ${sandboxes.pid})`);

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
        log(
          `${probe.records} records, ${probe.calls} calls, ${(probe.fetchMs / 1000).toFixed(1)} s`,
        );
        banner(`${provider}: naive baseline on the first ${prefix} records`);
        const baseline = await runBaseline(sql, cfg.pgData, sb, conn.id, conn.settings, prefix);
        log(`${baseline.records} records in ${(baseline.wallMs / 1000).toFixed(1)} s`);
        banner(`${provider}: careful baseline (one upsert per 100 records) on every record`);
        const careful = await runCareful(sql, cfg.pgData, sb, conn.id, conn.settings);
        log(`${careful.records} records in ${(careful.wallMs / 1000).toFixed(1)} s`);
        reports.push({
          provider,
          sizes,
          engine,
          probe,
          baseline,
          careful,
          derived: derive(provider, sizes, engine, baseline, careful),
        });
      }
    }
    // The engine part is done: its sandboxes go, and its connections stop being active, so
    // the job parts' enqueues (every active connection) see only their own.
    await sandboxes?.close();
    sandboxes = null;
    await sql`update crm.connections set status = 'paused' where status = 'active'`;
    const stack = {
      cfg,
      url: env.SUPABASE_URL,
      serviceRoleKey: env.SUPABASE_SERVICE_ROLE_KEY,
      encryptionKey: env.CRM_ENCRYPTION_KEY,
    };
    const verdicts = await issue11Parts(sql, stack);
    if (parts.has("outbound")) {
      const done = await outboundPart(sql, { ...stack, dbUrl: env.SUPABASE_DB_URL });
      verdicts.print.push(() => verdicts.list.push(...done()));
    }
    if (parts.has("drift")) {
      banner(`drift: ${driftRecords} unchanged contacts per provider, full walk vs drift check`);
      try {
        const r = await runDriftPart(sql, stack, {
          records: driftRecords,
          timeoutMs: 30 * 60_000,
        }, log);
        verdicts.print.push(() => verdicts.list.push(...printDrift(r)));
      } catch (e) {
        log(`drift failed: ${(e as Error).stack ?? e}`);
        const reason = (e as Error).message.split("\n")[0];
        verdicts.print.push(() => verdicts.list.push(notMeasured("drift", reason)));
      }
    }
    if (parts.has("webhooks")) {
      const done = await webhooksPart(sql, stack);
      verdicts.print.push(() => verdicts.list.push(...done()));
    }
    if (parts.has("chaos")) {
      banner(
        `chaos: ${chaos.ops} ops per provider (${chaos.providers.join(", ")}), seed ${chaos.seed}`,
      );
      try {
        const rs = await runChaosPart(
          {
            url: env.SUPABASE_URL,
            dbUrl: env.SUPABASE_DB_URL,
            encryptionKey: env.CRM_ENCRYPTION_KEY,
          },
          chaos,
          log,
        );
        verdicts.print.push(() => {
          console.log(
            `\n── chaos: ${chaos.ops.toLocaleString("en")} ops per provider, ${chaos.policy} ──`,
          );
          for (const l of chaosReport(rs)) console.log(l);
          for (const { provider, result } of rs) {
            if ("error" in result) {
              verdicts.list.push(notMeasured(`chaos ${provider}`, result.error));
              continue;
            }
            verdicts.list.push({
              part: "chaos",
              target: `${provider} converges as the model says`,
              value: result.ok ? "yes" : `${result.problems.length} problems`,
              met: result.ok,
            });
          }
        });
      } catch (e) {
        log(`chaos failed: ${(e as Error).stack ?? e}`);
        const reason = (e as Error).message.split("\n")[0];
        verdicts.print.push(() => verdicts.list.push(notMeasured("chaos", reason)));
      }
    }

    let badPage: BadPageResult[] = [];
    if (parts.has("badpage") && !parts.has("ab")) {
      banner(`bad page: ${SQL_PAGE} records with one rejected value vs a clean page`);
      badPage = await measureBadPage(sql, { size: SQL_PAGE });
    }

    banner("results");
    for (const r of reports) printProvider(r);
    if (reports.length) printTable(reports);
    if (badPage.length) console.log("");
    for (const r of badPage) printBadPage("this checkout", r);
    for (const print of verdicts.print) print();
    printVerdicts(verdicts.list);
  } finally {
    await sandboxes?.close();
    await sql?.end();
    if (values.keep) console.log(`\nbench stack left up (${cfg.envFile}); stop it with --down`);
    else await down(cfg, log);
  }
}

/** The issue-11 parts (ceiling, budget, scale) on the bench stack. Each runs on its own; one
 * that cannot run (a missing verb, a failure) is reported as not measured, with the reason. The
 * printing waits for the results section. */
async function issue11Parts(
  sql: postgres.Sql,
  stack: PortalStack,
): Promise<{ print: (() => void)[]; list: Verdict[] }> {
  const print: (() => void)[] = [];
  const list: Verdict[] = [];
  const wanted = (["ceiling", "budget", "scale"] as const).filter((p) => parts.has(p));
  if (!wanted.length) return { print, list };
  const missing = [];
  for (const f of ["enqueue_job", "enqueue_inbound", "wake_workers", "engine_status"]) {
    if (!await functionExists(sql, f)) missing.push(`crm.${f}`);
  }
  const run = async (part: string, body: () => Promise<() => Verdict[]>) => {
    banner(part);
    try {
      const done = await body();
      print.push(() => list.push(...done()));
    } catch (e) {
      const reason = (e as Error).message.split("\n")[0];
      log(`${part} failed: ${(e as Error).stack ?? e}`);
      print.push(() => list.push(notMeasured(part, reason)));
    }
  };
  for (const part of wanted) {
    if (missing.length) {
      const reason = `${missing.join(", ")} missing (the job queue is not in this checkout)`;
      print.push(() => list.push(notMeasured(part, reason)));
      continue;
    }
    if (part === "ceiling") {
      await run(`ceiling: HubSpot backfill of ${ceilingRecords} contacts, limits on`, async () => {
        const r = await runCeiling(sql, stack, ceilingRecords, log);
        return () => printCeiling(r, ceilingRecords);
      });
    } else if (part === "budget") {
      if (!await functionExists(sql, "take_rate_grant")) {
        print.push(() =>
          list.push(notMeasured("budget", "crm.take_rate_grant missing (no shared SQL budget)"))
        );
        continue;
      }
      await run(
        `shared budget: one HubSpot portal, ${budgetRecords} records per object`,
        async () => {
          const r = await runBudget(
            sql,
            stack,
            { records: budgetRecords, liveEveryMs, timeoutMs: 20 * 60_000 },
            log,
          );
          return () => printBudget(r, budgetRecords, liveEveryMs);
        },
      );
    } else {
      await run(`scale: ${scaleConnections} connections, workers ${scaleWorkers}`, async () => {
        const r = await runScale(sql, stack, {
          connections: scaleConnections,
          perTenant: scaleRecords,
          workerCounts: scaleWorkers,
          providers: scaleProviders,
          small: Math.max(2, Math.round(scaleConnections / 4)),
          roundTimeoutMs: 30 * 60_000,
        }, log);
        return () => printScale(r);
      });
    }
  }
  return { print, list };
}

/** The outbound part (issue 12); what it cannot measure (a missing piece of the push on this
 * checkout, a failure) is reported as not measured, with the reason. */
async function outboundPart(
  sql: postgres.Sql,
  stack: PortalStack & { dbUrl: string },
): Promise<() => Verdict[]> {
  banner(
    `outbound: ${outboundRecords} changed contacts per provider (Pipedrive ${outboundPipedrive}), ` +
      `then ${outbound.ratePerSecond} app writes/s for ${outbound.seconds} s`,
  );
  const missing = await missingOutbound(sql);
  const providers = outbound.providers.filter((p) => !missing.writers.includes(p));
  const latency = outbound.latencyProviders.filter((p) => !missing.writers.includes(p));
  const skipped = [...new Set([...outbound.providers, ...outbound.latencyProviders])]
    .filter((p) => missing.writers.includes(p));
  const why = (p: string) => `no ${p} writer (providers/${p}_write.ts) on this checkout`;
  if (missing.sql.length) {
    const reason = `${missing.sql.join(", ")} missing (the outbound push is not complete here)`;
    return () => [notMeasured("outbound", reason)];
  }
  try {
    const r = await runOutboundPart(
      sql,
      stack,
      { ...outbound, providers, latencyProviders: latency },
      log,
    );
    return () => [
      ...skipped.map((p) => notMeasured(`outbound ${p}`, why(p))),
      ...printOutbound(r, { ...outbound, providers, latencyProviders: latency }),
    ];
  } catch (e) {
    log(`outbound failed: ${(e as Error).stack ?? e}`);
    const reason = (e as Error).message.split("\n")[0];
    return () => [notMeasured("outbound", reason)];
  }
}

/** The webhooks part (issue 13); reported as not measured, with the reason, if it fails. */
async function webhooksPart(sql: postgres.Sql, stack: PortalStack): Promise<() => Verdict[]> {
  banner(
    `webhooks: ack with 1 then ${webhooks.senders} senders of ${webhooks.events}-event batches, ` +
      `then ${webhooks.changes} sandbox changes → rows`,
  );
  if (!await functionExists(sql, "enqueue_webhook_events")) {
    return () => [notMeasured("webhooks", "crm.enqueue_webhook_events missing")];
  }
  try {
    const r = await runWebhooks(sql, stack, webhooks, log);
    return () => {
      for (const line of webhookReport(r)) console.log(line);
      return webhookVerdicts(r);
    };
  } catch (e) {
    log(`webhooks failed: ${(e as Error).stack ?? e}`);
    const reason = (e as Error).message.split("\n")[0];
    return () => [notMeasured("webhooks", reason)];
  }
}

/** The pieces of the outbound push this checkout lacks: SQL (outbound jobs, the write ledger)
 * and provider writers. */
async function missingOutbound(sql: postgres.Sql) {
  const missing = { sql: [] as string[], writers: [] as ProviderName[] };
  if (!await functionExists(sql, "enqueue_outbound")) missing.sql.push("crm.enqueue_outbound");
  const [t] = await sql`select to_regclass('crm.write_ledger') is not null as ok`;
  if (!t.ok) missing.sql.push("crm.write_ledger");
  for (const p of PROVIDERS) {
    const f = new URL(`../supabase/functions/_shared/providers/${p}_write.ts`, import.meta.url);
    if (!await Deno.stat(f).then(() => true, () => false)) missing.writers.push(p);
  }
  return missing;
}

/** The A/B part: REF's migrations vs the working tree's, then the bad page on each. */
async function abPart(ref: string): Promise<void> {
  const sides: AbSide[] = [];
  try {
    banner(`A/B clusters: ${ref} vs the working tree`);
    sides.push(await startSide(cfg, "ref", ref, log));
    sides.push(await startSide(cfg, "tree", null, log));
    banner(`A/B: ${abRecords} records backfilled, then ${abDeltas} delta pages`);
    const ab = await runAb(sides as [AbSide, AbSide], {
      records: abRecords,
      deltaPages: abDeltas,
      size: SQL_PAGE,
    }, log);
    const bad: [AbSide, BadPageResult[]][] = [];
    if (parts.has("badpage")) {
      for (const side of sides) {
        banner(`bad page on ${side.name}: ${SQL_PAGE} records with one rejected value`);
        bad.push([side, await measureBadPage(side.sql, { size: SQL_PAGE })]);
      }
    }
    banner("A/B results");
    printAb(ab, { size: SQL_PAGE });
    for (const [side, rs] of bad) {
      for (const r of rs) printBadPage(`${side.name}: ${side.label}`, r);
    }
  } finally {
    for (const side of sides) await side.stop(values.keep === true);
    if (values.keep && sides.length) {
      console.log(`A/B clusters left up on ports ${sides.map((s) => s.cfg.pgPort).join(", ")}`);
    }
  }
}

let exitCode = 0;
try {
  if (STACK_PARTS.some((p) => parts.has(p)) || (parts.has("badpage") && !parts.has("ab"))) {
    await stackPart();
  }
  if (parts.has("ab")) await abPart(values.ab!);
} catch (e) {
  console.error(`\nbench aborted: ${(e as Error).stack ?? e}`);
  exitCode = 1;
}
Deno.exit(exitCode);
