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
  action: WriteAction;
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
