-- Why: issue 13 point 6. The hourly drift check (cron crm-drift-check, inbound jobs of mode
-- drift) re-read and re-applied every record as a full walk. It now compares only ids and
-- modification times (ProviderAdapter.stamps) with the mirror, one set-based statement per page,
-- and reads and applies only what differs (supabase/functions/_shared/sync/drift.ts).
--
--   crm.drift_walks   one row per (connection, object) while a drift walk is under way: when it
--                     started, its phase (walk: listing stamps; confirm: re-reading the local
--                     rows the walk never saw), the adapter checkpoint or the confirm position,
--                     and its running totals. A walk spans several runs (continuations); one
--                     left untouched for DRIFT_WALK_MAX_AGE starts over (its seen ids are too old
--                     to prove anything).
--   crm.drift_seen    the remote ids the walk listed, server-side so a 100k walk keeps the
--                     worker's memory flat and a continuation resumes with them.
--
-- Compare rule (crm.drift_compare_page), per listed (id, modified):
--   missing     no mirror row (nor an alias: merged-away ids are not listed anyway);
--   stale       a live row whose remote_updated_at is older than the listed time (or unknown);
--   tombstoned  a deleted row the apply would restore (not merged, no pending app delete, and a
--               strictly newer listed time, or a sweep tombstone not newer than the listed time:
--               the restore rule of 20261204010100), so the check never reports what a repair
--               cannot change;
--   anything else is equal and costs nothing more.
-- Deletion candidates (crm.drift_deletion_candidates): live rows with a remote id the completed
-- walk never listed and that nothing wrote since the walk started; the engine re-reads them by
-- id and tombstones only those the CRM no longer has (never from absence alone).
--
-- Runs: sync_log mode 'drift' (trigger stays what started it: cron for the hourly job);
-- crm.begin_inbound_run takes the stream's lease for it like for delta and full, so a drift
-- check and a walk of the same stream never run at once. Its details hold the drift counts.

alter table crm.sync_log drop constraint sync_log_mode_check;
alter table crm.sync_log add constraint sync_log_mode_check
  check (mode in ('delta', 'full', 'retry', 'drift'));

-- As in 20261205010200, with mode drift.
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
  if p_trigger is null or p_trigger not in ('cron', 'webhook', 'manual', 'backfill', 'live', 'app') then
    raise exception using errcode = 'CRM01', message = format('unknown trigger %L', p_trigger);
  end if;
  if p_mode is not null and p_mode not in ('delta', 'full', 'retry', 'drift') then
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

-- As in 20261204010200, with mode drift (a drift run holds the stream like a walk).
create or replace function crm.begin_inbound_run(
  p_connection_id uuid,
  p_object text,
  p_trigger text,
  p_mode text,
  p_details jsonb default null,
  p_lease interval default '3 minutes'
)
  returns table (run_id bigint, lease_token bigint, lease_expires_at timestamptz,
                 watermark_at timestamptz, watermark_id text,
                 delta_checkpoint jsonb, full_sync_checkpoint jsonb)
  language plpgsql
  set search_path = ''
as $$
declare
  v_status text;
  v_lease crm.inbound_leases;
  v_run bigint;
  v_token bigint;
  v_expires timestamptz;
begin
  if p_mode is null or p_mode not in ('delta', 'full', 'drift') then
    raise exception using errcode = 'CRM01', message = format('unknown inbound mode %L', p_mode);
  end if;
  if p_object is null or p_object not in ('contacts', 'companies', 'deals', 'owners') then
    raise exception using errcode = 'CRM01', message = format('unknown object %L', p_object);
  end if;
  if p_lease is null or p_lease <= interval '0' then
    raise exception using errcode = 'CRM01', message = 'the lease must be a positive interval';
  end if;
  select c.status into v_status from crm.connections c where c.id = p_connection_id;
  if not found then
    raise exception using errcode = 'CRM02', message = format('connection %s not found', p_connection_id);
  end if;
  if v_status <> 'active' then
    raise exception using errcode = 'CRM06',
      message = format('connection %s is %s', p_connection_id, v_status);
  end if;
  -- The lease row is created once per stream and then only updated; its row lock serialises
  -- takers, and a page write holding it (heartbeat) makes a taker wait for that page.
  insert into crm.inbound_leases (connection_id, object, lease_for, expires_at)
  values (p_connection_id, p_object, p_lease, '-infinity')
  on conflict (connection_id, object) do nothing;
  select * into v_lease from crm.inbound_leases l
  where l.connection_id = p_connection_id and l.object = p_object
  for update;
  -- Held: an unexpired lease of a run still running (crm.check_health closes runs whose
  -- worker died; their lease is free at once).
  if v_lease.token is not null and v_lease.expires_at > clock_timestamp()
     and exists (select 1 from crm.sync_log s where s.id = v_lease.run_id and s.status = 'running') then
    return;
  end if;
  v_run := crm.open_sync_run(p_connection_id, p_object, 'inbound', p_trigger, p_mode, p_details);
  -- The previous holder (and any run left from before leases existed) lost the stream.
  update crm.sync_log l
  set status = 'failed', finished_at = clock_timestamp(),
      duration_ms = (extract(epoch from clock_timestamp() - l.started_at) * 1000)::bigint,
      error = jsonb_build_object('message', format(
        'lease lost: no heartbeat within the %s lease; the stream was taken over by run %s',
        coalesce(v_lease.lease_for, p_lease), v_run))
  where l.connection_id = p_connection_id and l.object = p_object and l.direction = 'inbound'
    and l.status = 'running' and l.mode in ('delta', 'full', 'drift') and l.id <> v_run;
  update crm.inbound_leases l
  set run_id = v_run, token = nextval('crm.inbound_lease_token_seq'), lease_for = p_lease,
      expires_at = clock_timestamp() + p_lease
  where l.connection_id = p_connection_id and l.object = p_object
  returning l.token, l.expires_at into v_token, v_expires;
  return query
    select v_run, v_token, v_expires, c.watermark_at, c.watermark_id, c.delta_checkpoint,
           c.full_sync_checkpoint
    from (select 1) one
    left join crm.sync_cursors c on c.connection_id = p_connection_id and c.object = p_object;
end
$$;

create table if not exists crm.drift_walks (
  connection_id uuid not null references crm.connections (id) on delete cascade,
  object text not null,
  started_at timestamptz not null default clock_timestamp(),
  phase text not null default 'walk',
  -- walk: the adapter's checkpoint (null: from the start); confirm: {"after": remote_id}.
  checkpoint jsonb,
  totals jsonb not null default '{}'::jsonb,
  updated_at timestamptz not null default clock_timestamp(),
  primary key (connection_id, object),
  constraint drift_walks_object_check check (object in ('contacts', 'companies', 'deals', 'owners')),
  constraint drift_walks_phase_check check (phase in ('walk', 'confirm')),
  constraint drift_walks_totals_check check (jsonb_typeof(totals) = 'object')
);
comment on table crm.drift_walks is
  'Drift checks under way per connection and object: start, phase (walk | confirm), checkpoint and running totals.';
alter table crm.drift_walks enable row level security;
drop policy if exists drift_walks_select_own on crm.drift_walks;
create policy drift_walks_select_own on crm.drift_walks for select to authenticated
  using (connection_id in (select c.id from crm.connections c
                           where c.account_id = (select crm.current_account_id())));
revoke all on crm.drift_walks from public, anon, authenticated;
grant select on crm.drift_walks to authenticated;
grant select, insert, update, delete on crm.drift_walks to service_role;

create table if not exists crm.drift_seen (
  connection_id uuid not null references crm.connections (id) on delete cascade,
  object text not null,
  remote_id text not null,
  primary key (connection_id, object, remote_id),
  constraint drift_seen_object_check check (object in ('contacts', 'companies', 'deals', 'owners'))
);
comment on table crm.drift_seen is
  'Remote ids the drift walk in progress listed (per connection and object); emptied when it finishes.';
alter table crm.drift_seen enable row level security;
revoke all on crm.drift_seen from public, anon, authenticated;
grant select, insert, update, delete on crm.drift_seen to service_role;

-- The walk of (connection, object): the one under way, a fresh one when there is none or the
-- one there is older than p_max_age (its seen ids are dropped). Checks the run's lease.
create or replace function crm.drift_walk_state(
  p_run_id bigint,
  p_lease_token bigint,
  p_connection_id uuid,
  p_object text,
  p_max_age interval default '6 hours'
)
  returns table (started_at timestamptz, phase text, checkpoint jsonb, totals jsonb, resumed boolean)
  language plpgsql
  set search_path = ''
as $$
declare
  w crm.drift_walks;
begin
  perform crm._hold_inbound_lease(p_connection_id, p_object, p_run_id, p_lease_token);
  select * into w from crm.drift_walks d
  where d.connection_id = p_connection_id and d.object = p_object;
  if found and w.started_at >= clock_timestamp() - p_max_age then
    return query select w.started_at, w.phase, w.checkpoint, w.totals, true;
    return;
  end if;
  delete from crm.drift_seen s where s.connection_id = p_connection_id and s.object = p_object;
  insert into crm.drift_walks as d (connection_id, object)
  values (p_connection_id, p_object)
  on conflict (connection_id, object) do update
    set started_at = clock_timestamp(), phase = 'walk', checkpoint = null, totals = '{}'::jsonb,
        updated_at = clock_timestamp()
  returning * into w;
  return query select w.started_at, w.phase, w.checkpoint, w.totals, false;
end
$$;
comment on function crm.drift_walk_state(bigint, bigint, uuid, text, interval) is
  'The drift walk of a stream for the run holding its lease (CRM10 otherwise): the one under way, or a fresh one (none, or older than p_max_age).';

-- One page of stamps [{"id": text, "m": timestamptz}]: records the ids as seen and returns those
-- that differ from the mirror, with why (missing | stale | tombstoned). One statement.
create or replace function crm.drift_compare_page(
  p_run_id bigint,
  p_lease_token bigint,
  p_connection_id uuid,
  p_object text,
  p_stamps jsonb
)
  returns table (remote_id text, reason text)
  language plpgsql
  set search_path = ''
  -- The staging table fills and empties within minutes, so its statistics are often those of
  -- an empty table; index probes are right at every size here (see crm._analyze_drift_seen).
  set enable_seqscan = off
as $$
begin
  perform crm._hold_inbound_lease(p_connection_id, p_object, p_run_id, p_lease_token);
  if jsonb_typeof(p_stamps) is distinct from 'array' then
    raise exception using errcode = 'CRM01', message = 'stamps must be a JSON array';
  end if;
  return query execute format($q$
    with s as (
      select distinct on (x.id) x.id, x.m
      from jsonb_to_recordset($3) as x(id text, m timestamptz)
      where x.id is not null
      order by x.id, x.m desc nulls first
    ),
    seen as (
      insert into crm.drift_seen (connection_id, object, remote_id)
      select $1, $2, s.id from s
      on conflict do nothing
    )
    select s.id,
           case when t.id is null then 'missing'
                when t.deleted_at is not null then 'tombstoned'
                else 'stale' end
    from s
    left join crm.%1$I t on t.connection_id = $1 and t.remote_id = s.id
    where case
      when t.id is null then
        not exists (select 1 from crm.record_aliases a
                    where a.connection_id = $1 and a.object = $2 and a.alias_remote_id = s.id)
      when t.deleted_at is null then
        s.m is null or t.remote_updated_at is null or t.remote_updated_at < s.m
      else
        t.merged_into_remote_id is null
        and (s.m > t.remote_updated_at or (t.swept_at is not null and s.m >= t.remote_updated_at)
             or t.remote_updated_at is null)
        and not exists (select 1 from crm.outbox o
                        where o.object = $2 and o.record_id = t.id and o.op = 'delete')
    end
    order by s.id
  $q$, p_object) using p_connection_id, p_object, p_stamps;
end
$$;
comment on function crm.drift_compare_page(bigint, bigint, uuid, text, jsonb) is
  'Drift check, one page: records the listed ids as seen and returns the ones that differ from the mirror (missing, stale, tombstoned). CRM10 without the lease.';

-- Live rows with a remote id that the finished walk never listed and nothing wrote since it
-- started, after p_after in remote id order: to be confirmed by a read by id.
create or replace function crm.drift_deletion_candidates(
  p_run_id bigint,
  p_lease_token bigint,
  p_connection_id uuid,
  p_object text,
  p_after text,
  p_limit integer default 100
)
  returns table (remote_id text)
  language plpgsql
  set search_path = ''
  -- As in crm.drift_compare_page: index probes whatever the staging table's statistics say
  -- (planned as empty, the anti-join materialised the staging table and scanned it once per
  -- mirror row: quadratic, minutes at 100k rows).
  set enable_seqscan = off
  set enable_material = off
as $$
declare
  v_started timestamptz;
begin
  perform crm._hold_inbound_lease(p_connection_id, p_object, p_run_id, p_lease_token);
  select d.started_at into v_started from crm.drift_walks d
  where d.connection_id = p_connection_id and d.object = p_object and d.phase = 'confirm';
  if not found then
    raise exception using errcode = 'CRM01',
      message = format('no finished drift walk of %s/%s to confirm', p_connection_id, p_object);
  end if;
  return query execute format($q$
    select t.remote_id from crm.%1$I t
    where t.connection_id = $1 and t.remote_id is not null and t.deleted_at is null
      and t.remote_id > coalesce($3, '')
      and (t.last_synced_at is null or t.last_synced_at < $4)
      and not exists (select 1 from crm.drift_seen s
                      where s.connection_id = $1 and s.object = $2 and s.remote_id = t.remote_id)
    order by t.remote_id
    limit greatest(least(coalesce($5, 100), 2000), 0)
  $q$, p_object) using p_connection_id, p_object, p_after, v_started, p_limit;
end
$$;
comment on function crm.drift_deletion_candidates(bigint, bigint, uuid, text, text, integer) is
  'Drift check, after the walk: live mirror rows it never listed and nothing wrote since it started (remote id order, after p_after). CRM10 without the lease; CRM01 when no walk is in its confirm phase.';

-- Fresh statistics for crm.drift_seen once a walk has listed everything: the table fills and
-- empties every hour, and autovacuum last saw it empty, or at another connection's size. Only
-- the table's owner may ANALYZE it, hence SECURITY DEFINER (it does nothing else).
create or replace function crm._analyze_drift_seen()
  returns void
  language plpgsql
  security definer
  set search_path = ''
as $$
begin
  analyze crm.drift_seen;
end
$$;

-- Saves the walk's position after a page was compared and repaired, and adds p_counts to its
-- totals. p_phase 'done' ends the walk (its seen ids go) and returns the final totals.
create or replace function crm.save_drift_progress(
  p_run_id bigint,
  p_lease_token bigint,
  p_connection_id uuid,
  p_object text,
  p_phase text,
  p_checkpoint jsonb,
  p_counts jsonb default '{}'::jsonb
)
  returns jsonb
  language plpgsql
  set search_path = ''
as $$
declare
  v_totals jsonb;
begin
  perform crm._hold_inbound_lease(p_connection_id, p_object, p_run_id, p_lease_token);
  if p_phase is null or p_phase not in ('walk', 'confirm', 'done') then
    raise exception using errcode = 'CRM01', message = format('unknown drift phase %L', p_phase);
  end if;
  update crm.drift_walks d
  set phase = case when p_phase = 'done' then d.phase else p_phase end,
      checkpoint = p_checkpoint,
      totals = (select coalesce(jsonb_object_agg(k.key,
                  coalesce((d.totals ->> k.key)::bigint, 0) + coalesce((p_counts ->> k.key)::bigint, 0)),
                  '{}'::jsonb)
                from (select jsonb_object_keys(d.totals) as key
                      union select jsonb_object_keys(coalesce(p_counts, '{}'::jsonb))) k),
      updated_at = clock_timestamp()
  where d.connection_id = p_connection_id and d.object = p_object
  returning d.totals into v_totals;
  if not found then
    raise exception using errcode = 'CRM01',
      message = format('no drift walk of %s/%s under way', p_connection_id, p_object);
  end if;
  if p_phase = 'confirm' and p_checkpoint is null then
    perform crm._analyze_drift_seen();
  end if;
  if p_phase = 'done' then
    delete from crm.drift_seen s where s.connection_id = p_connection_id and s.object = p_object;
    delete from crm.drift_walks d where d.connection_id = p_connection_id and d.object = p_object;
  end if;
  return v_totals;
end
$$;
comment on function crm.save_drift_progress(bigint, bigint, uuid, text, text, jsonb, jsonb) is
  'Drift check: saves the walk''s phase and checkpoint and adds counts to its totals (returned); phase done ends the walk. CRM10 without the lease.';

revoke all on function crm._analyze_drift_seen() from public, anon, authenticated;
grant execute on function crm._analyze_drift_seen() to service_role;

revoke all on function crm.drift_walk_state(bigint, bigint, uuid, text, interval),
  crm.drift_compare_page(bigint, bigint, uuid, text, jsonb),
  crm.drift_deletion_candidates(bigint, bigint, uuid, text, text, integer),
  crm.save_drift_progress(bigint, bigint, uuid, text, text, jsonb, jsonb) from public;
grant execute on function crm.drift_walk_state(bigint, bigint, uuid, text, interval),
  crm.drift_compare_page(bigint, bigint, uuid, text, jsonb),
  crm.drift_deletion_candidates(bigint, bigint, uuid, text, text, integer),
  crm.save_drift_progress(bigint, bigint, uuid, text, text, jsonb, jsonb) to service_role;
