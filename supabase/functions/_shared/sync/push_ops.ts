// Claimed outbox entries → the provider writes they need. Entries that need no call are
// settled here: an update whose changed fields map to nothing outbound completes at once, a
// record type nothing maps outbound is a dead letter, and creates of a remote type whose
// external-id property could not be set up are held (never sent without their idempotency key).
import type { OutboundMapper } from "../mapping/outbound.ts";
import type { ObjectType, WriteOp } from "../providers/types.ts";
import type { Completion, Failure, OutboxEntry } from "./outbox.ts";

export interface PushBatch {
  ops: WriteOp[];
  /** Outbox entries by op ref. */
  byRef: Map<string, OutboxEntry>;
  /** Entries settled without a call. */
  completed: Completion[];
  failed: Failure[];
  /** Changed fields not sent, with why (reported in the run's details). */
  skipped: { record_id: string; field: string; reason: string }[];
  warnings: { record_id: string; field: string; message: string }[];
}

/** Why creates of a remote type are held, or null when they may go out. */
export type CreateHold = (remoteType: string) => string | null;

/** How long a held create waits before it is looked at again. */
export const HELD_CREATE_RETRY_S = 600;

export function planPush(
  object: ObjectType,
  entries: OutboxEntry[],
  mapper: OutboundMapper,
  holdCreate: CreateHold,
): PushBatch {
  const b: PushBatch = {
    ops: [],
    byRef: new Map(),
    completed: [],
    failed: [],
    skipped: [],
    warnings: [],
  };
  for (const e of entries) {
    const ref = String(e.id);
    const row = e.record ?? {};
    if (e.op === "delete") {
      if (!e.remoteId) {
        b.completed.push({ id: e.id, lease: e.lease });
        continue;
      }
      const remoteType = mapper.remoteType(object, row) ?? object;
      b.ops.push({ kind: "delete", ref, remoteType, remoteId: e.remoteId });
      b.byRef.set(ref, e);
      continue;
    }
    if (e.record === null) {
      // Hard-deleted after the claim's snapshot was queued: its delete entry replaces this one.
      b.completed.push({ id: e.id, lease: e.lease });
      continue;
    }
    const plan = mapper.plan(object, row, e.changedColumns);
    for (const s of plan.skipped) b.skipped.push({ record_id: e.recordId, ...s });
    for (const w of plan.warnings) b.warnings.push({ record_id: e.recordId, ...w });
    if (!plan.remoteType) {
      b.failed.push({
        id: e.id,
        lease: e.lease,
        action: "dead_letter",
        error: `no outbound field mappings for ${object}: nothing can be written to the CRM`,
      });
      continue;
    }
    if (e.op === "insert" || !e.remoteId) {
      const held = holdCreate(plan.remoteType);
      if (held !== null) {
        b.failed.push({
          id: e.id,
          lease: e.lease,
          action: "retry",
          error: `create held: ${held}`,
          retry_after_seconds: HELD_CREATE_RETRY_S,
        });
        continue;
      }
      b.ops.push({
        kind: "create",
        ref,
        remoteType: plan.remoteType,
        externalId: e.recordId,
        properties: plan.properties,
        uncertain: e.uncertain,
      });
    } else {
      if (Object.keys(plan.properties).length === 0) {
        b.completed.push({ id: e.id, lease: e.lease });
        continue;
      }
      b.ops.push({
        kind: "update",
        ref,
        remoteType: plan.remoteType,
        remoteId: e.remoteId,
        properties: plan.properties,
      });
    }
    b.byRef.set(ref, e);
  }
  return b;
}
