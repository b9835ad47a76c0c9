// The drift check of one (connection, object): the hourly run that catches what webhooks and
// deltas missed, for the price of the ids and modification times. It takes the stream's lease
// (sync_log mode drift), then:
//   walk     pages of stamps (ProviderAdapter.stamps: the fewest properties the CRM allows, its
//            largest page, the backfill lane of the shared rate budget); each page is compared
//            with the mirror by one statement (crm.drift_compare_page, which also keeps the
//            listed ids server-side in crm.drift_seen), and only the differing records are
//            fetched (read by id in the adapter's batches, or taken from the page when the
//            listing carried them) and applied through the normal inbound page write (mode
//            retry: same ordering, echo and tombstone rules, no cursor moves);
//   confirm  local live rows the finished walk never listed (crm.drift_deletion_candidates)
//            are read by id; those the CRM no longer has are tombstoned, the others applied.
//            Absence from a listing alone never deletes anything.
// Position and totals are saved after each repaired page (crm.save_drift_progress), so a run
// stopped by its time or CPU budget is continued by the next from there. Each run's counts go
// to its sync_log details (drift), the walk's totals to the last run's (drift_walk).
import type { Sql } from "../db.ts";
import { type ObjectType, ProviderError, type StampPage } from "../providers/types.ts";
import { errorMessage, recordFailure } from "./connections.ts";
import type { SyncContext } from "./context.ts";
import {
  addCounts,
  chunks,
  countsOf,
  type Diff,
  type DriftCounts,
  emptyCounts,
  mergeStampPages,
  planRepair,
  stampsJson,
} from "./drift_plan.ts";
import type { RunProgress, RunSummary, Trigger } from "./inbound.ts";
import { applyByIds } from "./retry.ts";
import { closeRun, isLeaseLost, type PageTarget, savePage } from "./runlog.ts";
import { RunTally } from "./tally.ts";
import { mapPage } from "./walk.ts";

/** Ids per read by id (HubSpot's batch read and the retry batch; Salesforce reads 200 a query). */
const READ_BATCH = 100;
/** Deletion candidates confirmed per step. */
const CONFIRM_BATCH = 100;
/** Stamps compared by one statement at most: pages are gathered up to this (HubSpot lists 100
 * a page), as the walk's writes gather pages up to its write batch. */
const COMPARE_BATCH = 2_000;

export interface DriftOptions {
  object: ObjectType;
  trigger: Trigger;
  /** Epoch ms after which no new page is started. */
  deadline: number;
  cpuLeftMs?: () => number;
  pageSize?: number;
  now?: () => number;
  onProgress?: (p: RunProgress) => Promise<void>;
}

export interface DriftSummary extends RunSummary {
  drift: DriftCounts;
  /** The walk's totals when this run finished it. */
  drift_walk?: DriftCounts;
}

export async function runDrift(sql: Sql, ctx: SyncContext, o: DriftOptions): Promise<DriftSummary> {
  const now = o.now ?? Date.now;
  const { conn, adapter } = ctx;
  const tally = new RunTally(conn, o.object, ctx.calls);
  let counts = emptyCounts();
  const calls0 = ctx.calls();
  const bytes0 = ctx.bytes();
  const measured = (): DriftCounts => ({
    ...counts,
    api_calls: ctx.calls() - calls0,
    bytes: ctx.bytes() - bytes0,
  });
  const begun = await sql`
    select run_id, lease_token::text from crm.begin_inbound_run(${conn.id}, ${o.object},
      ${o.trigger}, 'drift', ${sql.json({ page_size: o.pageSize ?? null } as never)}::jsonb)`;
  if (begun.length === 0) {
    return {
      ...tally.summary(null, "skipped", {
        error: "another inbound run of this stream is in progress",
      }),
      drift: measured(),
    };
  }
  const runId = Number(begun[0].run_id);
  const token = begun[0].lease_token as string;
  const target: PageTarget = {
    runId,
    leaseToken: token,
    connectionId: conn.id,
    object: o.object,
    mode: "retry",
  };
  const cpuLeft = o.cpuLeftMs ?? (() => Infinity);
  const outOfBudget = () => now() >= o.deadline || cpuLeft() <= 0;
  const timedSql = async <T>(q: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await q();
    } finally {
      counts.sql_ms += performance.now() - t0;
    }
  };
  const progress = () =>
    o.onProgress?.({
      run_id: runId,
      processed: tally.processed,
      created: tally.created,
      updated: tally.updated,
      deleted: tally.deleted,
      failed: tally.failed,
      api_calls: ctx.calls() - calls0,
    });
  // Counts of this run not yet added to the walk's totals.
  let saved = emptyCounts();
  const save = async (phase: "walk" | "confirm" | "done", checkpoint: unknown) => {
    const m = measured();
    const delta: Partial<DriftCounts> = {};
    for (const k of Object.keys(m) as (keyof DriftCounts)[]) delta[k] = m[k] - saved[k];
    delta.sql_ms = Math.round(delta.sql_ms ?? 0);
    saved = m;
    const [r] = await sql`select crm.save_drift_progress(${runId}, ${token}::bigint, ${conn.id},
      ${o.object}, ${phase}, ${checkpoint == null ? null : sql.json(checkpoint as never)}::jsonb,
      ${sql.json(delta as never)}::jsonb) as totals`;
    return countsOf(r.totals);
  };

  try {
    const [state] = await sql`select * from crm.drift_walk_state(${runId}, ${token}::bigint,
      ${conn.id}, ${o.object})`;
    let phase = state.phase as "walk" | "confirm" | "done";
    let checkpoint: unknown = state.checkpoint;
    let totals = countsOf(state.totals);

    // The next page is fetched while the previous batch is compared and repaired. At the time
    // or CPU budget, the page fetched ahead is dropped: at most one page of stamps paid twice.
    const fetchPage = (cp: unknown): Promise<StampPage> => {
      const p = adapter.stamps(o.object, cp, { pageSize: o.pageSize, deadline: o.deadline });
      p.catch(() => {}); // a dropped prefetch must not fail as unhandled
      return p;
    };
    let ahead: Promise<StampPage> | null = phase === "walk" && !outOfBudget()
      ? fetchPage(checkpoint)
      : null;
    while (phase === "walk" && ahead && !outOfBudget()) {
      const pages: StampPage[] = [];
      let gathered = 0;
      while (ahead) {
        const next: StampPage = await ahead;
        ahead = null;
        pages.push(next);
        gathered += next.stamps.length + next.errors.length;
        if (!next.done && !outOfBudget()) ahead = fetchPage(next.checkpoint);
        if (next.done || gathered >= COMPARE_BATCH || outOfBudget()) break;
      }
      const page = mergeStampPages(pages);
      const stamps = stampsJson(page);
      const diffs = await timedSql(() =>
        sql<Diff[]>`select remote_id, reason from crm.drift_compare_page(${runId},
          ${token}::bigint, ${conn.id}, ${o.object}, ${stamps.json}::text::jsonb)`
      );
      const plan = planRepair([...diffs], page);
      if (plan.fromPage.length) {
        const prepared = mapPage(ctx.mapper, o.object, {
          records: plan.fromPage,
          errors: [],
          checkpoint: null,
          watermark: null,
          done: false,
        });
        await savePage(sql, target, tally, prepared, null);
      }
      for (const ids of chunks(plan.byId, READ_BATCH)) {
        // A listed record gone by the time it is read was deleted meanwhile: a tombstone.
        await applyByIds(sql, ctx, target, tally, ids, {
          deadline: o.deadline,
          tombstoneMissing: true,
        });
      }
      counts = addCounts(counts, {
        pages: pages.length,
        compared: stamps.count,
        unidentified: stamps.unidentified,
        fetched: plan.fromPage.length + plan.byId.length,
        ...plan.counts,
      });
      phase = page.done ? "confirm" : "walk";
      checkpoint = page.done ? null : page.checkpoint;
      totals = await save(phase, checkpoint);
      await progress();
    }

    while (phase === "confirm" && !outOfBudget()) {
      if (totals.unidentified > 0) {
        // Any local row could be one of the records listed without an id: none is a candidate.
        tally.sweepSkipped = `no deletions: the walk listed ${totals.unidentified} record(s) ` +
          "without a usable remote id";
        totals = await save("done", null);
        phase = "done";
        break;
      }
      const after = (checkpoint as { after?: string } | null)?.after ?? null;
      const rows = await timedSql(() =>
        sql<{ remote_id: string }[]>`select remote_id from crm.drift_deletion_candidates(
          ${runId}, ${token}::bigint, ${conn.id}, ${o.object}, ${after}, ${CONFIRM_BATCH})`
      );
      if (rows.length === 0) {
        totals = await save("done", null);
        phase = "done";
        break;
      }
      const ids = rows.map((r) => r.remote_id);
      const { read, missing } = await applyByIds(sql, ctx, target, tally, ids, {
        deadline: o.deadline,
        tombstoneMissing: true,
      });
      counts = addCounts(counts, {
        candidates: ids.length,
        deleted: missing.length,
        fetched: read,
      });
      checkpoint = { after: ids[ids.length - 1] };
      totals = await save("confirm", checkpoint);
      await progress();
    }

    const done = phase === "done";
    const status = tally.failed > 0 ? "partial" : "success";
    const drift = { ...measured(), sql_ms: Math.round(counts.sql_ms) };
    await closeRun(sql, { runId, leaseToken: token }, status, tally, {
      more: !done,
      details: { drift, bytes_fetched: drift.bytes, ...(done ? { drift_walk: totals } : {}) },
    });
    return {
      ...tally.summary(runId, status, { more: !done }),
      drift,
      ...(done ? { drift_walk: totals } : {}),
    };
  } catch (e) {
    const drift = { ...measured(), sql_ms: Math.round(counts.sql_ms) };
    if (isLeaseLost(e)) {
      return { ...tally.summary(runId, "failed", { error: errorMessage(e) }), drift };
    }
    const { message, revoked } = await recordFailure(sql, conn, e);
    const more = e instanceof ProviderError && e.action === "retry";
    await closeRun(sql, { runId, leaseToken: token }, "failed", tally, {
      message,
      revoked,
      more,
      details: { drift },
    }).catch((closeError) => {
      if (!isLeaseLost(closeError)) throw closeError;
    });
    const summary = {
      ...tally.summary(runId, "failed", { error: message || errorMessage(e), revoked, more }),
      drift,
    };
    const pausedUntil = e instanceof ProviderError ? e.pausedUntil : undefined;
    return pausedUntil ? { ...summary, paused_until: pausedUntil } : summary;
  }
}
