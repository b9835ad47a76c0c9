// One inbound run of one (connection, object): page oldest-first from the stored watermark (or
// from the start in full mode), map each page, write it with crm.save_inbound_page (apply +
// watermark + checkpoint + counts in one statement), stop at the deadline and continue on the
// next run from the saved checkpoint. Pages are fetched ahead while earlier ones are written,
// and written together when they queue up (./feed.ts). Every outcome is closed in
// crm.sync_log with truthful counts.
import type { Sql } from "../db.ts";
import { type ChangePage, type ObjectType, type ProviderName } from "../providers/types.ts";
import { recordFailure } from "./connections.ts";
import type { SyncContext } from "./context.ts";
import { PageFeed } from "./feed.ts";
import { closeRun, mergePages, type PreparedPage, preparePage, savePage } from "./runlog.ts";
import { RunTally } from "./tally.ts";

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

/** Providers whose change walk does not carry deletions: archived records are listed apart. */
const SEPARATE_DELETE_LISTING = new Set<ProviderName>(["hubspot"]);
/** Records per crm.save_inbound_page call at most, when pages queue up faster than they are
 * written; also the most records fetched ahead of the writer. */
const WRITE_BATCH_RECORDS = 2_000;
/** Deletion listings re-read this far behind the watermark (clock skew, search lag). */
const DELETE_OVERLAP_MS = 5 * 60_000;

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
  // Owner listings have no modified filter anywhere: they are always walked whole.
  const mode: InboundMode = o.object === "owners" ? "full" : o.mode;
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
  const prepare = (page: ChangePage) =>
    preparePage(page, page.records.map((r) => mapper.inbound(o.object, r)));
  // Mapped and serialized as they arrive, so the writer never waits for it.
  const fetchPage = async (cp: unknown) =>
    prepare(
      await adapter.changesSince(o.object, from, cp, o.pageSize ? { pageSize: o.pageSize } : {}),
    );
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
    if (done && from && SEPARATE_DELETE_LISTING.has(conn.provider)) {
      const since = new Date(Date.parse(from.modifiedAt) - DELETE_OVERLAP_MS).toISOString();
      const gone = await adapter.deletedSince(o.object, since);
      if (gone.length) {
        await save(
          prepare({ records: gone, errors: [], checkpoint: null, watermark: null, done: true }),
          null,
        );
      }
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
