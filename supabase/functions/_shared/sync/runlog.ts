// Closing a run in crm.sync_log: the tally's details (warnings, samples, whether more is left)
// and the final counts, status and error, then crm.close_sync_run updates the connection.
import type { Sql } from "../db.ts";
import type { RunTally } from "./tally.ts";

export async function closeRun(
  sql: Sql,
  runId: number,
  status: "success" | "partial" | "failed",
  tally: RunTally,
  info: { message?: string; revoked?: boolean; more: boolean },
): Promise<void> {
  const counts = tally.pageExtras([]);
  const error = info.message || tally.failed
    ? {
      message: info.message ?? `${tally.failed} record(s) failed`,
      revoked: info.revoked ?? false,
      failures: tally.failures,
    }
    : null;
  await sql`update crm.sync_log
            set details = coalesce(details, '{}'::jsonb) || ${
    sql.json(tally.details(info.more) as never)
  }::jsonb
            where id = ${runId}`;
  await sql`select crm.close_sync_run(${runId}, ${status}, ${sql.json(counts as never)}::jsonb,
                                      ${error ? sql.json(error as never) : null}::jsonb)`;
}
