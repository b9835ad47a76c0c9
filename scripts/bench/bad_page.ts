// The bad-page figure (issue 10, item 2): a page with ONE record whose value its column rejects,
// written through crm.save_inbound_page, against a clean page of the same size, in one open
// inbound run of a fresh connection. Target: the bad page costs at most 2× the clean one
// (before the fix, the page fell back to one apply_inbound per record). Two cases:
//   new records       backfill pages (each record takes the bulk insert path);
//   existing records  delta pages over the first page's records, each page one version newer
//                     with a few fields changed (each record takes the full statement).
// Decisions:
// * Whatever crm.save_inbound_page the database has, called by parameter name (./proc_call.ts),
//   in mode "full" with no watermark.
// * One warm-up clean page first (the session plans apply_inbound's statements; it is also the
//   delta pages' records); then per case `reps` pairs, clean first in odd pairs and bad first in
//   even ones, and the medians are compared. The bad record sits in the middle of its page.
// * The page's answer is checked: all but one record written, that one reported failed.
import type postgres from "postgres";
import { plainConnection } from "./connection.ts";
import { callByName, functionExists } from "./proc_call.ts";
import { backfillPage, deltaPage } from "./records.ts";

export type BadPageCase = "new records" | "existing records";

export interface BadPageResult {
  kind: BadPageCase;
  size: number;
  cleanMs: number[];
  badMs: number[];
  cleanMedian: number;
  badMedian: number;
  ratio: number;
  /** What the last bad page reported: records written and failed, a failure reason, and the
   * apply_inbound statements it took where save_inbound_page reports them (apply_calls). */
  answer: { written: number; failed: number; reason: string; applyCalls: number | null };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export async function measureBadPage(
  sql: postgres.Sql,
  opts: { size?: number; reps?: number } = {},
): Promise<BadPageResult[]> {
  const size = opts.size ?? 2000;
  const reps = opts.reps ?? 3;
  const connectionId = await plainConnection(sql);
  const [run] = await callByName(sql, "begin_inbound_run", {
    p_connection_id: connectionId,
    p_object: "contacts",
    p_trigger: "manual",
    p_mode: "full",
  });
  if (!run) throw new Error("crm.begin_inbound_run opened no run for a fresh connection");
  const middle = Math.floor(size / 2);
  let nextNew = 0;
  let nextVersion = 1;
  const page = (kind: BadPageCase, bad: boolean) => {
    if (kind === "existing records") {
      return deltaPage(0, size, size, nextVersion++, bad ? middle : undefined);
    }
    nextNew += size;
    return backfillPage(nextNew - size, size, bad ? middle : undefined);
  };
  const save = async (json: string) => {
    const t0 = performance.now();
    const [r] = await callByName(sql, "save_inbound_page", {
      p_run_id: run.run_id,
      p_connection_id: connectionId,
      p_object: "contacts",
      p_mode: "full",
      p_records: json,
      p_watermark_at: null,
      p_watermark_id: null,
      p_checkpoint: null,
      p_counts: "{}",
    }, run);
    return { ms: performance.now() - t0, r };
  };

  await save(page("new records", false));
  const results: BadPageResult[] = [];
  for (const kind of ["new records", "existing records"] as const) {
    const cleanMs: number[] = [];
    const badMs: number[] = [];
    let answer: BadPageResult["answer"] = { written: 0, failed: 0, reason: "", applyCalls: null };
    for (let i = 0; i < reps; i++) {
      for (const bad of i % 2 === 0 ? [false, true] : [true, false]) {
        const { ms, r } = await save(page(kind, bad));
        const written = kind === "new records" ? r.created : r.updated;
        // A save_inbound_page that keeps failures elsewhere may not return them: then only the
        // count written is checked.
        const failed = Array.isArray(r.failed) ? r.failed as { reason?: string }[] : null;
        if (written !== size - (bad ? 1 : 0) || (failed !== null && failed.length !== +bad)) {
          throw new Error(
            `a ${
              bad ? "bad" : "clean"
            } page of ${kind} wrote ${written} and failed ${failed?.length} of ${size}`,
          );
        }
        if (!bad) {
          cleanMs.push(ms);
          continue;
        }
        badMs.push(ms);
        answer = {
          written,
          failed: failed?.length ?? NaN,
          reason: failed?.[0]?.reason ?? "",
          applyCalls: typeof r.apply_calls === "number" ? r.apply_calls : null,
        };
      }
    }
    const cleanMedian = median(cleanMs);
    const badMedian = median(badMs);
    results.push({
      kind,
      size,
      cleanMs,
      badMs,
      cleanMedian,
      badMedian,
      ratio: badMedian / cleanMedian,
      answer,
    });
  }
  // The run's own close where the schema has one (it also releases a lease), else the log's.
  const close = await functionExists(sql, "close_inbound_run")
    ? "close_inbound_run"
    : "close_sync_run";
  await callByName(sql, close, { p_run_id: run.run_id, p_status: "success" }, run);
  return results;
}
