// A push's "gone" answer to an update (the CRM has no such record) is settled by crm.fail_outbox
// as a CRM delete against the app's edit, by policy (app_wins: the row is created again as a new
// CRM record), and dropped when the row is already a tombstone. A merge loser is gone the same
// way on Pipedrive, whose API keeps no trace of a merge: only the loser's webhook v2 delete
// event names the survivor (meta.merged_to_id), and the inbox applies it as a merge that
// re-targets the record's pending app edit to the survivor (crm.apply_inbound step 12), leaving
// an entry a push holds to that push. Either way the edit was lost for the survivor (chaos
// finding, Pipedrive seed 3 app_wins). So a "gone" update becomes a hold (a retry that gives
// its attempt back, 20261209010100_crm_outbox_hold.sql: a merge event applied late no longer
// turns the entry into a dead letter) when:
// - its row is already a merge tombstone (the merge was applied while the push was in flight),
// - or a merge event of the record waits in the inbox (perhaps being applied right now, having
//   read the entry as in flight);
// and once the failure is recorded, crm.retarget_merged_entries moves it to the survivor: it
// locks the row first, so it waits for an apply in progress and then finds the tombstone. An
// apply that has not started yet finds the entry pending and moves it itself.
// Limits: a "gone" met before the merge event has even arrived is settled as a deletion, and so
// is a merge whose event never arrives (a lost delivery). Waiting on every first "gone" for a
// merge event (tried: 30 s) moved the settlement to when the inbox applied the CRM's deletion
// of the same record, and the two settled it twice (chaos seed 3: the record created twice).
// An entry whose push died (its lease expired) after the merge was applied is re-targeted by the
// next crm.claim_outbox (20261208010100_crm_retarget_stranded_merges.sql).
import type { Sql } from "../db.ts";
import type { ObjectType } from "../providers/types.ts";
import type { Failure, OutboxEntry } from "./outbox.ts";

/** The hold (retry) of an update whose merge the inbox (or this push) is about to settle. */
export const MERGE_WAIT_S = 5;

export interface MergeState {
  /** Remote ids with a merge event still to be applied by the inbox. */
  waiting: Set<string>;
  /** Record ids whose row is a merge tombstone. */
  mergedAway: Set<string>;
}

/** What the database knows of the merges of these gone records (capabilities passed in). */
export interface MergeStore {
  state(
    connectionId: string,
    object: ObjectType,
    gone: { recordId: string; remoteId: string }[],
  ): Promise<MergeState>;
  /** crm.retarget_merged_entries: moves the rows' pending entries to their survivors. */
  retarget(connectionId: string, object: ObjectType, recordIds: string[]): Promise<number>;
}

export function mergeStoreOf(sql: Sql): MergeStore {
  return {
    async state(connectionId, object, gone) {
      const remoteIds = gone.map((g) => g.remoteId);
      const recordIds = gone.map((g) => g.recordId);
      const waiting = await sql<{ remote_id: string }[]>`
        select distinct e.remote_id from crm.webhook_events e
        where e.connection_id = ${connectionId} and e.state in ('pending', 'processing')
          and e.event_type = 'merge' and e.object = ${object}
          and e.remote_id = any(${remoteIds}::text[])`;
      const merged = await sql<{ id: string }[]>`
        select t.id from ${sql(`crm.${object}`)} t
        where t.id = any(${recordIds}::uuid[]) and t.deleted_at is not null
          and t.merged_into_remote_id is not null`;
      return {
        waiting: new Set(waiting.map((r) => r.remote_id)),
        mergedAway: new Set(merged.map((r) => r.id)),
      };
    },
    async retarget(connectionId, object, recordIds) {
      if (recordIds.length === 0) return 0;
      const [r] = await sql`select crm.retarget_merged_entries(${connectionId}::uuid, ${object},
                                                               ${recordIds}::uuid[]) as n`;
      return Number(r.n);
    },
  };
}

/**
 * Turns the "gone" updates of `failed` that are merges into holds (in place). Returns their
 * record ids: retarget them once the failures are recorded.
 */
export async function holdGoneMerges(
  store: MergeStore,
  conn: { id: string },
  object: ObjectType,
  failed: Failure[],
  entries: ReadonlyMap<number, OutboxEntry>,
): Promise<string[]> {
  const gone = failed.flatMap((f) => {
    const e = entries.get(f.id);
    return f.action === "gone" && e?.op === "update" && e.remoteId ? [{ f, e }] : [];
  });
  if (gone.length === 0) return [];
  const { waiting, mergedAway } = await store.state(
    conn.id,
    object,
    gone.map(({ e }) => ({ recordId: e.recordId, remoteId: e.remoteId! })),
  );
  const held: string[] = [];
  for (const { f, e } of gone) {
    if (mergedAway.has(e.recordId)) {
      f.error = `gone in the CRM, merged: re-targeted to the survivor: ${f.error}`;
    } else if (waiting.has(e.remoteId!)) {
      f.error = `gone in the CRM, merged (its merge event waits in the inbox): ${f.error}`;
    } else continue;
    f.action = "hold";
    f.retry_after_seconds = MERGE_WAIT_S;
    held.push(e.recordId);
  }
  return held;
}
