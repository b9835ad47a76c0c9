// Runs one chaos op list against the test stack: a fresh sandbox whose webhooks reach
// crm-webhook through the gateway, a fresh connection with the given policy, the ops one at a
// time while workers, the inbox and outbound wakes run, seeded faults between barriers; at each
// barrier (`settle`) it quiesces the engine, checks both sides against each other and against
// the model, and continues from what it observed.
import postgres from "postgres";
import { Prng } from "../../shared/emulators/common/prng.ts";
import { startHubSpot } from "../../shared/emulators/hubspot/mod.ts";
import { startPipedrive } from "../../shared/emulators/pipedrive/mod.ts";
import { startSalesforce } from "../../shared/emulators/salesforce/mod.ts";
import { connectionCredentials } from "../../shared/local/connections.ts";
import { encryptJson, importKey } from "../../supabase/functions/_shared/crypto.ts";
import type { ProviderName } from "../../supabase/functions/_shared/providers/types.ts";
import { sha256Hex } from "../../supabase/functions/_shared/webhooks/limits.ts";
import { type Effect, expect, type Policy } from "./model.ts";
import { type Field, handlesOf, type Op, type Values } from "./ops.ts";
import { ASSOC, COMPANIES, compared } from "./ops.ts";
import { COMPANY_PROP, companyOf, makeCompanies, setCompany } from "./assoc.ts";
import { dropInFlight } from "./pg_drop.ts";
import { traceFile, traceOp, traceSandbox } from "./trace.ts";
import { need } from "../../tests/_support/env.ts";

type Sql = ReturnType<typeof postgres>;

export interface Faults {
  error5xxRate: number;
  rate429: number;
  hangRate: number;
  webhookDropRate: number;
  webhookDuplicateRate: number;
  webhookReorderRate: number;
  /** Added latency per request (ms) and which routes faults apply to (the emulator's
   * `routeFilter`): a hand-written list slows a route to open a window deterministically. */
  latencyMs?: number;
  routeFilter?: string;
}

export const ISSUE_FAULTS: Faults = {
  error5xxRate: 0.1,
  rate429: 0.05,
  hangRate: 0.02,
  webhookDropRate: 0.1,
  webhookDuplicateRate: 0.1,
  webhookReorderRate: 0.1,
};

export interface RunOptions {
  provider: ProviderName;
  policy: Policy;
  seed: number;
  faults: Faults;
  /** See model.ts `expect`. */
  pushWindow?: "strict" | "known";
  /** Restarts the stack's functions gateway (shared/local/stack.ts restartGateway); without
   * it a `restart_gateway` op is skipped (noted in the stats). */
  restartGateway?: (hard: boolean) => Promise<void>;
  /** Run every op even after a barrier found problems (the bench's long runs: the next
   * barrier starts from what was observed). By default the run stops at that barrier. */
  keepGoing?: boolean;
  log?: (line: string) => void;
}

export interface Problem {
  barrier: number;
  handle: number | null;
  what: string;
}

export interface RunResult {
  ok: boolean;
  problems: Problem[];
  /** Per problem record: the ops that touched it, with what they did. */
  traces: Record<number, string[]>;
  stats: {
    ops: number;
    barriers: number;
    records: number;
    conflicts: number;
    /** Records with a CRM edit made while an app edit of the field waited to be pushed. */
    raced: number;
    /** Of `raced`: records where the CRM edit met an entry already claimed (model.ts). */
    inFlight: number;
    apiCalls: number;
    ms: number;
    opsMs: number;
    quiesceMs: number[];
    /** Statements cut by `drop_pg` (their heads), and drops that found none running. */
    pgDropped: string[];
    pgMissed: number;
    gatewayRestarts: number;
    /** Dead letters of records the CRM refuses (expected, with reasons). */
    refusedDead: number;
  };
}

const OBJ: Record<ProviderName, string> = {
  hubspot: "contacts",
  salesforce: "Contact",
  pipedrive: "person",
};

const PROP: Record<ProviderName, Record<Field, string>> = {
  hubspot: {
    first_name: "firstname",
    last_name: "lastname",
    job_title: "jobtitle",
    company_remote_id: COMPANY_PROP.hubspot,
  },
  salesforce: {
    first_name: "FirstName",
    last_name: "LastName",
    job_title: "Title",
    company_remote_id: COMPANY_PROP.salesforce,
  },
  pipedrive: {
    first_name: "first_name",
    last_name: "last_name",
    job_title: "job_title",
    company_remote_id: COMPANY_PROP.pipedrive,
  },
};

// The sandboxes' admin JSON differs per provider; flat() reads it field by field.
// deno-lint-ignore no-explicit-any
type Any = any;

interface CrmRecord {
  id: string;
  live: boolean;
  at: number;
  v: Record<Field, string | null>;
  email: string | null;
}

function parseTime(s: unknown): number {
  if (typeof s !== "string") return NaN;
  // Salesforce "…+0000", Pipedrive "YYYY-MM-DD HH:MM:SS" (UTC).
  let t = s.replace(/\+0000$/, "Z");
  if (/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/.test(t)) t = t.replace(" ", "T") + "Z";
  return Date.parse(t);
}

class Crm {
  constructor(readonly provider: ProviderName, readonly url: string) {}

  async call(
    method: string,
    path: string,
    body?: unknown,
    timeoutMs = 30_000,
  ): Promise<{ status: number; json: Any }> {
    const res = await fetch(`${this.url}/__admin${path}`, {
      method,
      headers: { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let json: unknown = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = text;
    }
    return { status: res.status, json };
  }

  flat(r: Any): CrmRecord {
    const p = this.provider;
    const props = p === "hubspot" ? r.properties : r;
    const v = {} as Record<Field, string | null>;
    for (const f of ["first_name", "last_name", "job_title"] as Field[]) {
      const x = props[PROP[p][f]];
      v[f] = x === undefined || x === null || x === "" ? null : String(x);
    }
    v[ASSOC] = companyOf(props[PROP[p][ASSOC]]);
    const live = p === "hubspot"
      ? !r.archived && !r.mergedInto
      : p === "salesforce"
      ? !r.IsDeleted
      : !r.is_deleted && !r.merged_to_id;
    const at = parseTime(
      p === "hubspot" ? r.updatedAt : p === "salesforce" ? r.SystemModstamp : r.update_time,
    );
    const email = p === "hubspot"
      ? props.email ?? null
      : p === "salesforce"
      ? r.Email ?? null
      : (r.emails?.find((e: Any) => e.primary)?.value ?? null);
    return { id: String(r.id ?? r.Id), live, at, v, email: email?.toLowerCase() ?? null };
  }

  /**
   * Whether the sandbox dropped (a webhook fault) the Pipedrive delete event of merge loser
   * `id`: it is the only report of a merge Pipedrive gives (meta.merged_to_id), so without it the
   * engine sees the loser's end as a plain deletion (drift check). The sandbox decides a drop when
   * it queues the event, i.e. during the merge call.
   */
  async mergeEventDropped(id: string): Promise<boolean> {
    const r = await this.call("GET", "/webhooks/deliveries?limit=10000");
    if (r.status !== 200) throw new Error(`webhook deliveries: ${r.status}`);
    return (r.json.deliveries as Array<{ label: string; dropped?: boolean }>).some((d) =>
      d.dropped && d.label.startsWith(`pipedrive delete.person ${id} `)
    );
  }

  async all(): Promise<CrmRecord[]> {
    const r = await this.call("GET", `/records/${OBJ[this.provider]}`);
    if (r.status !== 200) throw new Error(`list: ${r.status}`);
    return (r.json as unknown[]).map((x) => this.flat(x));
  }

  async get(id: string): Promise<CrmRecord | null> {
    const r = await this.call("GET", `/records/${OBJ[this.provider]}/${id}`);
    return r.status === 200 ? this.flat(r.json) : null;
  }

  body(v: Values, email?: string): Record<string, unknown> {
    const p = this.provider;
    const props: Record<string, unknown> = {};
    for (const [f, x] of Object.entries(v)) props[PROP[p][f as Field]] = x;
    if (p === "hubspot") {
      if (email) props.email = email;
      return { properties: props };
    }
    if (p === "salesforce") {
      if (email) props.Email = email;
      return props;
    }
    if (email) {
      props.name = `${v.first_name ?? ""} ${v.last_name ?? ""}`.trim();
      props.emails = [{ value: email, primary: true, label: "work" }];
    }
    return props;
  }
}

interface Handle {
  local?: string;
  remote?: string;
  email: string;
}

/** Added to a run's seed for its sandbox (see runOps). */
const SANDBOX_SEED_BASE = 10_000;

const ACCOUNT: Record<ProviderName, string> = {
  hubspot: "HUBSPOT_PORTAL_ID",
  salesforce: "SALESFORCE_ORG_ID",
  pipedrive: "PIPEDRIVE_COMPANY_ID",
};

/** The sandbox's clock: real time, or one instant while `frozen` is set (a bulk edit). */
interface SandboxClock {
  frozen: number | null;
}

async function startSandbox(provider: ProviderName, seed: number, clock: SandboxClock) {
  const now = () => clock.frozen ?? Date.now();
  const base = { port: 0, seed, records: 0, timeScale: 0.001, log: () => {}, now };
  const sb = provider === "hubspot"
    ? await startHubSpot({ ...base, rateLimit: { tenSecondly: 100_000, searchPerSecond: 10_000 } })
    : provider === "salesforce"
    ? await startSalesforce(base)
    : await startPipedrive({ ...base, rateLimit: { burst: 100_000 } });
  const trace = traceFile();
  if (trace) traceSandbox(sb.emulator, trace);
  return sb;
}

function secret(bytes = 24): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(bytes)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

/** A connection that syncs from the sandbox and receives its webhooks through the gateway. */
async function hookedConnection(
  sql: Sql,
  provider: ProviderName,
  url: string,
  creds: Record<string, string>,
  policy: Policy,
): Promise<string> {
  const account = creds[ACCOUNT[provider]];
  await sql`delete from crm.connections
            where provider = ${provider} and remote_account_id = ${account}`;
  const token = secret();
  const user = `crm-${secret(8)}`;
  const password = secret();
  const hook: Record<string, string> = provider === "hubspot"
    ? { webhook_secret: creds.HUBSPOT_CLIENT_SECRET }
    : provider === "salesforce"
    ? { webhook_token: token }
    : { webhook_user: user, webhook_password: password };
  const credentials = { ...connectionCredentials(provider, { ...creds }, url), ...hook };
  const key = await importKey(need("CRM_ENCRYPTION_KEY"));
  const id = crypto.randomUUID();
  const stored = await encryptJson(key, credentials, id);
  const settings = { base_url: url, default_phone_region: "US", conflict_policy: policy };
  await sql`
    insert into crm.connections (id, account_id, provider, remote_account_id, name, settings,
                                 credentials, webhook_token_hash, webhook_user_hash)
    values (${id}, ${crypto.randomUUID()}, ${provider}, ${account}, ${`chaos ${provider}`},
            ${sql.json(settings as never)}, convert_to(${stored}, 'UTF8'),
            ${hook.webhook_token ? await sha256Hex(hook.webhook_token) : null},
            ${hook.webhook_user ? await sha256Hex(hook.webhook_user) : null})`;
  const hookUrl = (r: string) => `${need("SUPABASE_URL")}/functions/v1/crm-webhook${r}`;
  const crm = new Crm(provider, url);
  const put = provider === "hubspot"
    ? await crm.call("PUT", "/webhooks", { targetUrl: hookUrl("/hubspot") })
    : provider === "salesforce"
    ? await crm.call("PUT", "/outbound", {
      url: hookUrl(`/salesforce/${token}`),
      objects: ["Contact"],
    })
    : await crm.call("PUT", "/webhooks", {
      url: hookUrl("/pipedrive"),
      httpAuthUser: user,
      httpAuthPassword: password,
    });
  if (put.status >= 300) throw new Error(`webhook set-up: ${put.status}`);
  return id;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Pauses the cron jobs that enqueue syncs (as the e2e harness does): the harness's own `pull`
 * ops and barriers are the ticks, so a run does not depend on when the minute turns. The inbox
 * drain and the outbound wakes stay. */
async function pauseScheduledSyncs(sql: Sql) {
  await sql`select cron.alter_job(jobid, active := false) from cron.job
            where active and (command like '%crm-sync-bidirectional%'
                              or command like '%crm.enqueue_inbound%')`;
}

export async function runOps(ops: Op[], o: RunOptions): Promise<RunResult> {
  const t0 = Date.now();
  const log = o.log ?? (() => {});
  const p = o.provider;
  const fields = compared(p);
  // The sandbox's own seed is kept apart from the run's: its account ids (portal, org, company)
  // come from it, and seed 1 is the test stack's own sandboxes, whose connections a run must
  // never replace.
  const clock: SandboxClock = { frozen: null };
  const sb = await startSandbox(p, SANDBOX_SEED_BASE + o.seed, clock);
  const crm = new Crm(p, sb.url);
  const sql = postgres(need("SUPABASE_DB_URL"), {
    max: 4,
    onnotice: () => {},
    connection: { application_name: "crm-chaos" },
  });
  const rnd = new Prng(o.seed).fork(`chaos-run:${p}:${o.policy}`);
  const handles = new Map<number, Handle>();
  const trace = new Map<number, string[]>();
  let effects = new Map<number, Effect[]>();
  let base = new Map<number, { live: boolean; v: Values }>();
  const problems: Problem[] = [];
  const quiesceMs: number[] = [];
  let barrier = 0;
  let conflicts = 0;
  let raced = 0;
  const pgDropped: string[] = [];
  let pgMissed = 0;
  let gatewayRestarts = 0;
  let refusedDead = 0;
  let companies: string[] = [];
  /** Handles whose CRM record refuses the engine's updates (`crm_refuse`), by remote id. */
  const refused = new Map<string, number>();
  let inFlight = 0;
  let opsMs = 0;
  const note = (h: number, line: string) => {
    const t = trace.get(h) ?? [];
    t.push(`[b${barrier}] ${line}`);
    trace.set(h, t);
  };
  const effect = (h: number, e: Effect) => {
    const l = effects.get(h) ?? [];
    l.push(e);
    effects.set(h, l);
  };
  let conn = "";
  let accountId = "";

  async function asApp<T>(fn: (tx: postgres.TransactionSql) => Promise<T>): Promise<T> {
    const claims = JSON.stringify({
      sub: crypto.randomUUID(),
      role: "authenticated",
      app_metadata: { account_id: accountId },
    });
    return await sql.begin(async (tx) => {
      await tx`set local role authenticated`;
      await tx`select set_config('request.jwt.claims', ${claims}, true)`;
      return await fn(tx);
    }) as T;
  }

  /** Binds a handle to its mirror row (local id) and remote id, whichever is known. A row the
   * app hard-deleted is gone with its id; the CRM record it mirrored, read again (a tombstone,
   * then a restore), has a row of a new id, which the handle follows by remote id. */
  async function bind(h: number): Promise<Handle | null> {
    const x = handles.get(h);
    if (!x) return null;
    let rows = x.local
      ? await sql`select id::text, remote_id from crm.contacts where id = ${x.local}`
      : [];
    if (!rows.length && x.remote) {
      rows = await sql`select id::text, remote_id from crm.contacts
                       where connection_id = ${conn} and remote_id = ${x.remote}`;
    }
    if (rows.length) {
      x.local = rows[0].id;
      if (rows[0].remote_id) x.remote = rows[0].remote_id;
    }
    return x;
  }

  const setFaults = async (on: boolean) => {
    const r = on
      ? await crm.call("PUT", "/faults", { ...o.faults, seed: rnd.int(1, 2 ** 30) })
      : await crm.call("DELETE", "/faults");
    if (r.status >= 300) throw new Error(`faults: ${r.status}`);
  };

  async function settled(): Promise<boolean> {
    const [r] = await sql`
      select (select count(*) from crm.outbox o where o.connection_id = ${conn}
                and o.state <> 'dead'
                -- manual: an entry held by an open conflict waits for the barrier's resolution.
                and not exists (select 1 from crm.conflicts k
                                where k.connection_id = o.connection_id
                                  and k.record_id = o.record_id and k.resolved_at is null))
               as outbox,
             (select count(*) from crm.webhook_events where connection_id = ${conn}
                and state in ('pending', 'processing')) as inbox,
             (select count(*) from crm.jobs where connection_id = ${conn} and kind <> 'outbound'
                and (state = 'running' or (state = 'queued' and run_after <= now()))) as jobs,
             (select count(*) from crm.jobs where connection_id = ${conn} and kind = 'outbound'
                and (state = 'running' or (state = 'queued' and run_after <= now()))) as pushes,
             (select count(*) from crm.outbox o where o.connection_id = ${conn}
                and o.state <> 'dead') as entries`;
    // Held entries alone keep a push job coming back; they are settled for this purpose.
    const held = Number(r.entries) > 0 && Number(r.outbox) === 0;
    return Number(r.outbox) + Number(r.inbox) + Number(r.jobs) + (held ? 0 : Number(r.pushes)) ===
      0;
  }

  /** Time passing, fast: backoffs and leases of work nobody holds any more are made due. A
   * lease is only cut short when no job of the connection is running (its holder is gone). */
  async function fastForward() {
    await sql`update crm.outbox set next_attempt_at = now()
              where connection_id = ${conn} and state = 'pending' and next_attempt_at > now()`;
    await sql`update crm.webhook_events set next_attempt_at = now()
              where connection_id = ${conn} and state = 'pending' and next_attempt_at > now()`;
    await sql`update crm.jobs set run_after = now()
              where connection_id = ${conn} and state = 'queued' and run_after > now()`;
    const [{ running }] = await sql`select count(*)::int as running from crm.jobs
                                    where connection_id = ${conn} and state = 'running'`;
    if (running === 0) {
      await sql`update crm.outbox set locked_until = now()
                where connection_id = ${conn} and state = 'processing'
                  and locked_until > now()`;
      await sql`update crm.webhook_events set locked_until = now()
                where connection_id = ${conn} and state = 'processing'
                  and locked_until > now()`;
    }
    // A wake whose request died with its process (a kill) holds an idle slot for a minute
    // (crm._worker_counts), so no other worker is woken for the due jobs meanwhile: that minute
    // passes at once.
    await sql`update crm.job_workers set woken_at = woken_at - interval '1 minute'
              where started_at is null and finished_at is null
                and woken_at > now() - interval '1 minute' and woken_at < now() - interval '5 seconds'`;
    // The every-minute crm-inbox cron's tick (paused on the test stack): events a killed
    // worker held get an inbox job again.
    await sql`select crm.enqueue_inbox(${conn}::uuid, 'cron', false)`;
    // And the */10 crm-outbound cron's: entries a killed worker held get a push job again.
    const [{ held }] = await sql`select count(*)::int as held from crm.outbox
                                 where connection_id = ${conn} and state <> 'dead'`;
    if (held > 0) await sql`select crm.enqueue_outbound(${conn}::uuid, 'cron', false)`;
    await sql`select crm.wake_workers('chaos')`;
  }

  async function drain(what: string) {
    const end = Date.now() + 180_000;
    for (;;) {
      if (await settled()) return;
      if (Date.now() > end) {
        const ob = await sql`select op, state, attempts, last_error, next_attempt_at
                             from crm.outbox where connection_id = ${conn} limit 5`;
        const jobs = await sql`select kind, object, state, run_after from crm.jobs
                               where connection_id = ${conn} and state <> 'done' limit 5`;
        throw new Error(`${what}: engine did not drain: ${JSON.stringify({ ob, jobs })}`);
      }
      await fastForward();
      await sleep(250);
    }
  }

  async function inbound(mode: "delta" | "drift") {
    const [{ n }] = mode === "delta"
      ? await sql`select public.trigger_crm_sync('contacts', ${conn}::uuid) as n`
      : await sql`select crm.enqueue_inbound(array['contacts'], 'drift', ${conn}::uuid,
                                             'manual') as n`;
    if (Number(n) <= 0) throw new Error(`${mode}: no job queued`);
    await drain(mode);
  }

  async function quiesce() {
    const q0 = Date.now();
    await setFaults(false);
    const idle = await crm.call("POST", "/webhooks/idle", { timeoutMs: 60_000 }, 70_000);
    if (idle.status >= 300) throw new Error(`webhooks/idle: ${idle.status}`);
    await drain("after the ops");
    await inbound("delta");
    await inbound("drift");
    await drain("after the drift check");
    if (o.policy === "manual") {
      const open = await sql`select id, record_id::text, field, local_value, remote_value
                             from crm.conflicts
                             where connection_id = ${conn} and resolved_at is null`;
      for (const c of open) {
        const side = rnd.chance(0.5) ? "local" : "remote";
        await sql`select crm.resolve_conflict(${c.id}, ${side})`;
        const h = [...handles].find(([, x]) => x.local === c.record_id)?.[0];
        if (h !== undefined) {
          // 'local' keeps the row's value, which is the app's latest edit: the conflict's
          // local_value is the one it was opened with, and the app may have edited the field
          // again while it was open (resolve_conflict pushes the row's value).
          const [row] = side === "local" && c.field !== "deleted_at"
            ? await sql`select to_jsonb(t) -> ${c.field}::text as v from crm.contacts t
                        where t.id = ${c.record_id}::uuid`
            : [];
          const val = row ? row.v : side === "local" ? c.local_value : c.remote_value;
          resolved.set(`${h}.${c.field}`, val === null ? null : String(unjson(val)));
          note(h, `barrier: manual conflict on ${c.field} resolved ${side}`);
        }
      }
      if (open.length) {
        await drain("after resolving conflicts");
        await inbound("delta");
        await drain("after the last pull");
      }
    }
    quiesceMs.push(Date.now() - q0);
  }
  const resolved = new Map<string, string | null>();
  const unjson = (v: unknown) => (typeof v === "string" && v.startsWith('"') ? JSON.parse(v) : v);

  async function check() {
    const fail = (handle: number | null, what: string) => problems.push({ barrier, handle, what });
    const rows = await sql`select id::text, remote_id, deleted_at is not null as deleted,
                                  first_name, last_name, job_title, company_remote_id, kind
                           from crm.contacts where connection_id = ${conn}`;
    const recs = await crm.all();
    const byRemote = new Map(recs.map((r) => [r.id, r]));
    const rowByRemote = new Map(rows.filter((r) => r.remote_id).map((r) => [r.remote_id, r]));
    const rowById = new Map(rows.map((r) => [r.id as string, r]));
    // Dead letters: only of records the CRM refuses, each with the CRM's reason.
    const dead = await sql`select record_id::text, last_error from crm.outbox
                           where connection_id = ${conn} and state = 'dead'`;
    const deadFor = new Set<string>();
    refusedDead = 0;
    for (const d of dead) {
      // By the handle: a hard-deleted row's entry outlives the row.
      const remote = rowById.get(d.record_id)?.remote_id ??
        [...handles.values()].find((x) => x.local === d.record_id)?.remote;
      const h = remote ? refused.get(remote) : undefined;
      if (h === undefined) fail(null, `dead letter ${d.record_id}: ${d.last_error}`);
      else if (!String(d.last_error ?? "").trim()) {
        fail(h, `dead letter ${d.record_id} has no reason`);
      } else {
        refusedDead++;
        deadFor.add(d.record_id);
      }
    }
    const [{ left }] = await sql`select count(*)::int as left from crm.outbox
                                 where connection_id = ${conn} and state <> 'dead'`;
    if (left > 0) fail(null, `outbox: ${left} entries left that are not dead letters`);
    // Both sides, model aside. A record the CRM refuses may differ from its row only by edits
    // the engine could not push, and then the row has a dead letter.
    for (const r of rows.filter((r) => !r.deleted)) {
      const c = r.remote_id ? byRemote.get(r.remote_id) : undefined;
      if (!c) fail(null, `live row ${r.id} has no CRM record (remote_id ${r.remote_id})`);
      else if (!c.live) fail(null, `live row ${r.id} but CRM record ${c.id} is deleted`);
      else {
        const differ = fields.filter((f) => (r[f] ?? null) !== c.v[f]);
        if (refused.has(c.id)) {
          if (differ.length && !deadFor.has(r.id)) {
            fail(
              refused.get(c.id)!,
              `refused record ${c.id} differs (${differ.join(", ")}) and has no dead letter`,
            );
          }
          continue;
        }
        for (const f of differ) fail(null, `row ${r.id} ${f}: app ${r[f]} vs CRM ${c.v[f]}`);
      }
    }
    const emails = new Map<string, string[]>();
    for (const c of recs.filter((c) => c.live)) {
      const r = rowByRemote.get(c.id);
      if (!r || r.deleted) fail(null, `live CRM record ${c.id} has no live row`);
      if (c.email) emails.set(c.email, [...(emails.get(c.email) ?? []), c.id]);
    }
    for (const [e, ids] of emails) {
      if (ids.length > 1) fail(null, `duplicate CRM records for ${e}: ${ids.join(", ")}`);
    }
    const inbox = await sql`select state, count(*)::int as n from crm.webhook_events
                            where connection_id = ${conn} and state not in ('done', 'ignored')
                            group by state`;
    for (const i of inbox) fail(null, `inbox: ${i.n} events ${i.state}`);
    const deadJobs = await sql`select kind, last_error from crm.jobs
                               where connection_id = ${conn} and state = 'dead'`;
    for (const j of deadJobs) fail(null, `dead job ${j.kind}: ${JSON.stringify(j.last_error)}`);

    // The model.
    const nextBase = new Map<number, { live: boolean; v: Values }>();
    for (const [h] of handles) {
      const x = await bind(h);
      if (!x) continue;
      const row = x.local ? rowById.get(x.local) : x.remote ? rowByRemote.get(x.remote) : undefined;
      const c = row?.remote_id
        ? byRemote.get(row.remote_id)
        : x.remote
        ? byRemote.get(x.remote)
        : undefined;
      const rowLive = !!row && !row.deleted;
      const crmLive = !!c && c.live;
      const res: Partial<Record<Field, string | null>> = {};
      for (const f of fields) {
        const k = `${h}.${f}`;
        if (resolved.has(k)) res[f] = resolved.get(k)!;
      }
      const e = expect(
        o.policy,
        fields,
        base.get(h) ?? null,
        effects.get(h) ?? [],
        res,
        o.pushWindow ?? "strict",
      );
      if (e.why.some((w) => w.includes("raced a queued push"))) raced++;
      if (e.why.some((w) => w.includes("queued push") && w.endsWith("(in flight)"))) inFlight++;
      const said = (what: string) =>
        fail(h, `${what}${e.why.length ? ` (${e.why.join("; ")})` : ""}`);
      if (!e.live.has(rowLive)) {
        said(
          `expected ${[...e.live].map((l) => l ? "alive" : "deleted").join("|")}, app row is ${
            rowLive ? "alive" : "deleted"
          }`,
        );
      }
      if (rowLive !== crmLive) {
        said(
          `app row ${rowLive ? "alive" : "deleted"}, CRM record ${crmLive ? "alive" : "deleted"}`,
        );
      }
      const v: Values = {};
      // A record the CRM refuses keeps what the engine could not push: its fields are judged
      // by the dead-letter check above, not by the model.
      const judged = !(c && refused.has(c.id));
      if (rowLive) {
        for (const f of fields) {
          const got = (row![f] ?? null) as string | null;
          const want = e.fields[f]!;
          if (judged && !want.has(got)) {
            said(`${f} = ${got}, model expects ${[...want].join(" | ")}`);
          }
          if (got !== null) v[f] = got;
        }
      }
      if (!rowLive) {
        // A deleted record keeps its last values: a restore brings them back.
        const from = c ? c.v : base.get(h)?.v ?? {};
        for (const f of fields) if (from[f] != null) v[f] = from[f]!;
      }
      nextBase.set(h, { live: rowLive, v });
    }
    base = nextBase;
    effects = new Map();
    resolved.clear();
    const [{ n }] = await sql`select count(*)::int as n from crm.conflicts
                              where connection_id = ${conn}`;
    conflicts = n;
    barrier++;
  }

  async function exec(i: number, op: Op) {
    const appWrite = async (h: number, v: Values, label: string) => {
      const x = await bind(h);
      if (!x?.local) return note(h, `#${i} ${label}: no row yet, skipped`);
      const cols = Object.keys(v);
      const r = await asApp((tx) =>
        tx`update crm.contacts set ${tx(v as Record<string, string>, cols)}
           where id = ${x.local!} and deleted_at is null
           returning extract(epoch from now()) * 1000 as at`
      );
      if (!r.length) return note(h, `#${i} ${label}: row deleted, skipped`);
      effect(h, { side: "app", kind: "edit", op: i, at: Number(r[0].at), v });
      note(h, `#${i} ${label} ${JSON.stringify(v)}`);
    };
    /** Fields of `v` with an app edit of the record queued (not yet pushed) right now, and
     * those of them whose entry is already claimed by a push (in flight: the push may have read
     * the record already; see model.ts). */
    const queued = async (h: number, v: Values): Promise<{ raced: Field[]; inFlight: Field[] }> => {
      const x = handles.get(h);
      if (!x?.local) return { raced: [], inFlight: [] };
      const rows = await sql`select op, changed_columns, state from crm.outbox
                             where record_id = ${x.local} and state <> 'dead'`;
      // Pipedrive writes a person's name whole (v2 has `name` only): an entry with one half
      // writes the other along, as the push's read of the person found it.
      const halves = p === "pipedrive" ? ["first_name", "last_name"] : [];
      const hit = (f: Field, r: (typeof rows)[number]) => {
        const cols: string[] = r.changed_columns ?? [];
        return r.op !== "update" || cols.includes(f) ||
          (halves.includes(f) && cols.some((c) => halves.includes(c)));
      };
      const fs = Object.keys(v) as Field[];
      return {
        raced: fs.filter((f) => rows.some((r) => hit(f, r))),
        inFlight: fs.filter((f) => rows.some((r) => r.state === "processing" && hit(f, r))),
      };
    };
    const crmLive = async (h: number) => {
      const x = await bind(h);
      if (!x?.remote) return null;
      return { x, rec: await crm.get(x.remote) };
    };
    switch (op.k) {
      case "app_insert": {
        const id = crypto.randomUUID();
        const email = `chaos-${o.seed}-${op.h}@example.com`;
        const r = await asApp((tx) =>
          tx`insert into crm.contacts (id, connection_id, email, first_name, last_name, job_title)
             values (${id}, ${conn}, ${email}, ${op.v.first_name ?? null},
                     ${op.v.last_name ?? null}, ${
            fields.includes("job_title") ? op.v.job_title ?? null : null
          })
             returning extract(epoch from now()) * 1000 as at`
        );
        handles.set(op.h, { local: id, email });
        effect(op.h, { side: "app", kind: "insert", op: i, at: Number(r[0].at), v: op.v });
        note(op.h, `#${i} app insert ${JSON.stringify(op.v)}`);
        break;
      }
      case "app_update":
        await appWrite(op.h, op.v, "app update");
        break;
      case "app_update_twice":
        await appWrite(op.h, op.v, "app update (1/2)");
        await sleep(op.gapMs);
        await appWrite(op.h, op.v2, "app update (2/2)");
        break;
      case "app_soft_delete":
      case "app_hard_delete": {
        const x = await bind(op.h);
        if (!x?.local) return note(op.h, `#${i} ${op.k}: no row, skipped`);
        const r = await asApp((tx) =>
          op.k === "app_soft_delete"
            ? tx`update crm.contacts set deleted_at = now()
                 where id = ${x.local!} and deleted_at is null
                 returning extract(epoch from now()) * 1000 as at`
            : tx`delete from crm.contacts where id = ${x.local!} and deleted_at is null
                 returning extract(epoch from now()) * 1000 as at`
        );
        if (!r.length) return note(op.h, `#${i} ${op.k}: row already deleted, skipped`);
        effect(op.h, { side: "app", kind: "delete", op: i, at: Number(r[0].at) });
        note(op.h, `#${i} ${op.k}`);
        break;
      }
      case "crm_create": {
        const email = `chaos-${o.seed}-${op.h}@example.com`;
        const v = { ...op.v };
        if (!fields.includes("job_title")) delete v.job_title;
        const r = await crm.call("POST", `/records/${OBJ[p]}`, crm.body(v, email));
        if (r.status >= 300) throw new Error(`crm create: ${r.status} ${JSON.stringify(r.json)}`);
        const rec = crm.flat(r.json);
        handles.set(op.h, { remote: rec.id, email });
        effect(op.h, { side: "crm", kind: "create", op: i, at: rec.at, v });
        note(op.h, `#${i} crm create ${rec.id} ${JSON.stringify(v)}`);
        break;
      }
      case "crm_update": {
        const got = await crmLive(op.h);
        if (!got?.rec?.live) return note(op.h, `#${i} crm update: not in the CRM, skipped`);
        const v = Object.fromEntries(
          Object.entries(op.v).filter(([f]) => fields.includes(f as Field)),
        );
        const race = await queued(op.h, v);
        const r = await crm.call("PATCH", `/records/${OBJ[p]}/${got.x.remote}`, crm.body(v));
        if (r.status >= 300) return note(op.h, `#${i} crm update refused: ${r.status}`);
        const after = await crm.get(got.x.remote!);
        effect(op.h, {
          side: "crm",
          kind: "edit",
          op: i,
          at: after!.at,
          v,
          raced: race.raced,
          inFlight: race.inFlight,
        });
        note(
          op.h,
          `#${i} crm update ${JSON.stringify(v)} at ${new Date(after!.at).toISOString()}` +
            (race.raced.length
              ? ` (app edit of ${race.raced.join(", ")} still queued` +
                (race.inFlight.length ? `, in flight: ${race.inFlight.join(", ")})` : ")")
              : ""),
        );
        break;
      }
      case "crm_delete": {
        const got = await crmLive(op.h);
        if (!got?.rec?.live) return note(op.h, `#${i} crm delete: not in the CRM, skipped`);
        const r = await crm.call("DELETE", `/records/${OBJ[p]}/${got.x.remote}`);
        if (r.status >= 300) return note(op.h, `#${i} crm delete refused: ${r.status}`);
        const after = await crm.get(got.x.remote!);
        effect(op.h, { side: "crm", kind: "delete", op: i, at: after?.at ?? Date.now() });
        note(op.h, `#${i} crm delete ${got.x.remote}`);
        break;
      }
      case "crm_restore": {
        const got = await crmLive(op.h);
        if (!got?.rec || got.rec.live) {
          return note(op.h, `#${i} crm restore: nothing deleted, skipped`);
        }
        const path = p === "hubspot" ? "restore" : "undelete";
        const r = await crm.call("POST", `/records/${OBJ[p]}/${got.x.remote}/${path}`);
        if (r.status >= 300) return note(op.h, `#${i} crm restore refused: ${r.status}`);
        const after = await crm.get(got.x.remote!);
        effect(op.h, { side: "crm", kind: "restore", op: i, at: after!.at });
        note(op.h, `#${i} crm restore ${got.x.remote}`);
        break;
      }
      case "crm_merge": {
        const a = await crmLive(op.h);
        const b = await crmLive(op.loser);
        if (!a?.rec?.live || !b?.rec?.live || a.x.remote === b.x.remote) {
          return note(op.h, `#${i} crm merge: a record is not in the CRM, skipped`);
        }
        // The loser's app edits still queued: the engine settles them against the survivor
        // (docs/architecture.md, "Merges and pending app edits"). One already being pushed
        // may land on either record.
        const [{ t0 }] = await sql`select clock_timestamp() as t0`;
        const pending = b.x.local
          ? await sql`select o.state, o.changed_columns, to_jsonb(c) as row,
                             (select max(s.local_changed_at) from crm.sync_state s
                              where s.record_id = c.id) as at
                      from crm.outbox o join crm.contacts c on c.id = o.record_id
                      where o.record_id = ${b.x.local} and o.op <> 'delete' and o.state <> 'dead'`
          : [];
        const tMerge = new Date();
        const r = await crm.call("POST", `/records/${OBJ[p]}/merge`, {
          primaryId: a.x.remote,
          mergedId: b.x.remote,
        });
        if (r.status >= 300) return note(op.h, `#${i} crm merge refused: ${r.status}`);
        // A push that claimed the edit between the look at the outbox and the merge (its claim
        // time in the write ledger) was in flight at the merge too.
        const claimedMeanwhile = pending.length > 0 && (await sql`
          select 1 from crm.write_ledger l
          where l.record_id = ${b.x.local!} and l.pushed_at >= ${t0} and l.pushed_at < ${tMerge}
          limit 1`).length > 0;
        const unseen = p === "pipedrive" && await crm.mergeEventDropped(b.x.remote!);
        const sa = await crm.get(a.x.remote!);
        const sbr = await crm.get(b.x.remote!);
        // A survivor keeps its values; fields it lacked are filled from the loser (HubSpot).
        const filled: Values = {};
        for (const f of fields) {
          if (sa!.v[f] !== a.rec.v[f] && sa!.v[f] !== null) filled[f] = sa!.v[f]!;
        }
        if (Object.keys(filled).length) {
          effect(op.h, { side: "crm", kind: "edit", op: i, at: sa!.at, v: filled });
        } else effect(op.h, { side: "crm", kind: "touch", op: i, at: sa!.at });
        if (unseen) {
          // The engine can only see a deletion: the loser's queued edit stays the loser's.
          effect(op.loser, { side: "crm", kind: "delete", op: i, at: sbr?.at ?? sa!.at });
          note(op.h, `#${i} crm merge: its webhook was dropped, a deletion to the engine`);
          note(op.loser, `#${i} crm merge into h${op.h}: webhook dropped, judged as a delete`);
          return;
        }
        effect(op.loser, { side: "crm", kind: "merged", op: i, at: sbr?.at ?? sa!.at });
        for (const q of pending) {
          const moved: Values = {};
          for (const f of fields) {
            if ((q.changed_columns ?? []).includes(f) && q.row[f] != null) moved[f] = q.row[f];
          }
          if (!Object.keys(moved).length) continue;
          effect(op.h, {
            side: "app",
            kind: "edit",
            op: i,
            at: new Date(q.at).getTime(),
            v: moved,
            retargeted: true,
            inFlight: q.state === "processing" || claimedMeanwhile,
          });
          note(
            op.h,
            `#${i} crm merge: the loser's queued app edit ${JSON.stringify(moved)}` +
              (q.state === "processing" || claimedMeanwhile ? " (being pushed)" : ""),
          );
        }
        note(op.h, `#${i} crm merge: survivor of h${op.loser}`);
        note(op.loser, `#${i} crm merge: merged into h${op.h}`);
        break;
      }
      case "crm_bulk": {
        if (!fields.includes(op.field)) break;
        // A bulk job writes its records at one instant: the sandbox's clock stands still while
        // they are written, so each record's value and its modification time change together
        // (a two-step edit, values then a re-stamp to a later second, showed the engine a value
        // at a time the CRM never gave it). Requests the engine makes meanwhile get that
        // instant too; time never goes backwards.
        const ids: Array<[number, string, { raced: Field[]; inFlight: Field[] }]> = [];
        clock.frozen = Date.now();
        try {
          for (const h of op.hs) {
            const got = await crmLive(h);
            if (!got?.rec?.live) continue;
            const race = await queued(h, { [op.field]: op.value });
            const r = await crm.call(
              "PATCH",
              `/records/${OBJ[p]}/${got.x.remote}`,
              crm.body({ [op.field]: op.value }),
            );
            if (r.status < 300) ids.push([h, got.x.remote!, race]);
          }
        } finally {
          clock.frozen = null;
        }
        for (const [h, id, race] of ids) {
          const after = await crm.get(id);
          effect(h, {
            side: "crm",
            kind: "edit",
            op: i,
            at: after!.at,
            v: { [op.field]: op.value },
            raced: race.raced,
            inFlight: race.inFlight,
          });
          note(
            h,
            `#${i} crm bulk ${op.field}=${op.value} (${ids.length} records at ` +
              `${new Date(after!.at).toISOString()})${
                race.raced.length ? " (app edit still queued)" : ""
              }`,
          );
        }
        break;
      }
      case "crm_assoc": {
        const got = await crmLive(op.h);
        if (!got?.rec?.live) return note(op.h, `#${i} crm assoc: not in the CRM, skipped`);
        const company = op.company === null ? null : companies[op.company];
        const v: Values = { [ASSOC]: company };
        const race = await queued(op.h, v);
        const r = await setCompany(
          (m, path, b) => crm.call(m, path, b),
          p,
          got.x.remote!,
          got.rec.v[ASSOC],
          company,
        );
        if (r.status >= 300) return note(op.h, `#${i} crm assoc refused: ${r.status}`);
        const after = await crm.get(got.x.remote!);
        if (after!.v[ASSOC] === got.rec.v[ASSOC]) {
          return note(op.h, `#${i} crm assoc ${company}: unchanged`);
        }
        effect(op.h, {
          side: "crm",
          kind: "edit",
          op: i,
          at: after!.at,
          v,
          raced: race.raced,
          inFlight: race.inFlight,
        });
        note(
          op.h,
          `#${i} crm assoc company=${company} at ${new Date(after!.at).toISOString()}` +
            (race.raced.length ? " (app edit still queued)" : ""),
        );
        break;
      }
      case "app_assoc":
        await appWrite(
          op.h,
          { [ASSOC]: op.company === null ? null : companies[op.company] },
          "app assoc",
        );
        break;
      case "crm_refuse": {
        const x = await bind(op.h);
        if (!x?.remote) return note(op.h, `#${i} crm refuse: no CRM record, skipped`);
        refused.set(x.remote, op.h);
        const r = await crm.call("PUT", "/refusals", {
          ids: [...refused.keys()],
          message: "Chaos: this record is locked by a validation rule",
        });
        if (r.status >= 300) throw new Error(`refusals: ${r.status} ${JSON.stringify(r.json)}`);
        note(op.h, `#${i} crm refuses every API update of ${x.remote} from now on`);
        break;
      }
      case "restart_gateway":
        if (!o.restartGateway) break;
        await o.restartGateway(op.hard);
        gatewayRestarts++;
        break;
      case "pull":
        await sql`select public.trigger_crm_sync('contacts', ${conn}::uuid)`;
        break;
      case "kill_worker": {
        const res = await fetch(`${need("SUPABASE_URL")}/_gateway/stats`);
        const stats = (await res.json()).functions;
        const pids = (stats["crm-sync-bidirectional"]?.processes ?? [])
          .filter((x: { state: string }) => x.state === "busy")
          .map((x: { pid: number }) => x.pid);
        if (pids.length) {
          try {
            Deno.kill(pids[rnd.int(0, pids.length - 1)], "SIGKILL");
          } catch { /* it finished meanwhile */ }
        }
        break;
      }
      case "drop_pg": {
        // A pull first, so a worker is at work when the cut comes (an idle engine has no
        // statement to cut).
        await sql`select public.trigger_crm_sync('contacts', ${conn}::uuid)`;
        const cut = await dropInFlight(sql);
        if (cut === null) pgMissed++;
        else pgDropped.push(cut);
        break;
      }
      case "sleep":
        await sleep(op.ms);
        break;
      case "settle":
        opsMs += Date.now() - opsT;
        await quiesce();
        await check();
        await setFaults(true);
        opsT = Date.now();
        break;
    }
  }

  let opsT = Date.now();
  // A killed worker's job lease runs out in seconds, not minutes (as workers.test.ts does);
  // live workers renew theirs.
  const [settings] = await sql`select job_lease::text from crm.engine_settings`;
  await sql`update crm.engine_settings set job_lease = '8 seconds'`;
  try {
    await pauseScheduledSyncs(sql);
    companies = await makeCompanies(
      (m, path, b) => crm.call(m, path, b),
      p,
      COMPANIES,
      `s${o.seed}`,
    );
    conn = await hookedConnection(sql, p, sb.url, sb.credentials, o.policy);
    [{ account_id: accountId }] = await sql`select account_id::text from crm.connections
                                            where id = ${conn}`;
    // A first full pull, so the initial records' webhooks and the watermark are in place.
    await inbound("delta");
    await crm.call("DELETE", "/counters");
    const trace = traceFile();
    for (const [i, op] of ops.entries()) {
      try {
        if (trace) await traceOp(trace, i, op);
        await exec(i, op);
      } catch (e) {
        // The database aborting an app user's statement (a deadlock with the engine, a
        // serialization failure) is a finding, not the harness's failure: the write did not
        // happen (no effect was recorded) and the run goes on.
        const code = (e as { code?: string }).code;
        if (!op.k.startsWith("app_") || (code !== "40P01" && code !== "40001")) throw e;
        const h = handlesOf(op)[0] ?? null;
        problems.push({
          barrier,
          handle: h,
          what: `#${i} ${op.k}: the app's statement failed: ${(e as Error).message} (${code})`,
        });
        if (h !== null) note(h, `#${i} ${op.k} FAILED in the database: ${(e as Error).message}`);
      }
      if (problems.length && op.k === "settle" && !o.keepGoing) break;
    }
    if (ops[ops.length - 1]?.k !== "settle") {
      await exec(ops.length, { k: "settle" });
    }
  } finally {
    await crm.call("DELETE", "/faults").catch(() => {});
    await sql`update crm.engine_settings set job_lease = ${settings.job_lease}::interval`;
  }
  const counters = await crm.call("GET", "/counters");
  const apiCalls = Number(counters.json?.total ?? 0);
  // CRM_CHAOS_KEEP=1 keeps the connection's rows (mirror, outbox, ledger, conflicts, sync log)
  // for a post-mortem; the next run with the same seed replaces it.
  if (Deno.env.get("CRM_CHAOS_KEEP") !== "1") {
    await sql`delete from crm.connections where id = ${conn}`.catch(() => {});
  } else log(`kept connection ${conn}`);
  await sql.end();
  await sb.close();
  const traces: Record<number, string[]> = {};
  for (const pr of problems) {
    if (pr.handle !== null) traces[pr.handle] = trace.get(pr.handle) ?? [];
  }
  const stats = {
    ops: ops.length,
    barriers: barrier,
    records: handles.size,
    conflicts,
    raced,
    inFlight,
    apiCalls,
    ms: Date.now() - t0,
    opsMs,
    quiesceMs,
    pgDropped,
    pgMissed,
    gatewayRestarts,
    refusedDead,
  };
  log(`${p} ${o.policy}: ${problems.length ? "FAIL" : "ok"} ${JSON.stringify(stats)}`);
  return { ok: problems.length === 0, problems, traces, stats };
}

export { handlesOf };
