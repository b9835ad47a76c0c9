-- Why: webhook events (crm.webhook_events, 20261122010800) are drained by inbox jobs of the job
-- queue (20261204020100: kind 'inbox', one per connection, object NULL, lane 10). The receiver
-- enqueues the job after storing a request's events; this migration adds what the drain and the
-- safety net need:
--   crm.claim_inbox        replaced: never hands out an event without a connection (kept for
--                          audit, never processed) nor one of a connection that is not active
--                          (paused or in error: its events wait, pending, until it is resumed)
--   crm.inbox_due          a connection's pending events: how many are due now, when the next
--                          one waiting out a backoff is due
--   crm.enqueue_inbox      one inbox job per active connection (or the one given) with due
--                          events, then one wake (the cron safety net, and resume)
--   crm-inbox (cron)       every minute: enqueue_inbox('cron'), so events whose background
--                          processing after the 2xx never ran, failed, or waited for a paused
--                          connection are drained within a minute of becoming due.

-- Same signature and order as before; p_connection_id NULL still means any connection, but
-- never "no connection".
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
        and (p_connection_id is null or x.connection_id = p_connection_id)
      for update skip locked)
    returning w.id
  ),
  picked as (
    select w.id
    from crm.webhook_events w
    join crm.connections c on c.id = w.connection_id and c.status = 'active'
    where ((w.state = 'pending' and w.next_attempt_at <= now())
        or (w.state = 'processing' and w.locked_until < now() and w.attempts < p_max_attempts))
      and (p_connection_id is null or w.connection_id = p_connection_id)
    order by coalesce(w.occurred_at, w.received_at), w.id
    limit greatest(p_limit, 0)
    for update of w skip locked
  )
  update crm.webhook_events w
  set state = 'processing', attempts = w.attempts + 1, lease = gen_random_uuid(),
      locked_until = now() + p_lease, locked_by = p_worker
  from picked
  where w.id = picked.id
  returning w.*
$$;
comment on function crm.claim_inbox(text, integer, interval, uuid, integer) is
  'Leases up to p_limit due webhook events of active connections (FOR UPDATE SKIP LOCKED), oldest first. Events without a connection are never handed out.';

-- A connection's inbox: events due now (pending and due, or leased and expired) and the time the
-- first event waiting out a backoff is due (NULL when none waits).
create or replace function crm.inbox_due(p_connection_id uuid)
  returns table (due integer, next_at timestamptz)
  language sql
  stable
  set search_path = ''
as $$
  select (count(*) filter (where (w.state = 'pending' and w.next_attempt_at <= now())
                              or (w.state = 'processing' and w.locked_until < now())))::integer,
         min(w.next_attempt_at) filter (where w.state = 'pending' and w.next_attempt_at > now())
  from crm.webhook_events w
  where w.connection_id = p_connection_id and w.state in ('pending', 'processing')
$$;
comment on function crm.inbox_due(uuid) is
  'A connection''s webhook inbox: (events due now, when the next event in backoff is due).';

create or replace function crm.enqueue_inbox(
  p_connection_id uuid default null,
  p_trigger text default 'manual',
  p_wake boolean default true
)
  returns integer
  language plpgsql
  set search_path = ''
as $$
declare
  v_status text;
  v_ids uuid[];
  v_count integer;
begin
  if p_trigger is null or p_trigger not in ('cron', 'manual', 'webhook') then
    raise exception using errcode = 'CRM01', message = format('unknown trigger %L', p_trigger),
      hint = 'Use cron, manual or webhook.';
  end if;
  if p_connection_id is not null then
    select c.status into v_status from crm.connections c where c.id = p_connection_id;
    if not found then
      raise exception using errcode = 'CRM02', message = format('connection %s not found', p_connection_id);
    end if;
    if v_status <> 'active' then
      raise exception using errcode = 'CRM06', message = format('connection %s is %s', p_connection_id, v_status),
        hint = 'Resume it first: select crm.resume_connection(''<id>'');';
    end if;
  end if;
  select array_agg(c.id order by c.id) into v_ids
  from crm.connections c
  where c.status = 'active' and (p_connection_id is null or c.id = p_connection_id)
    and exists (select 1 from crm.webhook_events w
                where w.connection_id = c.id
                  and ((w.state = 'pending' and w.next_attempt_at <= now())
                    or (w.state = 'processing' and w.locked_until < now())));
  if v_ids is null then
    return 0;
  end if;
  select count(*)::integer into v_count
  from crm._enqueue_jobs('inbox', v_ids, null, null, jsonb_build_object('trigger', p_trigger), now());
  if p_wake then
    perform crm._wake_after_enqueue(p_trigger);
  end if;
  return v_count;
end
$$;
comment on function crm.enqueue_inbox(uuid, text, boolean) is
  'Queues (or merges) the inbox job of each active connection (or the one given) with due webhook events, then wakes workers once. Returns the number of jobs. CRM01, CRM02, CRM06.';

-- The due-events probe of enqueue_inbox and inbox_due: pending rows of one connection.
create index webhook_events_pending_conn_idx on crm.webhook_events (connection_id, next_attempt_at)
  where state = 'pending';

revoke all on function crm.inbox_due(uuid), crm.enqueue_inbox(uuid, text, boolean) from public;
grant execute on function crm.inbox_due(uuid), crm.enqueue_inbox(uuid, text, boolean) to service_role;

select cron.schedule('crm-inbox', '* * * * *', $$select crm.enqueue_inbox(p_trigger => 'cron')$$);
