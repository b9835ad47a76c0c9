// One drain of a connection's webhook inbox (crm.webhook_events): claim its due events in
// batches (crm.claim_inbox never hands out events without a connection, nor those of a paused
// or errored connection), coalesce them by (object, remote id), add the ids a merge names, re-read
// those records by id through the adapter (its batch reads, on the context's rate budget lane)
// and apply them through the same inbound path as polling (./retry.ts applyByIds: mapper,
// crm.save_inbound_page, so ordering, ties, tombstones, merges, echoes through the write ledger
// and failed records behave as in a delta). Ids the CRM no longer has become tombstones; one
// a merge event names as merged into a survivor (Pipedrive: the loser's delete event with
// meta.merged_to_id, the only record of a merge Pipedrive gives) becomes a merge tombstone
// pointing at it, so its pending app edit is settled against the survivor (crm.apply_inbound
// step 12), as HubSpot's merged ids are.
// Processing never trusts an event's payload as the record: the payload only names ids.
// Pages are written in mode "live": unfenced (webhooks must not wait for, nor take, the
// stream's lease held by a walk) and moving no cursor.
// Per batch and object: read+apply succeeded → the events are done; the read failed → the
// events go back with backoff (crm.fail_inbox) and the drain ends. Each object gets one
// crm.sync_log run (inbound, trigger webhook) per drain. The drain stops claiming at the
// deadline or when the CPU budget is spent.
import type { Sql } from "../db.ts";
import {
  OBJECT_TYPES,
  type ObjectType,
  ProviderError,
  type ProviderName,
} from "../providers/types.ts";
import { errorMessage, recordFailure } from "./connections.ts";
import type { SyncContext } from "./context.ts";
import { applyByIds } from "./retry.ts";
import { closeRun, type PageTarget } from "./runlog.ts";
import { RunTally } from "./tally.ts";

/** Events claimed per batch (one re-read per object of the batch: ≤ 100 ids for HubSpot). */
export const INBOX_BATCH = 100;
/** No batch is claimed with less wall time left than this. */
const CLAIM_MARGIN_MS = 5_000;
/** Event lease: far longer than one batch takes; an expired lease makes the event claimable. */
const EVENT_LEASE_S = 120;

/** Remote ids as each provider spells them; anything else is not read (it is kept, ignored). */
const ID_FORMAT: Record<ProviderName, RegExp> = {
  hubspot: /^[0-9]{1,20}$/,
  pipedrive: /^[0-9]{1,20}$/,
  salesforce: /^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$/,
};

export interface InboxEvent {
  id: number;
  lease: string;
  object: string | null;
  remote_id: string | null;
  event_type: string;
  payload: unknown;
}

export interface EventGroup {
  /** Distinct ids to re-read: the events' records and the ids their merges name. */
  ids: string[];
  events: InboxEvent[];
  /** Merge losers named by their own merge event → their survivor (Pipedrive). */
  mergedInto: Map<string, string>;
}

export interface Coalesced {
  groups: Map<ObjectType, EventGroup>;
  /** Events processing cannot use, with the reason (completed as ignored). */
  ignored: { event: InboxEvent; note: string }[];
}

/** Groups a batch of events by object, one id per record however many events name it. */
export function coalesceEvents(provider: ProviderName, events: InboxEvent[]): Coalesced {
  const groups = new Map<ObjectType, EventGroup>();
  const ignored: Coalesced["ignored"] = [];
  const valid = (id: string) => ID_FORMAT[provider].test(id);
  for (const e of events) {
    const object = OBJECT_TYPES.find((o) => o === e.object);
    if (!object || e.remote_id === null || !valid(e.remote_id)) {
      ignored.push({
        event: e,
        note: !object ? `no object to re-read (${e.object ?? "none"})` : "no valid record id",
      });
      continue;
    }
    let g = groups.get(object);
    if (!g) groups.set(object, g = { ids: [], events: [], mergedInto: new Map() });
    g.events.push(e);
    const ids = [e.remote_id, ...(e.event_type === "merge" ? mergedIds(e.payload) : [])];
    for (const id of ids) if (valid(id) && !g.ids.includes(id)) g.ids.push(id);
    const survivor = e.event_type === "merge" ? survivorOf(e.payload) : null;
    if (survivor !== null && valid(survivor) && survivor !== e.remote_id) {
      g.mergedInto.set(e.remote_id, survivor);
    }
  }
  return { groups, ignored };
}

const idOf = (v: unknown): string | null =>
  (typeof v === "number" && Number.isSafeInteger(v)) || typeof v === "string" ? String(v) : null;

/**
 * The survivor a merge event names for its own record: Pipedrive's merged_to_id. Webhooks v2
 * put it in the loser's delete event's `meta` (documented: "Webhooks v2 migration guide");
 * the other places (top level, data, previous, current) are older shapes, read the same way.
 */
export function survivorOf(payload: unknown): string | null {
  const p = (payload ?? {}) as Record<string, unknown>;
  for (const k of ["meta", "data", "previous", "current"]) {
    const inner = p[k];
    if (inner && typeof inner === "object") {
      const id = idOf((inner as Record<string, unknown>).merged_to_id);
      if (id !== null) return id;
    }
  }
  return idOf(p.merged_to_id);
}

/**
 * The other records a merge event names (SPEC13 keeps the provider's raw event): HubSpot
 * mergedObjectIds, primaryObjectId and newObjectId; Pipedrive merged_to_id (survivorOf). Only
 * ids are taken from a payload.
 */
export function mergedIds(payload: unknown): string[] {
  const out: string[] = [];
  const add = (v: unknown) => {
    const id = idOf(v);
    if (id !== null) out.push(id);
  };
  const p = (payload ?? {}) as Record<string, unknown>;
  if (Array.isArray(p.mergedObjectIds)) p.mergedObjectIds.forEach(add);
  add(p.primaryObjectId);
  add(p.newObjectId);
  add(survivorOf(p));
  return out;
}

export interface InboxOptions {
  /** Who claims (crm.webhook_events.locked_by). */
  worker: string;
  deadline: number;
  cpuLeftMs: () => number;
  onProgress?: (p: Record<string, unknown>) => Promise<void>;
}

export interface InboxRun {
  object: ObjectType;
  run_id: number;
  events: number;
  records: number;
  created: number;
  updated: number;
  deleted: number;
  failed: number;
  api_calls: number;
}

export interface InboxSummary {
  status: "success" | "partial" | "failed";
  /** Stopped at the budget with events perhaps left. */
  more: boolean;
  /** Events completed (done) and ignored, and sent back for a retry. */
  done: number;
  ignored: number;
  retrying: number;
  dead: number;
  runs: InboxRun[];
  error?: string;
  revoked?: boolean;
  paused_until?: string;
}

interface OpenRun {
  target: PageTarget;
  tally: RunTally;
  events: number;
}

export async function runInbox(sql: Sql, ctx: SyncContext, o: InboxOptions): Promise<InboxSummary> {
  const { conn } = ctx;
  const out: InboxSummary = {
    status: "success",
    more: false,
    done: 0,
    ignored: 0,
    retrying: 0,
    dead: 0,
    runs: [],
  };
  const runs = new Map<ObjectType, OpenRun>();
  const outOfBudget = () => o.cpuLeftMs() <= 0 || Date.now() > o.deadline - CLAIM_MARGIN_MS;
  let failure: unknown = null;
  try {
    for (;;) {
      if (outOfBudget()) {
        out.more = true;
        break;
      }
      const events = await sql<InboxEvent[]>`
        select id, lease, object, remote_id, event_type, payload
        from crm.claim_inbox(${o.worker}, ${INBOX_BATCH},
                             make_interval(secs => ${EVENT_LEASE_S}), ${conn.id}::uuid)`;
      if (events.length === 0) break;
      const { groups, ignored } = coalesceEvents(conn.provider, events);
      if (ignored.length) {
        out.ignored += await complete(
          sql,
          ignored.map((i) => ({
            id: i.event.id,
            lease: i.event.lease,
            ignored: true,
            note: i.note,
          })),
        );
      }
      const left: InboxEvent[] = [];
      for (const [object, g] of groups) {
        if (failure) {
          left.push(...g.events);
          continue;
        }
        const run = runs.get(object) ?? await openRun(sql, conn.id, object, ctx);
        runs.set(object, run);
        try {
          await applyByIds(sql, ctx, run.target, run.tally, g.ids, {
            deadline: o.deadline,
            tombstoneMissing: true,
            mergedInto: g.mergedInto,
          });
        } catch (e) {
          failure = e;
          left.push(...g.events);
          continue;
        }
        run.events += g.events.length;
        out.done += await complete(sql, g.events.map((e) => ({ id: e.id, lease: e.lease })));
      }
      if (failure) {
        const f = await failEvents(sql, left, failure);
        out.retrying += f.retrying;
        out.dead += f.dead;
        throw failure;
      }
      await o.onProgress?.({ done: out.done, ignored: out.ignored });
    }
  } catch (e) {
    const { message, revoked } = await recordFailure(sql, conn, e);
    out.status = "failed";
    out.error = message;
    if (revoked) out.revoked = true;
    if (e instanceof ProviderError && e.pausedUntil) out.paused_until = e.pausedUntil;
  }
  // What the CRM said about its limits reaches the shared budget before the request ends.
  await ctx.budget.flush();
  for (const [object, r] of runs) {
    const status = out.error ? "failed" : r.tally.failed ? "partial" : "success";
    await closeRun(sql, { runId: r.target.runId!, leaseToken: null }, status, r.tally, {
      message: out.error,
      revoked: out.revoked,
      more: out.more,
    });
    const s = r.tally.summary(r.target.runId, status, {});
    out.runs.push({
      object,
      run_id: r.target.runId!,
      events: r.events,
      records: s.processed,
      created: s.created,
      updated: s.updated,
      deleted: s.deleted,
      failed: s.failed,
      api_calls: s.api_calls,
    });
    if (status === "partial" && out.status === "success") out.status = "partial";
  }
  return out;
}

async function openRun(
  sql: Sql,
  connectionId: string,
  object: ObjectType,
  ctx: SyncContext,
): Promise<OpenRun> {
  const [r] = await sql`select crm.open_sync_run(${connectionId}, ${object}, 'inbound',
                                                 'webhook') as id`;
  return {
    target: { runId: Number(r.id), leaseToken: null, connectionId, object, mode: "live" },
    tally: new RunTally(ctx.conn, object, ctx.calls),
    events: 0,
  };
}

async function complete(
  sql: Sql,
  results: { id: number; lease: string; ignored?: boolean; note?: string }[],
): Promise<number> {
  const [r] = await sql`select crm.complete_inbox(${sql.json(results as never)}::jsonb) as n`;
  return Number(r.n);
}

async function failEvents(
  sql: Sql,
  events: InboxEvent[],
  e: unknown,
): Promise<{ retrying: number; dead: number }> {
  if (events.length === 0) return { retrying: 0, dead: 0 };
  const error = errorMessage(e);
  const retryAfter = e instanceof ProviderError
    ? e.pausedUntil
      ? Math.max(0, (Date.parse(e.pausedUntil) - Date.now()) / 1000)
      : e.retryAfterMs
      ? e.retryAfterMs / 1000
      : undefined
    : undefined;
  const failures = events.map((x) => ({
    id: x.id,
    lease: x.lease,
    error,
    retryable: true,
    retry_after_seconds: retryAfter,
  }));
  const [r] = await sql`select * from crm.fail_inbox(${sql.json(failures as never)}::jsonb)`;
  return { retrying: Number(r.retrying), dead: Number(r.dead) };
}
