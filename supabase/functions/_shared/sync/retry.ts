// Records that failed in earlier runs (crm.inbound_failures: the adapter could not parse them,
// or the database rejected them) are read again by id after a run's walk, when time is left,
// and written like any page, in mode "retry" (no cursor moves). Ids the walk itself read again
// (and failed again) in this run are not read twice. One that applies leaves the table; one that
// fails again waits longer (crm.due_inbound_failures hands out only those due); one the CRM no
// longer has leaves the table. A batch per run bounds the cost: RETRY_BATCH ids, read in the
// adapter's batch size.
// applyByIds is the read-by-id-and-apply step itself, shared with the webhook inbox
// (./inbox.ts), which also turns the ids the CRM no longer has into tombstones.
import type { Sql } from "../db.ts";
import type { RemoteRecord } from "../providers/types.ts";
import type { SyncContext } from "./context.ts";
import { type PageTarget, savePage } from "./runlog.ts";
import type { RunTally } from "./tally.ts";
import { mapPage } from "./walk.ts";

export const RETRY_BATCH = 100;

export interface ByIdsResult {
  /** Live records the CRM returned. */
  read: number;
  /** Ids the CRM has no live record for: not returned (purged, never existed) or returned
   * deleted (Salesforce's recycle bin: applied as deletions at their own time). */
  missing: string[];
}

/**
 * Reads `ids` by id (the adapter's batch reads, within the deadline) and writes what came back
 * as one page to `target`. With `tombstoneMissing`, ids the read does not return are written as
 * deleted records (their modification time: now, the engine's clock), except ids a record read
 * names as merged into it (the survivor's merged_ids makes them aliases); one `mergedInto` names
 * (a merge event's loser) is a deleted record merged into its survivor. Throws when the read
 * fails.
 */
export async function applyByIds(
  sql: Sql,
  ctx: SyncContext,
  target: PageTarget,
  tally: RunTally,
  ids: string[],
  o: { deadline: number; tombstoneMissing?: boolean; mergedInto?: ReadonlyMap<string, string> },
): Promise<ByIdsResult> {
  const got = await ctx.adapter.readByIds(target.object, ids, { deadline: o.deadline });
  const errors = got.errors.filter((e) => !e.missing);
  const absent = got.errors.filter((e) => e.missing).map((e) => e.remoteId as string);
  const records = [...got.records];
  if (o.tombstoneMissing && absent.length) {
    const aliased = new Set(got.records.flatMap((r) => r.mergedIds));
    const now = new Date().toISOString();
    for (const id of absent) {
      if (!aliased.has(id)) records.push(tombstone(id, now, o.mergedInto?.get(id)));
    }
  }
  const page = mapPage(ctx.mapper, target.object, {
    records,
    errors,
    checkpoint: null,
    watermark: null,
    done: false,
  });
  await savePage(sql, target, tally, page, null);
  const deleted = got.records.filter((r) => r.deleted);
  return {
    read: got.records.length - deleted.length,
    missing: [...absent, ...deleted.map((r) => r.remoteId)],
  };
}

/** A record the CRM no longer has, as a deletion listing would report it. */
function tombstone(remoteId: string, at: string, mergedInto?: string): RemoteRecord {
  return {
    remoteId,
    remoteType: "",
    modifiedAt: at,
    properties: {},
    deleted: true,
    mergedIds: [],
    ...(mergedInto ? { mergedInto } : {}),
  };
}

/** Re-reads and re-applies the stream's due failures; returns how many ids were retried. */
export async function retryFailures(
  sql: Sql,
  ctx: SyncContext,
  target: PageTarget,
  tally: RunTally,
  /** The run's deadline (epoch ms): the reads' waits, retries and timeouts fit it. */
  deadline: number,
): Promise<number> {
  const due = await sql<{ remote_id: string }[]>`
    select remote_id from crm.due_inbound_failures(${target.connectionId}, ${target.object},
                                                   ${RETRY_BATCH}, ${target.runId})`;
  if (due.length === 0) return 0;
  const ids = due.map((r) => r.remote_id);
  // A record the CRM no longer has cannot apply: its failure ends here (the mirror learns of
  // the deletion from the walk, the deletion listing or the sweep), instead of a retry a day
  // for ever.
  const { missing } = await applyByIds(sql, ctx, { ...target, mode: "retry" }, tally, ids, {
    deadline,
  });
  if (missing.length) {
    await sql`delete from crm.inbound_failures
              where connection_id = ${target.connectionId} and object = ${target.object}
                and remote_id = any(${missing}::text[])`;
  }
  return ids.length;
}
