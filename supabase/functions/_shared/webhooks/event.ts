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
 * One inbox-drain job per active connection (idempotent: one live job per connection), in one
 * statement. Workers are woken only where no inbox job of the connection is running or already
 * due: a burst of deliveries would otherwise start a worker per request, and a due job's wake
 * (or the cron wake) is already on its way.
 */
export async function enqueueInbox(sql: Sql, connectionIds: string[]): Promise<void> {
  if (connectionIds.length === 0) return;
  await sql`
    select crm.enqueue_job('inbox', c.id, null, null, '{"trigger":"webhook"}'::jsonb, now(),
             not exists (select 1 from crm.jobs j
                         where j.kind = 'inbox' and j.connection_id = c.id
                           and (j.state = 'running' or (j.state = 'queued' and j.run_after <= now()))))
    from unnest(${connectionIds}::uuid[]) as c(id)
    -- A paused or errored connection's events wait stored (crm.enqueue_job would refuse it with
    -- CRM06 and fail the others' enqueue too); the crm-inbox cron job drains them after resume.
    join crm.connections k on k.id = c.id and k.status = 'active'`;
}
