// Reads the backfill's progress from crm.backfill_progress() (per connection and object: state,
// records so far, the CRM's estimate, rate, ETA), the shape ./backfill_view.ts draws.
import type postgres from "postgres";

export interface ProgressRow {
  connection_id: string;
  provider: string;
  connection_name: string;
  object: string;
  state: "waiting" | "running" | "done" | "failed";
  records: number;
  /** null when the CRM gives no total (Pipedrive) or has not yet. */
  estimated_total: number | null;
  /** Records per second over the walk; null before it started. */
  rate: number | null;
  /** Seconds left while running with an estimate; null otherwise. */
  eta_s: number | null;
  started_at: Date | null;
  finished_at: Date | null;
  runs: number;
  last_error: string | null;
}

const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));

/** The connections' rows (every visible connection's without ids). */
export async function readProgress(sql: postgres.Sql, ids?: string[]): Promise<ProgressRow[]> {
  const rows = await sql`
    select connection_id::text, provider, connection_name, object, state, records,
           estimated_total, rate, extract(epoch from eta) as eta_s, started_at, finished_at,
           runs, last_error
    from crm.backfill_progress()
    where ${ids ?? null}::uuid[] is null or connection_id = any (${ids ?? null}::uuid[])`;
  return rows.map((r) => ({
    connection_id: r.connection_id,
    provider: r.provider,
    connection_name: r.connection_name,
    object: r.object,
    state: r.state,
    records: Number(r.records),
    estimated_total: num(r.estimated_total),
    rate: num(r.rate),
    eta_s: num(r.eta_s),
    started_at: r.started_at,
    finished_at: r.finished_at,
    runs: Number(r.runs),
    last_error: r.last_error,
  }));
}
