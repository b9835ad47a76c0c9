-- Why: every run must be visible (what ran, why, how it went, what it cost) and every inbound
-- stream must be resumable. crm.sync_log has one row per run with its counts; crm.sync_cursors
-- keeps per connection and object the delta watermark (modified_at, remote_id), saved after
-- every page so a run cut short resumes where it stopped, and the checkpoint of a full walk.
-- The watermark only ever moves forward: an overlapping or replayed page cannot rewind it.

create table crm.sync_log (
  id bigint generated always as identity primary key,
  connection_id uuid not null references crm.connections (id) on delete cascade,
  -- NULL: a run over several objects (e.g. an outbound push of everything due).
  object text,
  direction text not null,
  trigger text not null,
  mode text,
  status text not null default 'running',
  started_at timestamptz not null default now(),
  finished_at timestamptz,
  duration_ms bigint,
  processed integer not null default 0,
  created integer not null default 0,
  updated integer not null default 0,
  unchanged integer not null default 0,
  deleted integer not null default 0,
  failed integer not null default 0,
  api_calls integer not null default 0,
  -- {"message": ..., "code": ..., "details": ...} for failed / partial runs.
  error jsonb,
  details jsonb,
  constraint sync_log_object_check check (object in ('contacts', 'companies', 'deals', 'owners')),
  constraint sync_log_direction_check check (direction in ('inbound', 'outbound')),
  constraint sync_log_trigger_check check (trigger in ('cron', 'webhook', 'manual', 'backfill', 'live')),
  constraint sync_log_mode_check check (mode in ('delta', 'full', 'retry')),
  constraint sync_log_status_check check (status in ('running', 'success', 'partial', 'failed')),
  constraint sync_log_finished_check check ((status = 'running') = (finished_at is null))
);
create index sync_log_connection_idx on crm.sync_log (connection_id, object, direction, started_at desc);
create index sync_log_started_idx on crm.sync_log (started_at);
create index sync_log_running_idx on crm.sync_log (started_at) where status = 'running';
comment on table crm.sync_log is
  'One row per sync run: connection, object, direction, trigger, status running|success|partial|failed, counts, API calls, duration, error.';

create table crm.sync_cursors (
  connection_id uuid not null references crm.connections (id) on delete cascade,
  object text not null,
  watermark_at timestamptz,
  watermark_id text,
  -- Opaque resume point of a running full walk (provider cursor / last id), and its start.
  full_sync_checkpoint jsonb,
  full_sync_started_at timestamptz,
  last_full_sync_at timestamptz,
  updated_at timestamptz not null default now(),
  primary key (connection_id, object),
  constraint sync_cursors_object_check check (object in ('contacts', 'companies', 'deals', 'owners'))
);
comment on table crm.sync_cursors is
  'Inbound watermark (modified_at, remote_id) per connection and object, plus the full-sync checkpoint. Moves forward only.';

-- Sort key for remote ids in the watermark tiebreak: numeric ids (HubSpot, Pipedrive) compare
-- as numbers, others (Salesforce) bytewise.
create or replace function crm._id_sort_key(p_id text)
  returns text
  language sql
  immutable
  parallel safe
  set search_path = ''
as $$
  select case when p_id ~ '^[0-9]{1,40}$' then lpad(p_id, 40, '0') else coalesce(p_id, '') end
$$;
revoke all on function crm._id_sort_key(text) from public;
grant execute on function crm._id_sort_key(text) to service_role;

-- Opens a run; returns its id. CRM01 for an unknown object/direction/trigger/mode, CRM02 for
-- an unknown connection.
create or replace function crm.open_sync_run(
  p_connection_id uuid,
  p_object text,
  p_direction text,
  p_trigger text,
  p_mode text default null,
  p_details jsonb default null
)
  returns bigint
  language plpgsql
  set search_path = ''
as $$
declare
  v_id bigint;
begin
  if p_object is not null and p_object not in ('contacts', 'companies', 'deals', 'owners') then
    raise exception using errcode = 'CRM01', message = format('unknown object %L', p_object);
  end if;
  if p_direction is null or p_direction not in ('inbound', 'outbound') then
    raise exception using errcode = 'CRM01', message = format('unknown direction %L', p_direction);
  end if;
  if p_trigger is null or p_trigger not in ('cron', 'webhook', 'manual', 'backfill', 'live') then
    raise exception using errcode = 'CRM01', message = format('unknown trigger %L', p_trigger);
  end if;
  if p_mode is not null and p_mode not in ('delta', 'full', 'retry') then
    raise exception using errcode = 'CRM01', message = format('unknown mode %L', p_mode);
  end if;
  if not exists (select 1 from crm.connections c where c.id = p_connection_id) then
    raise exception using errcode = 'CRM02', message = format('connection %s not found', p_connection_id);
  end if;
  insert into crm.sync_log (connection_id, object, direction, trigger, mode, details)
  values (p_connection_id, p_object, p_direction, p_trigger, p_mode, p_details)
  returning id into v_id;
  return v_id;
end
$$;
comment on function crm.open_sync_run(uuid, text, text, text, text, jsonb) is
  'Opens a sync_log run (status running); returns its id.';

-- Adds counts to a run while it runs (so a run that dies still shows its progress).
-- p_counts keys: processed, created, updated, unchanged, deleted, failed, api_calls (increments).
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
      api_calls = l.api_calls + coalesce((p_counts ->> 'api_calls')::integer, 0)
  where l.id = p_run_id and l.status = 'running'
$$;
comment on function crm.record_sync_progress(bigint, jsonb) is
  'Adds count increments {processed, created, updated, unchanged, deleted, failed, api_calls} to a running run.';

-- Closes a run with success|partial|failed, adding the final count increments. Success or
-- partial inbound runs stamp connections.last_synced_at; success clears last_error; failure
-- sets it. Closing a run that is no longer running (e.g. closed as abandoned by the health
-- check) changes nothing. Returns the run row.
create or replace function crm.close_sync_run(
  p_run_id bigint,
  p_status text,
  p_counts jsonb default '{}'::jsonb,
  p_error jsonb default null
)
  returns crm.sync_log
  language plpgsql
  set search_path = ''
as $$
declare
  v_run crm.sync_log;
begin
  if p_status is null or p_status not in ('success', 'partial', 'failed') then
    raise exception using errcode = 'CRM01',
      message = format('unknown final status %L', p_status),
      hint = 'Use success, partial or failed.';
  end if;
  perform crm.record_sync_progress(p_run_id, coalesce(p_counts, '{}'::jsonb));
  update crm.sync_log l
  set status = p_status,
      finished_at = clock_timestamp(),
      duration_ms = (extract(epoch from clock_timestamp() - l.started_at) * 1000)::bigint,
      error = p_error
  where l.id = p_run_id and l.status = 'running'
  returning * into v_run;
  if not found then
    select * into v_run from crm.sync_log l where l.id = p_run_id;
    return v_run;
  end if;
  update crm.connections c
  set last_synced_at = case when p_status in ('success', 'partial') and v_run.direction = 'inbound'
                            then v_run.finished_at else c.last_synced_at end,
      last_error = case when p_status = 'success' then null
                        when p_status = 'failed' then coalesce(p_error ->> 'message', p_error::text, 'failed')
                        else c.last_error end,
      last_error_at = case when p_status = 'failed' then v_run.finished_at else c.last_error_at end,
      updated_at = now()
  where c.id = v_run.connection_id;
  return v_run;
end
$$;
comment on function crm.close_sync_run(bigint, text, jsonb, jsonb) is
  'Closes a running run with success|partial|failed, count increments and error details; returns the row.';

-- Moves the delta watermark to (p_modified_at, p_remote_id) only if that is after the stored
-- one. Returns true if it moved.
create or replace function crm.advance_cursor(
  p_connection_id uuid,
  p_object text,
  p_modified_at timestamptz,
  p_remote_id text
)
  returns boolean
  language sql
  volatile
  set search_path = ''
as $$
  with up as (
    insert into crm.sync_cursors as c (connection_id, object, watermark_at, watermark_id)
    values (p_connection_id, p_object, p_modified_at, p_remote_id)
    on conflict (connection_id, object) do update
      set watermark_at = excluded.watermark_at,
          watermark_id = excluded.watermark_id,
          updated_at = now()
      where c.watermark_at is null
         or (excluded.watermark_at, crm._id_sort_key(excluded.watermark_id) collate "C")
          > (c.watermark_at, crm._id_sort_key(c.watermark_id) collate "C")
    returning 1
  )
  select exists (select 1 from up)
$$;
comment on function crm.advance_cursor(uuid, text, timestamptz, text) is
  'Advances the (modified_at, remote_id) watermark, never backwards; returns whether it moved.';

-- Saves the resume point of a full walk (started_at is kept from the first save).
create or replace function crm.save_full_sync_checkpoint(
  p_connection_id uuid,
  p_object text,
  p_checkpoint jsonb
)
  returns void
  language sql
  volatile
  set search_path = ''
as $$
  insert into crm.sync_cursors as c (connection_id, object, full_sync_checkpoint, full_sync_started_at)
  values (p_connection_id, p_object, p_checkpoint, now())
  on conflict (connection_id, object) do update
    set full_sync_checkpoint = excluded.full_sync_checkpoint,
        full_sync_started_at = coalesce(c.full_sync_started_at, excluded.full_sync_started_at),
        updated_at = now()
$$;

-- Ends a full walk: clears the checkpoint, stamps last_full_sync_at.
create or replace function crm.finish_full_sync(p_connection_id uuid, p_object text)
  returns void
  language sql
  volatile
  set search_path = ''
as $$
  insert into crm.sync_cursors as c (connection_id, object, last_full_sync_at)
  values (p_connection_id, p_object, now())
  on conflict (connection_id, object) do update
    set full_sync_checkpoint = null, full_sync_started_at = null,
        last_full_sync_at = excluded.last_full_sync_at, updated_at = now()
$$;

revoke all on function crm.open_sync_run(uuid, text, text, text, text, jsonb),
  crm.record_sync_progress(bigint, jsonb), crm.close_sync_run(bigint, text, jsonb, jsonb),
  crm.advance_cursor(uuid, text, timestamptz, text),
  crm.save_full_sync_checkpoint(uuid, text, jsonb), crm.finish_full_sync(uuid, text) from public;
grant execute on function crm.open_sync_run(uuid, text, text, text, text, jsonb),
  crm.record_sync_progress(bigint, jsonb), crm.close_sync_run(bigint, text, jsonb, jsonb),
  crm.advance_cursor(uuid, text, timestamptz, text),
  crm.save_full_sync_checkpoint(uuid, text, jsonb), crm.finish_full_sync(uuid, text) to service_role;

alter table crm.sync_log enable row level security;
alter table crm.sync_cursors enable row level security;
create policy sync_log_select_own on crm.sync_log for select to authenticated
  using (connection_id in (select c.id from crm.connections c
                           where c.account_id = (select crm.current_account_id())));
create policy sync_cursors_select_own on crm.sync_cursors for select to authenticated
  using (connection_id in (select c.id from crm.connections c
                           where c.account_id = (select crm.current_account_id())));

revoke all on crm.sync_log, crm.sync_cursors from public, anon, authenticated;
grant select on crm.sync_log, crm.sync_cursors to authenticated;
grant select, insert, update, delete on crm.sync_log, crm.sync_cursors to service_role;
