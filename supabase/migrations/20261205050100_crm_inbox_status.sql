-- Why: issue 13, observability of the webhook inbox. crm.sync_status() gains, on each row of a
-- connection, that connection's inbox backlog in crm.webhook_events: events pending (stored,
-- not yet applied), processing (leased by a worker), dead (gave up after their attempts), and
-- the age of the oldest pending one (received_at, so it is how long the oldest unapplied
-- delivery has waited). The inbox is per connection, not per object: every row of a
-- connection carries the same four figures.
-- The columns of 20261205010200 stay as they were and in that order (that definition is
-- renamed crm._sync_status_outbound); the four inbox columns come last.

-- Counting processing and dead events per connection: a small partial index (events pass
-- through 'processing' briefly and 'dead' is rare). Pending events are found through
-- webhook_events_pending_conn_idx (20261205020200). Neither is touched by the receiver's insert
-- beyond what was there: new events are 'pending'.
create index webhook_events_backlog_idx on crm.webhook_events (connection_id, state)
  where state in ('processing', 'dead');

alter function crm.sync_status() rename to _sync_status_outbound;
revoke all on function crm._sync_status_outbound() from public, anon;
grant execute on function crm._sync_status_outbound() to authenticated, service_role;

create or replace function crm.sync_status()
  returns table (
    connection_id uuid, account_id uuid, provider text, connection_status text, object text,
    enabled boolean, last_success_at timestamptz, last_failure_at timestamptz, last_error text,
    records bigint, pending_outbound bigint, dead_letters bigint, runs_24h bigint,
    failed_24h bigint, error_rate_24h numeric, expected_every interval, stale boolean,
    open_failures bigint, job_state text, job_mode text, job_progress jsonb, jobs_dead bigint,
    oldest_due_age interval, budget text, budget_paused_until timestamptz,
    budget_pause_reason text, live_workers integer,
    outbox_pending bigint, outbox_dead bigint, outbox_oldest_pending_age interval,
    last_outbound_at timestamptz, last_outbound_status text, outbound_setup_error text,
    inbox_pending bigint, inbox_processing bigint, inbox_dead bigint,
    inbox_oldest_pending_age interval
  )
  language sql
  stable
  set search_path = ''
as $$
  select s.*, coalesce(ib.pending, 0), coalesce(ib.processing, 0), coalesce(ib.dead, 0),
         ib.oldest_age
  from crm._sync_status_outbound() s
  left join lateral (
    select count(*) filter (where w.state = 'pending') as pending,
           count(*) filter (where w.state = 'processing') as processing,
           count(*) filter (where w.state = 'dead') as dead,
           now() - min(w.received_at) filter (where w.state = 'pending') as oldest_age
    from crm.webhook_events w
    where w.connection_id = s.connection_id and w.state in ('pending', 'processing', 'dead')
  ) ib on true
  order by s.account_id, s.connection_id,
           array_position(array['contacts', 'companies', 'deals', 'owners', 'outbound'], s.object)
$$;
comment on function crm.sync_status() is
  'Per connection and object: last success/failure, error, records, pending outbound, dead letters, 24 h error rate, stale flag, open inbound failures; the stream''s job, the rate budget and live workers; outbox pending, dead and oldest age, the last outbound run and a failed outbound set-up; the connection''s webhook inbox backlog (pending, processing, dead events, oldest pending age).';
revoke all on function crm.sync_status() from public, anon;
grant execute on function crm.sync_status() to authenticated, service_role;
