// The foreground view of `npm start`: services, database, cron and recent function calls,
// redrawn every two seconds until Ctrl-C.
import postgres from "postgres";
import type { StackConfig } from "./config.ts";
import { servicePids } from "./stack.ts";

const CLEAR = "\x1b[2J\x1b[H";

async function snapshot(sql: postgres.Sql, cfg: StackConfig, env: Record<string, string>) {
  const lines: string[] = [];
  const now = new Date().toISOString().replace("T", " ").slice(0, 19);
  lines.push(`crm-sync local stack — ${now} UTC — Ctrl-C stops everything`, "");
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
  const [{ has }] = await sql`select to_regprocedure('crm.sync_status()') is not null as has`;
  if (has) {
    const rows = await sql`select provider, object, connection_status, records, pending_outbound,
                                  dead_letters, last_success_at, last_error, stale
                           from crm.sync_status() order by provider, object`;
    lines.push("", "connections (crm.sync_status())");
    if (rows.length === 0) lines.push("  none registered");
    for (const r of rows) {
      const last = r.last_success_at
        ? new Date(r.last_success_at).toISOString().slice(11, 19)
        : "never";
      lines.push(
        `  ${String(r.provider).padEnd(11)} ${String(r.object).padEnd(10)} ${
          String(r.connection_status).padEnd(8)
        } ` +
          `records ${String(r.records ?? "-").padStart(7)}  pending ${
            String(r.pending_outbound).padStart(5)
          }  ` +
          `dead ${String(r.dead_letters).padStart(3)}  last ok ${last}${r.stale ? "  STALE" : ""}` +
          (r.last_error ? `  error: ${String(r.last_error).slice(0, 60)}` : ""),
      );
    }
  }
  lines.push(
    "",
    `pg_net: ${net.queued} queued · ${net.last_hour} calls in the last hour · ${net.failed} failed`,
  );
  return lines.join("\n");
}

export async function runStatusView(cfg: StackConfig, env: Record<string, string>): Promise<void> {
  const sql = postgres(env.SUPABASE_DB_URL, { max: 1, onnotice: () => {} });
  const tty = Deno.stdout.isTerminal();
  for (;;) {
    const text = await snapshot(sql, cfg, env).catch((e) => `status unavailable: ${e.message}`);
    await Deno.stdout.write(new TextEncoder().encode((tty ? CLEAR : "\n") + text + "\n"));
    await new Promise((r) => setTimeout(r, tty ? 2000 : 30_000));
  }
}
