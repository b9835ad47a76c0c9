// The pure parts of a drift check (./drift.ts): a stamps page as the compare statement takes it,
// what to do with the ids the compare returned (apply from the page, or read by id), and the
// counts a run reports. No I/O here.
import type { RemoteRecord, StampPage } from "../providers/types.ts";

export type DiffReason = "missing" | "stale" | "tombstoned";

export interface Diff {
  remote_id: string;
  reason: DiffReason;
}

/** What a run (and, summed, a walk) reports in sync_log details.drift. */
export interface DriftCounts {
  pages: number;
  /** Listed records compared with the mirror. */
  compared: number;
  missing: number;
  stale: number;
  tombstoned: number;
  /** Records fetched for a repair: read by id, or taken from a page that carried them. */
  fetched: number;
  /** Local rows the walk never listed, re-read by id to confirm. */
  candidates: number;
  /** Candidates the CRM no longer has: tombstoned. */
  deleted: number;
  /** Listed records without a remote id (any local row could be one: no deletions then). */
  unidentified: number;
  api_calls: number;
  bytes: number;
  /** Time spent in the compare and candidate statements (ms, as the worker measured them). */
  sql_ms: number;
}

export function emptyCounts(): DriftCounts {
  return {
    pages: 0,
    compared: 0,
    missing: 0,
    stale: 0,
    tombstoned: 0,
    fetched: 0,
    candidates: 0,
    deleted: 0,
    unidentified: 0,
    api_calls: 0,
    bytes: 0,
    sql_ms: 0,
  };
}

export function addCounts(a: DriftCounts, b: Partial<DriftCounts>): DriftCounts {
  const out = { ...a };
  for (const k of Object.keys(out) as (keyof DriftCounts)[]) out[k] += b[k] ?? 0;
  return out;
}

/** The walk's totals as crm.save_drift_progress returns them (unknown keys dropped). */
export function countsOf(totals: unknown): DriftCounts {
  const out = emptyCounts();
  if (totals && typeof totals === "object") {
    for (const k of Object.keys(out) as (keyof DriftCounts)[]) {
      const v = Number((totals as Record<string, unknown>)[k]);
      if (Number.isFinite(v)) out[k] = v;
    }
  }
  return out;
}

/**
 * A page's stamps as the JSON crm.drift_compare_page takes ([{id, m}]). Records listed without a
 * readable stamp but with an id go with m null: the compare reports them (missing, or stale), so
 * they are read by id, and they count as seen.
 */
export function stampsJson(page: StampPage): { json: string; count: number; unidentified: number } {
  const rows: { id: string; m: string | null }[] = page.stamps.map((s) => ({
    id: s.remoteId,
    m: s.modifiedAt,
  }));
  let unidentified = 0;
  for (const e of page.errors) {
    if (e.remoteId === null) unidentified++;
    else rows.push({ id: e.remoteId, m: null });
  }
  return { json: JSON.stringify(rows), count: rows.length, unidentified };
}

export interface RepairPlan {
  /** Differing records the page carried whole: applied as they are. */
  fromPage: RemoteRecord[];
  /** Differing ids to read by id. */
  byId: string[];
  counts: Pick<DriftCounts, "missing" | "stale" | "tombstoned">;
}

/** Splits the compare's answer into records to apply from the page and ids to read. */
export function planRepair(diffs: Diff[], page: StampPage): RepairPlan {
  const carried = new Map((page.records ?? []).map((r) => [r.remoteId, r]));
  const counts = { missing: 0, stale: 0, tombstoned: 0 };
  const fromPage: RemoteRecord[] = [];
  const byId: string[] = [];
  const seen = new Set<string>();
  for (const d of diffs) {
    if (seen.has(d.remote_id)) continue;
    seen.add(d.remote_id);
    counts[d.reason]++;
    const r = carried.get(d.remote_id);
    if (r) fromPage.push(r);
    else byId.push(d.remote_id);
  }
  return { fromPage, byId, counts };
}

/** Consecutive stamps pages as one compare: their stamps, records and errors, the last page's
 * checkpoint and end. */
export function mergeStampPages(pages: StampPage[]): StampPage {
  if (pages.length === 0) throw new RangeError("no pages to merge");
  const last = pages[pages.length - 1];
  const carried = pages.some((p) => p.records);
  return {
    stamps: pages.flatMap((p) => p.stamps),
    ...(carried ? { records: pages.flatMap((p) => p.records ?? []) } : {}),
    errors: pages.flatMap((p) => p.errors),
    checkpoint: last.checkpoint,
    done: last.done,
  };
}

/** `ids` in chunks of at most `size` (reads by id: the adapters' batch size). */
export function chunks<T>(ids: T[], size: number): T[][] {
  if (!(size >= 1)) throw new RangeError("chunk size must be at least 1");
  const out: T[][] = [];
  for (let i = 0; i < ids.length; i += size) out.push(ids.slice(i, i + size));
  return out;
}
