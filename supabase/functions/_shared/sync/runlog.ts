// A run's writes to crm.sync_log: each page through crm.save_inbound_page (fenced by the run's
// lease token; a dry run's pages through crm.preview_inbound_page, which writes nothing), and
// the close with the tally's details (warnings, samples, whether more is left), final counts,
// status and error (crm.close_inbound_run for a leased run, crm.close_sync_run for a live one).
import { redactSecrets } from "../http/redact.ts";
import type { Sql } from "../db.ts";
import { cleanString } from "../mapping/clean.ts";
import type { InboundResult, MappingWarning } from "../mapping/mapper.ts";
import type { ChangePage, ObjectType, RecordError, Watermark } from "../providers/types.ts";
import type { RunTally } from "./tally.ts";

/** The SQLSTATE of crm._hold_inbound_lease: another run took the stream over. */
export const LEASE_LOST = "CRM10";

export function isLeaseLost(e: unknown): boolean {
  return (e as { code?: unknown } | null)?.code === LEASE_LOST;
}

export async function closeRun(
  sql: Sql,
  run: { runId: number; leaseToken: string | null },
  status: "success" | "partial" | "failed",
  tally: RunTally,
  info: { message?: string; revoked?: boolean; more: boolean; details?: Record<string, unknown> },
): Promise<void> {
  const counts = tally.pageExtras([]);
  const error = info.message || tally.failed
    ? {
      message: redactSecrets(info.message ?? `${tally.failed} record(s) failed`),
      revoked: info.revoked ?? false,
      failures: tally.failures,
    }
    : null;
  const details = sql.json({ ...tally.details(info.more), ...info.details } as never);
  const err = error ? sql.json(error as never) : null;
  if (run.leaseToken !== null) {
    await sql`select crm.close_inbound_run(${run.runId}, ${run.leaseToken}::bigint, ${status},
                ${sql.json(counts as never)}::jsonb, ${err}::jsonb, ${details}::jsonb)`;
    return;
  }
  await sql`update crm.sync_log
            set details = coalesce(details, '{}'::jsonb) || ${details}::jsonb
            where id = ${run.runId}`;
  await sql`select crm.close_sync_run(${run.runId}, ${status}, ${sql.json(counts as never)}::jsonb,
                                      ${err}::jsonb)`;
}

/** Where a page goes: the run it counts toward, and how it moves the stream's cursor. */
export interface PageTarget {
  /** null in a dry run (nothing is logged). */
  runId: number | null;
  /** The run's fencing token (a bigint as text); null for live runs and dry runs. */
  leaseToken: string | null;
  connectionId: string;
  object: ObjectType;
  /** delta / full move the watermark and their checkpoint; live and retry move neither. */
  mode: "delta" | "full" | "live" | "retry";
  /** Preview the page (crm.preview_inbound_page): counts as a real write, nothing written. */
  dryRun?: boolean;
}

/** A page mapped and serialized for crm.save_inbound_page: prepared while earlier pages are
 * still being written, and holding only the JSON, not the provider's records. */
export interface PreparedPage {
  count: number;
  /** The mapped records, a JSON array. */
  json: string;
  /** Remote ids of the mapped records (a dry full walk previews its sweep with them). */
  ids: string[];
  warnings: MappingWarning[];
  errors: RecordError[];
  checkpoint: unknown;
  watermark: Watermark | null;
  done: boolean;
  /** Records the walk has left from this page on (ChangePage.total); undefined when unknown. */
  total?: number;
}

export function preparePage(page: ChangePage, mapped: InboundResult[]): PreparedPage {
  return {
    count: page.records.length,
    json: JSON.stringify(mapped.map((m) => m.record)),
    ids: page.records.map((r) => r.remoteId),
    warnings: mapped.flatMap((m) => m.warnings),
    // Reasons can quote the CRM's text, which may hold what Postgres cannot store (a NUL).
    errors: page.errors.map((e) => ({
      remoteId: e.remoteId === null ? null : cleanString(e.remoteId),
      reason: cleanString(e.reason),
    })),
    checkpoint: page.checkpoint,
    watermark: page.watermark,
    done: page.done,
    ...(page.total === undefined ? {} : { total: page.total }),
  };
}

/** What remains from the first of consecutive pages on: the last known total plus the records
 * of the pages before it (undefined when none of them knew). */
function remainingFrom(pages: PreparedPage[]): number | undefined {
  const k = pages.findLastIndex((p) => p.total !== undefined);
  if (k < 0) return undefined;
  return pages.slice(0, k).reduce((n, p) => n + p.count, pages[k].total!);
}

/** Consecutive pages (oldest first) as one write: the newest page's checkpoint and watermark. */
export function mergePages(pages: PreparedPage[]): PreparedPage {
  const last = pages[pages.length - 1];
  const parts = pages.filter((p) => p.count > 0).map((p) => p.json.slice(1, -1));
  return {
    count: pages.reduce((n, p) => n + p.count, 0),
    json: `[${parts.join(",")}]`,
    ids: pages.flatMap((p) => p.ids),
    warnings: pages.flatMap((p) => p.warnings),
    errors: pages.flatMap((p) => p.errors),
    checkpoint: last.checkpoint,
    watermark: pages.findLast((p) => p.watermark)?.watermark ?? null,
    done: last.done,
    ...(remainingFrom(pages) === undefined ? {} : { total: remainingFrom(pages) }),
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
  const watermark = t.mode === "delta" || t.mode === "full" ? page.watermark : null;
  const unread = sql.json(
    page.errors.map((e) => ({ remote_id: e.remoteId, reason: e.reason })) as never,
  );
  const extras: Record<string, number> = tally.pageExtras(page.errors);
  // The walk's estimate (crm.record_sync_progress): only pages that move the stream have one.
  if ((t.mode === "delta" || t.mode === "full") && page.total !== undefined) {
    extras.remaining = page.total;
  }
  const rows = t.dryRun
    ? await sql`
      select * from crm.preview_inbound_page(${t.connectionId}, ${t.object}, ${t.mode},
        ${page.json}::text::jsonb, ${unread}::jsonb)`
    : await sql`
      select * from crm.save_inbound_page(${t.runId}, ${t.leaseToken}::bigint, ${t.connectionId},
        ${t.object}, ${t.mode}, ${page.json}::text::jsonb,
        ${watermark?.modifiedAt ?? null}::timestamptz, ${watermark?.remoteId ?? null},
        ${checkpoint == null ? null : sql.json(checkpoint as never)}::jsonb,
        ${sql.json(extras as never)}::jsonb, ${unread}::jsonb)`;
  tally.addPage(rows[0] as never, page.count, page.warnings);
}
