// A push's "gone" answer to an update (the CRM has no such record) is settled by crm.fail_outbox
// as a CRM delete against the app's edit, by policy (app_wins: the row is created again as a new
// CRM record). A merge loser is gone the same way on Pipedrive, whose API keeps no trace of a
// merge: only the loser's webhook v2 delete event names the survivor (meta.merged_to_id), and
// the inbox applies it as a merge, re-targeting the record's pending app edit to the survivor
// (crm.apply_inbound step 12). Settled as a delete first, the edit went to a new record and the
// survivor kept the CRM's values (chaos finding, Pipedrive seed 3 app_wins).
// So an update's "gone" becomes a retry while a merge event of the record waits in the inbox
// (the inbox then settles the pending entry), and on Pipedrive the entry's first "gone" waits
// FIRST_GONE_WAIT_S for a merge event still on its way (delivery retries, a receiver restart).
// Limit: a merge event that never arrives (lost delivery) leaves the loser a plain deletion.
import type { Sql } from "../db.ts";
import type { ObjectType, ProviderName } from "../providers/types.ts";
import type { Failure, OutboxEntry } from "./outbox.ts";

/** The retry of an update whose record's merge event waits in the inbox. */
export const MERGE_WAIT_S = 5;
/** Pipedrive: the first "gone" of an update waits this long for a merge event. */
export const FIRST_GONE_WAIT_S = 30;

/** Merge losers of `ids` whose merge event is still to be applied by the inbox. */
export type PendingMerges = (
  connectionId: string,
  object: ObjectType,
  remoteIds: string[],
) => Promise<Set<string>>;

export function pendingMergesOf(sql: Sql): PendingMerges {
  return async (connectionId, object, remoteIds) => {
    const rows = await sql<{ remote_id: string }[]>`
      select distinct e.remote_id from crm.webhook_events e
      where e.connection_id = ${connectionId} and e.state in ('pending', 'processing')
        and e.event_type = 'merge' and e.object = ${object}
        and e.remote_id = any(${remoteIds}::text[])`;
    return new Set(rows.map((r) => r.remote_id));
  };
}

/** Turns the "gone" updates of `failed` that may be merges into retries (in place). */
export async function holdGoneMerges(
  pending: PendingMerges,
  conn: { id: string; provider: ProviderName },
  object: ObjectType,
  failed: Failure[],
  entries: ReadonlyMap<number, OutboxEntry>,
): Promise<number> {
  const gone = failed.flatMap((f) => {
    const e = entries.get(f.id);
    return f.action === "gone" && e?.op === "update" && e.remoteId ? [{ f, e }] : [];
  });
  if (gone.length === 0) return 0;
  const merging = await pending(conn.id, object, gone.map((g) => g.e.remoteId!));
  let held = 0;
  for (const { f, e } of gone) {
    if (merging.has(e.remoteId!)) {
      f.action = "retry";
      f.retry_after_seconds = MERGE_WAIT_S;
      f.error = `gone in the CRM, merged (its merge event waits in the inbox): ${f.error}`;
    } else if (conn.provider === "pipedrive" && e.attempts <= 1) {
      f.action = "retry";
      f.retry_after_seconds = FIRST_GONE_WAIT_S;
      f.error = `gone in the CRM, waiting for a merge event before settling: ${f.error}`;
    } else continue;
    held++;
  }
  return held;
}
