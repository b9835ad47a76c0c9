// A run's writes to crm.sync_log: each page through crm.save_inbound_page, and the close with
// the tally's details (warnings, samples, whether more is left), final counts, status and error
// (crm.close_sync_run then updates the connection).
import type { Sql } from "../db.ts";
import type { InboundResult } from "../mapping/mapper.ts";
import type { ChangePage, ObjectType } from "../providers/types.ts";
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

/** Where a page goes: the run it counts toward, and how it moves the stream's cursor. */
export interface PageTarget {
  runId: number;
  connectionId: string;
  object: ObjectType;
  /** delta / full move the watermark and their checkpoint; live moves neither. */
  mode: "delta" | "full" | "live";
}

/** Writes one mapped page through crm.save_inbound_page and adds its outcome to the tally. */
export async function savePage(
  sql: Sql,
  t: PageTarget,
  tally: RunTally,
  page: ChangePage,
  mapped: InboundResult[],
  checkpoint: unknown,
): Promise<void> {
  const watermark = t.mode === "live" ? null : page.watermark;
  const rows = await sql`
    select * from crm.save_inbound_page(${t.runId}, ${t.connectionId}, ${t.object}, ${t.mode},
      ${sql.json(mapped.map((m) => m.record) as never)}::jsonb,
      ${watermark?.modifiedAt ?? null}::timestamptz, ${watermark?.remoteId ?? null},
      ${checkpoint == null ? null : sql.json(checkpoint as never)}::jsonb,
      ${sql.json(tally.pageExtras(page.errors) as never)}::jsonb)`;
  tally.addPage(rows[0] as never, page.records.length, mapped.flatMap((m) => m.warnings));
}
