// The ceiling part (issue 11): a HubSpot backfill with the sandbox's documented limits on
// (100 requests / 10 s, search 5/s), run as it runs in production — one full-mode job, woken
// through pg_net, walked by workers that hand over at their CPU budget — against the documented
// ceiling of the API the walk used (read from the sandbox's per-route counters). The rows landed
// are sampled every 500 ms; the sustained rate starts one window after the first row, when the
// fresh rolling window's burst is spent.
import type postgres from "postgres";
import type { StackConfig } from "../../shared/local/config.ts";
import { type Ceiling, hubspotWalkCeiling } from "./ceiling.ts";
import { enqueueJob, jobRows, wakeWorkers } from "./queue_ops.ts";
import { type Counters, counters, resetCounters } from "./sandboxes.ts";
import { type Sample, sustainedRate } from "./scale_figures.ts";
import { dropConnections, registerTenants, startTenantSandboxes } from "./tenants.ts";

/** HubSpot's rolling window (the sandbox's intervalMs default). */
export const HUBSPOT_WINDOW_MS = 10_000;

export interface PortalStack {
  cfg: StackConfig;
  url: string;
  serviceRoleKey: string;
  encryptionKey: string;
}

/** One HubSpot portal with `records` per object and real limits, and a connection to it. */
export async function startPortal(
  sql: postgres.Sql,
  stack: PortalStack,
  records: number,
  objects: string[],
) {
  const sb = await startTenantSandboxes({
    hubspot: { accounts: 1, records, tenantRecords: 1 },
  });
  try {
    const account = sb.first.hubspot!;
    const [conn] = await registerTenants(sql, stack.encryptionKey, [account], {
      hubspot: objects,
    });
    return {
      sb,
      url: account.url,
      connectionId: conn.id,
      async close() {
        await dropConnections(sql, [conn.id]).catch(() => {});
        await sb.close();
      },
    };
  } catch (e) {
    await sb.close();
    throw e;
  }
}

export interface CeilingRunResult {
  seededMs: number;
  landed: number;
  /** Enqueue to the job's finish (database clock). */
  wallMs: number;
  overallRate: number;
  sustained: { rate: number; from: number; to: number } | null;
  ceiling: Ceiling & { api: "list" | "search" };
  ratio: number;
  counters: Counters;
  throttled: number;
  claims: number;
  state: string;
  invocations: number;
}

export async function runCeiling(
  sql: postgres.Sql,
  stack: PortalStack,
  records: number,
  log: (line: string) => void,
): Promise<CeilingRunResult> {
  const portal = await startPortal(sql, stack, records, ["contacts"]);
  try {
    log(`sandbox seeded in ${(portal.sb.seededMs / 1000).toFixed(1)} s (pid ${portal.sb.pid})`);
    await sql`delete from crm.job_workers`;
    await resetCounters(portal.url);
    const [{ at }] = await sql`select now() as at`;
    const jobId = await enqueueJob(sql, portal.connectionId, "contacts", "full");
    const t0 = performance.now();
    await wakeWorkers(sql);
    const landed: Sample[] = [];
    let lastLog = t0;
    for (;;) {
      const [r] = await sql`
        select (select count(*)::int from crm.contacts where connection_id = ${portal.connectionId})
                 as n,
               (select state from crm.jobs where id = ${jobId}) as state`;
      const t = performance.now() - t0;
      landed.push({ t, count: r.n });
      if (r.state !== "queued" && r.state !== "running") break;
      if (t > 30 * 60_000) throw new Error(`the backfill did not finish in 30 min (${r.state})`);
      if (performance.now() - lastLog > 10_000) {
        lastLog = performance.now();
        log(`  ${(t / 1000).toFixed(0)} s: ${r.n.toLocaleString("en")} rows`);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    const [job] = await jobRows(sql, [portal.connectionId]);
    const served = await counters(portal.url);
    const [inv] = await sql`select count(*)::int as n from crm.job_workers`;
    const wallMs = (job.finishedAt?.getTime() ?? NaN) - at.getTime();
    const total = landed.at(-1)!.count;
    const sustained = sustainedRate(landed, HUBSPOT_WINDOW_MS);
    const ceiling = hubspotWalkCeiling(served.routes);
    return {
      seededMs: portal.sb.seededMs,
      landed: total,
      wallMs,
      overallRate: total / (wallMs / 1000),
      sustained,
      ceiling,
      ratio: (sustained?.rate ?? NaN) / ceiling.recordsPerSecond,
      counters: served,
      throttled: served.byStatus["429"] ?? 0,
      claims: job.claims,
      state: job.state,
      invocations: inv.n,
    };
  } finally {
    await portal.close();
  }
}
