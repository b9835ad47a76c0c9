// End-to-end harness: the test stack's Postgres, pg_net worker and functions gateway, with
// CRM sandboxes started in this process (own seed, size and faults per test) and one fresh
// connection per test pointing at its sandbox. Syncs go through trigger_crm_sync -> crm.jobs ->
// pg_net -> gateway -> crm-sync-bidirectional workers, as an admin's call would.
import assert from "node:assert/strict";
import postgres from "postgres";
import { startHubSpot } from "../../shared/emulators/hubspot/mod.ts";
import { startPipedrive } from "../../shared/emulators/pipedrive/mod.ts";
import { startSalesforce } from "../../shared/emulators/salesforce/mod.ts";
import { connectionCredentials } from "../../shared/local/connections.ts";
import { encryptJson, importKey } from "../../supabase/functions/_shared/crypto.ts";
import type { ProviderName } from "../../supabase/functions/_shared/providers/types.ts";
import { need } from "../_support/env.ts";

export type Sql = ReturnType<typeof postgres>;

export interface Sandbox {
  provider: ProviderName;
  url: string;
  credentials: Record<string, string>;
  close(): Promise<void>;
}

export interface SandboxOptions {
  seed?: number;
  records?: number;
  /** Lift the sandbox's rate limits (tests that are about something else run faster). */
  unlimited?: boolean;
  /** HubSpot's 10-second window, shortened with the same shape (tests of the rate budget). */
  hubspotWindow?: { tenSecondly: number; intervalMs: number };
}

export async function startSandbox(
  provider: ProviderName,
  o: SandboxOptions = {},
): Promise<Sandbox> {
  const base = { port: 0, seed: o.seed ?? 1, records: o.records ?? 25, log: () => {} };
  const sb = provider === "hubspot"
    ? await startHubSpot({
      ...base,
      rateLimit: o.unlimited ? { tenSecondly: 100_000, searchPerSecond: 10_000 } : o.hubspotWindow,
    })
    : provider === "salesforce"
    ? await startSalesforce(base)
    : await startPipedrive({
      ...base,
      rateLimit: o.unlimited ? { burst: 100_000 } : undefined,
    });
  return { provider, url: sb.url, credentials: sb.credentials, close: () => sb.close() };
}

export function db(): Sql {
  return postgres(need("SUPABASE_DB_URL"), { max: 2, onnotice: () => {} });
}

let quiet: Promise<unknown> | null = null;

/**
 * The scheduled syncs would enqueue jobs for the tests' connections (every active connection is
 * synced) and race the tests for their streams, so the e2e tests pause the cron jobs that
 * enqueue on this stack (the one that only wakes workers for due jobs stays); tests drive the
 * same commands themselves (see cron.test.ts).
 */
function pauseScheduledSyncs(sql: Sql): Promise<unknown> {
  quiet ??= sql`select cron.alter_job(jobid, active := false) from cron.job
                where active and (command like '%crm-sync-bidirectional%'
                                  or command like '%crm.enqueue_inbound%'
                                  or command like '%crm.enqueue_inbox%')`;
  return quiet;
}

/** A fresh connection of a fresh account pointing at the sandbox. */
export async function connect(
  sql: Sql,
  sb: Sandbox,
  settings: Record<string, unknown> = {},
): Promise<string> {
  await pauseScheduledSyncs(sql);
  const key = await importKey(need("CRM_ENCRYPTION_KEY"));
  const id = crypto.randomUUID();
  const creds = connectionCredentials(sb.provider, { ...sb.credentials }, sb.url);
  const stored = await encryptJson(key, creds, id);
  const allSettings = { base_url: sb.url, default_phone_region: "US", ...settings };
  await sql`
    insert into crm.connections (id, account_id, provider, remote_account_id, name, settings, credentials)
    values (${id}, ${crypto.randomUUID()}, ${sb.provider}, ${`e2e-${id}`}, ${`e2e ${sb.provider}`},
            ${sql.json(allSettings as never)}, convert_to(${stored}, 'UTF8'))`;
  return id;
}

export interface SyncAnswer {
  ok: boolean;
  more: boolean;
  runs: Array<Record<string, unknown> & { object: string; status: string; run_id: number | null }>;
  [k: string]: unknown;
}

/**
 * select trigger_crm_sync(kind, connection): it enqueues the streams' jobs and wakes workers
 * through pg_net; this waits until none of the connection's jobs is running or due (finished,
 * dead, or waiting for a later retry) and answers with the runs they made, from crm.sync_log,
 * in the shape of the function's direct answer.
 */
export async function triggerSync(
  sql: Sql,
  kind: string,
  connectionId: string,
): Promise<SyncAnswer> {
  const [{ t0 }] = await sql`select clock_timestamp() as t0`;
  const [{ n }] = await sql`select public.trigger_crm_sync(${kind}, ${connectionId}::uuid) as n`;
  assert.ok(Number(n) > 0, `trigger_crm_sync(${kind}) enqueued no job`);
  return await awaitJobs(sql, connectionId, t0);
}

/** Waits until the connection's jobs are settled, then reports the runs since `since`. */
export async function awaitJobs(
  sql: Sql,
  connectionId: string,
  since: Date,
  timeoutMs = 140_000,
): Promise<SyncAnswer> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const [busy] = await sql`
      select count(*) filter (where state = 'running' or (state = 'queued' and run_after <= now()))
               as busy,
             count(*) filter (where state = 'dead') as dead
      from crm.jobs where connection_id = ${connectionId}`;
    if (Number(busy.busy) === 0) break;
    if (Date.now() > until) throw new Error(`jobs of ${connectionId} did not settle`);
    await new Promise((res) => setTimeout(res, 100));
  }
  const runs = await sql`
    select id as run_id, connection_id, object, status, processed, created, updated, unchanged,
           deleted, failed, api_calls, coalesce((details ->> 'more')::boolean, false) as more,
           error ->> 'message' as error, coalesce((error ->> 'revoked')::boolean, false) as revoked
    from crm.sync_log
    where connection_id = ${connectionId} and direction = 'inbound' and started_at >= ${since}
    order by id`;
  const [jobs] = await sql`
    select count(*) filter (where state = 'dead') as dead,
           count(*) filter (where state = 'queued') as waiting
    from crm.jobs where connection_id = ${connectionId}`;
  return {
    ok: Number(jobs.dead) === 0 && runs.every((r) => r.status !== "failed"),
    more: Number(jobs.waiting) > 0,
    runs: runs.map((r) => ({ ...r, run_id: Number(r.run_id) })) as SyncAnswer["runs"],
  };
}

export async function awaitResponse(
  sql: Sql,
  requestId: number,
  timeoutMs = 140_000,
): Promise<SyncAnswer> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const rows =
      await sql`select status_code, content, error_msg from net._http_response where id = ${requestId}`;
    if (rows.length) {
      const r = rows[0];
      assert.equal(
        r.status_code,
        200,
        `function answered ${r.status_code}: ${r.content ?? r.error_msg}`,
      );
      return JSON.parse(r.content);
    }
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`no answer for pg_net request ${requestId}`);
}

/** Calls a function directly through the gateway (service role unless a token is given). */
export async function callFunction(
  name: string,
  body: unknown,
  token = need("SUPABASE_SERVICE_ROLE_KEY"),
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${need("SUPABASE_URL")}/functions/v1/${name}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text);
  } catch {
    json = { raw: text };
  }
  return { status: res.status, json };
}

/** Runs inbound syncs of one connection until no stream reports more work and none failed
 * (a failed run answers more: false; like the next cron tick, the loop calls again). */
export async function syncUntilDone(
  connectionId: string,
  body: Record<string, unknown>,
  maxCalls = 20,
): Promise<SyncAnswer[]> {
  const answers: SyncAnswer[] = [];
  for (let i = 0; i < maxCalls; i++) {
    const r = await callFunction("crm-sync-bidirectional", {
      direction: "inbound",
      connection_id: connectionId,
      ...body,
    });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    answers.push(r.json as unknown as SyncAnswer);
    const runs = (r.json as unknown as SyncAnswer).runs ?? [];
    const failed = runs.some((run) => run.status === "failed" && !run.revoked);
    if (!r.json.more && !failed) return answers;
  }
  throw new Error("sync did not finish");
}

export async function admin(url: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${url}/__admin${path}`, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

export async function cleanup(sql: Sql, connectionId: string) {
  await sql`delete from crm.connections where id = ${connectionId}`;
}

export interface ConnectionScope {
  sb: Sandbox;
  sql: Sql;
  conn: string;
}

/** A sandbox, a database handle and a fresh connection for one test; all torn down after. */
export async function withConnection(
  provider: ProviderName,
  o: SandboxOptions & { settings?: Record<string, unknown> },
  fn: (scope: ConnectionScope) => Promise<void>,
): Promise<void> {
  const sb = await startSandbox(provider, o);
  const sql = db();
  const conn = await connect(sql, sb, o.settings);
  try {
    await fn({ sb, sql, conn });
  } finally {
    await cleanup(sql, conn);
    await sql.end();
    await sb.close();
  }
}

export interface GatewayProcess {
  pid: number;
  state: string;
  requests: number;
  cpuMsMax: number;
  peakRssMb: number;
  exit?: string | null;
}

/** The local gateway's per-function process stats (GET /_gateway/stats, loopback only). */
export async function gatewayStats(): Promise<
  Record<string, { processes: GatewayProcess[]; kills: Record<string, number>; cpuMsMax: number }>
> {
  const res = await fetch(`${need("SUPABASE_URL")}/_gateway/stats`);
  assert.equal(res.status, 200);
  return (await res.json()).functions;
}

/** The processes of function `slug` serving a request right now. */
export async function busyFunctionPids(slug: string): Promise<number[]> {
  const fns = await gatewayStats();
  return (fns[slug]?.processes ?? []).filter((p) => p.state === "busy").map((p) => p.pid);
}

/** Runs `fn` with crm.engine_settings changed, and puts them back. */
export async function withSettings(
  sql: Sql,
  s: { max_workers?: number; worker_cpu_budget_ms?: number; job_lease?: string },
  fn: () => Promise<void>,
) {
  const [before] = await sql`select max_workers, worker_cpu_budget_ms, job_lease::text
                             from crm.engine_settings`;
  await sql`update crm.engine_settings
            set max_workers = coalesce(${s.max_workers ?? null}::int, max_workers),
                worker_cpu_budget_ms = coalesce(${s.worker_cpu_budget_ms ?? null}::int,
                                                worker_cpu_budget_ms),
                job_lease = coalesce(${s.job_lease ?? null}::interval, job_lease)`;
  try {
    // A test that caps the workers counts on them: a worker woken before (an earlier test's, a
    // cron tick's) would hold a slot or claim the test's jobs, so wait until none is live.
    if (s.max_workers !== undefined) {
      await until(
        "no worker is live",
        async () => (await sql`select live from crm._worker_counts()`)[0].live === 0,
        90_000,
      );
    }
    await fn();
  } finally {
    await sql`update crm.engine_settings
              set max_workers = ${before.max_workers}, worker_cpu_budget_ms =
                  ${before.worker_cpu_budget_ms}, job_lease = ${before.job_lease}::interval`;
  }
}

export async function until(what: string, check: () => Promise<boolean>, ms = 60_000) {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
