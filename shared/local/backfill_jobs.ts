// `npm start`'s backfill when crm-connect queued it: the connections' inbound jobs run in the
// workers (crm-sync-bidirectional, woken by the enqueue), and this follows them until none is
// queued-and-due or running, reporting the same progress shape as the direct backfill
// (./backfill.ts) from crm.sync_log, so ./backfill_view.ts shows either. `requests` counts the
// inbound runs. Ends "failed" when a job died, "stalled" when nothing settled in time.
import type postgres from "postgres";
import type { BackfillProgress, BackfillResult, StreamTotals } from "./backfill.ts";

/** Active connections' inbound jobs that are queued or running. */
export async function pendingInbound(sql: postgres.Sql, ids: string[]): Promise<number> {
  const [r] = await sql`
    select count(*)::int as n from crm.jobs
    where kind = 'inbound' and connection_id = any (${ids}::uuid[])
      and state in ('queued', 'running')`;
  return r.n;
}

export async function followBackfillJobs(o: {
  sql: postgres.Sql;
  connectionIds: string[];
  /** Runs started from then on are counted (the connect queued them just before). */
  since: Date;
  onProgress?: (p: BackfillProgress) => void | Promise<void>;
  timeoutMs?: number;
  pollMs?: number;
}): Promise<BackfillResult> {
  const progress: BackfillProgress = {
    requests: 0,
    startedAt: Date.now(),
    streams: new Map(),
    retrying: null,
  };
  const until = Date.now() + (o.timeoutMs ?? 30 * 60_000);
  for (;;) {
    const [jobs] = await o.sql`
      select count(*) filter (where state = 'running' or (state = 'queued' and run_after <= now()))::int
               as busy,
             count(*) filter (where state = 'dead' and updated_at >= ${o.since})::int as dead
      from crm.jobs
      where kind = 'inbound' and connection_id = any (${o.connectionIds}::uuid[])`;
    const runs = await o.sql`
      select l.connection_id::text, c.provider, l.object, l.status, l.processed, l.created,
             l.updated, l.unchanged, l.deleted, l.failed, l.api_calls,
             coalesce((l.details ->> 'more')::boolean, false) as more,
             l.error ->> 'message' as error
      from crm.sync_log l join crm.connections c on c.id = l.connection_id
      where l.connection_id = any (${o.connectionIds}::uuid[]) and l.direction = 'inbound'
        and l.started_at >= ${o.since}
      order by l.id`;
    progress.requests = runs.length;
    progress.streams = new Map();
    for (const r of runs) {
      const id = `${r.connection_id}:${r.object}`;
      const t: StreamTotals = progress.streams.get(id) ?? {
        connection_id: r.connection_id,
        provider: r.provider,
        object: r.object,
        runs: 0,
        status: "",
        more: false,
        error: null,
        processed: 0,
        created: 0,
        updated: 0,
        unchanged: 0,
        deleted: 0,
        failed: 0,
        api_calls: 0,
      };
      for (
        const k of ["processed", "created", "updated", "unchanged", "deleted", "failed"] as const
      ) {
        t[k] += Number(r[k] ?? 0) || 0;
      }
      t.api_calls += Number(r.api_calls ?? 0) || 0;
      t.runs++;
      t.status = String(r.status ?? "");
      t.more = !!r.more;
      t.error = r.error ?? null;
      progress.streams.set(id, t);
    }
    await o.onProgress?.(progress);
    if (jobs.busy === 0) {
      return jobs.dead > 0
        ? { outcome: "failed", message: `${jobs.dead} inbound job(s) died`, progress }
        : { outcome: "done", message: "", progress };
    }
    if (Date.now() > until) {
      return { outcome: "stalled", message: "the inbound jobs did not settle", progress };
    }
    await new Promise((r) => setTimeout(r, o.pollMs ?? 1000));
  }
}
