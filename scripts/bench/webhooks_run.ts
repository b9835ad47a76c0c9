// The webhooks part (issue 13): crm-webhook through the bench stack's gateway.
//   ack:  signed HubSpot batches of 100 events (./webhook_load.ts), one sender as a baseline,
//         then N concurrent senders, each posting its next batch when its previous one is
//         answered; latency from the request sent to the answer read. The connection is paused,
//         so its events wait stored: the figure is the receiver's (verify, store all events in
//         one statement, 2xx, background enqueue), not the processing's, which the next
//         measurement covers. CPU per request of each part of the stack is read from /proc.
//   rows: a HubSpot sandbox (in this process) with its webhooks pointed at the gateway, a
//         connection to it backfilled by a full job; then changes made in the sandbox at a
//         steady rate, each to a different contact; per change, the time from the sandbox's
//         answer to the PATCH (the CRM has the change and queues its webhook) until the row in
//         crm.contacts shows it (delivery → verify → store → inbox job → worker → re-read →
//         apply).
import type postgres from "postgres";
import { connectionCredentials, storeCredentials } from "../../shared/local/connections.ts";
import { admin } from "../../shared/emulators/common/testing.ts";
import { startHubSpot } from "../../shared/emulators/hubspot/mod.ts";
import { importKey } from "../../supabase/functions/_shared/crypto.ts";
import type { PortalStack } from "./ceiling_run.ts";
import { RAISED_LIMITS } from "./connection.ts";
import {
  cpuDelta,
  enqueueJob,
  gatewayStats,
  stackCpu,
  waitDrained,
  wakeWorkers,
} from "./queue_ops.ts";
import { runLoad } from "./webhook_load.ts";
import {
  type AckRun,
  cpuPerRequest,
  type RowRun,
  summarize,
  type WebhookBenchResult,
} from "./webhook_figures.ts";

export interface WebhookBenchOptions {
  senders: number;
  /** Requests per sender in the concurrent run. */
  requests: number;
  /** Requests of the one-sender baseline. */
  baselineRequests: number;
  events: number;
  /** Sandbox changes timed until their row shows them (0: skip). */
  changes: number;
  ratePerSecond: number;
}

const hex = (n: number) =>
  Array.from(crypto.getRandomValues(new Uint8Array(n)), (b) => b.toString(16).padStart(2, "0"))
    .join("");

async function ackRun(
  stack: PortalStack,
  target: { url: string; secret: string; portal: string },
  senders: number,
  requests: number,
  events: number,
  firstObjectId: number,
): Promise<AckRun> {
  await gatewayStats(stack.url, true);
  const before = stackCpu(stack.cfg, Deno.pid);
  const r = await runLoad({ ...target, senders, requests, events, firstObjectId });
  // The background enqueues end shortly after the last answer: included in the CPU.
  await new Promise((ok) => setTimeout(ok, 300));
  const delta = cpuDelta(before, stackCpu(stack.cfg, Deno.pid));
  const fn = (await gatewayStats(stack.url))["crm-webhook"];
  const { sandboxes: client, "pg_net worker": _net, ...rest } = delta;
  return {
    senders,
    requests,
    events,
    latency: summarize(r.latenciesMs),
    statuses: r.statuses,
    wallMs: r.wallMs,
    cpuMsPerRequest: cpuPerRequest({ ...rest, "bench client": client }, senders * requests),
    processes: fn?.processes.length ?? 0,
  };
}

export async function runWebhooks(
  sql: postgres.Sql,
  stack: PortalStack,
  o: WebhookBenchOptions,
  log: (m: string) => void,
): Promise<WebhookBenchResult> {
  const key = await importKey(stack.encryptionKey);
  const url = `${stack.url}/functions/v1/crm-webhook/hubspot`;

  // --- ack ---------------------------------------------------------------------------------
  const ackConn = crypto.randomUUID();
  const portal = String(500_000_000 + Math.floor(Math.random() * 99_000_000));
  const secret = hex(24);
  await sql`insert into crm.connections (id, account_id, provider, remote_account_id, name, status)
            values (${ackConn}, ${crypto.randomUUID()}, 'hubspot', ${portal}, 'bench webhooks ack',
                    'paused')`;
  await storeCredentials(sql, key, ackConn, { webhook_secret: secret });
  const target = { url, secret, portal };
  let baseline: AckRun;
  let concurrent: AckRun;
  try {
    log(`warm-up: ${o.senders} senders × 5 requests`);
    await runLoad({ ...target, senders: o.senders, requests: 5, events: o.events });
    log(`baseline: 1 sender × ${o.baselineRequests} requests of ${o.events} events`);
    baseline = await ackRun(stack, target, 1, o.baselineRequests, o.events, 10_000_000);
    log(`concurrent: ${o.senders} senders × ${o.requests} requests of ${o.events} events`);
    concurrent = await ackRun(stack, target, o.senders, o.requests, o.events, 50_000_000);
  } finally {
    await sql`delete from crm.webhook_events where connection_id = ${ackConn}`;
    await sql`delete from crm.connections where id = ${ackConn}`;
  }
  if (o.changes <= 0) {
    return { baseline, concurrent, rows: null, rowsSkipped: "--webhook-changes 0" };
  }
  try {
    return { baseline, concurrent, rows: await rowRun(sql, stack, o, url, log) };
  } catch (e) {
    log(`webhook → row failed: ${(e as Error).stack ?? e}`);
    return { baseline, concurrent, rows: null, rowsSkipped: (e as Error).message.split("\n")[0] };
  }
}

async function rowRun(
  sql: postgres.Sql,
  stack: PortalStack,
  o: WebhookBenchOptions,
  url: string,
  log: (m: string) => void,
): Promise<RowRun> {
  const hs = await startHubSpot({
    seed: 1313,
    records: o.changes + 10,
    rateLimit: { tenSecondly: 100_000, daily: 10_000_000, searchPerSecond: 1_000 },
    webhooks: {
      targetUrl: url,
      // Only what the part changes: one subscription, so no other event competes.
      subscriptions: [{ subscriptionType: "contact.propertyChange", propertyName: "firstname" }],
    },
  });
  const id = crypto.randomUUID();
  let poller: Promise<void> = Promise.resolve();
  let stop = () => {};
  try {
    const creds = hs.credentials as Record<string, string>;
    await sql`
      insert into crm.connections (id, account_id, provider, remote_account_id, name, settings)
      values (${id}, ${crypto.randomUUID()}, 'hubspot', ${creds.HUBSPOT_PORTAL_ID},
              'bench webhooks rows',
              ${
      sql.json({
        base_url: hs.url,
        default_phone_region: "US",
        objects: ["contacts"],
        rate_limits: RAISED_LIMITS,
      })
    })`;
    await storeCredentials(sql, await importKey(stack.encryptionKey), id, {
      ...connectionCredentials("hubspot", creds, hs.url),
      // The sandbox signs with its app's client secret, as HubSpot does.
      webhook_secret: creds.HUBSPOT_CLIENT_SECRET,
    });
    log("backfilling the sandbox's contacts (full job)");
    await enqueueJob(sql, id, "contacts", "full");
    await wakeWorkers(sql);
    await waitDrained(sql, [id], { timeoutMs: 120_000, pollMs: 200 });
    const ids = (await sql`select remote_id from crm.contacts
                           where connection_id = ${id} and kind = 'contact'
                             and deleted_at is null
                           order by remote_id limit ${o.changes}`).map((r) => String(r.remote_id));
    if (ids.length < o.changes) throw new Error(`only ${ids.length} contacts backfilled`);

    log(`${o.changes} changes at ${o.ratePerSecond}/s, each timed until its row shows it`);
    const pending = new Map<string, { name: string; at: number }>();
    const latencies: number[] = [];
    let polling = true;
    stop = () => {
      polling = false;
      pending.clear();
    };
    poller = (async () => {
      while (polling || pending.size) {
        if (pending.size) {
          const rows = await sql`select remote_id, first_name from crm.contacts
                                 where connection_id = ${id}
                                   and remote_id = any(${[...pending.keys()]}::text[])`;
          const now = Date.now();
          for (const r of rows) {
            const p = pending.get(String(r.remote_id));
            if (p && r.first_name === p.name) {
              latencies.push(now - p.at);
              pending.delete(String(r.remote_id));
            }
          }
        }
        await new Promise((ok) => setTimeout(ok, 20));
      }
    })();
    const gap = 1000 / o.ratePerSecond;
    const t0 = Date.now();
    for (let i = 0; i < ids.length; i++) {
      const wait = t0 + i * gap - Date.now();
      if (wait > 0) await new Promise((ok) => setTimeout(ok, wait));
      const name = `Hook ${i} ${hex(3)}`;
      await admin(hs.url, `/records/contacts/${ids[i]}`, {
        method: "PATCH",
        json: { firstname: name },
      });
      pending.set(ids[i], { name, at: Date.now() });
    }
    const waitMs = 30_000;
    const deadline = Date.now() + waitMs;
    while (pending.size && Date.now() < deadline) await new Promise((ok) => setTimeout(ok, 50));
    const missing = pending.size;
    return {
      changes: ids.length,
      ratePerSecond: o.ratePerSecond,
      latency: summarize(latencies),
      missing,
      waitMs,
    };
  } finally {
    stop();
    await poller.catch(() => {});
    if (!Deno.env.get("BENCH_KEEP_WEBHOOK_ROWS")) {
      await sql`delete from crm.connections where id = ${id}`.catch(() => {});
    }
    const deliveries = await admin(hs.url, "/webhooks/deliveries?limit=1000").catch(() => null);
    if (Deno.env.get("BENCH_KEEP_WEBHOOK_ROWS")) {
      await Deno.writeTextFile("/tmp/ack_deliveries.json", JSON.stringify(deliveries));
    }
    await hs.close();
  }
}
