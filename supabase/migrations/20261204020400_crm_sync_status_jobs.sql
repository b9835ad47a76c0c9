-- Why: crm.sync_status() is where an admin (service role) or a user (own account, RLS) looks
-- first, so it shows the scale-out's state too: per stream its job (queued and due, waiting for
-- a retry or a deferral, running), its dead jobs and how long its due job has waited; per
-- connection its rate budget (used of the ceiling per limit class, and a pause); and how many
-- workers are live. The stream columns of 20261204010200 stay as they were (renamed
-- crm._sync_status_streams); new columns go at the end.

-- crm.budget_status() is security invoker: for an authenticated user, RLS on crm.rate_budgets
-- and crm.connections keeps it to the caller's account, so it (and the pure helpers it calls)
-- can be granted.
grant execute on function crm.budget_status(uuid) to authenticated;
grant execute on function crm._rate_limits(uuid) to authenticated;
grant execute on function crm._rate_used(timestamptz[], integer[], timestamptz) to authenticated;
grant execute on function crm._rate_in_use(crm.rate_budgets, integer, boolean, timestamptz)
  to authenticated;
grant execute on function crm._rate_classes(text, jsonb) to authenticated;

-- Workers live now: a project-wide count, no tenant data.
create or replace function crm.live_worker_count()
  returns integer
  language sql
  stable
  security definer
  set search_path = ''
as $$
  select w.live from crm._worker_counts() w
$$;
comment on function crm.live_worker_count() is
  'How many job workers are live (the count crm.wake_workers keeps under max_workers).';
revoke all on function crm.live_worker_count() from public, anon;
grant execute on function crm.live_worker_count() to authenticated, service_role;

alter function crm.sync_status() rename to _sync_status_streams;
revoke all on function crm._sync_status_streams() from public, anon;
grant execute on function crm._sync_status_streams() to authenticated, service_role;

create or replace function crm.sync_status()
  returns table (
    connection_id uuid, account_id uuid, provider text, connection_status text, object text,
    enabled boolean, last_success_at timestamptz, last_failure_at timestamptz, last_error text,
    records bigint, pending_outbound bigint, dead_letters bigint, runs_24h bigint,
    failed_24h bigint, error_rate_24h numeric, expected_every interval, stale boolean,
    open_failures bigint,
    -- The stream's live job: 'queued' (due), 'waiting' (a retry or deferral later), 'running'.
    job_state text, job_mode text,
    -- Records so far of the running job (its last heartbeat).
    job_progress jsonb, jobs_dead bigint, oldest_due_age interval,
    -- The connection's budget: "class used/ceiling" per limit class, and a pause if any.
    budget text, budget_paused_until timestamptz, budget_pause_reason text,
    live_workers integer
  )
  language sql
  stable
  set search_path = ''
as $$
  with st as (select * from crm._sync_status_streams()),
  -- One budget summary per connection (crm.budget_status() once each, not once per stream).
  bud as (
    select r.connection_id,
           string_agg(format('%s %s/%s', r.class, r.used, r.ceiling), ', ' order by r.class)
             as summary,
           max(r.paused_until) as paused_until,
           (array_agg(r.pause_reason order by r.paused_until desc nulls last))[1] as pause_reason
    from (select distinct st.connection_id from st) c
    cross join lateral crm.budget_status(c.connection_id) r
    group by r.connection_id
  )
  select s.*,
         case when j.state = 'queued' and j.run_after > now() then 'waiting' else j.state end,
         j.mode,
         case when j.state = 'running' then j.progress end,
         dj.dead,
         case when j.state = 'queued' and j.run_after <= now() then now() - j.run_after end,
         b.summary, b.paused_until, b.pause_reason,
         crm.live_worker_count()
  from st s
  left join lateral (
    select x.state, x.mode, x.progress, x.run_after
    from crm.jobs x
    where x.connection_id = s.connection_id and x.state in ('queued', 'running')
      and case when s.object = 'outbound' then x.kind = 'outbound'
               else x.kind = 'inbound' and x.object = s.object end
    limit 1
  ) j on true
  cross join lateral (
    select count(*) as dead
    from crm.jobs x
    where x.connection_id = s.connection_id and x.state = 'dead'
      and case when s.object = 'outbound' then x.kind = 'outbound'
               else x.kind = 'inbound' and x.object = s.object end
  ) dj
  left join bud b on b.connection_id = s.connection_id
  order by s.account_id, s.connection_id,
           array_position(array['contacts', 'companies', 'deals', 'owners', 'outbound'], s.object)
$$;
comment on function crm.sync_status() is
  'Per connection and object: last success/failure, error, records, pending outbound, dead letters, 24 h error rate, stale flag, open inbound failures; the stream''s job (state, mode, progress, dead jobs, oldest due age), the connection''s rate budget (used/ceiling per class, pause) and live workers.';
revoke all on function crm.sync_status() from public, anon;
grant execute on function crm.sync_status() to authenticated, service_role;
