// The outbox verbs as a push calls them (crm.claim_outbox / complete_outbox / fail_outbox;
// leases, coalescing, backoff, dead letters, the write ledger and agreed values live in SQL).
import type { Sql } from "../db.ts";
import type { ObjectType, WriteAction } from "../providers/types.ts";

export interface OutboxEntry {
  id: number;
  object: ObjectType;
  recordId: string;
  remoteId: string | null;
  op: "insert" | "update" | "delete";
  changedColumns: string[];
  attempts: number;
  lease: string;
  /** An earlier attempt of this create ended with an unknown outcome. */
  uncertain: boolean;
  /** The row as claimed (canonical columns); null when it was hard-deleted. */
  record: Record<string, unknown> | null;
}

export interface Completion {
  id: number;
  lease: string;
  remote_id?: string;
  remote_version?: string | null;
}

export interface Failure {
  id: number;
  lease: string;
  error: string;
  /** A provider's verdict, or "hold": a retry that gives the claim's attempt back (the engine
   * is still settling something, e.g. a merge: sync/gone_merges.ts). */
  action: WriteAction | "hold";
  retry_after_seconds?: number;
}

/** Claims up to `limit` due entries of one connection and object for `leaseS` seconds. */
export async function claimOutbox(
  sql: Sql,
  worker: string,
  connectionId: string,
  object: ObjectType,
  limit: number,
  leaseS: number,
): Promise<OutboxEntry[]> {
  const rows = await sql`
    select id, object, record_id, remote_id, op, changed_columns, attempts, lease::text as lease,
           uncertain, record
    from crm.claim_outbox(${worker}, ${limit}, make_interval(secs => ${leaseS}),
                          ${connectionId}::uuid, ${object})`;
  return rows.map((r) => ({
    id: Number(r.id),
    object: r.object,
    recordId: r.record_id,
    remoteId: r.remote_id,
    op: r.op,
    changedColumns: r.changed_columns ?? [],
    attempts: Number(r.attempts),
    lease: r.lease,
    uncertain: r.uncertain === true,
    record: r.record ?? null,
  }));
}

export async function completeOutbox(sql: Sql, done: Completion[]): Promise<void> {
  if (done.length === 0) return;
  await sql`select * from crm.complete_outbox(${JSON.stringify(done)}::text::jsonb)`;
}

/** Returns how many entries will be retried and how many became dead letters. */
export async function failOutbox(
  sql: Sql,
  failed: Failure[],
): Promise<{ retrying: number; dead: number }> {
  if (failed.length === 0) return { retrying: 0, dead: 0 };
  const [r] = await sql`select * from crm.fail_outbox(${JSON.stringify(failed)}::text::jsonb)`;
  return { retrying: Number(r.retrying), dead: Number(r.dead) };
}

/**
 * Of `entries`, those whose lease this push still holds with at least `marginMs` left, read
 * right before a CRM write, and the time left on the shortest of them. The CRM takes no
 * fencing token, so a push stalled past its lease (a hung call and its retry, a long wait)
 * must not send what another worker may hold and write by now: the chaos harness saw a read
 * hang 30 s, another worker push the app's second edit meanwhile, and the stalled push then
 * write the first edit over it.
 */
export async function heldLeases(
  sql: Sql,
  entries: ReadonlyArray<{ id: number; lease: string }>,
  marginMs: number,
): Promise<{ held: Set<number>; leftMs: number }> {
  if (entries.length === 0) return { held: new Set(), leftMs: 0 };
  const rows = await sql<{ id: string; left_ms: number }[]>`
    select o.id::text as id,
           (extract(epoch from (o.locked_until - clock_timestamp())) * 1000)::float8 as left_ms
    from crm.outbox o
    join unnest(${entries.map((e) => e.id)}::bigint[], ${entries.map((e) => e.lease)}::uuid[])
      as h(id, lease) on h.id = o.id and h.lease = o.lease
    where o.state = 'processing'
      and o.locked_until > clock_timestamp() + make_interval(secs => ${marginMs / 1000})`;
  return {
    held: new Set(rows.map((r) => Number(r.id))),
    leftMs: rows.length ? Math.min(...rows.map((r) => Number(r.left_ms))) : 0,
  };
}
