-- Why: with work in a job queue and calls paced by a shared budget, two new problems need an
-- alert an admin or a dashboard can watch in crm.health_alerts: dead jobs (a stream that stopped
-- retrying and waits for crm.replay_job) and a budget paused for long (Salesforce down to the
-- reserve kept for the customer's other integrations, a daily allocation spent). Short pauses
-- after a 429 are the budget doing its job, not an alert. check_health is otherwise as in
-- 20261122011100.

alter table crm.health_alerts drop constraint health_alerts_kind_check;
alter table crm.health_alerts add constraint health_alerts_kind_check
  check (kind in ('stale', 'error_rate', 'dead_letters', 'connection_error', 'dead_jobs',
                  'budget_paused'));

create or replace function crm.check_health(p_abandon_after interval default '1 hour')
  returns setof crm.health_alerts
  language plpgsql
  set search_path = ''
as $$
begin
  update crm.sync_log l
  set status = 'failed', finished_at = now(),
      duration_ms = (extract(epoch from now() - l.started_at) * 1000)::bigint,
      error = jsonb_build_object('message', format('abandoned: still running after %s', p_abandon_after))
  where l.status = 'running' and l.started_at < now() - p_abandon_after;

  return query
  with problems as (
    select s.connection_id, s.object, a.kind, a.message, a.details
    from crm.sync_status() s
    cross join lateral (
      select 'stale' as kind,
             case when s.object = 'outbound'
               then 'outbound changes have been due for more than ' || (2 * s.expected_every)::text
               else format('no successful %s sync since %s (schedule: every %s)',
                           s.object, coalesce(s.last_success_at::text, 'ever'), s.expected_every)
             end as message,
             jsonb_build_object('last_success_at', s.last_success_at) as details
      where s.stale
      union all
      select 'error_rate', format('%s of %s runs failed in 24 h', s.failed_24h, s.runs_24h),
             jsonb_build_object('error_rate_24h', s.error_rate_24h, 'last_error', s.last_error)
      where s.error_rate_24h > 0.1
      union all
      select 'dead_letters', format('%s dead letters', s.dead_letters),
             jsonb_build_object('dead_letters', s.dead_letters)
      where s.dead_letters > 0
      union all
      select 'dead_jobs',
             format('%s dead job(s); replay with select crm.replay_dead_jobs(%L)', s.jobs_dead,
                    s.connection_id),
             jsonb_build_object('jobs_dead', s.jobs_dead,
               'last_error', (select j.last_error from crm.jobs j
                              where j.connection_id = s.connection_id and j.state = 'dead'
                                and case when s.object = 'outbound' then j.kind = 'outbound'
                                         else j.kind = 'inbound' and j.object = s.object end
                              order by j.finished_at desc limit 1))
      where s.jobs_dead > 0
    ) a
    union all
    select c.id, 'connection', 'connection_error', coalesce(c.last_error, 'connection in error state'),
           jsonb_build_object('since', c.status_changed_at)
    from crm.connections c
    where c.status = 'error'
    union all
    -- One alert per connection: the longest pause of its classes.
    select * from (
      select distinct on (b.connection_id) b.connection_id, 'connection'::text, 'budget_paused'::text,
             format('%s budget %s paused until %s (%s)', b.provider, b.class, b.paused_until,
                    b.pause_reason),
             jsonb_build_object('class', b.class, 'paused_until', b.paused_until,
                                'reason', b.pause_reason, 'used', b.used, 'ceiling', b.ceiling,
                                'reserve', b.reserve)
      from crm.budget_status() b
      where b.paused_until > now() + interval '1 minute' and b.pause_reason <> 'throttled'
      order by b.connection_id, b.paused_until desc
    ) paused
  ),
  resolved as (
    update crm.health_alerts h
    set resolved_at = now()
    where h.resolved_at is null
      and not exists (select 1 from problems f
                      where f.connection_id = h.connection_id and f.object = h.object and f.kind = h.kind)
    returning h.id
  ),
  opened as (
    insert into crm.health_alerts as h (connection_id, object, kind, message, details)
    select f.connection_id, f.object, f.kind, f.message, f.details from problems f
    on conflict (connection_id, object, kind) where resolved_at is null do update
      set message = excluded.message, details = excluded.details, last_seen_at = now()
    returning h.*
  )
  select o.* from opened o order by o.connection_id, o.object, o.kind;
end
$$;
comment on function crm.check_health(interval) is
  'Closes abandoned runs and refreshes crm.health_alerts (stale streams, > 10 % failed runs, dead letters, errored connections, dead jobs, budgets paused for long); returns the open alerts.';
revoke all on function crm.check_health(interval) from public;
grant execute on function crm.check_health(interval) to service_role;
