// Read before write (the push window, issue 15): before a chunk of updates is written, the
// records are read by id with the adapter's batch read (one call per chunk: HubSpot batch read
// ≤ 100, Salesforce SOQL `Id IN` ≤ 200 per record type, Pipedrive v2 list by `ids` ≤ 100) and
// crm.recheck_outbox releases the entries whose fields the CRM changed since the engine last
// saw them (see 20261206020100_crm_outbound_recheck.sql). Those records are then applied through
// the normal inbound path (crm.save_inbound_page, mode live), so the connection's policy decides
// each field and records the conflict, and what the app still wins is claimed again and pushed.
// A record released again is read again when it is claimed again (the CRM may have changed it
// once more meanwhile: skipping that read reopened the window, found by the chaos harness), up
// to MAX_RELEASES times per push run (`released`); after that it is written without a read, so a
// record the CRM keeps changing cannot hold the push, and no comparison the apply judges
// differently can loop.
// Creates have no CRM record to read; deletes are not compared (the design does not settle an
// app delete against a CRM edit). Ids the read does not return, or returns deleted (merged
// away), are left to the write, whose "gone" answer fail_outbox settles by policy.
import type { Sql } from "../db.ts";
import type { ObjectType, RemoteRecord } from "../providers/types.ts";
import { errorMessage } from "./connections.ts";
import type { SyncContext } from "./context.ts";
import type { Trigger } from "./inbound.ts";
import type { OutboxEntry } from "./outbox.ts";
import { closeRun, type PageTarget, savePage } from "./runlog.ts";
import { RunTally } from "./tally.ts";
import { mapPage } from "./walk.ts";

/** Releases of one record per push run before it is written without a read. */
export const MAX_RELEASES = 3;

export interface Released {
  id: number;
  recordId: string;
  remoteId: string;
  fields: string[];
}

export interface RecheckSink {
  /** Where applied records go (an inbound run of the push, opened on first use). */
  target(): Promise<{ target: PageTarget; tally: RunTally }>;
  /** The apply of released records failed (e.g. a value the mirror's columns reject). */
  warn(released: Released[], error: unknown): void;
}

/**
 * Reads the records of `updates` (claimed update entries with a remote id) and releases the ones
 * the CRM changed under them; applies those records inbound. Returns the released entries (no
 * longer the caller's: it must not write or settle them). Throws when the read fails (nothing
 * was released).
 */
export async function recheckUpdates(
  sql: Sql,
  ctx: SyncContext,
  object: ObjectType,
  updates: OutboxEntry[],
  /** Entries whose write sends relations (`associations.*` properties). */
  relationsSent: Set<number>,
  /** Releases so far in this run, by record id. */
  releases: Map<string, number>,
  sink: RecheckSink,
  deadline: number,
): Promise<Released[]> {
  const due = updates.filter((e) => e.remoteId && (releases.get(e.recordId) ?? 0) < MAX_RELEASES);
  if (due.length === 0) return [];
  const ids = [...new Set(due.map((e) => e.remoteId as string))];
  // Relations read apart from the record (HubSpot associations: one more call per chunk) only
  // when a write sends them.
  const relations = due.some((e) => relationsSent.has(e.id));
  const got = await ctx.adapter.readByIds(object, ids, { deadline, relations });
  // A read by id may return a deleted record (Salesforce's recycle bin): left to the write too.
  const live = got.records.filter((r) => !r.deleted);
  if (live.length === 0) return [];
  const page = (records: RemoteRecord[]) =>
    mapPage(ctx.mapper, object, {
      records,
      errors: [],
      checkpoint: null,
      watermark: null,
      done: false,
    });
  const claims = due.map((e) => ({ id: e.id, lease: e.lease }));
  const rows = await sql<
    { id: string; record_id: string; remote_id: string; fields: string[] }[]
  >`select id, record_id, remote_id, fields
    from crm.recheck_outbox(${ctx.conn.id}, ${object}, ${sql.json(claims as never)}::jsonb,
                            ${page(live).json}::text::jsonb)`;
  const released = rows.map((r) => ({
    id: Number(r.id),
    recordId: r.record_id,
    remoteId: r.remote_id,
    fields: r.fields,
  }));
  for (const r of released) releases.set(r.recordId, (releases.get(r.recordId) ?? 0) + 1);
  // Applied: the released records, and the records the CRM modified since the row last saw them
  // (other fields than the pushed ones). The latter matters for newest_wins: the write about to
  // happen bumps the record's modification time, and a CRM edit of another field learnt only
  // after it would carry the engine's own write time instead of the CRM user's.
  const apply = new Set(released.map((r) => r.remoteId));
  const seenAt = new Map(due.map((e) => [e.remoteId, stampOf(e.record)]));
  for (const r of live) {
    if (Date.parse(r.modifiedAt) > (seenAt.get(r.remoteId) ?? Infinity)) apply.add(r.remoteId);
  }
  if (apply.size === 0) return released;
  const { target, tally } = await sink.target();
  try {
    await savePage(
      sql,
      target,
      tally,
      page(live.filter((r) => apply.has(r.remoteId))),
      null,
    );
  } catch (e) {
    // The entries are pending again with all their fields: the next claim pushes them as before
    // this check (the CRM's edit is then overwritten). Reported, not fatal to the push.
    sink.warn(released, e);
  }
  return released;
}

/** The row's remote_updated_at as claimed (epoch ms; -Infinity when it has none). */
function stampOf(row: Record<string, unknown> | null): number {
  const v = row?.remote_updated_at;
  const t = typeof v === "string" ? Date.parse(v) : NaN;
  return Number.isNaN(t) ? -Infinity : t;
}

/** The inbound run (trigger as the push's) that records released records are applied under,
 * opened when the first one is. */
export function recheckSink(
  sql: Sql,
  ctx: SyncContext,
  object: ObjectType,
  trigger: Trigger,
  warnings: unknown[],
  samples: number,
): RecheckSink & { close(error: string | null): Promise<void> } {
  let run: { target: PageTarget; tally: RunTally } | null = null;
  return {
    async target() {
      if (run) return run;
      // Opened after the read it applies: its start does not bound when the records were
      // read, which crm.save_inbound_page must know (a restore within the delete's second).
      const [r] = await sql`select crm.open_sync_run(${ctx.conn.id}, ${object}, 'inbound',
                                                     ${trigger}, null,
                                                     '{"read_before_run": true}'::jsonb) as id`;
      run = {
        target: {
          runId: Number(r.id),
          leaseToken: null,
          connectionId: ctx.conn.id,
          object,
          mode: "live",
        },
        // The read's calls are counted on the push's run, not again here.
        tally: new RunTally(ctx.conn, object, () => 0),
      };
      return run;
    },
    warn(released, error) {
      if (warnings.length >= samples) return;
      warnings.push({
        record_ids: released.map((r) => r.recordId),
        message: `read before write: applying the CRM's records failed: ${errorMessage(error)}`,
      });
    },
    async close(error) {
      if (!run) return;
      const status = error ? "failed" : run.tally.failed ? "partial" : "success";
      await closeRun(sql, { runId: run.target.runId!, leaseToken: null }, status, run.tally, {
        message: error ?? undefined,
        more: false,
      });
      run = null;
    },
  };
}
