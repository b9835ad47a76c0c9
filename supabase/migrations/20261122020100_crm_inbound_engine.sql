-- Why: the inbound engine (supabase/functions/_shared/sync) must write each page, its cursor
-- and its run counts atomically, never run twice at once for the same stream, survive being
-- killed mid-walk, and let a full walk tombstone the records it did not see. Those rules live
-- here, in SQL, so every caller (cron, manual trigger, live fetch with persist) gets them.
--
--   crm.begin_inbound_run      lease: one running inbound run per (connection, object); a run
--                              older than the lease was abandoned and is closed as failed.
--   crm.save_inbound_page      apply_inbound + watermark + checkpoint + seen ids + counts in one
--                              statement; a page the apply rejects (CRM03 / bad value) is
--                              retried record by record and the bad records come back with
--                              their reason (nothing else on the page is lost).
--   crm.finish_full_sync_sweep tombstones mirror rows a completed full walk did not see.
--   crm.mark_connection_error  revoked credentials: the connection stops until resumed.

alter table crm.sync_cursors add column if not exists delta_checkpoint jsonb;
comment on column crm.sync_cursors.delta_checkpoint is
  'Adapter checkpoint of an unfinished delta walk (NULL when the last walk finished).';

-- Remote ids a running full walk has seen; emptied when the walk finishes.
create table if not exists crm.full_sync_seen (
  connection_id uuid not null references crm.connections (id) on delete cascade,
  object text not null,
  remote_id text not null,
  primary key (connection_id, object, remote_id),
  constraint full_sync_seen_object_check check (object in ('contacts', 'companies', 'deals', 'owners'))
);
comment on table crm.full_sync_seen is
  'Remote ids seen by the full walk in progress (per connection and object); cleared by crm.finish_full_sync_sweep.';
alter table crm.full_sync_seen enable row level security;
revoke all on crm.full_sync_seen from public, anon, authenticated;
grant select, insert, update, delete on crm.full_sync_seen to service_role;

create or replace function crm.begin_inbound_run(
  p_connection_id uuid,
  p_object text,
  p_trigger text,
  p_mode text,
  p_details jsonb default null,
  p_lease interval default '3 minutes'
)
  returns table (run_id bigint, watermark_at timestamptz, watermark_id text,
                 delta_checkpoint jsonb, full_sync_checkpoint jsonb)
  language plpgsql
  set search_path = ''
as $$
declare
  v_status text;
  v_run bigint;
begin
  if p_mode is null or p_mode not in ('delta', 'full') then
    raise exception using errcode = 'CRM01', message = format('unknown inbound mode %L', p_mode);
  end if;
  select c.status into v_status from crm.connections c where c.id = p_connection_id;
  if not found then
    raise exception using errcode = 'CRM02', message = format('connection %s not found', p_connection_id);
  end if;
  if v_status <> 'active' then
    raise exception using errcode = 'CRM06',
      message = format('connection %s is %s', p_connection_id, v_status);
  end if;
  -- Serialises the check-then-insert below; the running sync_log row is the lease itself.
  perform pg_catalog.pg_advisory_xact_lock(
    pg_catalog.hashtextextended(p_connection_id::text || '/' || p_object || '/inbound', 0));
  update crm.sync_log l
  set status = 'failed', finished_at = clock_timestamp(),
      duration_ms = (extract(epoch from clock_timestamp() - l.started_at) * 1000)::bigint,
      error = jsonb_build_object('message', format('abandoned: no progress within the %s lease', p_lease))
  where l.connection_id = p_connection_id and l.object = p_object and l.direction = 'inbound'
    and l.status = 'running' and l.started_at < now() - p_lease;
  if exists (select 1 from crm.sync_log l
             where l.connection_id = p_connection_id and l.object = p_object
               and l.direction = 'inbound' and l.status = 'running') then
    return;
  end if;
  v_run := crm.open_sync_run(p_connection_id, p_object, 'inbound', p_trigger, p_mode, p_details);
  return query
    select v_run, c.watermark_at, c.watermark_id, c.delta_checkpoint, c.full_sync_checkpoint
    from (select 1) one
    left join crm.sync_cursors c on c.connection_id = p_connection_id and c.object = p_object;
end
$$;
comment on function crm.begin_inbound_run(uuid, text, text, text, jsonb, interval) is
  'Opens an inbound run unless one is already running for the stream (then no row); returns the run id and the cursor. CRM01, CRM02, CRM06.';

create or replace function crm._apply_one_by_one(p_connection_id uuid, p_object text, p_records jsonb)
  returns table (created integer, updated integer, unchanged integer, deleted integer,
                 stale integer, conflicts integer, failed jsonb)
  language plpgsql
  set search_path = ''
as $$
declare
  v_rec jsonb;
  r record;
  v_failed jsonb := '[]'::jsonb;
begin
  created := 0; updated := 0; unchanged := 0; deleted := 0; stale := 0; conflicts := 0;
  for v_rec in select e from jsonb_array_elements(p_records) e loop
    begin
      select * into r from crm.apply_inbound(p_connection_id, p_object, jsonb_build_array(v_rec));
      created := created + r.created; updated := updated + r.updated;
      unchanged := unchanged + r.unchanged; deleted := deleted + r.deleted;
      stale := stale + r.stale; conflicts := conflicts + r.conflicts;
    exception when sqlstate 'CRM03' or data_exception or integrity_constraint_violation then
      v_failed := v_failed || jsonb_build_object('remote_id', v_rec ->> 'remote_id',
        'reason', regexp_replace(sqlerrm, '^record 1: ', ''));
    end;
  end loop;
  failed := v_failed;
  return next;
end
$$;

create or replace function crm.save_inbound_page(
  p_run_id bigint,
  p_connection_id uuid,
  p_object text,
  p_mode text,
  p_records jsonb,
  p_watermark_at timestamptz,
  p_watermark_id text,
  p_checkpoint jsonb,
  p_counts jsonb default '{}'::jsonb
)
  returns table (created integer, updated integer, unchanged integer, deleted integer,
                 stale integer, conflicts integer, failed jsonb)
  language plpgsql
  set search_path = ''
as $$
declare
  r record;
begin
  begin
    select a.*, '[]'::jsonb as failed into r
    from crm.apply_inbound(p_connection_id, p_object, p_records) a;
  exception when sqlstate 'CRM03' or data_exception or integrity_constraint_violation then
    select * into r from crm._apply_one_by_one(p_connection_id, p_object, p_records);
  end;
  if p_watermark_at is not null then
    perform crm.advance_cursor(p_connection_id, p_object, p_watermark_at, p_watermark_id);
  end if;
  if p_mode = 'full' then
    perform crm.save_full_sync_checkpoint(p_connection_id, p_object, p_checkpoint);
    insert into crm.full_sync_seen (connection_id, object, remote_id)
    select distinct p_connection_id, p_object, e ->> 'remote_id'
    from jsonb_array_elements(p_records) e
    where e ->> 'remote_id' is not null
    on conflict do nothing;
  elsif p_mode = 'delta' then
    insert into crm.sync_cursors as c (connection_id, object, delta_checkpoint)
    values (p_connection_id, p_object, p_checkpoint)
    on conflict (connection_id, object) do update
      set delta_checkpoint = excluded.delta_checkpoint, updated_at = now();
  end if;
  perform crm.record_sync_progress(p_run_id, coalesce(p_counts, '{}'::jsonb) || jsonb_build_object(
    'processed', jsonb_array_length(p_records),
    'created', r.created, 'updated', r.updated, 'unchanged', r.unchanged + r.stale,
    'deleted', r.deleted, 'failed', jsonb_array_length(r.failed)));
  return query select r.created, r.updated, r.unchanged, r.deleted, r.stale, r.conflicts, r.failed;
end
$$;
comment on function crm.save_inbound_page(bigint, uuid, text, text, jsonb, timestamptz, text, jsonb, jsonb) is
  'Writes one inbound page atomically: apply, watermark, checkpoint (delta or full; mode live touches no cursor), seen ids, run counts. Returns apply counts and the records that failed with their reason.';

create or replace function crm.finish_full_sync_sweep(p_connection_id uuid, p_object text)
  returns integer
  language plpgsql
  set search_path = ''
  set crm.engine = 'on'
as $$
declare
  v_started timestamptz;
  v_count integer;
begin
  if p_object is null or p_object not in ('contacts', 'companies', 'deals', 'owners') then
    raise exception using errcode = 'CRM01', message = format('unknown object %L', p_object);
  end if;
  select c.full_sync_started_at into v_started
  from crm.sync_cursors c where c.connection_id = p_connection_id and c.object = p_object;
  -- Rows written during the walk (webhooks, a concurrent delta) are newer than its start and
  -- are never swept; merged rows are tombstones already.
  execute format($q$
    update crm.%1$I t
    set deleted_at = now(), last_synced_at = now(), updated_at = now(), needs_sync = false
    where t.connection_id = $1 and t.remote_id is not null and t.deleted_at is null
      and (t.last_synced_at is null or t.last_synced_at < $2)
      and not exists (select 1 from crm.full_sync_seen s
                      where s.connection_id = $1 and s.object = $3 and s.remote_id = t.remote_id)
  $q$, p_object) using p_connection_id, coalesce(v_started, now()), p_object;
  get diagnostics v_count = row_count;
  delete from crm.full_sync_seen s where s.connection_id = p_connection_id and s.object = p_object;
  perform crm.finish_full_sync(p_connection_id, p_object);
  return v_count;
end
$$;
comment on function crm.finish_full_sync_sweep(uuid, text) is
  'Ends a full walk: tombstones mirror rows it did not see (and that nothing wrote during it), clears the checkpoint; returns how many were tombstoned.';

create or replace function crm.mark_connection_error(p_connection_id uuid, p_message text)
  returns void
  language sql
  volatile
  set search_path = ''
as $$
  update crm.connections c
  set status = 'error', status_changed_at = case when c.status = 'error' then c.status_changed_at else now() end,
      last_error = p_message, last_error_at = now(), updated_at = now()
  where c.id = p_connection_id and c.status in ('active', 'error')
$$;
comment on function crm.mark_connection_error(uuid, text) is
  'Puts a connection in status error with a readable reason (revoked credentials); crm.resume_connection clears it.';

revoke all on function crm.begin_inbound_run(uuid, text, text, text, jsonb, interval),
  crm._apply_one_by_one(uuid, text, jsonb),
  crm.save_inbound_page(bigint, uuid, text, text, jsonb, timestamptz, text, jsonb, jsonb),
  crm.finish_full_sync_sweep(uuid, text), crm.mark_connection_error(uuid, text) from public;
grant execute on function crm.begin_inbound_run(uuid, text, text, text, jsonb, interval),
  crm._apply_one_by_one(uuid, text, jsonb),
  crm.save_inbound_page(bigint, uuid, text, text, jsonb, timestamptz, text, jsonb, jsonb),
  crm.finish_full_sync_sweep(uuid, text), crm.mark_connection_error(uuid, text) to service_role;
