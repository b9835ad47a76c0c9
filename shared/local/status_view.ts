// The foreground view of `npm start`: services, database, cron, the job queue and its workers
// (crm.engine_status()), every connection's streams (rows in Postgres, latest run, pending
// outbound, errors) and rate budget (crm.budget_status()), and recent function calls, redrawn
// every two seconds on a terminal (every 30 s in a log) until Ctrl-C.
import postgres from "postgres";
import type { StackConfig } from "./config.ts";
import { servicePids } from "./stack.ts";

const CLEAR = "\x1b[2J\x1b[H";

const count = (v: string | number | null) => v == null ? "-" : Number(v).toLocaleString("en-US");
const time = (t: Date | string | null) => t ? new Date(t).toISOString().slice(11, 19) : null;

/** sync_status().last_error is the error's message, or its JSON text when it has none (e.g. a
 * JSON object stored as a string): show the message inside when there is one. */
function errorMessage(text: string): string {
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

/** Per connection, one line per stream: crm.sync_status() plus the stream's latest run. */
async function connectionLines(sql: postgres.Sql): Promise<string[]> {
  const rows = await sql`
    select s.connection_id::text, coalesce(c.name, s.provider) as name, s.provider,
           s.connection_status, c.settings ->> 'base_url' as base_url, s.object, s.enabled,
           s.records, s.pending_outbound, s.dead_letters, s.last_success_at, s.last_error,
           s.stale, s.inbox_pending, s.inbox_processing, s.inbox_dead,
           s.inbox_oldest_pending_age::text as inbox_age, r.status as run_status, r.trigger as run_trigger, r.processed as run_processed,
           coalesce(r.finished_at, r.started_at) as run_at
    from crm.sync_status() s
    join crm.connections c on c.id = s.connection_id
    left join lateral (
      select l.status, l.trigger, l.processed, l.started_at, l.finished_at
      from crm.sync_log l
      where l.connection_id = s.connection_id
        and case when s.object = 'outbound' then l.direction = 'outbound'
                 else l.direction = 'inbound' and l.object = s.object end
      order by l.started_at desc
      limit 1
    ) r on true
    order by s.provider, name, s.connection_id,
             array_position(array['contacts', 'companies', 'deals', 'owners', 'outbound'], s.object)`;
  const lines = ["connections (crm.sync_status() and the latest run in crm.sync_log)"];
  if (rows.length === 0) lines.push("  none registered");
  let current = "";
  for (const r of rows) {
    if (r.connection_id !== current) {
      current = r.connection_id;
      const target = r.base_url ? `sandbox ${r.base_url}` : "real account";
      lines.push(
        `  ${r.name} — ${r.provider}, ${r.connection_status}, ${target}, id ${r.connection_id}`,
        inboxLine(r),
        `    ${"object".padEnd(10)} ${"records".padStart(8)} ${"pending".padStart(7)} ${
          "dead".padStart(4)
        }  ${"last run".padEnd(34)} last ok`,
      );
    }
    const run = r.run_status
      ? `${r.run_status} ${time(r.run_at)} ${r.run_trigger} (${count(r.run_processed)})`
      : r.enabled
      ? "never"
      : "disabled";
    lines.push(
      `    ${String(r.object).padEnd(10)} ${count(r.records).padStart(8)} ${
        count(r.pending_outbound).padStart(7)
      } ${String(r.dead_letters).padStart(4)}  ${run.padEnd(34)} ${
        time(r.last_success_at) ?? "never"
      }${r.stale ? "  STALE" : ""}${
        r.last_error ? `  error: ${errorMessage(String(r.last_error)).slice(0, 70)}` : ""
      }`,
    );
  }
  return lines;
}

const age = (v: string | null) => v ? v.replace(/\.\d+$/, "") : "-";

/** The connection's webhook inbox backlog (crm.sync_status(): the same on each of its rows). */
export function inboxLine(r: Record<string, unknown>): string {
  const n = (k: string) => count(r[k] as string | number | null);
  return `    webhook inbox: ${n("inbox_pending")} pending · ${
    n("inbox_processing")
  } processing · ${n("inbox_dead")} dead · oldest pending ${age(r.inbox_age as string | null)}`;
}

/** The job queue: workers live of the most allowed, and jobs by state. */
async function engineLines(sql: postgres.Sql): Promise<string[]> {
  const [e] = await sql`select * from crm.engine_status()`;
  return [
    "jobs (crm.engine_status())",
    `  workers ${e.live_workers}/${e.max_workers} live · ${count(e.queued)} due · ${
      count(e.running)
    } running · ${count(e.waiting)} waiting · ${count(e.dead)} dead · oldest due ${
      age(e.oldest_due_age)
    }`,
  ];
}

/** Each connection's rate budget per limit class, used of its ceiling. */
async function budgetLines(sql: postgres.Sql): Promise<string[]> {
  const rows = await sql`
    select b.*, coalesce(c.name, c.provider) as name
    from crm.budget_status() b join crm.connections c on c.id = b.connection_id
    order by c.provider, name, b.connection_id, b.class`;
  const lines = ["rate budgets (crm.budget_status(): used of the ceiling per window)"];
  if (rows.length === 0) lines.push("  none used yet");
  const by = new Map<string, string[]>();
  for (const r of rows) {
    const parts = by.get(r.name) ?? [];
    const paused = r.paused_until && new Date(r.paused_until) > new Date()
      ? ` PAUSED until ${time(r.paused_until)}`
      : "";
    parts.push(`${r.class} ${count(r.used)}/${count(r.ceiling)}${paused}`);
    by.set(r.name, parts);
  }
  for (const [name, parts] of by) lines.push(`  ${name.padEnd(24)} ${parts.join(" · ")}`);
  return lines;
}

async function snapshot(
  sql: postgres.Sql,
  cfg: StackConfig,
  env: Record<string, string>,
  notes: string[],
) {
  const lines: string[] = [];
  const now = new Date().toISOString().replace("T", " ").slice(0, 19);
  lines.push(`crm-sync local stack — ${now} UTC — Ctrl-C stops everything`, ...notes, "");
  lines.push("services");
  for (const [name, pid] of Object.entries(servicePids(cfg))) {
    lines.push(`  ${name.padEnd(16)} ${pid ? `running (pid ${pid})` : "not running"}`);
  }
  const [db] =
    await sql`select version() as v, pg_size_pretty(pg_database_size('postgres')) as size`;
  lines.push(
    `  ${"postgres".padEnd(16)} ${
      String(db.v).split(" on ")[0]
    } · ${db.size} · ${env.SUPABASE_DB_URL}`,
  );
  lines.push(`  ${"gateway".padEnd(16)} ${env.SUPABASE_URL}/functions/v1/<slug>`);
  for (const k of ["HUBSPOT_API_URL", "SALESFORCE_API_URL", "PIPEDRIVE_API_URL"]) {
    if (env[k]) lines.push(`  ${k.padEnd(18)} ${env[k]}`);
  }
  const [has] = await sql`
    select to_regprocedure('crm.sync_status()') is not null as status,
           to_regprocedure('crm.engine_status()') is not null as engine,
           to_regprocedure('crm.budget_status(uuid)') is not null as budget`;
  if (has.engine) lines.push("", ...await engineLines(sql));
  if (has.status) lines.push("", ...await connectionLines(sql));
  if (has.budget) lines.push("", ...await budgetLines(sql));
  lines.push("", "pg_cron jobs");
  const jobs = await sql`
    select j.jobname, j.schedule, d.status, d.start_time
    from cron.job j
    left join lateral (select status, start_time from cron.job_run_details r
                       where r.jobid = j.jobid order by runid desc limit 1) d on true
    order by j.jobname`;
  for (const j of jobs) {
    const last = j.start_time
      ? `${j.status} at ${new Date(j.start_time).toISOString().slice(11, 19)}`
      : "not run yet";
    lines.push(`  ${String(j.jobname).padEnd(32)} ${String(j.schedule).padEnd(14)} ${last}`);
  }
  const [net] = await sql`
    select (select count(*) from net.http_request_queue)::int as queued,
           count(*) filter (where created > now() - interval '1 hour')::int as last_hour,
           count(*) filter (where created > now() - interval '1 hour'
                              and (status_code >= 400 or error_msg is not null or timed_out))::int as failed
    from net._http_response`;
  lines.push(
    "",
    `pg_net: ${net.queued} queued · ${net.last_hour} calls in the last hour · ${net.failed} failed`,
  );
  return lines.join("\n");
}

/** `notes`: lines shown under the title on every redraw (e.g. how the backfill went). */
export async function runStatusView(
  cfg: StackConfig,
  env: Record<string, string>,
  notes: string[] = [],
): Promise<void> {
  const sql = postgres(env.SUPABASE_DB_URL, { max: 1, onnotice: () => {} });
  const tty = Deno.stdout.isTerminal();
  for (;;) {
    const text = await snapshot(sql, cfg, env, notes).catch((e) =>
      `status unavailable: ${e.message}`
    );
    await Deno.stdout.write(new TextEncoder().encode((tty ? CLEAR : "\n") + text + "\n"));
    await new Promise((r) => setTimeout(r, tty ? 2000 : 30_000));
  }
}
