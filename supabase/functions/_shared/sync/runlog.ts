// A run's writes to crm.sync_log: each page through crm.save_inbound_page, and the close with
// the tally's details (warnings, samples, whether more is left), final counts, status and error
// (crm.close_sync_run then updates the connection).
import type { Sql } from "../db.ts";
import type { InboundResult, MappingWarning } from "../mapping/mapper.ts";
import type { ChangePage, ObjectType, RecordError, Watermark } from "../providers/types.ts";
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

/** A page mapped and serialized for crm.save_inbound_page: prepared while earlier pages are
 * still being written, and holding only the JSON, not the provider's records. */
export interface PreparedPage {
  count: number;
  /** The mapped records, a JSON array. */
  json: string;
  warnings: MappingWarning[];
  errors: RecordError[];
  checkpoint: unknown;
  watermark: Watermark | null;
  done: boolean;
}

export function preparePage(page: ChangePage, mapped: InboundResult[]): PreparedPage {
  return {
    count: page.records.length,
    json: JSON.stringify(mapped.map((m) => m.record)),
    warnings: mapped.flatMap((m) => m.warnings),
    errors: page.errors,
    checkpoint: page.checkpoint,
    watermark: page.watermark,
    done: page.done,
  };
}

/** Consecutive pages (oldest first) as one write: the newest page's checkpoint and watermark. */
export function mergePages(pages: PreparedPage[]): PreparedPage {
  const last = pages[pages.length - 1];
  const parts = pages.filter((p) => p.count > 0).map((p) => p.json.slice(1, -1));
  return {
    count: pages.reduce((n, p) => n + p.count, 0),
    json: `[${parts.join(",")}]`,
    warnings: pages.flatMap((p) => p.warnings),
    errors: pages.flatMap((p) => p.errors),
    checkpoint: last.checkpoint,
    watermark: pages.findLast((p) => p.watermark)?.watermark ?? null,
    done: last.done,
  };
}

/** Writes one prepared page through crm.save_inbound_page and adds its outcome to the tally.
 * The JSON goes as text: a parameter typed jsonb would be sent as a JSON string scalar. */
export async function savePage(
  sql: Sql,
  t: PageTarget,
  tally: RunTally,
  page: PreparedPage,
  checkpoint: unknown,
): Promise<void> {
  const watermark = t.mode === "live" ? null : page.watermark;
  const rows = await sql`
    select * from crm.save_inbound_page(${t.runId}, ${t.connectionId}, ${t.object}, ${t.mode},
      ${page.json}::text::jsonb,
      ${watermark?.modifiedAt ?? null}::timestamptz, ${watermark?.remoteId ?? null},
      ${checkpoint == null ? null : sql.json(checkpoint as never)}::jsonb,
      ${sql.json(tally.pageExtras(page.errors) as never)}::jsonb)`;
  tally.addPage(rows[0] as never, page.count, page.warnings);
}
