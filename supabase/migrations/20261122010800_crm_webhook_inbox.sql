-- Why: webhooks are stored before they are acknowledged and processed afterwards (DESIGN.md
-- section 4, "verify, store, acknowledge, then process"). Providers repeat deliveries and send
-- them out of order, so the inbox dedupes on a provider-scoped key and hands events to
-- processors with the same lease / backoff / dead-letter discipline as the outbox. A cron drain
-- picks up whatever the background processing after the 2xx did not finish.
--
-- Lifecycle: pending --claim--> processing --complete--> done | ignored (understood, not
-- wanted: the reason is kept in last_error) --fail--> pending (backoff) | dead --replay-->
-- pending. Expired leases are reclaimable; done/ignored rows are deleted after 30 days by
-- crm.cleanup().

create table crm.webhook_events (
  id bigint generated always as identity primary key,
  provider text not null,
  -- NULL when the event names a remote account no connection is linked to (kept for audit).
  connection_id uuid references crm.connections (id) on delete cascade,
  object text,
  remote_id text,
  event_type text not null,
  occurred_at timestamptz,
  -- Provider-scoped idempotency key, e.g. HubSpot subscriptionType:objectId:occurredAt:
  -- propertyName (eventId alone is not guaranteed unique), Pipedrive meta.id, Salesforce
  -- notification Id.
  dedupe_key text not null,
  payload jsonb not null,
  state text not null default 'pending',
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  locked_until timestamptz,
  locked_by text,
  lease uuid,
  last_error text,
  received_at timestamptz not null default now(),
  processed_at timestamptz,
  dead_at timestamptz,
  constraint webhook_events_dedupe_unique unique (provider, dedupe_key),
  constraint webhook_events_provider_check check (provider in ('hubspot', 'salesforce', 'pipedrive')),
  constraint webhook_events_object_check check (object in ('contacts', 'companies', 'deals', 'owners')),
  constraint webhook_events_state_check check (state in ('pending', 'processing', 'done', 'ignored', 'dead')),
  constraint webhook_events_lease_check check ((state = 'processing') = (lease is not null and locked_until is not null)),
  constraint webhook_events_dead_check check ((state = 'dead') = (dead_at is not null)),
  constraint webhook_events_processed_check check ((state in ('done', 'ignored')) = (processed_at is not null))
);
create index webhook_events_due_idx on crm.webhook_events (next_attempt_at, id) where state = 'pending';
create index webhook_events_leased_idx on crm.webhook_events (locked_until) where state = 'processing';
create index webhook_events_processed_idx on crm.webhook_events (processed_at) where state in ('done', 'ignored');
create index webhook_events_connection_idx on crm.webhook_events (connection_id, state);
comment on table crm.webhook_events is
  'Webhook inbox: every accepted event, stored before the 2xx, deduped by (provider, dedupe_key), processed under a lease.';

-- Stores all events of one webhook request in one statement. p_events: jsonb array of
--   {provider, connection_id?, object?, remote_id?, event_type, occurred_at?, dedupe_key, payload}
-- Repeats (same provider + dedupe_key, also within the array) are dropped. Returns counts.
-- Invalid events raise CRM03 and store nothing.
create or replace function crm.enqueue_webhook_events(p_events jsonb)
  returns table (inserted integer, duplicates integer)
  language plpgsql
  set search_path = ''
as $$
declare
  v_inserted integer;
  v_total integer;
begin
  if p_events is null or jsonb_typeof(p_events) <> 'array' then
    raise exception using errcode = 'CRM03', message = 'p_events must be a jsonb array of events';
  end if;
  begin
    with e as (
      select x.*
      from jsonb_to_recordset(p_events) as x(provider text, connection_id uuid, object text,
        remote_id text, event_type text, occurred_at timestamptz, dedupe_key text, payload jsonb)
    ),
    ins as (
      insert into crm.webhook_events (provider, connection_id, object, remote_id, event_type,
                                      occurred_at, dedupe_key, payload)
      select e.provider, e.connection_id, e.object, e.remote_id, e.event_type, e.occurred_at,
             e.dedupe_key, e.payload
      from e
      on conflict (provider, dedupe_key) do nothing
      returning 1
    )
    select (select count(*) from ins), (select count(*) from e) into v_inserted, v_total;
  exception when not_null_violation or check_violation or data_exception or foreign_key_violation then
    raise exception using errcode = 'CRM03', message = 'invalid webhook event: ' || sqlerrm;
  end;
  return query select v_inserted, v_total - v_inserted;
end
$$;
comment on function crm.enqueue_webhook_events(jsonb) is
  'Stores a webhook request''s events in one statement, dropping repeats. Returns (inserted, duplicates). CRM03 on invalid input.';

-- Leases up to p_limit due events, oldest event first.
create or replace function crm.claim_inbox(
  p_worker text,
  p_limit integer default 100,
  p_lease interval default '2 minutes',
  p_connection_id uuid default null,
  p_max_attempts integer default 10
)
  returns setof crm.webhook_events
  language sql
  volatile
  set search_path = ''
as $$
  with expired as (
    update crm.webhook_events w
    set state = 'dead', dead_at = now(), lease = null, locked_until = null, locked_by = null,
        last_error = coalesce(w.last_error || ' / ', '') || 'lease expired after the last attempt'
    where w.id in (
      select x.id from crm.webhook_events x
      where x.state = 'processing' and x.locked_until < now() and x.attempts >= p_max_attempts
      for update skip locked)
    returning w.id
  ),
  picked as (
    select w.id
    from crm.webhook_events w
    where ((w.state = 'pending' and w.next_attempt_at <= now())
        or (w.state = 'processing' and w.locked_until < now() and w.attempts < p_max_attempts))
      and (p_connection_id is null or w.connection_id = p_connection_id)
    order by coalesce(w.occurred_at, w.received_at), w.id
    limit greatest(p_limit, 0)
    for update skip locked
  )
  update crm.webhook_events w
  set state = 'processing', attempts = w.attempts + 1, lease = gen_random_uuid(),
      locked_until = now() + p_lease, locked_by = p_worker
  from picked
  where w.id = picked.id
  returning w.*
$$;
comment on function crm.claim_inbox(text, integer, interval, uuid, integer) is
  'Leases up to p_limit due webhook events (FOR UPDATE SKIP LOCKED), oldest first.';

-- Marks processed events. p_results: [{"id", "lease", "ignored": bool, "note": text}].
-- Lease mismatches are ignored. Returns how many were completed.
create or replace function crm.complete_inbox(p_results jsonb)
  returns integer
  language sql
  volatile
  set search_path = ''
as $$
  with r as (
    select x.id, x.lease, coalesce(x.ignored, false) as ignored, x.note
    from jsonb_to_recordset(coalesce(p_results, '[]'::jsonb))
      as x(id bigint, lease uuid, ignored boolean, note text)
  ),
  u as (
    update crm.webhook_events w
    set state = case when r.ignored then 'ignored' else 'done' end,
        processed_at = now(), lease = null, locked_until = null, locked_by = null,
        last_error = case when r.ignored then r.note else null end
    from r
    where w.id = r.id and w.lease = r.lease and w.state = 'processing'
    returning w.id
  )
  select count(*)::integer from u
$$;
comment on function crm.complete_inbox(jsonb) is
  'Completes leased webhook events: [{id, lease, ignored?, note?}]. Returns the count.';

-- Records failed processing: [{"id", "lease", "error", "retryable", "retry_after_seconds"}].
create or replace function crm.fail_inbox(
  p_failures jsonb,
  p_max_attempts integer default 10,
  p_base_delay interval default '30 seconds',
  p_max_delay interval default '1 hour'
)
  returns table (retrying integer, dead integer)
  language sql
  volatile
  set search_path = ''
as $$
  with r as (
    select x.id, x.lease, coalesce(nullif(x.error, ''), 'unknown error') as error,
           coalesce(x.retryable, true) as retryable,
           coalesce(x.retry_after_seconds, 0) as retry_after_seconds
    from jsonb_to_recordset(coalesce(p_failures, '[]'::jsonb))
      as x(id bigint, lease uuid, error text, retryable boolean, retry_after_seconds double precision)
  ),
  f as (
    update crm.webhook_events w
    set state = case when not r.retryable or w.attempts >= p_max_attempts then 'dead' else 'pending' end,
        dead_at = case when not r.retryable or w.attempts >= p_max_attempts then now() end,
        next_attempt_at = case when not r.retryable or w.attempts >= p_max_attempts then w.next_attempt_at
          else now() + greatest(crm._backoff(w.attempts, p_base_delay, p_max_delay),
                                make_interval(secs => r.retry_after_seconds)) end,
        lease = null, locked_until = null, locked_by = null, last_error = r.error
    from r
    where w.id = r.id and w.lease = r.lease and w.state = 'processing'
    returning w.state
  )
  select (count(*) filter (where f.state = 'pending'))::integer,
         (count(*) filter (where f.state = 'dead'))::integer
  from f
$$;
comment on function crm.fail_inbox(jsonb, integer, interval, interval) is
  'Fails leased webhook events: [{id, lease, error, retryable?, retry_after_seconds?}] -> backoff or dead letter. Returns (retrying, dead).';

create or replace function crm.replay_inbox(p_ids bigint[] default null, p_connection_id uuid default null)
  returns integer
  language sql
  volatile
  set search_path = ''
as $$
  with r as (
    update crm.webhook_events w
    set state = 'pending', dead_at = null, attempts = 0, next_attempt_at = now()
    where w.state = 'dead'
      and (p_ids is null or w.id = any (p_ids))
      and (p_connection_id is null or w.connection_id = p_connection_id)
    returning w.id
  )
  select count(*)::integer from r
$$;
comment on function crm.replay_inbox(bigint[], uuid) is
  'Requeues dead-lettered webhook events (optionally by ids or connection); returns the count.';

revoke all on function crm.enqueue_webhook_events(jsonb),
  crm.claim_inbox(text, integer, interval, uuid, integer), crm.complete_inbox(jsonb),
  crm.fail_inbox(jsonb, integer, interval, interval), crm.replay_inbox(bigint[], uuid) from public;
grant execute on function crm.enqueue_webhook_events(jsonb),
  crm.claim_inbox(text, integer, interval, uuid, integer), crm.complete_inbox(jsonb),
  crm.fail_inbox(jsonb, integer, interval, interval), crm.replay_inbox(bigint[], uuid) to service_role;

alter table crm.webhook_events enable row level security;
create policy webhook_events_select_own on crm.webhook_events for select to authenticated
  using (connection_id in (select c.id from crm.connections c
                           where c.account_id = (select crm.current_account_id())));

revoke all on crm.webhook_events from public, anon, authenticated;
grant select on crm.webhook_events to authenticated;
grant select, insert, update, delete on crm.webhook_events to service_role;
