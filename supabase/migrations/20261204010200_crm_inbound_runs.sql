-- Why: issue 10 found that inbound runs were unfenced (a stream's "lease" was the age of its
-- sync_log row, and no page write checked it), that a full walk's sweep tombstoned records it
-- had read but could not parse, that one bad record re-planned the apply once per record of its
-- page, that failed records were forgotten once the watermark passed them, and that a dry run
-- held one transaction open across every CRM call. This migration replaces the run functions
-- of 20261122020100 with fenced ones and adds the tables they need:
--
--   crm.inbound_leases    one row per (connection, object): the run holding the stream, its
--                         fencing token (crm.inbound_lease_token_seq, never reused) and when the
--                         lease expires. crm.begin_inbound_run takes it when it is free or
--                         expired (new token), or when its run is no longer running (closed
--                         by crm.check_health); every page write, sweep and close checks the
--                         token and extends the lease (heartbeat). A run whose token no longer
--                         matches, or whose sync_log row was closed, gets SQLSTATE CRM10
--                         'lease lost' and writes nothing. An expired lease nobody took over
--                         still belongs to its run: the token decides, not the clock.
--   crm.inbound_failures  every record that failed (stage 'read': the adapter could not parse
--                         it; 'apply': the database rejected it) by (connection, object,
--                         remote_id), with reason, first/last failure, attempts and the next
--                         retry (exponential, at most a day apart). Runs re-read due ids in
--                         batches (crm.due_inbound_failures); a row goes away when its record
--                         applies, in a retry or in any later page. crm.sync_status() counts them.
--
-- Sweep rule: every remote id a full walk read counts as seen, whatever became of it (applied,
-- rejected by the database, or reported by the adapter with its id). A record the adapter
-- reported without an id could be any mirror row, so a walk that met one does not tombstone at
-- all, and its run's details say why (sweep_skipped). Sweep tombstones set swept_at.
--
-- A page the apply rejects is split in halves, each applied in its own subtransaction, down to
-- the single bad records: k bad records in n cost at most about 2·k·log2(n) + 1 apply calls
-- (a half is not tried whole when its parent failed and its sibling applied cleanly).
--
-- Dry runs use crm.preview_inbound_page / crm.preview_full_sync_sweep: one statement each,
-- whose writes are undone by a subtransaction before it returns, so no transaction stays open
-- between statements, let alone across a CRM call.
--
-- SQLSTATEs: CRM10 lease lost (new here); CRM01, CRM02, CRM03, CRM06 as before. CRM19 is used
-- inside the preview functions to undo their writes and never leaves them.

-- Records of the full walk in progress that the adapter reported without a remote id: while
-- this is above zero the walk's sweep does not tombstone.
alter table crm.sync_cursors add column if not exists full_sync_unidentified integer not null default 0;

create sequence if not exists crm.inbound_lease_token_seq;
revoke all on sequence crm.inbound_lease_token_seq from public, anon, authenticated;
grant usage on sequence crm.inbound_lease_token_seq to service_role;

create table if not exists crm.inbound_leases (
  connection_id uuid not null references crm.connections (id) on delete cascade,
  object text not null,
  -- NULL while nobody holds the stream.
  run_id bigint,
  token bigint,
  lease_for interval not null,
  expires_at timestamptz not null,
  primary key (connection_id, object),
  constraint inbound_leases_object_check check (object in ('contacts', 'companies', 'deals', 'owners')),
  constraint inbound_leases_held_check check ((run_id is null) = (token is null))
);
comment on table crm.inbound_leases is
  'Inbound stream leases: the run holding (connection, object), its fencing token and expiry. Every page write checks the token (CRM10 when lost).';
alter table crm.inbound_leases enable row level security;
revoke all on crm.inbound_leases from public, anon, authenticated;
grant select, insert, update, delete on crm.inbound_leases to service_role;

create table if not exists crm.inbound_failures (
  connection_id uuid not null references crm.connections (id) on delete cascade,
  object text not null,
  remote_id text not null,
  stage text not null,
  reason text not null,
  first_failed_at timestamptz not null default now(),
  last_failed_at timestamptz not null default now(),
  attempts integer not null default 1,
  next_retry_at timestamptz not null default now(),
  primary key (connection_id, object, remote_id),
  constraint inbound_failures_object_check check (object in ('contacts', 'companies', 'deals', 'owners')),
  constraint inbound_failures_stage_check check (stage in ('read', 'apply'))
);
create index if not exists inbound_failures_due_idx
  on crm.inbound_failures (connection_id, object, next_retry_at);
comment on table crm.inbound_failures is
  'Inbound records that failed (read: the adapter could not parse it; apply: the database rejected it), retried until they apply.';
alter table crm.inbound_failures enable row level security;
drop policy if exists inbound_failures_select_own on crm.inbound_failures;
create policy inbound_failures_select_own on crm.inbound_failures for select to authenticated
  using (connection_id in (select c.id from crm.connections c
                           where c.account_id = (select crm.current_account_id())));
revoke all on crm.inbound_failures from public, anon, authenticated;
grant select on crm.inbound_failures to authenticated;
grant select, insert, update, delete on crm.inbound_failures to service_role;

-- The old, unfenced signatures go: a caller still using them must fail loudly.
drop function if exists crm.begin_inbound_run(uuid, text, text, text, jsonb, interval);
drop function if exists crm.save_inbound_page(bigint, uuid, text, text, jsonb, timestamptz, text, jsonb, jsonb);
drop function if exists crm.finish_full_sync_sweep(uuid, text);
drop function if exists crm._apply_one_by_one(uuid, text, jsonb);

-- Leases ---------------------------------------------------------------------------------------

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
  if p_mode is null or p_mode not in ('delta', 'full') then
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
    and l.status = 'running' and l.mode in ('delta', 'full') and l.id <> v_run;
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
comment on function crm.begin_inbound_run(uuid, text, text, text, jsonb, interval) is
  'Takes the stream''s lease unless another run holds it unexpired (then no row); returns the run id, fencing token, lease expiry and the cursor. CRM01, CRM02, CRM06.';

-- Checks that the run still holds the stream (its token, and its sync_log row still running)
-- and extends its lease; CRM10 when it does not.
create or replace function crm._hold_inbound_lease(
  p_connection_id uuid,
  p_object text,
  p_run_id bigint,
  p_token bigint
)
  returns timestamptz
  language plpgsql
  set search_path = ''
as $$
declare
  v_expires timestamptz;
begin
  update crm.inbound_leases l
  set expires_at = clock_timestamp() + l.lease_for
  where l.connection_id = p_connection_id and l.object = p_object
    and l.token = p_token and l.run_id = p_run_id
    and exists (select 1 from crm.sync_log s where s.id = p_run_id and s.status = 'running')
  returning l.expires_at into v_expires;
  if not found then
    raise exception using errcode = 'CRM10',
      message = format('lease lost: run %s no longer holds the inbound stream %s/%s',
                       p_run_id, p_connection_id, p_object),
      hint = 'Another run took the stream over after this one''s lease expired; stop without writing.';
  end if;
  return v_expires;
end
$$;

-- Bisection --------------------------------------------------------------------------------

-- Applies records with crm.apply_inbound, each try in its own subtransaction; a record the
-- apply names fails alone, and a rejection that names none splits the records in halves, down
-- to single records, which come back with their reason.
-- p_rejected: the caller knows these records fail together (their parent failed and the other
-- half applied cleanly), so the whole is not tried again: it is split at once (a single record
-- is always tried, for its reason). apply_calls counts the apply_inbound statements run
-- (including the rejected ones).
create or replace function crm._apply_in_halves(
  p_connection_id uuid,
  p_object text,
  p_records jsonb,
  p_rejected boolean default false
)
  returns table (created integer, updated integer, unchanged integer, deleted integer,
                 stale integer, conflicts integer, failed jsonb, apply_calls integer)
  language plpgsql
  set search_path = ''
as $$
declare
  v_rest jsonb := p_records;
  v_named jsonb := '[]'::jsonb;
  v_n integer;
  v_half integer;
  v_calls integer := 0;
  v_bad integer;
  v_reason text;
  a record;
  b record;
begin
  -- crm.apply_inbound names the first bad record by its position when it can ("record N: …",
  -- "record N (remote_id X): …"): that record fails alone and the rest is applied again, so k
  -- such records cost k + 1 calls (a loop, not recursion: k is not bounded). What an error does
  -- not name is split in halves.
  loop
    v_n := jsonb_array_length(v_rest);
    if v_n = 0 then
      return query select 0, 0, 0, 0, 0, 0, v_named, v_calls;
      return;
    end if;
    exit when p_rejected and v_n > 1 and v_calls = 0;
    v_calls := v_calls + 1;
    v_bad := null;
    begin
      select * into a from crm.apply_inbound(p_connection_id, p_object, v_rest);
      return query select a.created, a.updated, a.unchanged, a.deleted, a.stale, a.conflicts,
                          v_named, v_calls;
      return;
    -- program_limit_exceeded: a value too large for an index (a 6 kB remote id) fails at the
    -- write, names no record, and must fail alone like any other bad value.
    exception when sqlstate 'CRM03' or data_exception or integrity_constraint_violation
                or program_limit_exceeded then
      v_bad := case when v_n = 1 then 1
                    else (regexp_match(sqlerrm, '^invalid inbound record: record (\d+)[ :]'))[1]::integer end;
      v_reason := regexp_replace(sqlerrm,
        '^invalid inbound record: record \d+( \(remote_id [^)]*\))?: ', '');
    end;
    exit when v_bad is null or v_bad not between 1 and v_n;
    v_named := v_named || jsonb_build_array(jsonb_build_object(
      'remote_id', v_rest -> (v_bad - 1) ->> 'remote_id', 'reason', v_reason));
    v_rest := coalesce((select jsonb_agg(x.e order by x.i)
                        from jsonb_array_elements(v_rest) with ordinality x(e, i)
                        where x.i <> v_bad), '[]'::jsonb);
  end loop;
  v_half := v_n / 2;
  select * into a from crm._apply_in_halves(p_connection_id, p_object,
    (select jsonb_agg(x.e order by x.i) from jsonb_array_elements(v_rest) with ordinality x(e, i)
     where x.i <= v_half));
  select * into b from crm._apply_in_halves(p_connection_id, p_object,
    (select jsonb_agg(x.e order by x.i) from jsonb_array_elements(v_rest) with ordinality x(e, i)
     where x.i > v_half),
    jsonb_array_length(a.failed) = 0);
  return query select a.created + b.created, a.updated + b.updated, a.unchanged + b.unchanged,
                      a.deleted + b.deleted, a.stale + b.stale, a.conflicts + b.conflicts,
                      v_named || a.failed || b.failed, v_calls + a.apply_calls + b.apply_calls;
end
$$;

-- Failures ---------------------------------------------------------------------------------

-- Records the page's failures (apply: p_failed from the apply; read: p_unread from the adapter,
-- those with a remote id) and forgets earlier failures of the page's records that applied now.
create or replace function crm._track_inbound_failures(
  p_connection_id uuid,
  p_object text,
  p_records jsonb,
  p_failed jsonb,
  p_unread jsonb
)
  returns void
  language sql
  volatile
  set search_path = ''
as $$
  with failed as (
    select distinct on (f.remote_id) f.remote_id, f.stage, f.reason
    from (
      select e ->> 'remote_id' as remote_id, 'apply' as stage, e ->> 'reason' as reason
      from jsonb_array_elements(coalesce(p_failed, '[]'::jsonb)) e
      union all
      select e ->> 'remote_id', 'read', e ->> 'reason'
      from jsonb_array_elements(coalesce(p_unread, '[]'::jsonb)) e
    ) f
    where f.remote_id is not null
    order by f.remote_id, f.stage
  ),
  cleared as (
    delete from crm.inbound_failures x
    where x.connection_id = p_connection_id and x.object = p_object
      and x.remote_id in (select e ->> 'remote_id' from jsonb_array_elements(p_records) e)
      and not exists (select 1 from failed f where f.remote_id = x.remote_id)
  )
  insert into crm.inbound_failures as x (connection_id, object, remote_id, stage, reason)
  select p_connection_id, p_object, f.remote_id, f.stage, left(coalesce(f.reason, 'failed'), 2000)
  from failed f
  on conflict (connection_id, object, remote_id) do update
    set stage = excluded.stage, reason = excluded.reason, last_failed_at = now(),
        attempts = x.attempts + 1,
        next_retry_at = now() + least(interval '1 minute' * power(2, least(x.attempts, 20) - 1),
                                      interval '1 day')
$$;

-- Remote ids whose failure is due for another read, oldest due first; with p_run_id, not those
-- that failed again since that run started (its walk read them already).
create or replace function crm.due_inbound_failures(
  p_connection_id uuid,
  p_object text,
  p_limit integer default 100,
  p_run_id bigint default null
)
  returns table (remote_id text)
  language sql
  stable
  set search_path = ''
as $$
  select f.remote_id from crm.inbound_failures f
  where f.connection_id = p_connection_id and f.object = p_object and f.next_retry_at <= now()
    and f.last_failed_at < coalesce((select l.started_at from crm.sync_log l where l.id = p_run_id),
                                    'infinity')
  order by f.next_retry_at, f.remote_id
  limit greatest(p_limit, 0)
$$;
comment on function crm.due_inbound_failures(uuid, text, integer, bigint) is
  'Remote ids of failed inbound records due for a retry (first failure: the next run; then 1, 2, 4 … minutes, at most a day apart), leaving out those the run p_run_id already read again.';

-- Page writes ------------------------------------------------------------------------------

-- One page, unfenced: apply (halving on rejection), failures, cursor for delta/full (retry and
-- live move none), seen ids of a full walk, run counts. Callers check the lease first.
create or replace function crm._write_inbound_page(
  p_run_id bigint,
  p_connection_id uuid,
  p_object text,
  p_mode text,
  p_records jsonb,
  p_watermark_at timestamptz,
  p_watermark_id text,
  p_checkpoint jsonb,
  p_counts jsonb,
  p_unread jsonb
)
  returns table (created integer, updated integer, unchanged integer, deleted integer,
                 stale integer, conflicts integer, failed jsonb, apply_calls integer)
  language plpgsql
  set search_path = ''
as $$
declare
  r record;
begin
  if p_mode is null or p_mode not in ('delta', 'full', 'live', 'retry') then
    raise exception using errcode = 'CRM01', message = format('unknown page mode %L', p_mode);
  end if;
  select * into r from crm._apply_in_halves(p_connection_id, p_object, p_records);
  perform crm._track_inbound_failures(p_connection_id, p_object, p_records, r.failed, p_unread);
  if p_mode in ('delta', 'full') and p_watermark_at is not null then
    perform crm.advance_cursor(p_connection_id, p_object, p_watermark_at, p_watermark_id);
  end if;
  if p_mode = 'full' then
    perform crm.save_full_sync_checkpoint(p_connection_id, p_object, p_checkpoint);
    -- Seen: every id read, whatever became of it.
    insert into crm.full_sync_seen (connection_id, object, remote_id)
    select distinct p_connection_id, p_object, s.remote_id
    from (select e ->> 'remote_id' as remote_id from jsonb_array_elements(p_records) e
          union all
          select e ->> 'remote_id' from jsonb_array_elements(coalesce(p_unread, '[]'::jsonb)) e) s
    where s.remote_id is not null
    on conflict do nothing;
    update crm.sync_cursors c
    set full_sync_unidentified = c.full_sync_unidentified + u.n
    from (select count(*)::integer as n from jsonb_array_elements(coalesce(p_unread, '[]'::jsonb)) e
          where e ->> 'remote_id' is null) u
    where c.connection_id = p_connection_id and c.object = p_object and u.n > 0;
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
  return query select r.created, r.updated, r.unchanged, r.deleted, r.stale, r.conflicts,
                      r.failed, r.apply_calls;
end
$$;

create or replace function crm.save_inbound_page(
  p_run_id bigint,
  p_lease_token bigint,
  p_connection_id uuid,
  p_object text,
  p_mode text,
  p_records jsonb,
  p_watermark_at timestamptz,
  p_watermark_id text,
  p_checkpoint jsonb,
  p_counts jsonb default '{}'::jsonb,
  p_unread jsonb default '[]'::jsonb
)
  returns table (created integer, updated integer, unchanged integer, deleted integer,
                 stale integer, conflicts integer, failed jsonb, apply_calls integer)
  language plpgsql
  set search_path = ''
as $$
begin
  -- Live pages (crm-fetch-live with sync) belong to their own run and move no cursor; every
  -- other page must come from the run holding the stream.
  if p_mode is distinct from 'live' then
    perform crm._hold_inbound_lease(p_connection_id, p_object, p_run_id, p_lease_token);
  end if;
  return query select * from crm._write_inbound_page(p_run_id, p_connection_id, p_object, p_mode,
    p_records, p_watermark_at, p_watermark_id, p_checkpoint, p_counts, p_unread);
end
$$;
comment on function crm.save_inbound_page(bigint, bigint, uuid, text, text, jsonb, timestamptz, text, jsonb, jsonb, jsonb) is
  'Writes one inbound page atomically after checking the run''s lease (CRM10 when lost; live pages need none): apply, failures, watermark and checkpoint (delta, full; live and retry move none), seen ids, run counts. p_unread: the adapter''s RecordErrors [{remote_id, reason}]. Returns apply counts, the records that failed with their reason, and the number of apply statements run.';

-- Dry runs: the same page write, undone before the statement returns.
create or replace function crm.preview_inbound_page(
  p_connection_id uuid,
  p_object text,
  p_mode text,
  p_records jsonb,
  p_unread jsonb default '[]'::jsonb
)
  returns table (created integer, updated integer, unchanged integer, deleted integer,
                 stale integer, conflicts integer, failed jsonb, apply_calls integer)
  language plpgsql
  set search_path = ''
as $$
declare
  r record;
begin
  begin
    select * into r from crm._write_inbound_page(null, p_connection_id, p_object, p_mode,
      p_records, null, null, null, '{}'::jsonb, p_unread);
    raise exception using errcode = 'CRM19', message = 'preview: undo';
  exception when sqlstate 'CRM19' then
    null;
  end;
  return query select r.created, r.updated, r.unchanged, r.deleted, r.stale, r.conflicts,
                      r.failed, r.apply_calls;
end
$$;
comment on function crm.preview_inbound_page(uuid, text, text, jsonb, jsonb) is
  'Dry run of one page: the counts crm.save_inbound_page would return; every write is undone before it returns.';

-- Sweep ------------------------------------------------------------------------------------

create or replace function crm._sweep_unseen(p_connection_id uuid, p_object text, p_run_id bigint)
  returns table (tombstoned integer, skipped text)
  language plpgsql
  set search_path = ''
  set crm.engine = 'on'
as $$
declare
  v_started timestamptz;
  v_unidentified integer;
  v_count integer := 0;
  v_skipped text;
begin
  if p_object is null or p_object not in ('contacts', 'companies', 'deals', 'owners') then
    raise exception using errcode = 'CRM01', message = format('unknown object %L', p_object);
  end if;
  select c.full_sync_started_at, c.full_sync_unidentified into v_started, v_unidentified
  from crm.sync_cursors c where c.connection_id = p_connection_id and c.object = p_object;
  if coalesce(v_unidentified, 0) > 0 then
    v_skipped := format('no tombstones: the walk read %s record(s) the CRM sent without a usable '
                        || 'remote id, and any mirror row could be one of them', v_unidentified);
    update crm.sync_log l
    set details = coalesce(l.details, '{}'::jsonb) || jsonb_build_object('sweep_skipped', v_skipped)
    where l.id = p_run_id;
  else
    -- Rows written during the walk (webhooks, a concurrent delta) are newer than its start and
    -- are never swept; merged rows are tombstones already.
    execute format($q$
      update crm.%1$I t
      set deleted_at = now(), swept_at = now(), last_synced_at = now(), updated_at = now(),
          needs_sync = false
      where t.connection_id = $1 and t.remote_id is not null and t.deleted_at is null
        and (t.last_synced_at is null or t.last_synced_at < $2)
        and not exists (select 1 from crm.full_sync_seen s
                        where s.connection_id = $1 and s.object = $3 and s.remote_id = t.remote_id)
    $q$, p_object) using p_connection_id, coalesce(v_started, now()), p_object;
    get diagnostics v_count = row_count;
  end if;
  delete from crm.full_sync_seen s where s.connection_id = p_connection_id and s.object = p_object;
  update crm.sync_cursors c set full_sync_unidentified = 0
  where c.connection_id = p_connection_id and c.object = p_object and c.full_sync_unidentified <> 0;
  perform crm.finish_full_sync(p_connection_id, p_object);
  return query select v_count, v_skipped;
end
$$;

create or replace function crm.finish_full_sync_sweep(
  p_connection_id uuid,
  p_object text,
  p_run_id bigint,
  p_lease_token bigint
)
  returns table (tombstoned integer, skipped text)
  language plpgsql
  set search_path = ''
as $$
begin
  perform crm._hold_inbound_lease(p_connection_id, p_object, p_run_id, p_lease_token);
  return query select * from crm._sweep_unseen(p_connection_id, p_object, p_run_id);
end
$$;
comment on function crm.finish_full_sync_sweep(uuid, text, bigint, bigint) is
  'Ends a full walk (CRM10 unless the run holds the stream): tombstones (swept_at) mirror rows it did not read and nothing wrote during it, unless it read a record without a remote id (then none: skipped says why); clears the checkpoint.';

-- Dry run of the sweep: p_seen are the ids the dry walk read, p_unidentified the records it
-- read without one.
create or replace function crm.preview_full_sync_sweep(
  p_connection_id uuid,
  p_object text,
  p_seen text[],
  p_unidentified integer default 0
)
  returns table (tombstoned integer, skipped text)
  language plpgsql
  set search_path = ''
as $$
declare
  r record;
begin
  begin
    insert into crm.full_sync_seen (connection_id, object, remote_id)
    select distinct p_connection_id, p_object, s from unnest(p_seen) s where s is not null
    on conflict do nothing;
    insert into crm.sync_cursors as c (connection_id, object, full_sync_unidentified)
    values (p_connection_id, p_object, coalesce(p_unidentified, 0))
    on conflict (connection_id, object) do update
      set full_sync_unidentified = c.full_sync_unidentified + excluded.full_sync_unidentified;
    select * into r from crm._sweep_unseen(p_connection_id, p_object, null);
    raise exception using errcode = 'CRM19', message = 'preview: undo';
  exception when sqlstate 'CRM19' then
    null;
  end;
  return query select r.tombstoned, r.skipped;
end
$$;

-- Close ------------------------------------------------------------------------------------

-- Closes a leased run (CRM10 unless it still holds the stream), merges p_details into its
-- details and frees the stream.
create or replace function crm.close_inbound_run(
  p_run_id bigint,
  p_lease_token bigint,
  p_status text,
  p_counts jsonb default '{}'::jsonb,
  p_error jsonb default null,
  p_details jsonb default null
)
  returns void
  language plpgsql
  set search_path = ''
as $$
declare
  v_conn uuid;
  v_object text;
begin
  select l.connection_id, l.object into v_conn, v_object from crm.sync_log l where l.id = p_run_id;
  perform crm._hold_inbound_lease(v_conn, v_object, p_run_id, p_lease_token);
  if p_details is not null then
    update crm.sync_log l set details = coalesce(l.details, '{}'::jsonb) || p_details
    where l.id = p_run_id;
  end if;
  perform crm.close_sync_run(p_run_id, p_status, p_counts, p_error);
  update crm.inbound_leases l
  set run_id = null, token = null, expires_at = '-infinity'
  where l.connection_id = v_conn and l.object = v_object and l.token = p_lease_token;
end
$$;
comment on function crm.close_inbound_run(bigint, bigint, text, jsonb, jsonb, jsonb) is
  'Closes a leased inbound run (CRM10 when the lease was lost) and frees its stream.';

revoke all on function crm.begin_inbound_run(uuid, text, text, text, jsonb, interval),
  crm._hold_inbound_lease(uuid, text, bigint, bigint),
  crm._apply_in_halves(uuid, text, jsonb, boolean),
  crm._track_inbound_failures(uuid, text, jsonb, jsonb, jsonb),
  crm.due_inbound_failures(uuid, text, integer, bigint),
  crm._write_inbound_page(bigint, uuid, text, text, jsonb, timestamptz, text, jsonb, jsonb, jsonb),
  crm.save_inbound_page(bigint, bigint, uuid, text, text, jsonb, timestamptz, text, jsonb, jsonb, jsonb),
  crm.preview_inbound_page(uuid, text, text, jsonb, jsonb),
  crm._sweep_unseen(uuid, text, bigint),
  crm.finish_full_sync_sweep(uuid, text, bigint, bigint),
  crm.preview_full_sync_sweep(uuid, text, text[], integer),
  crm.close_inbound_run(bigint, bigint, text, jsonb, jsonb, jsonb) from public;
grant execute on function crm.begin_inbound_run(uuid, text, text, text, jsonb, interval),
  crm._hold_inbound_lease(uuid, text, bigint, bigint),
  crm._apply_in_halves(uuid, text, jsonb, boolean),
  crm._track_inbound_failures(uuid, text, jsonb, jsonb, jsonb),
  crm.due_inbound_failures(uuid, text, integer, bigint),
  crm._write_inbound_page(bigint, uuid, text, text, jsonb, timestamptz, text, jsonb, jsonb, jsonb),
  crm.save_inbound_page(bigint, bigint, uuid, text, text, jsonb, timestamptz, text, jsonb, jsonb, jsonb),
  crm.preview_inbound_page(uuid, text, text, jsonb, jsonb),
  crm._sweep_unseen(uuid, text, bigint),
  crm.finish_full_sync_sweep(uuid, text, bigint, bigint),
  crm.preview_full_sync_sweep(uuid, text, text[], integer),
  crm.close_inbound_run(bigint, bigint, text, jsonb, jsonb, jsonb) to service_role;

-- Status -------------------------------------------------------------------------------------

-- crm.sync_status() as in 20261122011000, plus open_failures: the stream's records in
-- crm.inbound_failures (0 for outbound). A new column changes the result type: drop, recreate.
drop function if exists crm.sync_status();
create or replace function crm.sync_status()
  returns table (
    connection_id uuid, account_id uuid, provider text, connection_status text, object text,
    enabled boolean, last_success_at timestamptz, last_failure_at timestamptz, last_error text,
    records bigint, pending_outbound bigint, dead_letters bigint, runs_24h bigint,
    failed_24h bigint, error_rate_24h numeric, expected_every interval, stale boolean,
    open_failures bigint
  )
  language sql
  stable
  set search_path = ''
as $$
  with cx as (
    select c.id, c.account_id, c.provider, c.status, c.settings, c.created_at, o.object
    from crm.connections c
    cross join (values ('contacts'), ('companies'), ('deals'), ('owners'), ('outbound')) as o(object)
  )
  select cx.id, cx.account_id, cx.provider, cx.status, cx.object,
         en.enabled,
         r.last_success_at, r.last_failure_at, lf.error,
         case cx.object
           when 'contacts' then (select count(*) from crm.contacts t where t.connection_id = cx.id and t.deleted_at is null)
           when 'companies' then (select count(*) from crm.companies t where t.connection_id = cx.id and t.deleted_at is null)
           when 'deals' then (select count(*) from crm.deals t where t.connection_id = cx.id and t.deleted_at is null)
           when 'owners' then (select count(*) from crm.owners t where t.connection_id = cx.id and t.deleted_at is null)
         end,
         ob.pending, ob.dead + ib.dead,
         r.runs_24h, r.failed_24h,
         case when r.runs_24h > 0 then round(r.failed_24h::numeric / r.runs_24h, 4) end,
         crm._sync_interval(cx.object),
         cx.status = 'active' and en.enabled and case
           when cx.object = 'outbound' then ob.overdue
           else coalesce(r.last_success_at, cx.created_at) < now() - 2 * crm._sync_interval(cx.object)
         end,
         fl.open_failures
  from cx
  cross join lateral (
    select cx.object = 'outbound' or cx.settings -> 'objects' is null
           or cx.settings -> 'objects' ? cx.object as enabled
  ) en
  cross join lateral (
    select max(l.finished_at) filter (where l.status in ('success', 'partial')) as last_success_at,
           max(l.finished_at) filter (where l.status = 'failed') as last_failure_at,
           count(*) filter (where l.started_at > now() - interval '24 hours' and l.status <> 'running') as runs_24h,
           count(*) filter (where l.started_at > now() - interval '24 hours' and l.status = 'failed') as failed_24h
    from crm.sync_log l
    where l.connection_id = cx.id
      and case when cx.object = 'outbound' then l.direction = 'outbound'
               else l.direction = 'inbound' and l.object = cx.object end
  ) r
  left join lateral (
    select coalesce(l.error ->> 'message', l.error::text, 'failed') as error
    from crm.sync_log l
    where l.connection_id = cx.id and l.status = 'failed'
      and case when cx.object = 'outbound' then l.direction = 'outbound'
               else l.direction = 'inbound' and l.object = cx.object end
    order by l.started_at desc
    limit 1
  ) lf on true
  cross join lateral (
    select count(*) filter (where o.state in ('pending', 'processing')) as pending,
           count(*) filter (where o.state = 'dead') as dead,
           coalesce(bool_or(o.state = 'pending'
                            and o.next_attempt_at < now() - 2 * crm._sync_interval('outbound')), false) as overdue
    from crm.outbox o
    where o.connection_id = cx.id and (cx.object = 'outbound' or o.object = cx.object)
  ) ob
  cross join lateral (
    select count(*) as dead
    from crm.webhook_events w
    where w.connection_id = cx.id and w.state = 'dead' and cx.object <> 'outbound' and w.object = cx.object
  ) ib
  cross join lateral (
    select count(*) as open_failures
    from crm.inbound_failures f
    where f.connection_id = cx.id and f.object = cx.object
  ) fl
  order by cx.account_id, cx.id,
           array_position(array['contacts', 'companies', 'deals', 'owners', 'outbound'], cx.object)
$$;
comment on function crm.sync_status() is
  'Per connection and object: last success/failure, error, records, pending outbound, dead letters, 24 h error rate, stale flag, open inbound failures (crm.inbound_failures).';
revoke all on function crm.sync_status() from public;
grant execute on function crm.sync_status() to authenticated, service_role;
