// The outbound part (issue 12): app writes pushed to the sandbox CRMs as in production — the
// app's UPDATE (role authenticated) queues outbox entries, the outbox trigger enqueues the
// connection's outbound job and wakes a worker through pg_net, the worker pushes through the
// gateway's crm-sync-bidirectional — with the sandboxes' documented rate limits on.
//   bulk:    N synced contacts changed in one statement; write calls (the sandbox's per-route
//            counters) vs ⌈N / max batch⌉, records/s (commit → the CRM's stamp of the last
//            record) vs the documented ceiling, 429s; then the naive baseline (./outbound_naive.ts)
//            on a subset, extrapolated.
//   latency: an open loop of app writes (each its own transaction, a different contact) at a
//            steady rate; per write, the CRM's apply stamp − the transaction's commit.
// Setup: one sandbox process holding one account per provider (./tenants.ts), seeded with the
// contacts the part changes, one connection each, backfilled by a full job first. The
// connections are removed afterwards. Contacts only (Salesforce: Contact rows, not Leads, so
// every chunk is one sObject type — see the report's note on mixed chunks).
import postgres from "postgres";
import type { ProviderName } from "../../supabase/functions/_shared/providers/types.ts";
import { connectionCredentials } from "../../shared/local/connections.ts";
import type { PortalStack } from "./ceiling_run.ts";
import { appWriter, changeAll, waitOutbox } from "./outbound_app.ts";
import {
  extrapolate,
  type LatencyStats,
  latencyStats,
  matchValue,
  minWriteCalls,
  outboundCeiling,
  PIPEDRIVE_BURST,
  recordsPerSecond,
  writeCalls,
} from "./outbound_figures.ts";
import { type NaiveResult, runNaivePush } from "./outbound_naive.ts";
import { storedContacts } from "./outbound_store.ts";
import { enqueueJob, waitDrained, wakeWorkers } from "./queue_ops.ts";
import { type Counters, counters, resetCounters } from "./sandboxes.ts";
import type { Ceiling } from "./ceiling.ts";
import {
  type Account,
  dropConnections,
  type Registered,
  registerTenants,
  startTenantSandboxes,
} from "./tenants.ts";

export interface OutboundOptions {
  providers: ProviderName[];
  /** Changed contacts per provider in the bulk push. */
  records: Record<ProviderName, number>;
  /** Why a provider's bulk count is lower than the others', if it is. */
  fewer: Partial<Record<ProviderName, string>>;
  naive: number;
  latencyProviders: ProviderName[];
  ratePerSecond: number;
  seconds: number;
  /** Salesforce: change Contacts and Leads as the rows come (mixed chunks), not Contacts only. */
  leads: boolean;
}

export interface BulkResult {
  provider: ProviderName;
  records: number;
  fewer?: string;
  /** Commit → the CRM's stamp of the last record (upper bound at second precision). */
  wallMs: number;
  /** First → last stamp (the push alone, after the wake). */
  pushMs: number;
  precisionMs: number;
  rate: number;
  ceiling: Ceiling;
  ratio: number;
  writes: { total: number; byRoute: Record<string, number> };
  minCalls: number;
  callRatio: number;
  allCalls: number;
  throttled: number;
  counters: Counters;
  /** Records the CRM holds with the value the app wrote. */
  applied: number;
  /** Of those, records whose value the CRM reshaped (see matchValue). */
  altered: number;
  /** Rows changed that are Salesforce Leads (the rest are Contacts). */
  leads: number;
  /** Up to three records the CRM does not hold as the app wrote them. */
  mismatches: string[];
  /** Calls on every route (reads included) ÷ ⌈N / max batch⌉. */
  allCallRatio: number;
  dead: number;
  runs: number;
  naive: NaiveResult & { rate: number; projectedMs: number; calls: number; throttled: number };
}

export interface LatencyResult {
  provider: ProviderName;
  writes: number;
  /** Writes the CRM holds reshaped (see matchValue), and samples of any not as written. */
  altered: number;
  mismatches: string[];
  /** Writes per second the open loop achieved (first to last commit). */
  achievedRate: number;
  /** The loop's worst lateness behind its schedule. */
  maxLagMs: number;
  stats: LatencyStats;
  /** The slowest write: its index, when it committed after the load began, its latency. */
  worst: { index: number; atMs: number; latencyMs: number } | null;
  /** Workers woken from the load's start to the drain, by who woke them (crm.job_workers). */
  wakes: Record<string, number>;
  precisionMs: number;
  throttled: number;
  dead: number;
}

export type Outcome<T> = { ok: true; value: T } | { ok: false; reason: string };

export interface OutboundResult {
  seededMs: number;
  backfillMs: number;
  bulk: Partial<Record<ProviderName, Outcome<BulkResult>>>;
  latency: Partial<Record<ProviderName, Outcome<LatencyResult>>>;
}

const WINDOW_MS: Record<ProviderName, number> = {
  hubspot: 10_000,
  salesforce: 0,
  pipedrive: PIPEDRIVE_BURST.windowMs,
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Synced contacts of a connection (kind contact, or any kind with `leads`), in a stable
 * order. */
async function syncedContacts(
  sql: postgres.Sql,
  conn: string,
  n: number,
  order: "asc" | "desc",
  leads = false,
): Promise<{ id: string; remoteId: string; lastName: string | null; kind: string }[]> {
  const rows = await sql`
    select id, remote_id, last_name, kind from crm.contacts
    where connection_id = ${conn} and (kind = 'contact' or ${leads}) and remote_id is not null
      and deleted_at is null
    order by id ${order === "asc" ? sql`asc` : sql`desc`} limit ${n}`;
  if (rows.length < n) throw new Error(`only ${rows.length} of ${n} synced contacts to change`);
  return rows.map((r) => ({
    id: r.id,
    remoteId: r.remote_id,
    lastName: r.last_name,
    kind: r.kind,
  }));
}

async function deadLetters(sql: postgres.Sql, conn: string): Promise<number> {
  const [r] = await sql`select count(*)::int as n from crm.outbox
                        where connection_id = ${conn} and state = 'dead'`;
  return r.n;
}

async function outboundRuns(sql: postgres.Sql, conn: string, since: Date): Promise<number> {
  const [r] = await sql`select count(*)::int as n from crm.sync_log
                        where connection_id = ${conn} and direction = 'outbound'
                          and started_at >= ${since}`;
  return r.n;
}

async function bulk(
  sql: postgres.Sql,
  p: ProviderName,
  account: Account,
  conn: string,
  o: OutboundOptions,
  log: (m: string) => void,
): Promise<BulkResult> {
  const n = o.records[p];
  const rows = await syncedContacts(sql, conn, n, "asc", o.leads && p === "salesforce");
  const prefix = `Bulk${Date.now() % 100_000}`;
  await sleep(WINDOW_MS[p]); // the backfill's requests leave the provider's window
  await resetCounters(account.url);
  const [{ now: since }] = await sql`select now()`;
  const commitMs = await changeAll(sql, conn, rows.map((r) => r.id), prefix);
  const ceiling = outboundCeiling(p);
  let lastLog = performance.now();
  await waitOutbox(sql, conn, {
    timeoutMs: Math.max(180_000, (n / ceiling.recordsPerSecond) * 4000),
    pollMs: 200,
    tick: (s) => {
      if (performance.now() - lastLog > 10_000) {
        lastLog = performance.now();
        log(`  ${p}: ${s.open} entries left, ${s.dead} dead`);
      }
    },
  });
  const served = await counters(account.url);
  const stored = await storedContacts(p, account.url);
  let applied = 0;
  let altered = 0;
  let first = Infinity;
  let last = -Infinity;
  let precisionMs = 1;
  const mismatches: string[] = [];
  for (const r of rows) {
    const s = stored.get(r.remoteId);
    const want = `${prefix} ${r.id.slice(0, 8)}`;
    const m = s && s.appliedMs !== null ? matchValue(want, s.firstName) : "missing";
    if (m !== "exact" && mismatches.length < 3) {
      mismatches.push(`${r.remoteId}: app "${want}", CRM ${JSON.stringify(s?.firstName ?? null)}`);
    }
    if (!s || s.appliedMs === null || m === "missing") continue;
    applied++;
    if (m === "altered") altered++;
    first = Math.min(first, s.appliedMs);
    last = Math.max(last, s.appliedMs);
    precisionMs = Math.max(precisionMs, s.precisionMs);
  }
  const lastHi = last + (precisionMs > 1 ? precisionMs : 0);
  const writes = writeCalls(served);
  const minCalls = minWriteCalls(p, n);
  const rate = recordsPerSecond(applied, commitMs, lastHi);
  const dead = await deadLetters(sql, conn);
  const runs = await outboundRuns(sql, conn, since);
  log(
    `  ${p}: ${applied}/${n} applied, ${writes.total} write calls, ${Math.round(rate)} records/s, ${
      served.byStatus["429"] ?? 0
    } 429s${mismatches.length ? `; not as written, e.g. ${mismatches.join("; ")}` : ""}`,
  );

  // The naive baseline on a subset of the same contacts.
  const subset = rows.slice(0, Math.min(o.naive, n));
  await sleep(WINDOW_MS[p]);
  await resetCounters(account.url);
  const creds = connectionCredentials(p, account.credentials, account.url);
  const naive = await runNaivePush(
    p,
    account.url,
    creds,
    subset,
    `Naive${Date.now() % 100_000}`,
  );
  const naiveServed = await counters(account.url);
  const ex = extrapolate(naive.records - naive.failed, naive.wallMs, n);
  log(
    `  ${p} naive: ${naive.records} PATCHes in ${(naive.wallMs / 1000).toFixed(1)} s (${
      Math.round(ex.rate)
    } records/s), ${naive.failed} failed`,
  );
  return {
    provider: p,
    records: n,
    fewer: o.fewer[p],
    wallMs: lastHi - commitMs,
    pushMs: last - first,
    precisionMs,
    rate,
    ceiling,
    ratio: rate / ceiling.recordsPerSecond,
    writes,
    minCalls,
    callRatio: writes.total / minCalls,
    allCalls: served.total,
    throttled: served.byStatus["429"] ?? 0,
    counters: served,
    applied,
    altered,
    leads: rows.filter((r) => r.kind === "lead").length,
    mismatches,
    allCallRatio: served.total / minCalls,
    dead,
    runs,
    naive: {
      ...naive,
      ...ex,
      calls: writeCalls(naiveServed).total,
      throttled: naiveServed.byStatus["429"] ?? 0,
    },
  };
}

async function latency(
  db: postgres.Sql,
  dbUrl: string,
  p: ProviderName,
  account: Account,
  conn: string,
  o: OutboundOptions,
  log: (m: string) => void,
): Promise<LatencyResult> {
  const n = Math.round(o.ratePerSecond * o.seconds);
  const rows = await syncedContacts(db, conn, n, "desc");
  const tag = `Lat${Date.now() % 100_000}`;
  await sleep(WINDOW_MS[p]);
  await resetCounters(account.url);
  const [{ now: since }] = await db`select now()`;
  // Its own pool, so the polling never delays the load.
  const app = postgres(dbUrl, { max: 4, onnotice: () => {} });
  const commits: number[] = new Array(n);
  let maxLagMs = 0;
  try {
    const writer = await appWriter(app, conn);
    const gap = 1000 / o.ratePerSecond;
    const t0 = performance.now() + 100;
    const pending: Promise<void>[] = [];
    for (let i = 0; i < n; i++) {
      const at = t0 + i * gap;
      const wait = at - performance.now();
      if (wait > 0) await sleep(wait);
      maxLagMs = Math.max(maxLagMs, performance.now() - at);
      pending.push(
        writer.setFirstName(rows[i].id, `${tag} ${i}`).then((ms) => {
          commits[i] = ms;
        }),
      );
    }
    await Promise.all(pending);
  } finally {
    await app.end();
  }
  log(`  ${p}: ${n} app writes done; waiting for the outbox`);
  await waitOutbox(db, conn, { timeoutMs: 180_000, pollMs: 200 });
  const served = await counters(account.url);
  const stored = await storedContacts(p, account.url);
  let precisionMs = 1;
  const mismatches: string[] = [];
  let altered = 0;
  const samples = rows.map((r, i) => {
    const s = stored.get(r.remoteId);
    const m = s && s.appliedMs !== null ? matchValue(`${tag} ${i}`, s.firstName) : "missing";
    const ok = s && m !== "missing";
    if (m === "altered") altered++;
    if (m !== "exact" && mismatches.length < 3) {
      mismatches.push(
        `${r.remoteId}: app ${tag} ${i}, CRM ${JSON.stringify(s?.firstName ?? null)}`,
      );
    }
    if (s) precisionMs = Math.max(precisionMs, s.precisionMs);
    return {
      commitMs: commits[i],
      appliedMs: ok ? s.appliedMs : null,
      precisionMs: s?.precisionMs ?? 1,
    };
  });
  const stats = latencyStats(samples);
  let worst: LatencyResult["worst"] = null;
  const loopStart = Math.min(...commits);
  samples.forEach((x, index) => {
    if (x.appliedMs === null) return;
    const latencyMs = x.appliedMs + (x.precisionMs > 1 ? x.precisionMs : 0) - x.commitMs;
    if (!worst || latencyMs > worst.latencyMs) {
      worst = { index, atMs: x.commitMs - loopStart, latencyMs };
    }
  });
  const wakeRows = await db`select reason, count(*)::int as n from crm.job_workers
                            where woken_at >= ${since} group by reason order by reason`;
  log(
    `  ${p}: p50 ${Math.round(stats.p50.hi)} ms, p99 ${
      Math.round(stats.p99.hi)
    } ms (upper bounds), ${stats.missing} missing${
      mismatches.length ? `, e.g. ${mismatches.join("; ")}` : ""
    }`,
  );
  return {
    provider: p,
    writes: n,
    altered,
    mismatches,
    achievedRate: (n - 1) / ((Math.max(...commits) - Math.min(...commits)) / 1000),
    maxLagMs,
    stats,
    precisionMs,
    throttled: served.byStatus["429"] ?? 0,
    dead: await deadLetters(db, conn),
    worst,
    wakes: Object.fromEntries(wakeRows.map((r) => [r.reason, r.n])),
  };
}

async function attempt<T>(
  what: string,
  log: (m: string) => void,
  fn: () => Promise<T>,
): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await fn() };
  } catch (e) {
    log(`${what} failed: ${(e as Error).stack ?? e}`);
    return { ok: false, reason: String((e as Error).message ?? e).split("\n")[0] };
  }
}

export async function runOutboundPart(
  sql: postgres.Sql,
  stack: PortalStack & { dbUrl: string },
  o: OutboundOptions,
  log: (m: string) => void,
): Promise<OutboundResult> {
  const wanted = [...new Set([...o.providers, ...o.latencyProviders])];
  const latencyN = Math.round(o.ratePerSecond * o.seconds);
  const specs = Object.fromEntries(wanted.map((p) => {
    const need = Math.max(o.providers.includes(p) ? o.records[p] : 0, latencyN);
    // ~1 % of the seeded records are deleted or in the recycle bin: 5 % more than needed.
    // Salesforce's contacts object is Contacts and Leads: `records` of each.
    return [p, { accounts: 1, records: Math.ceil(need * 1.05), tenantRecords: 1 }];
  }));
  const sb = await startTenantSandboxes(specs);
  let registered: Registered[] = [];
  try {
    log(`sandboxes seeded in ${(sb.seededMs / 1000).toFixed(1)} s (pid ${sb.pid})`);
    const accounts = wanted.map((p) => sb.first[p]!);
    registered = await registerTenants(
      sql,
      stack.encryptionKey,
      accounts,
      Object.fromEntries(wanted.map((p) => [p, ["contacts"]])),
    );
    const ids = registered.map((r) => r.id);
    const t0 = performance.now();
    for (const r of registered) await enqueueJob(sql, r.id, "contacts", "full");
    await wakeWorkers(sql);
    const drained = await waitDrained(sql, ids, { timeoutMs: 20 * 60_000, pollMs: 500 });
    const backfillMs = performance.now() - t0;
    log(`backfilled in ${(backfillMs / 1000).toFixed(1)} s (${JSON.stringify(drained)})`);
    const out: OutboundResult = { seededMs: sb.seededMs, backfillMs, bulk: {}, latency: {} };
    const connOf = (p: ProviderName) => registered.find((r) => r.provider === p)!.id;
    const accountOf = (p: ProviderName) => accounts.find((a) => a.provider === p)!;
    for (const p of o.providers) {
      log(`${p}: ${o.records[p]} contacts changed in one statement`);
      out.bulk[p] = await attempt(
        `${p} bulk`,
        log,
        () => bulk(sql, p, accountOf(p), connOf(p), o, log),
      );
    }
    for (const p of o.latencyProviders) {
      log(`${p}: ${latencyN} app writes at ${o.ratePerSecond}/s`);
      out.latency[p] = await attempt(
        `${p} latency`,
        log,
        () => latency(sql, stack.dbUrl, p, accountOf(p), connOf(p), o, log),
      );
    }
    return out;
  } finally {
    await dropConnections(sql, registered.map((r) => r.id)).catch(() => {});
    await sb.close();
  }
}
