// One inbound run of one (connection, object): take the stream's lease, page oldest-first from
// the stored watermark (or from the start in full mode), map each page, write it with
// crm.save_inbound_page (lease check + apply + watermark + checkpoint + counts in one
// statement), stop at the deadline and continue on the next run from the saved checkpoint;
// then, time left, retry the records that failed before (./retry.ts). Pages are fetched ahead
// while earlier ones are written, and written together when they queue up (./feed.ts). Every
// outcome is closed in crm.sync_log with truthful counts. A run that lost its lease (CRM10)
// stops at once: the run that took the stream over closed its log row. A dry run takes no lease
// and writes nothing: each page is previewed by one statement that undoes its own writes, so no
// transaction is ever open while the CRM is called.
import type { Sql } from "../db.ts";
import { type ObjectType, ProviderError, type ProviderName } from "../providers/types.ts";
import { errorMessage, recordFailure } from "./connections.ts";
import type { SyncContext } from "./context.ts";
import { PageFeed } from "./feed.ts";
import {
  closeRun,
  isLeaseLost,
  mergePages,
  type PageTarget,
  type PreparedPage,
  savePage,
} from "./runlog.ts";
import { retryFailures } from "./retry.ts";
import { RunTally } from "./tally.ts";
import { deletionPage, listsDeletionsAfter, pageReader, streamMode } from "./walk.ts";

export type InboundMode = "delta" | "full";
/** What started a run: `app` is an app write that queued an outbound push. */
export type Trigger = "cron" | "webhook" | "manual" | "backfill" | "live" | "app";

export interface InboundOptions {
  object: ObjectType;
  mode: InboundMode;
  trigger: Trigger;
  /** Epoch ms after which no new page is started. */
  deadline: number;
  dryRun?: boolean;
  pageSize?: number;
  now?: () => number;
  /** CPU ms the caller has left: at 0 no new page is started, as at the deadline, and no page
   * is fetched ahead when a batch would not fit in it (a page fetched and then dropped at the
   * budget is a CRM call paid twice). */
  cpuLeftMs?: () => number;
  /** Called after every write with the run's counts so far (a job's heartbeat and progress);
   * a throw stops the run like any failure. */
  onProgress?: (p: RunProgress) => Promise<void>;
}

export interface RunProgress {
  run_id: number | null;
  processed: number;
  created: number;
  updated: number;
  deleted: number;
  failed: number;
  api_calls: number;
}

export interface RunSummary {
  connection_id: string;
  provider: ProviderName;
  object: ObjectType;
  run_id: number | null;
  status: "success" | "partial" | "failed" | "skipped";
  processed: number;
  created: number;
  updated: number;
  unchanged: number;
  deleted: number;
  failed: number;
  api_calls: number;
  warnings: number;
  conflicts: number;
  tombstoned: number;
  /** Calling again continues the stream: it stopped at its time budget, or failed transiently
   * (out of time, a hung or failing CRM) after saving its checkpoint. Never set for revoked,
   * fenced-out or skipped runs. */
  more: boolean;
  dry_run?: boolean;
  /** Why the full walk's sweep tombstoned nothing (it read records without a remote id). */
  sweep_skipped?: string;
  /** The CRM refused the credentials: the connection is now in status error. */
  revoked?: boolean;
  /** The connection's rate budget is paused until then (only its reserve is left). */
  paused_until?: string;
  error?: string;
}

/** Records per crm.save_inbound_page call at most, when pages queue up faster than they are
 * written; also the most records fetched ahead of the writer. */
const WRITE_BATCH_RECORDS = 2_000;

export async function runInbound(
  sql: Sql,
  ctx: SyncContext,
  o: InboundOptions,
): Promise<RunSummary> {
  const summary = await walk(sql, ctx, o);
  return o.dryRun ? { ...summary, dry_run: true } : summary;
}

interface Opened {
  runId: number | null;
  leaseToken: string | null;
  watermark_at: string | Date | null;
  watermark_id: string | null;
  delta_checkpoint: unknown;
  full_sync_checkpoint: unknown;
}

/** Takes the stream's lease (null when another run holds it); a dry run only reads the cursor. */
async function openRun(
  sql: Sql,
  connectionId: string,
  o: InboundOptions,
  mode: InboundMode,
): Promise<Opened | null> {
  if (o.dryRun) {
    const rows = await sql`
      select c.watermark_at, c.watermark_id, c.delta_checkpoint, c.full_sync_checkpoint
      from (select 1) one
      left join crm.sync_cursors c on c.connection_id = ${connectionId} and c.object = ${o.object}`;
    return { runId: null, leaseToken: null, ...rows[0] } as Opened;
  }
  const begun = await sql`
    select run_id, lease_token::text, watermark_at, watermark_id, delta_checkpoint,
           full_sync_checkpoint
    from crm.begin_inbound_run(${connectionId}, ${o.object}, ${o.trigger}, ${mode},
      ${sql.json({ page_size: o.pageSize ?? null } as never)}::jsonb)`;
  if (begun.length === 0) return null;
  const r = begun[0];
  return { ...r, runId: Number(r.run_id), leaseToken: r.lease_token } as Opened;
}

/** Ends a completed full walk: tombstones what it did not read (a dry run previews it). */
async function sweep(
  sql: Sql,
  t: PageTarget,
  tally: RunTally,
  dry: { seen: string[]; unidentified: number },
): Promise<void> {
  const [r] = t.dryRun
    ? await sql`select * from crm.preview_full_sync_sweep(${t.connectionId}, ${t.object},
                  ${dry.seen}::text[], ${dry.unidentified})`
    : await sql`select * from crm.finish_full_sync_sweep(${t.connectionId}, ${t.object},
                  ${t.runId}, ${t.leaseToken}::bigint)`;
  tally.tombstoned = Number(r.tombstoned);
  tally.sweepSkipped = r.skipped ?? null;
  if (tally.tombstoned && t.runId !== null) {
    await sql`select crm.record_sync_progress(${t.runId}, ${
      sql.json({ deleted: tally.tombstoned } as never)
    }::jsonb)`;
  }
}

async function walk(sql: Sql, ctx: SyncContext, o: InboundOptions): Promise<RunSummary> {
  const now = o.now ?? Date.now;
  const { conn, adapter, mapper } = ctx;
  // Objects the adapter cannot filter by modification time are walked whole.
  const mode: InboundMode = streamMode(adapter, o.object, o.mode);
  const tally = new RunTally(conn, o.object, ctx.calls);
  // Bytes of the CRM's answers this run read (details.bytes_fetched; compared with the drift
  // check's in the benchmark).
  const bytes0 = ctx.bytes();
  const run = await openRun(sql, conn.id, o, mode);
  if (!run) {
    return tally.summary(null, "skipped", {
      error: "another inbound run of this stream is in progress",
    });
  }
  const runId = run.runId;
  const from = mode === "delta" && run.watermark_at
    ? { modifiedAt: new Date(run.watermark_at).toISOString(), remoteId: run.watermark_id ?? "" }
    : null;
  const checkpoint: unknown = mode === "full" ? run.full_sync_checkpoint : run.delta_checkpoint;
  // Mapped and serialized as they arrive, so the writer never waits for it. Every adapter call
  // (its rate-limit waits, retries and request timeouts) fits the run's deadline.
  const fetchPage = pageReader(adapter, mapper, o.object, from, {
    pageSize: o.pageSize,
    deadline: o.deadline,
    // The walk's estimate (crm.backfill_progress) is worth a call per walk; a dry run's is not.
    countTotal: !o.dryRun,
  });
  const target: PageTarget = {
    runId,
    leaseToken: run.leaseToken,
    connectionId: conn.id,
    object: o.object,
    mode,
    dryRun: o.dryRun,
  };
  // A dry full walk keeps what it read in memory: its pages were not kept, the sweep preview
  // needs them.
  const dry = { seen: [] as string[], unidentified: 0 };
  const save = (page: PreparedPage, cp: unknown) => {
    if (o.dryRun && mode === "full") {
      dry.seen.push(...page.ids);
      for (const e of page.errors) {
        if (e.remoteId === null) dry.unidentified++;
        else dry.seen.push(e.remoteId);
      }
    }
    return savePage(sql, target, tally, page, cp);
  };

  const cpuLeft = o.cpuLeftMs ?? (() => Infinity);
  const outOfBudget = () => now() >= o.deadline || cpuLeft() <= 0;
  // CPU one batch took (fetch, map and write; decaying, so one slow batch does not stop every
  // later prefetch).
  let batchCpuMs = 0;
  let lastLeft = cpuLeft();
  let done = false;
  let lastSaveMs = 0;
  const feed = new PageFeed(fetchPage, checkpoint, {
    batchRecords: WRITE_BATCH_RECORDS,
    maxAhead: WRITE_BATCH_RECORDS,
    // A page fetched now is written after the batch being written: not worth it past the deadline.
    mayFetch: () => now() + lastSaveMs < o.deadline && cpuLeft() > batchCpuMs,
    merge: mergePages,
  });
  try {
    // The runs of one walk (a first run and the continuations from its checkpoint) share its
    // progress: crm.backfill_progress() sums them.
    if (runId !== null) {
      await sql`select crm.mark_inbound_walk(${runId}, ${checkpoint != null})`;
    }
    for (let batch = await feed.next(); batch; batch = await feed.next()) {
      const saveStart = now();
      await save(batch, batch.done ? null : batch.checkpoint);
      lastSaveMs = now() - saveStart;
      if (o.cpuLeftMs) {
        const left = cpuLeft();
        batchCpuMs = Math.max(batchCpuMs / 2, lastLeft - left);
        lastLeft = left;
      }
      await o.onProgress?.({
        run_id: runId,
        processed: tally.processed,
        created: tally.created,
        updated: tally.updated,
        deleted: tally.deleted,
        failed: tally.failed,
        api_calls: ctx.calls(),
      });
      if (batch.done) {
        done = true;
        break;
      }
      if (outOfBudget()) break;
    }
    feed.stop();
    if (done && listsDeletionsAfter(adapter, mode)) {
      const gone = await deletionPage(adapter, mapper, o.object, { deadline: o.deadline });
      if (gone) await save(gone, null);
    }
    if (done && mode === "full") await sweep(sql, target, tally, dry);
    // Records that failed before and that this run has not read again, while time is left: after
    // the sweep, and never failing the run. A retry that cannot read (the CRM fails now, or
    // answers 404 for a record it no longer has) leaves the failures for a later run.
    if (!o.dryRun && !outOfBudget()) {
      try {
        await retryFailures(sql, ctx, target, tally, o.deadline);
      } catch (e) {
        if (isLeaseLost(e)) throw e;
        // Kept in the run's sync_log details (retry_error).
        tally.retryError = errorMessage(e);
      }
    }
    const status = tally.failed > 0 ? "partial" : "success";
    if (runId !== null) {
      await closeRun(sql, { runId, leaseToken: run.leaseToken }, status, tally, {
        more: !done,
        details: { bytes_fetched: ctx.bytes() - bytes0 },
      });
    }
    return tally.summary(runId, status, { more: !done });
  } catch (e) {
    feed.stop();
    // The run that took the stream over has closed this run's log row already.
    if (isLeaseLost(e)) {
      return tally.summary(runId, "failed", { error: errorMessage(e) });
    }
    const { message, revoked } = await recordFailure(sql, conn, e);
    // Only a transient failure (out of time, a hung or failing CRM after the retries the budget
    // allowed) is continued by the next call, from the checkpoint saved before it.
    const more = e instanceof ProviderError && e.action === "retry";
    const pausedUntil = e instanceof ProviderError
      ? (e as ProviderError & { pausedUntil?: string }).pausedUntil
      : undefined;
    if (runId !== null) {
      await closeRun(sql, { runId, leaseToken: run.leaseToken }, "failed", tally, {
        message,
        revoked,
        more,
      }).catch((closeError) => {
        if (!isLeaseLost(closeError)) throw closeError;
      });
    }
    const summary = tally.summary(runId, "failed", { error: message, revoked, more });
    return pausedUntil ? { ...summary, paused_until: pausedUntil } : summary;
  }
}
