-- Why: the seeds alerted on "no contacts sync in 10 minutes" and "failure rate > 10 %". The
-- health check is a SQL-only cron job (every 5 minutes, no edge function involved, so it still
-- works when the functions do not): it closes runs abandoned by a crashed or killed worker and
-- keeps crm.health_alerts current (one open row per connection, stream and problem; resolved
-- when the problem is gone), which a dashboard, a database webhook or an admin can watch.

create table crm.health_alerts (
  id bigint generated always as identity primary key,
  connection_id uuid not null references crm.connections (id) on delete cascade,
  -- contacts | companies | deals | owners | outbound | connection
  object text not null,
  -- stale | error_rate | dead_letters | connection_error
  kind text not null,
  message text not null,
  details jsonb,
  first_seen_at timestamptz not null default now(),
  last_seen_at timestamptz not null default now(),
  resolved_at timestamptz,
  constraint health_alerts_kind_check check (kind in ('stale', 'error_rate', 'dead_letters', 'connection_error'))
);
create unique index health_alerts_open_unique on crm.health_alerts (connection_id, object, kind)
  where resolved_at is null;
create index health_alerts_resolved_idx on crm.health_alerts (resolved_at) where resolved_at is not null;
comment on table crm.health_alerts is
  'Problems found by crm.check_health() (cron */5): open while they last (resolved_at NULL).';

-- Runs longer than this were abandoned (the edge functions' wall clock is at most 400 s).
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
    ) a
    union all
    select c.id, 'connection', 'connection_error', coalesce(c.last_error, 'connection in error state'),
           jsonb_build_object('since', c.status_changed_at)
    from crm.connections c
    where c.status = 'error'
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
  'Closes abandoned runs and refreshes crm.health_alerts (stale streams, > 10 % failed runs, dead letters, errored connections); returns the open alerts.';
revoke all on function crm.check_health(interval) from public;
grant execute on function crm.check_health(interval) to service_role;

alter table crm.health_alerts enable row level security;
create policy health_alerts_select_own on crm.health_alerts for select to authenticated
  using (connection_id in (select c.id from crm.connections c
                           where c.account_id = (select crm.current_account_id())));

revoke all on crm.health_alerts from public, anon, authenticated;
grant select on crm.health_alerts to authenticated;
grant select, insert, update, delete on crm.health_alerts to service_role;
