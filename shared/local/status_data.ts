// What the `npm start` status view shows, read in one pass: the engine (crm.engine_status()),
// every connection's streams (crm.sync_status() plus the stream's latest run), webhook lag, the
// pg_cron jobs with their next runs, and pg_net. Rendering is ./status_render.ts.
import { Cron } from "croner";
import type postgres from "postgres";

export interface StreamStatus {
  connectionId: string;
  connection: string;
  provider: string;
  object: string;
  enabled: boolean;
  records: number | null;
  /** The stream's latest inbound run: success|partial|failed|running, and when. */
  run: { status: string; at: Date } | null;
  outboxPending: number;
  /** Outbox and inbox dead letters of the stream. */
  dead: number;
  /** Only what is wrong now: a failure newer than the last success, records that keep failing,
   * a dead job, a paused budget. Old errors followed by successes are not errors. */
  errors: string[];
}

export interface ConnectionStatus {
  id: string;
  name: string;
  provider: string;
  status: string;
  /** Webhook events not yet applied, and how long the oldest has waited (seconds). */
  inboxPending: number;
  inboxOldestS: number | null;
  /** Received → applied over the last five minutes, seconds (null: no event then). */
  webhookP50S: number | null;
  /** The connection's outbound: a failed set-up or a latest push run that failed. */
  outboundErrors: string[];
}

export interface CronStatus {
  name: string;
  schedule: string;
  next: Date | null;
  last: { status: string; at: Date } | null;
}

export interface StatusModel {
  at: Date;
  engine: {
    liveWorkers: number;
    maxWorkers: number;
    due: number;
    running: number;
    waiting: number;
    dead: number;
    oldestDueS: number | null;
  } | null;
  connections: ConnectionStatus[];
  streams: StreamStatus[];
  cron: CronStatus[];
  /** Calls the stack's pg_net made in the last hour; failed counts HTTP errors, timeouts and
   * function answers of `"ok":false` (a sync run that failed answers 200). */
  net: { queued: number; lastHour: number; failed: number };
}

/** sync_status().current_error (as last_error) is the error's message, or its JSON text when it has none (e.g. a
 * JSON object stored as a string): the message inside when there is one. */
export function errorMessage(text: string): string {
  let v: unknown = text;
  for (let i = 0; i < 3 && typeof v === "string"; i++) {
    try {
      v = JSON.parse(v);
    } catch {
      break;
    }
  }
  if (v && typeof v === "object" && "message" in v) return String(v.message);
  return typeof v === "string" ? v : text;
}

const num = (v: unknown) => Number(v ?? 0) || 0;
const seconds = (v: unknown) => v == null ? null : Number(v);

/** The next run of a pg_cron schedule (5 fields, UTC as pg_cron 1.4 runs them); null when the
 * schedule is not a cron expression (e.g. '30 seconds' on later pg_cron). */
export function nextCronRun(schedule: string, after: Date): Date | null {
  try {
    return new Cron(schedule, { timezone: "UTC", paused: true }).nextRun(after);
  } catch {
    return null;
  }
}

async function readStreams(sql: postgres.Sql) {
  return await sql`
    select s.connection_id::text, coalesce(s.connection_name, s.provider) as name, s.provider,
           s.connection_status, s.object, s.enabled, s.records, s.outbox_pending,
           s.pending_outbound, s.dead_letters, s.current_error,
           s.open_failures, s.jobs_dead, s.budget_paused_until, s.budget_pause_reason,
           s.outbound_setup_error, s.last_outbound_status, s.inbox_pending,
           extract(epoch from s.inbox_oldest_pending_age)::float8 as inbox_oldest_s,
           r.status as run_status, coalesce(r.finished_at, r.started_at) as run_at
    from crm.sync_status() s
    left join lateral (
      select l.status, l.started_at, l.finished_at
      from crm.sync_log l
      where l.connection_id = s.connection_id
        and case when s.object = 'outbound' then l.direction = 'outbound'
                 else l.direction = 'inbound' and l.object = s.object end
      order by l.started_at desc
      limit 1
    ) r on true
    order by s.provider, name, s.connection_id,
             array_position(array['contacts', 'companies', 'deals', 'owners', 'outbound'], s.object)`;
}

/** Received → applied, median over the last five minutes, per connection. */
async function webhookLag(sql: postgres.Sql): Promise<Map<string, number>> {
  const rows = await sql`
    select connection_id::text,
           percentile_cont(0.5) within group (
             order by extract(epoch from processed_at - received_at))::float8 as p50
    from crm.webhook_events
    where state = 'done' and processed_at > now() - interval '5 minutes'
      and connection_id is not null
    group by connection_id`;
  return new Map(rows.map((r) => [r.connection_id as string, Number(r.p50)]));
}

function streamErrors(r: postgres.Row): string[] {
  const errors: string[] = [];
  if (r.current_error) errors.push(errorMessage(String(r.current_error)));
  if (num(r.open_failures)) errors.push(`${num(r.open_failures)} record(s) failing`);
  if (num(r.jobs_dead)) errors.push(`${num(r.jobs_dead)} job(s) dead`);
  if (r.budget_paused_until && new Date(r.budget_paused_until) > new Date()) {
    errors.push(`rate budget paused${r.budget_pause_reason ? ` (${r.budget_pause_reason})` : ""}`);
  }
  return errors;
}

function split(rows: postgres.Row[], lag: Map<string, number>) {
  const connections = new Map<string, ConnectionStatus>();
  const streams: StreamStatus[] = [];
  for (const r of rows) {
    let c = connections.get(r.connection_id);
    if (!c) {
      c = {
        id: r.connection_id,
        name: r.name,
        provider: r.provider,
        status: r.connection_status,
        inboxPending: num(r.inbox_pending),
        inboxOldestS: seconds(r.inbox_oldest_s),
        webhookP50S: lag.get(r.connection_id) ?? null,
        outboundErrors: [],
      };
      connections.set(r.connection_id, c);
    }
    if (r.object === "outbound") {
      if (r.outbound_setup_error) c.outboundErrors.push(String(r.outbound_setup_error));
      c.outboundErrors.push(...streamErrors(r));
      continue;
    }
    streams.push({
      connectionId: r.connection_id,
      connection: r.name,
      provider: r.provider,
      object: r.object,
      enabled: !!r.enabled,
      records: r.records == null ? null : num(r.records),
      run: r.run_status ? { status: r.run_status, at: new Date(r.run_at) } : null,
      outboxPending: num(r.outbox_pending ?? r.pending_outbound),
      dead: num(r.dead_letters),
      errors: streamErrors(r),
    });
  }
  return { connections: [...connections.values()], streams };
}

async function readCron(sql: postgres.Sql, now: Date): Promise<CronStatus[]> {
  const jobs = await sql`
    select j.jobname, j.schedule, d.status, d.start_time
    from cron.job j
    left join lateral (select r.status, r.start_time from cron.job_run_details r
                       where r.jobid = j.jobid order by r.runid desc limit 1) d on true
    where j.active
    order by j.jobname`;
  return jobs.map((j) => ({
    name: j.jobname,
    schedule: j.schedule,
    next: nextCronRun(j.schedule, now),
    last: j.start_time ? { status: j.status, at: new Date(j.start_time) } : null,
  }));
}

async function readNet(sql: postgres.Sql) {
  // The functions answer with JSON.stringify, so a failed run's body holds `"ok":false` exactly.
  const [n] = await sql`
    select (select count(*) from net.http_request_queue)::int as queued,
           count(*) filter (where created > now() - interval '1 hour')::int as last_hour,
           count(*) filter (where created > now() - interval '1 hour'
                              and (status_code >= 400 or error_msg is not null or timed_out
                                   or strpos(content, '"ok":false') > 0))::int as failed
    from net._http_response`;
  return { queued: n.queued, lastHour: n.last_hour, failed: n.failed };
}

async function readEngine(sql: postgres.Sql): Promise<StatusModel["engine"]> {
  const [e] = await sql`
    select e.*, extract(epoch from e.oldest_due_age)::float8 as oldest_s
    from crm.engine_status() e`;
  return {
    liveWorkers: num(e.live_workers),
    maxWorkers: num(e.max_workers),
    due: num(e.queued),
    running: num(e.running),
    waiting: num(e.waiting),
    dead: num(e.dead),
    oldestDueS: seconds(e.oldest_s),
  };
}

export async function readStatus(sql: postgres.Sql): Promise<StatusModel> {
  const [clock] = await sql`select now() as now`;
  const at = new Date(clock.now);
  const [rows, lag, cron, net, engine] = await Promise.all([
    readStreams(sql),
    webhookLag(sql),
    readCron(sql, at),
    readNet(sql),
    readEngine(sql),
  ]);
  return { at, engine, ...split(rows, lag), cron, net };
}
