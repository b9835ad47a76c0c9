// The inbox row (SPEC13) and the two database calls of a webhook request: all events stored
// with one call of crm.enqueue_webhook_events, then one inbox job per connection touched.
import type { Sql } from "../db.ts";
import { findUnstorableText } from "../http/body.ts";
import { refuse } from "./limits.ts";

export type InboxObject = "contacts" | "companies" | "deals" | "owners";
export type InboxEventType = "upsert" | "delete" | "merge";

export interface InboxEvent {
  provider: "hubspot" | "salesforce" | "pipedrive";
  connection_id: string | null;
  object: InboxObject;
  remote_id: string;
  event_type: InboxEventType;
  occurred_at: string | null;
  dedupe_key: string;
  payload: unknown;
}

/** What a normalizer made of a request: the wanted events and how many it skipped. */
export interface Normalized<E> {
  events: E[];
  skipped: number;
}

/** Refuses (400) an event Postgres could not store (NUL, lone surrogate), before any write. */
export function assertStorable(events: InboxEvent[]): void {
  const bad = findUnstorableText(events);
  if (bad) refuse(400, `event contains ${bad.problem}; such text cannot be stored`);
}

export interface Stored {
  inserted: number;
  duplicates: number;
}

export async function storeEvents(sql: Sql, events: InboxEvent[]): Promise<Stored> {
  if (events.length === 0) return { inserted: 0, duplicates: 0 };
  assertStorable(events);
  const [r] = await sql`select inserted, duplicates
                        from crm.enqueue_webhook_events(${sql.json(events as never)})`;
  return { inserted: Number(r.inserted), duplicates: Number(r.duplicates) };
}

/** Distinct connections named by the events (NULL: kept, never processed). */
export function connectionsOf(events: InboxEvent[]): string[] {
  return [...new Set(events.flatMap((e) => e.connection_id ? [e.connection_id] : []))];
}

/**
 * One inbox-drain job per active connection (idempotent: one live job per connection), then a
 * wake, in two statements. The wake is asked for only where no inbox job of the connection is
 * running (that job's worker claims the new one when it ends), and crm.wake_workers wakes no
 * more than the due jobs not already covered by a woken worker, so a burst of deliveries does
 * not start a worker per request.
 * Why two statements: decided in the enqueue's own statement, "a job is running" was read from
 * the snapshot taken before the insert, while the worker could finish that job, find nothing to
 * claim and exit before the new job committed: the new job then waited for the next
 * crm-workers tick (the bench saw 45 of 100 changes wait that long). The second statement
 * starts after the jobs committed: either the running job's worker claims after that commit
 * and sees them, or it had already finished, and the wake is sent.
 */
export async function enqueueInbox(sql: Sql, connectionIds: string[]): Promise<void> {
  if (connectionIds.length === 0) return;
  const queued = await sql`
    select c.id, crm.enqueue_job('inbox', c.id, null, null, '{"trigger":"webhook"}'::jsonb, now(),
                                 false)
    from unnest(${connectionIds}::uuid[]) as c(id)
    -- A paused or errored connection's events wait stored (crm.enqueue_job would refuse it with
    -- CRM06 and fail the others' enqueue too); the crm-inbox cron job drains them after resume.
    join crm.connections k on k.id = c.id and k.status = 'active'`;
  if (queued.length === 0) return;
  await sql`
    select crm.wake_workers('webhook')
    where exists (select 1 from unnest(${queued.map((r) => String(r.id))}::uuid[]) as c(id)
                  where not exists (select 1 from crm.jobs j
                                    where j.kind = 'inbox' and j.connection_id = c.id
                                      and j.state = 'running'))`;
}

/**
 * Coalesces the inbox enqueues of one isolate: while one call runs, the connections of the
 * requests that end meanwhile wait for one more call, started after it (so after their events
 * were stored), instead of one call each. A burst of deliveries then costs two enqueue
 * statements at a time rather than one per request; every request's events are still followed
 * by an enqueue that starts after they were committed. Each caller waits for at most the call
 * running and the next one.
 */
export function coalescedEnqueue(
  enqueue: (connectionIds: string[]) => Promise<void>,
): (connectionIds: string[]) => Promise<void> {
  const wanted = new Set<string>();
  let current: Promise<void> | null = null;
  let next: Promise<void> | null = null;
  const start = (): Promise<void> => {
    const ids = [...wanted];
    wanted.clear();
    const p: Promise<void> = (ids.length ? enqueue(ids) : Promise.resolve()).finally(() => {
      if (current === p) current = null;
    });
    current = p;
    return p;
  };
  return (connectionIds) => {
    for (const id of connectionIds) wanted.add(id);
    if (!current) return start();
    next ??= current.catch(() => {}).then(() => {
      next = null;
      return start();
    });
    return next;
  };
}
