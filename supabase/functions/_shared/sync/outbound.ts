// One outbound push of one connection: its due outbox entries, object by object in dependency
// order (companies, contacts, deals: a new company exists before the contact or deal that
// points at it, and complete_outbox fills the pointer and queues it), in chunks of the
// provider's batch size, until the outbox is empty or the budget (wall deadline, CPU) is spent.
// Each chunk: claim (leased; the claim snapshots the values it hands out and records them in the
// write ledger) → map → one write() → complete the entries taken, fail the others with the
// action the CRM's answer calls for. A failure of a whole call (CRM down, 429 after retries)
// fails the chunk's entries as retryable (creates come back as upserts) and ends the push.
// Each object pushed gets a crm.sync_log row (direction outbound) with truthful counts.
import { redactSecrets } from "../http/redact.ts";
import type { Sql } from "../db.ts";
import { DEADLINE_GRACE_MS, DEFAULT_CALL_TIMEOUT_MS } from "../providers/call.ts";
import { type ObjectType, ProviderError } from "../providers/types.ts";
import { errorMessage, recordFailure } from "./connections.ts";
import type { SyncContext } from "./context.ts";
import { externalIdGate } from "./external_id.ts";
import type { Trigger } from "./inbound.ts";
import {
  claimOutbox,
  completeOutbox,
  type Completion,
  failOutbox,
  type Failure,
  heldLeases,
} from "./outbox.ts";
import { holdGoneMerges, mergeStoreOf } from "./gone_merges.ts";
import { planPush } from "./push_ops.ts";
import { recheckSink, recheckUpdates } from "./push_recheck.ts";

export const PUSH_ORDER: readonly ObjectType[] = ["companies", "contacts", "deals"];

/** No chunk is claimed with less wall time left than this: a write cut off at the deadline
 * would leave its outcome unknown. */
const CLAIM_MARGIN_MS = 5_000;
/** Outbox lease: far longer than one chunk takes; an expired lease makes the entry claimable. */
const ENTRY_LEASE_S = 120;
/** A write is sent only while every lease it carries has this much left: one request's timeout
 * and the deadline's grace, so no attempt of it can still be open when a lease ends. */
const LEASE_MARGIN_MS = DEFAULT_CALL_TIMEOUT_MS + DEADLINE_GRACE_MS;
/** Samples of skipped fields and warnings kept in a run's details. */
const SAMPLES = 20;

export interface OutboundOptions {
  trigger: Trigger;
  /** Who claims (crm.outbox.locked_by). */
  worker: string;
  deadline: number;
  cpuLeftMs: () => number;
  onProgress?: (p: Record<string, unknown>) => Promise<void>;
}

export interface ObjectPush {
  object: ObjectType;
  run_id: number;
  processed: number;
  created: number;
  updated: number;
  deleted: number;
  unchanged: number;
  failed: number;
  dead: number;
  /** Entries the read-before-write sent back because the CRM changed their fields. */
  rechecked: number;
  api_calls: number;
}

export interface OutboundSummary {
  status: "success" | "partial" | "failed";
  /** Stopped at the budget with entries left. */
  more: boolean;
  pushes: ObjectPush[];
  error?: string;
  revoked?: boolean;
  paused_until?: string;
}

export async function runOutbound(
  sql: Sql,
  ctx: SyncContext,
  o: OutboundOptions,
): Promise<OutboundSummary> {
  const writer = ctx.adapter.writer;
  const pushes: ObjectPush[] = [];
  const gate = externalIdGate(sql, ctx.conn, writer);
  const outOfBudget = () => o.cpuLeftMs() <= 0 || Date.now() > o.deadline - CLAIM_MARGIN_MS;

  for (const object of PUSH_ORDER) {
    let push: ObjectPush | null = null;
    const notes = { skipped: [] as unknown[], warnings: [] as unknown[] };
    const recheck = recheckSink(sql, ctx, object, o.trigger, notes.warnings, SAMPLES);
    /** Releases by the read-before-write in this run, per record (./push_recheck.ts). */
    const rechecked = new Map<string, number>();
    try {
      for (;;) {
        if (outOfBudget()) {
          if (push) await closePush(sql, push, notes, null);
          await recheck.close(null);
          return finish(pushes, { more: true });
        }
        const entries = await claimOutbox(
          sql,
          o.worker,
          ctx.conn.id,
          object,
          writer.chunk,
          ENTRY_LEASE_S,
        );
        if (entries.length === 0) break;
        if (!push) {
          push = await openPush(sql, ctx.conn.id, object, o.trigger);
          pushes.push(push);
        }
        const callsBefore = ctx.calls();
        const creates = entries.filter((e) =>
          e.op !== "delete" && (e.op === "insert" || !e.remoteId)
        )
          .map((e) => ctx.outbound.remoteType(object, e.record ?? {}))
          .filter((t): t is string => t !== null);
        let batch;
        try {
          await gate.prepare(creates, { deadline: o.deadline });
          batch = planPush(object, entries, ctx.outbound, gate.hold);
        } catch (e) {
          // Nothing was sent: the claimed entries go back with the reason, not left leased.
          const reason = errorMessage(e);
          await failOutbox(
            sql,
            entries.map((x) => ({ id: x.id, lease: x.lease, action: "retry", error: reason })),
          );
          throw e;
        }
        // Read before write: entries whose fields the CRM changed go back to the outbox after
        // their records are applied inbound (the policy decides); the rest are written.
        const updateOps = batch.ops.filter((op) => op.kind === "update");
        const updates = updateOps.map((op) => batch.byRef.get(op.ref)!);
        const relationsSent = new Set(
          updateOps.filter((op) =>
            Object.keys(op.properties).some((k) => k.startsWith("associations."))
          ).map((op) => batch.byRef.get(op.ref)!.id),
        );
        let released;
        try {
          released = await recheckUpdates(
            sql,
            ctx,
            object,
            updates,
            relationsSent,
            rechecked,
            recheck,
            o.deadline,
          );
        } catch (e) {
          // The read failed: nothing was written or released; the chunk is retried as a whole.
          const reason = errorMessage(e);
          await failOutbox(
            sql,
            entries.map((x) => ({
              id: x.id,
              lease: x.lease,
              action: "retry",
              error: reason,
              retry_after_seconds: pauseSeconds(e),
            })),
          );
          throw e;
        }
        if (released.length > 0) {
          leaveOut(batch, released);
          push.rechecked += released.length;
        }
        const taken = entries.length - released.length;
        notes.skipped.push(...batch.skipped.slice(0, SAMPLES - notes.skipped.length));
        notes.warnings.push(...batch.warnings.slice(0, SAMPLES - notes.warnings.length));
        const completed: Completion[] = [...batch.completed];
        const failed: Failure[] = [...batch.failed];
        push.unchanged += batch.completed.length;
        // The leases are checked right before the write, and the write ends before they do.
        const writeDeadline = await dropLostLeases(sql, batch, notes.warnings, o.deadline);
        if (batch.ops.length > 0) {
          try {
            const results = await writer.write(object, batch.ops, { deadline: writeDeadline });
            const seen = new Set<string>();
            for (const r of results) {
              const e = batch.byRef.get(r.ref);
              if (!e || seen.has(r.ref)) continue;
              seen.add(r.ref);
              if (r.ok) {
                completed.push({
                  id: e.id,
                  lease: e.lease,
                  remote_id: r.remoteId,
                  remote_version: r.remoteVersion,
                });
                // A create retried after an unknown outcome finds the record its first attempt
                // made (the CRM says "not created"): still this push's create.
                if (e.op === "delete") push.deleted++;
                else if (r.created || (e.op === "insert" && e.uncertain)) push.created++;
                else push.updated++;
              } else {
                failed.push({
                  id: e.id,
                  lease: e.lease,
                  action: r.action,
                  error: redactSecrets(r.message),
                  retry_after_seconds: r.retryAfterMs ? r.retryAfterMs / 1000 : undefined,
                });
              }
            }
            for (const [ref, e] of batch.byRef) {
              if (seen.has(ref)) continue;
              failed.push({
                id: e.id,
                lease: e.lease,
                action: "retry",
                error: "the provider adapter returned no result for this entry",
              });
            }
          } catch (e) {
            // Every entry sent in the failed call is in doubt: retry them (creates as upserts).
            for (const entry of batch.byRef.values()) {
              failed.push({
                id: entry.id,
                lease: entry.lease,
                action: "retry",
                error: errorMessage(e),
                retry_after_seconds: pauseSeconds(e),
              });
            }
            await settle(sql, push, completed, failed, ctx.calls() - callsBefore, taken);
            throw e;
          }
        }
        // A "gone" update may be a merge loser (sync/gone_merges.ts).
        const merges = mergeStoreOf(sql);
        const merging = await holdGoneMerges(
          merges,
          ctx.conn,
          object,
          failed,
          new Map([...batch.byRef.values()].map((e) => [e.id, e])),
        );
        await settle(sql, push, completed, failed, ctx.calls() - callsBefore, taken);
        await merges.retarget(ctx.conn.id, object, merging);
        // Refused credentials end the push and put the connection in error (its entries wait,
        // unclaimable, until it is reconnected), rather than retrying into the refusal.
        const refused = failed.find((f) => f.action === "reauth");
        if (refused) throw new ProviderError(refused.error, "revoked");
        await o.onProgress?.({ object, ...counts(push) });
      }
      if (push) await closePush(sql, push, notes, null);
      await recheck.close(null);
    } catch (e) {
      const { message, revoked } = await recordFailure(sql, ctx.conn, e);
      if (push) await closePush(sql, push, notes, message);
      await recheck.close(message);
      const pausedUntil = e instanceof ProviderError ? e.pausedUntil : undefined;
      return {
        ...finish(pushes, { more: false }),
        status: "failed",
        error: message,
        revoked,
        ...(pausedUntil ? { paused_until: pausedUntil } : {}),
      };
    }
  }
  return finish(pushes, { more: false });
}

function pauseSeconds(e: unknown): number | undefined {
  if (!(e instanceof ProviderError)) return undefined;
  if (e.pausedUntil) return Math.max(0, (Date.parse(e.pausedUntil) - Date.now()) / 1000);
  return e.retryAfterMs ? e.retryAfterMs / 1000 : undefined;
}

/** Takes these entries' ops out of the chunk's write (an op's ref is its entry's id). */
function leaveOut(
  batch: ReturnType<typeof planPush>,
  entries: ReadonlyArray<{ id: number | string }>,
) {
  const gone = new Set(entries.map((e) => String(e.id)));
  batch.ops = batch.ops.filter((op) => !gone.has(op.ref));
  for (const ref of gone) batch.byRef.delete(ref);
}

/**
 * Leaves out of the write the ops whose entries this push no longer holds (another worker
 * may hold them now; their lease, not this push, decides what happens to them) and returns the
 * write's deadline: before the shortest remaining lease ends, a request's grace included.
 */
async function dropLostLeases(
  sql: Sql,
  batch: ReturnType<typeof planPush>,
  warnings: unknown[],
  deadline: number,
): Promise<number> {
  const writing = batch.ops.map((op) => batch.byRef.get(op.ref)!);
  const { held, leftMs } = await heldLeases(sql, writing, LEASE_MARGIN_MS);
  const lost = writing.filter((e) => !held.has(e.id));
  if (lost.length > 0) {
    leaveOut(batch, lost);
    if (warnings.length < SAMPLES) {
      warnings.push({
        warning: "lease lost before the write: not sent, left to the entry's next claim",
        entries: lost.map((e) => e.id),
      });
    }
  }
  return Math.min(deadline, Date.now() + leftMs - DEADLINE_GRACE_MS);
}

async function settle(
  sql: Sql,
  push: ObjectPush,
  completed: Completion[],
  failed: Failure[],
  calls: number,
  processed: number,
): Promise<void> {
  await completeOutbox(sql, completed);
  const f = await failOutbox(sql, failed);
  push.failed += failed.length;
  push.dead += f.dead;
  push.api_calls += calls;
  push.processed += processed;
  await sql`select crm.record_sync_progress(${push.run_id}, ${
    sql.json({
      processed,
      failed: failed.length,
      api_calls: calls,
    } as never)
  }::jsonb)`;
}

async function openPush(
  sql: Sql,
  connectionId: string,
  object: ObjectType,
  trigger: Trigger,
): Promise<ObjectPush> {
  const [r] = await sql`select crm.open_sync_run(${connectionId}, ${object}, 'outbound',
                                                 ${trigger}) as id`;
  return {
    object,
    run_id: Number(r.id),
    processed: 0,
    created: 0,
    updated: 0,
    deleted: 0,
    unchanged: 0,
    failed: 0,
    dead: 0,
    rechecked: 0,
    api_calls: 0,
  };
}

/** Closes the run with the outcome counts (processed, failed and calls were added per chunk). */
async function closePush(
  sql: Sql,
  p: ObjectPush,
  notes: { skipped: unknown[]; warnings: unknown[] },
  error: string | null,
): Promise<void> {
  const status = error ? "failed" : p.failed > 0 ? "partial" : "success";
  const details = { dead: p.dead, retrying: p.failed - p.dead, rechecked: p.rechecked, ...notes };
  await sql`update crm.sync_log set details = coalesce(details, '{}'::jsonb) || ${
    sql.json(details as never)
  }::jsonb where id = ${p.run_id}`;
  const final = {
    created: p.created,
    updated: p.updated,
    deleted: p.deleted,
    unchanged: p.unchanged,
  };
  const err = error
    ? { message: error }
    : p.failed > 0
    ? { message: `${p.failed} change(s) not taken by the CRM (${p.dead} dead letter(s))` }
    : null;
  await sql`select crm.close_sync_run(${p.run_id}, ${status}, ${sql.json(final as never)}::jsonb,
                                      ${err ? sql.json(err as never) : null}::jsonb)`;
}

function counts(p: ObjectPush) {
  const { object: _o, run_id: _r, ...rest } = p;
  return rest;
}

function finish(pushes: ObjectPush[], o: { more: boolean }): OutboundSummary {
  return {
    status: pushes.some((p) => p.failed > 0) ? "partial" : "success",
    more: o.more,
    pushes,
  };
}
