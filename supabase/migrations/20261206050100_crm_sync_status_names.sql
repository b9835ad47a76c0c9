-- Why: issue 16, crm.sync_status() read by a person. Its rows gain, last (the columns before keep
-- their order, 20261205050100):
--   connection_name  crm.connections.name, so a row says which connection without a uuid join;
--   current_error    the stream's last error only while it is current: its latest failed run is
--                    newer than its latest success. last_error keeps reporting the latest failure
--                    whatever came after (history); current_error is what needs attention now.
-- A new column changes the result type: drop, recreate (its caller crm.check_health() names the
-- columns it reads, and a language sql body resolves it at run time).
drop function crm.sync_status();
create function crm.sync_status()
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
    inbox_oldest_pending_age interval,
    connection_name text, current_error text
  )
  language sql
  stable
  set search_path = ''
as $$
  select s.*, coalesce(ib.pending, 0), coalesce(ib.processing, 0), coalesce(ib.dead, 0),
         ib.oldest_age,
         c.name,
         case when s.last_failure_at > coalesce(s.last_success_at, '-infinity')
              then coalesce(s.last_error, 'failed') end
  from crm._sync_status_outbound() s
  join crm.connections c on c.id = s.connection_id
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
  'Per connection and object: last success/failure, error, records, pending outbound, dead letters, 24 h error rate, stale flag, open inbound failures; the stream''s job, the rate budget and live workers; outbox pending, dead and oldest age, the last outbound run and a failed outbound set-up; the connection''s webhook inbox backlog (pending, processing, dead events, oldest pending age); the connection''s name and the current error (the last error while no success came after it).';
revoke all on function crm.sync_status() from public, anon;
grant execute on function crm.sync_status() to authenticated, service_role;
