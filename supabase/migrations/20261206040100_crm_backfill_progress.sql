-- Why: issue 16 point 1, backfill progress while it happens and after it ended. A walk (a full
-- walk, a backfill, a delta) often spans several runs: a run stops at its worker's budget and
-- the job's continuation resumes from the saved checkpoint in a new run. Progress is per walk:
--
--   sync_log.details.walk_run     the id of the walk's first run, set on every inbound run when
--                                 it opens (crm.mark_inbound_walk): its own id when it starts
--                                 from no checkpoint, else the walk of the stream's previous
--                                 run of the same mode (the one that saved the checkpoint);
--   sync_log.details.walk_before  records the walk's earlier runs processed;
--   sync_log.details.estimated_total / estimated_at
--                                 the walk's estimated size as of its newest page that had a
--                                 total (crm.record_sync_progress with a `remaining` count: the
--                                 records the CRM says remain from that page on, that page
--                                 included): walk_before + what this run processed before that
--                                 page + remaining. The adapters' totals are re-queries, so
--                                 each page's estimate replaces the one before it.
--
-- crm.backfill_progress() reads them per connection and object for the newest walk that is a
-- backfill (its first run's trigger is 'backfill', or it is a full walk: a job's trigger can
-- change when an enqueue merges into it, its mode cannot go below full), with the stream's
-- backfill job (an inbound job in mode full or with trigger backfill) for the waiting state.
-- Redefines crm.record_sync_progress (same signature and increments as 20261122010900).

-- A walk's runs, and the first runs of a stream's backfill walks, without scanning its sync_log
-- history (the cron deltas' walks are not in the second index).
create index if not exists sync_log_walk_idx on crm.sync_log (((details ->> 'walk_run')::bigint))
  where details ? 'walk_run';
create index if not exists sync_log_backfill_walk_idx on crm.sync_log (connection_id, object, id desc)
  where direction = 'inbound' and (details ->> 'walk_run')::bigint = id
    and (trigger = 'backfill' or mode = 'full');

-- Marks a running inbound run as the start of a walk (p_continues false) or as the next run
-- of the stream's walk in the same mode. A continuation whose walk is unknown (runs from
-- before this migration) starts one. Runs that are not running are left alone.
create or replace function crm.mark_inbound_walk(p_run_id bigint, p_continues boolean)
  returns void
  language plpgsql
  set search_path = ''
as $$
declare
  r crm.sync_log;
  v_walk bigint;
  v_before bigint := 0;
begin
  select * into r from crm.sync_log l
  where l.id = p_run_id and l.status = 'running' and l.direction = 'inbound';
  if not found then
    return;
  end if;
  if coalesce(p_continues, false) then
    select (l.details ->> 'walk_run')::bigint into v_walk
    from crm.sync_log l
    where l.connection_id = r.connection_id and l.object = r.object and l.direction = 'inbound'
      and l.mode is not distinct from r.mode and l.id < r.id and l.details ? 'walk_run'
    order by l.id desc
    limit 1;
  end if;
  if v_walk is null then
    v_walk := r.id;
  else
    select coalesce(sum(l.processed), 0) into v_before
    from crm.sync_log l
    where (l.details ->> 'walk_run')::bigint = v_walk and l.details ? 'walk_run' and l.id <> r.id;
  end if;
  update crm.sync_log l
  set details = coalesce(l.details, '{}'::jsonb)
                || jsonb_build_object('walk_run', v_walk, 'walk_before', v_before)
  where l.id = r.id;
end
$$;
comment on function crm.mark_inbound_walk(bigint, boolean) is
  'Marks a running inbound run as its walk''s first (p_continues false) or as the continuation of the stream''s walk in the same mode: details.walk_run, details.walk_before.';

-- As in 20261122010900, plus the walk's estimate: p_counts.remaining (a number) sets
-- details.estimated_total = walk_before + processed before this page + remaining.
create or replace function crm.record_sync_progress(p_run_id bigint, p_counts jsonb)
  returns void
  language sql
  volatile
  set search_path = ''
as $$
  update crm.sync_log l
  set processed = l.processed + coalesce((p_counts ->> 'processed')::integer, 0),
      created = l.created + coalesce((p_counts ->> 'created')::integer, 0),
      updated = l.updated + coalesce((p_counts ->> 'updated')::integer, 0),
      unchanged = l.unchanged + coalesce((p_counts ->> 'unchanged')::integer, 0),
      deleted = l.deleted + coalesce((p_counts ->> 'deleted')::integer, 0),
      failed = l.failed + coalesce((p_counts ->> 'failed')::integer, 0),
      api_calls = l.api_calls + coalesce((p_counts ->> 'api_calls')::integer, 0),
      details = case
        when jsonb_typeof(p_counts -> 'remaining') = 'number' then
          coalesce(l.details, '{}'::jsonb) || jsonb_build_object(
            'estimated_total', coalesce((l.details ->> 'walk_before')::bigint, 0) + l.processed
                               + greatest((p_counts ->> 'remaining')::bigint, 0),
            'estimated_at', clock_timestamp())
        else l.details
      end
  where l.id = p_run_id and l.status = 'running'
$$;
comment on function crm.record_sync_progress(bigint, jsonb) is
  'Adds count increments {processed, created, updated, unchanged, deleted, failed, api_calls} to a running run; {remaining: n} (records the CRM says remain from this page on) sets the walk''s details.estimated_total.';

-- Per connection and object, the newest backfill walk (see the header) or a backfill job that
-- has not started one yet:
--   state      waiting  a backfill job is queued and no run of it has started;
--              running  a run is running, or the job is queued to continue or retry the walk,
--                       or (no job: a backfill through the sync function) the last run said
--                       more less than 2 minutes ago;
--              done     the last run finished the walk (success or partial);
--              failed   the last run failed, or stopped with more to read, and no job will
--                       continue it (dead or cancelled), or the job died before any run;
--   records    processed over the walk's runs (0 while waiting);
--   estimated_total  the newest page estimate of the walk; NULL when the CRM gave no total
--              (Pipedrive) or none yet;
--   rate       records per second from the walk's start to its end (now while not ended),
--              queue waits between runs included: what the user waits;
--   eta        while running with an estimate and a rate: (estimate - records) / rate;
--   started_at, finished_at (when done or failed), runs, last_error (of the last run, when it
--              failed; the job's error when it died before a run).
-- Security invoker: a signed-in user sees the streams of their own account (RLS on
-- crm.connections, crm.sync_log and crm.jobs), the service role every stream.
create or replace function crm.backfill_progress()
  returns table (
    connection_id uuid, account_id uuid, provider text, connection_name text, object text,
    state text, records bigint, estimated_total bigint, rate numeric, eta interval,
    started_at timestamptz, finished_at timestamptz, runs integer, last_error text
  )
  language sql
  stable
  set search_path = ''
as $$
  with streams as (
    select c.id, c.account_id, c.provider, coalesce(c.name, c.provider) as name, o.object, o.ord
    from crm.connections c
    cross join (values ('contacts', 1), ('companies', 2), ('deals', 3), ('owners', 4)) as o(object, ord)
  ),
  progress as (
    select s.*, w.id as walk_id, w.started_at as walk_started_at,
           r.runs, r.records, r.estimate, r.last_status, r.last_more, r.last_error,
           r.last_finished_at, j.state as job_state, j.created_at as job_created_at,
           dj.last_error as dead_error, dj.updated_at as dead_at
    from streams s
    left join lateral (
      select l.id, l.started_at
      from crm.sync_log l
      where l.connection_id = s.id and l.object = s.object and l.direction = 'inbound'
        and (l.details ->> 'walk_run')::bigint = l.id
        and (l.trigger = 'backfill' or l.mode = 'full')
      order by l.id desc
      limit 1
    ) w on true
    left join lateral (
      select count(*)::integer as runs,
             sum(l.processed)::bigint as records,
             (array_agg((l.details ->> 'estimated_total')::bigint order by l.id desc)
                filter (where l.details ? 'estimated_total'))[1] as estimate,
             (array_agg(l.status order by l.id desc))[1] as last_status,
             (array_agg(coalesce((l.details ->> 'more')::boolean, false) order by l.id desc))[1]
               as last_more,
             (array_agg(case when l.status = 'failed'
                             then coalesce(l.error ->> 'message', 'failed') end
                        order by l.id desc))[1] as last_error,
             max(l.finished_at) as last_finished_at
      from crm.sync_log l
      where w.id is not null and (l.details ->> 'walk_run')::bigint = w.id and l.details ? 'walk_run'
        and l.connection_id = s.id and l.object = s.object
    ) r on true
    left join lateral (
      select j.state, j.created_at
      from crm.jobs j
      where j.kind = 'inbound' and j.connection_id = s.id and j.object = s.object
        and j.state in ('queued', 'running')
        and (j.mode = 'full' or j.payload ->> 'trigger' = 'backfill')
      order by j.id desc
      limit 1
    ) j on true
    left join lateral (
      select j.last_error, j.updated_at
      from crm.jobs j
      where j.kind = 'inbound' and j.connection_id = s.id and j.object = s.object
        and j.state in ('dead', 'cancelled')
        and (j.mode = 'full' or j.payload ->> 'trigger' = 'backfill')
        and j.updated_at >= coalesce(w.started_at, '-infinity')
      order by j.id desc
      limit 1
    ) dj on true
  ),
  stated as (
    select p.*,
           case
             when p.last_status = 'running' or p.job_state = 'running' then 'running'
             when p.job_state = 'queued' and p.walk_id is not null
                  and p.walk_started_at >= p.job_created_at
                  and (p.last_more or p.last_status = 'failed') then 'running'
             when p.job_state = 'queued' then 'waiting'
             when p.walk_id is null then 'failed'
             when p.last_more and p.dead_at is null
                  and p.last_finished_at > now() - interval '2 minutes' then 'running'
             when p.last_more or p.last_status = 'failed' then 'failed'
             else 'done'
           end as state
    from progress p
    where p.walk_id is not null or p.job_state is not null or p.dead_at is not null
  ),
  measured as (
    select t.*,
           case when t.state = 'waiting' then 0 else coalesce(t.records, 0) end as n,
           extract(epoch from
             case when t.state in ('done', 'failed') then t.last_finished_at else now() end
             - t.walk_started_at) as secs
    from stated t
  )
  select m.id, m.account_id, m.provider, m.name, m.object, m.state, m.n,
         case when m.state <> 'waiting' then m.estimate end,
         case when m.state <> 'waiting' and m.secs > 0 then round(m.n / m.secs::numeric, 1) end,
         case when m.state = 'running' and m.estimate is not null and m.secs > 0 and m.n > 0
              then make_interval(secs => round(greatest(m.estimate - m.n, 0) * m.secs / m.n)::float8)
         end,
         case when m.state <> 'waiting' then m.walk_started_at end,
         case when m.state in ('done', 'failed') then coalesce(m.last_finished_at, m.dead_at) end,
         case when m.state = 'waiting' then 0 else coalesce(m.runs, 0) end,
         case when m.state in ('running', 'failed') then coalesce(m.last_error, m.dead_error) end
  from measured m
  order by m.account_id, m.provider, m.name, m.id, m.ord
$$;
comment on function crm.backfill_progress() is
  'Per connection and object, the newest backfill walk (over its runs, continuations included): state waiting|running|done|failed, records, estimated_total (NULL when the CRM gives no total), rate (records/s), eta, started/finished, runs, last_error. Readable after the walk ended.';

revoke all on function crm.mark_inbound_walk(bigint, boolean) from public, anon, authenticated;
grant execute on function crm.mark_inbound_walk(bigint, boolean) to service_role;
revoke all on function crm.backfill_progress() from public, anon;
grant execute on function crm.backfill_progress() to authenticated, service_role;
