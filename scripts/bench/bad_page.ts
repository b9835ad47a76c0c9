// The bad-page figure (issue 10, item 2): a page of new contacts with ONE record whose value
// its column rejects, written through crm.save_inbound_page, against a clean page of the same
// size, both in one open inbound run of a fresh connection. Target: the bad page costs at most
// 2× the clean one (before the fix, the page fell back to one apply_inbound per record: ~80×).
// Decisions:
// * Whatever crm.save_inbound_page the database has, called by parameter name (./proc_call.ts),
//   in mode "full" as a backfill writes, with no watermark.
// * One warm-up clean page first (the session plans apply_inbound's statements); then `reps`
//   pairs, clean first in odd pairs and bad first in even ones, and the medians are compared.
// * Every page holds new records (numbers never repeat), the bad one in the middle of its page.
//   The page's answer is checked: all but one record written, that one reported failed.
import type postgres from "postgres";
import { plainConnection } from "./connection.ts";
import { callByName, functionExists } from "./proc_call.ts";
import { backfillPage } from "./records.ts";

export interface BadPageResult {
  size: number;
  cleanMs: number[];
  badMs: number[];
  cleanMedian: number;
  badMedian: number;
  ratio: number;
  /** What the last bad page reported: records created and failed, a failure reason, and the
   * apply_inbound statements it took where save_inbound_page reports them (apply_calls). */
  answer: { created: number; failed: number; reason: string; applyCalls: number | null };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export async function measureBadPage(
  sql: postgres.Sql,
  opts: { size?: number; reps?: number } = {},
): Promise<BadPageResult> {
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
  let next = 0;
  const save = async (bad: boolean) => {
    const json = backfillPage(next, size, bad ? Math.floor(size / 2) : undefined);
    next += size;
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

  await save(false);
  const cleanMs: number[] = [];
  const badMs: number[] = [];
  let answer: BadPageResult["answer"] = { created: 0, failed: 0, reason: "", applyCalls: null };
  for (let i = 0; i < reps; i++) {
    for (const bad of i % 2 === 0 ? [false, true] : [true, false]) {
      const { ms, r } = await save(bad);
      // A save_inbound_page that keeps failures elsewhere may not return them: then only the
      // count written is checked.
      const failed = Array.isArray(r.failed) ? r.failed as { reason?: string }[] : null;
      if (bad) {
        badMs.push(ms);
        answer = {
          created: r.created,
          failed: failed?.length ?? NaN,
          reason: failed?.[0]?.reason ?? "",
          applyCalls: typeof r.apply_calls === "number" ? r.apply_calls : null,
        };
        if (r.created !== size - 1 || (failed !== null && failed.length !== 1)) {
          throw new Error(
            `the bad page wrote ${r.created} and failed ${failed?.length} of ${size} records`,
          );
        }
      } else {
        cleanMs.push(ms);
        if (r.created !== size) throw new Error(`a clean page wrote ${r.created} of ${size}`);
      }
    }
  }
  // The run's own close where the schema has one (it also releases a lease), else the log's.
  const close = await functionExists(sql, "close_inbound_run")
    ? "close_inbound_run"
    : "close_sync_run";
  await callByName(sql, close, { p_run_id: run.run_id, p_status: "success" }, run);
  const cleanMedian = median(cleanMs);
  const badMedian = median(badMs);
  return { size, cleanMs, badMs, cleanMedian, badMedian, ratio: badMedian / cleanMedian, answer };
}
