// One inbound run of one (connection, object): page oldest-first from the stored watermark (or
// from the start in full mode), map each page, write it with crm.save_inbound_page (apply +
// watermark + checkpoint + counts in one statement), stop at the deadline and continue on the
// next run from the saved checkpoint. Pages are fetched ahead while earlier ones are written,
// and written together when they queue up (./feed.ts). Every outcome is closed in
// crm.sync_log with truthful counts.
import type { Sql } from "../db.ts";
import { type ObjectType, type ProviderName } from "../providers/types.ts";
import { recordFailure } from "./connections.ts";
import type { SyncContext } from "./context.ts";
import { PageFeed } from "./feed.ts";
import { closeRun, mergePages, type PreparedPage, savePage } from "./runlog.ts";
import { RunTally } from "./tally.ts";
import { deletionPage, listsDeletionsAfter, pageReader, streamMode } from "./walk.ts";

export type InboundMode = "delta" | "full";
export type Trigger = "cron" | "webhook" | "manual" | "backfill" | "live";

export interface InboundOptions {
  object: ObjectType;
  mode: InboundMode;
  trigger: Trigger;
  /** Epoch ms after which no new page is started. */
  deadline: number;
  dryRun?: boolean;
  pageSize?: number;
  now?: () => number;
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
  more: boolean;
  dry_run?: boolean;
  /** The CRM refused the credentials: the connection is now in status error. */
  revoked?: boolean;
  error?: string;
}

/** Records per crm.save_inbound_page call at most, when pages queue up faster than they are
 * written; also the most records fetched ahead of the writer. */
const WRITE_BATCH_RECORDS = 2_000;

class DryRunRollback extends Error {
  constructor(readonly summary: RunSummary) {
    super("dry run");
  }
}

export async function runInbound(
  sql: Sql,
  ctx: SyncContext,
  o: InboundOptions,
): Promise<RunSummary> {
  if (!o.dryRun) return await walk(sql, ctx, o);
  try {
    await sql.begin(async (tx) => {
      throw new DryRunRollback(await walk(tx as unknown as Sql, ctx, o));
    });
  } catch (e) {
    if (e instanceof DryRunRollback) return { ...e.summary, dry_run: true };
    throw e;
  }
  throw new Error("unreachable");
}

async function walk(sql: Sql, ctx: SyncContext, o: InboundOptions): Promise<RunSummary> {
  const now = o.now ?? Date.now;
  const { conn, adapter, mapper } = ctx;
  // Objects the adapter cannot filter by modification time are walked whole.
  const mode: InboundMode = streamMode(adapter, o.object, o.mode);
  const tally = new RunTally(conn, o.object, ctx.calls);
  const begun = await sql`
    select * from crm.begin_inbound_run(${conn.id}, ${o.object}, ${o.trigger}, ${mode},
      ${sql.json({ dry_run: Boolean(o.dryRun), page_size: o.pageSize ?? null } as never)}::jsonb)`;
  if (begun.length === 0) {
    return tally.summary(null, "skipped", {
      error: "another inbound run of this stream is in progress",
    });
  }
  const run = begun[0];
  const runId = Number(run.run_id);
  const from = mode === "delta" && run.watermark_at
    ? { modifiedAt: new Date(run.watermark_at).toISOString(), remoteId: run.watermark_id ?? "" }
    : null;
  const checkpoint: unknown = mode === "full" ? run.full_sync_checkpoint : run.delta_checkpoint;
  // Mapped and serialized as they arrive, so the writer never waits for it. Every adapter call
  // (its rate-limit waits, retries and request timeouts) fits the run's deadline.
  const fetchPage = pageReader(adapter, mapper, o.object, from, {
    pageSize: o.pageSize,
    deadline: o.deadline,
  });
  const target = { runId, connectionId: conn.id, object: o.object, mode };
  const save = (page: PreparedPage, cp: unknown) => savePage(sql, target, tally, page, cp);

  let done = false;
  let lastSaveMs = 0;
  const feed = new PageFeed(fetchPage, checkpoint, {
    batchRecords: WRITE_BATCH_RECORDS,
    maxAhead: WRITE_BATCH_RECORDS,
    // A page fetched now is written after the batch being written: not worth it past the deadline.
    mayFetch: () => now() + lastSaveMs < o.deadline,
    merge: mergePages,
  });
  try {
    for (let batch = await feed.next(); batch; batch = await feed.next()) {
      const saveStart = now();
      await save(batch, batch.done ? null : batch.checkpoint);
      lastSaveMs = now() - saveStart;
      if (batch.done) {
        done = true;
        break;
      }
      if (now() >= o.deadline) break;
    }
    feed.stop();
    if (done && listsDeletionsAfter(adapter, mode)) {
      const gone = await deletionPage(adapter, mapper, o.object, { deadline: o.deadline });
      if (gone) await save(gone, null);
    }
    if (done && mode === "full") {
      const [{ n }] = await sql`select crm.finish_full_sync_sweep(${conn.id}, ${o.object}) as n`;
      tally.tombstoned = Number(n);
      if (tally.tombstoned) {
        await sql`select crm.record_sync_progress(${runId}, ${
          sql.json({ deleted: tally.tombstoned } as never)
        }::jsonb)`;
      }
    }
  } catch (e) {
    feed.stop();
    const { message, revoked } = await recordFailure(sql, conn, e);
    await closeRun(sql, runId, "failed", tally, { message, revoked, more: true });
    return tally.summary(runId, "failed", { error: message, more: true, revoked });
  }
  const status = tally.failed > 0 ? "partial" : "success";
  await closeRun(sql, runId, status, tally, { more: !done });
  return tally.summary(runId, status, { more: !done });
}
