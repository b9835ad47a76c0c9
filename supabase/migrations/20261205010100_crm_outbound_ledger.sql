-- Why: the outbound push (issue 12) needs the outbox verbs to remember what was actually sent,
-- so that (1) the agreed value of a field is what the engine pushed, never the row as it is
-- when the push completes (a newer local edit may be there by then), and (2) the CRM's echo of
-- a push is recognised as the engine's own write, not a remote change: no row write, no
-- conflict, even when the app edited the field again between the push and its echo (the L1/L2
-- race of issue 12). No CRM marks an integration's writes reliably, so a write ledger is the
-- authority (DESIGN.md §7 "Outbound").
--
-- This migration adds:
-- * crm.outbox.pushed (the canonical values of the changed fields at claim time) and
--   crm.outbox.uncertain (an earlier attempt of a create ended with an unknown outcome);
-- * crm.write_ledger: per claimed entry and field, the hash of the value sent and the remote
--   version the write produced (from complete_outbox, or bound to the first inbound record time
--   the value is seen at). Kept 7 days (crm.purge_write_ledger, run by crm.cleanup);
-- * claim_outbox: snapshots pushed from the same row image it returns, writes the ledger,
--   returns uncertain, holds records with an open conflict, drops entries that would resurrect
--   a record the CRM deleted;
-- * complete_outbox: agreed hash = hash of pushed; ledger remote_version; key remote_version
--   (alias remote_updated_at);
-- * fail_outbox: actions retry | reauth | fix_data | gone | dead_letter (retryable still read);
-- * CRM deletes of records with a pending local edit are recorded conflicts, settled by policy
--   in apply_inbound (inbound delete) and fail_outbox (gone on update):
--     newest_wins, crm_wins: the delete wins: the row becomes a tombstone, the entry goes;
--     app_wins: the app's record wins: it is created again in the CRM (the row forgets the
--       deleted remote id, its entry becomes an insert of every field; rows that pointed at the
--       old remote id get the new one queued when the create completes);
--     manual: an open conflict; the row stays as it is and its entry is held until
--       resolve_conflict: 'remote' tombstones, 'local' creates the record again.
--   Such a record-level conflict has field 'deleted_at' (never a synced field), local_value the
--   pending local values {field: value}, remote_value {"deleted": true}.
-- * apply_inbound step 8 echo suppression (see the function's comment).
-- * resolve_conflict(id, 'local') also makes the remote value it overrode the agreed one, so a
--   re-read of the same remote version (delta overlap) keeps the local value instead of raising
--   the same conflict again.

alter table crm.outbox
  add column if not exists pushed jsonb,
  add column if not exists uncertain boolean not null default false;
comment on column crm.outbox.pushed is
  'Canonical values of changed_columns as claimed ({field: value}): what the push sends and what becomes agreed on completion.';
comment on column crm.outbox.uncertain is
  'A create whose earlier attempt ended with an unknown outcome (retryable failure, expired lease): push it as an upsert by external id.';

create table crm.write_ledger (
  id bigint generated always as identity primary key,
  connection_id uuid not null references crm.connections (id) on delete cascade,
  object text not null,
  record_id uuid not null,
  field text not null,
  value_hash uuid not null,
  -- No foreign key: the entry is deleted when it completes; the ledger row outlives it.
  outbox_id bigint,
  -- The claim's lease: complete/fail find the rows of exactly that attempt.
  lease uuid,
  pushed_at timestamptz not null default now(),
  -- Version of the record the write produced (complete_outbox), or the first inbound record
  -- time the value was seen at (apply_inbound). NULL: not known yet.
  remote_version timestamptz,
  constraint write_ledger_object_check check (object in ('contacts', 'companies', 'deals'))
);
create index write_ledger_field_idx on crm.write_ledger (object, record_id, field);
create index write_ledger_outbox_idx on crm.write_ledger (outbox_id);
create index write_ledger_pushed_idx on crm.write_ledger (pushed_at);
comment on table crm.write_ledger is
  'What the engine pushed, per record and field (hash of the value, remote version): inbound values equal to a recent push are its own echo.';

alter table crm.write_ledger enable row level security;
create policy write_ledger_select_own on crm.write_ledger for select to authenticated
  using (connection_id in (select c.id from crm.connections c
                           where c.account_id = (select crm.current_account_id())));
revoke all on crm.write_ledger from public, anon, authenticated;
grant select on crm.write_ledger to authenticated;
grant select, insert, update, delete on crm.write_ledger to service_role;

-- Deletes ledger rows pushed longer ago than p_keep (echoes come within minutes; a week covers
-- a CRM's delayed webhooks and a drift walk). Returns how many.
create or replace function crm.purge_write_ledger(p_keep interval default '7 days')
  returns bigint
  language sql
  volatile
  set search_path = ''
as $$
  with d as (delete from crm.write_ledger l where l.pushed_at < now() - p_keep returning 1)
  select count(*) from d
$$;
comment on function crm.purge_write_ledger(interval) is
  'Deletes write-ledger rows older than p_keep (default 7 days, the echo window). Returns the count.';
revoke all on function crm.purge_write_ledger(interval) from public;
grant execute on function crm.purge_write_ledger(interval) to service_role;

-- crm.cleanup as in 20261122011200, plus the write ledger (its own 7-day window).
create or replace function crm.cleanup(p_keep interval default '30 days')
  returns jsonb
  language plpgsql
  set search_path = ''
as $$
declare
  v_log bigint;
  v_inbox bigint;
  v_alerts bigint;
  v_conflicts bigint;
  v_ledger bigint;
  v_responses bigint := 0;
begin
  delete from crm.sync_log l where l.started_at < now() - p_keep and l.status <> 'running';
  get diagnostics v_log = row_count;
  delete from crm.webhook_events w
  where w.state in ('done', 'ignored') and w.processed_at < now() - p_keep;
  get diagnostics v_inbox = row_count;
  delete from crm.health_alerts h where h.resolved_at < now() - p_keep;
  get diagnostics v_alerts = row_count;
  -- Conflicts are an audit trail: resolved ones are kept three times as long.
  delete from crm.conflicts k where k.resolved_at < now() - 3 * p_keep;
  get diagnostics v_conflicts = row_count;
  v_ledger := crm.purge_write_ledger();
  -- pg_net keeps responses for 6 hours itself; this catches anything older (e.g. while its
  -- worker was down). Skipped where the role may not delete them.
  begin
    delete from net._http_response r where r.created < now() - interval '1 day';
    get diagnostics v_responses = row_count;
  exception when insufficient_privilege then
    raise notice 'crm.cleanup: no privilege to delete from net._http_response; skipped';
  end;
  return jsonb_build_object('sync_log', v_log, 'webhook_events', v_inbox, 'health_alerts', v_alerts,
                            'conflicts', v_conflicts, 'write_ledger', v_ledger, 'http_responses', v_responses);
end
$$;
comment on function crm.cleanup(interval) is
  'Deletes sync_log runs, processed webhook events and resolved alerts older than p_keep (conflicts 3x), write-ledger rows older than 7 days, and pg_net responses older than a day.';

-- The CRM deleted these records and the delete wins: tombstones (engine writes) and their
-- outbox entries dropped, whatever their state (callers hold the entries or own them).
create or replace function crm._tombstone_rows(p_object text, p_ids uuid[])
  returns void
  language plpgsql
  set search_path = ''
  set crm.engine = 'on'
as $$
begin
  execute format(
    'update crm.%I t set deleted_at = coalesce(t.deleted_at, now()), swept_at = null, needs_sync = false,
            sync_error = null, last_synced_at = now(), updated_at = now()
     where t.id = any ($1)',
    p_object)
    using p_ids;
  delete from crm.outbox o where o.object = p_object and o.record_id = any (p_ids);
end
$$;
revoke all on function crm._tombstone_rows(text, uuid[]) from public;
grant execute on function crm._tombstone_rows(text, uuid[]) to service_role;

-- The CRM deleted these records and the app's record wins: each is created in the CRM again.
-- The row forgets the deleted remote id (engine write); its entry becomes a pending insert of
-- every non-null field (a leased entry is taken over: its worker's late result no longer
-- matches the lease). Rows that pointed at the deleted remote id forget it too: complete_outbox
-- fills and queues them when the new record exists. A later event about the deleted remote id
-- finds no row (a restore of it in the CRM would arrive as a record of its own).
create or replace function crm._recreate_rows(p_object text, p_ids uuid[])
  returns void
  language plpgsql
  set search_path = ''
  set crm.engine = 'on'
as $$
declare
  ref record;
begin
  for ref in select r.tbl, r.local_col, r.remote_col from crm._mirror_refs() r where r.target = p_object loop
    execute format('update crm.%1$I x set %3$I = null where x.%2$I = any ($1) and x.%3$I is not null',
                   ref.tbl, ref.local_col, ref.remote_col)
      using p_ids;
  end loop;
  execute format(
    $q$with r as (
         update crm.%1$I t set remote_id = null, remote_updated_at = null, deleted_at = null, swept_at = null,
                merged_into_remote_id = null, needs_sync = true, sync_error = null, updated_at = now()
         where t.id = any ($1)
         returning t.id, t.connection_id, to_jsonb(t) as img
       )
       insert into crm.outbox as o (connection_id, object, record_id, remote_id, op, changed_columns)
       select r.connection_id, %1$L, r.id, null, 'insert', crm._changed_columns(null, r.img) from r
       on conflict (object, record_id) do update set
         op = 'insert', remote_id = null, changed_columns = excluded.changed_columns, state = 'pending',
         attempts = 0, version = o.version + 1, claimed_version = null, next_attempt_at = now(),
         locked_until = null, locked_by = null, lease = null, last_error = null, dead_at = null,
         pushed = null, uncertain = false, updated_at = now()$q$,
    p_object)
    using p_ids;
end
$$;
revoke all on function crm._recreate_rows(text, uuid[]) from public;
grant execute on function crm._recreate_rows(text, uuid[]) to service_role;

-- Claims up to p_limit due entries for p_lease. Returns each entry with its lease token, the
-- current row as jsonb (NULL when the row was hard-deleted: delete entries), pushed (the
-- values of changed_columns in that same row image: what to send) and uncertain. Entries of
-- paused, errored or disconnected connections are not handed out, nor entries of a record with
-- an open conflict (policy manual; a delete still goes out). An insert or update entry whose
-- row is gone or a tombstone (the CRM deleted the record while it was in flight) is dropped
-- instead of handed out: a stale entry never resurrects a record.
-- Two statements: the claim locks the entries; the row images are read after it, by a new
-- snapshot, so they include every app write committed before the lock was taken (a later one
-- must wait for the entry's lock to bump its version, and completion then releases it).
-- Every value pushed is recorded in crm.write_ledger.
drop function if exists crm.claim_outbox(text, integer, interval, uuid, text, integer);
create function crm.claim_outbox(
  p_worker text,
  p_limit integer default 100,
  p_lease interval default '5 minutes',
  p_connection_id uuid default null,
  p_object text default null,
  p_max_attempts integer default 10
)
  returns table (
    id bigint, connection_id uuid, object text, record_id uuid, remote_id text, op text,
    changed_columns text[], attempts integer, version integer, lease uuid,
    locked_until timestamptz, record jsonb, pushed jsonb, uncertain boolean
  )
  language plpgsql
  volatile
  set search_path = ''
  -- Hashes and pushed values render timestamps as apply_inbound does.
  set timezone = 'UTC'
as $$
#variable_conflict use_column
declare
  v_ids bigint[];
begin
  with expired as (
    update crm.outbox o
    set state = 'dead', dead_at = now(), lease = null, locked_until = null, locked_by = null,
        last_error = coalesce(o.last_error || ' / ', '') || 'lease expired after the last attempt',
        uncertain = o.uncertain or o.op = 'insert',
        updated_at = now()
    where o.id in (
      select x.id from crm.outbox x
      where x.state = 'processing' and x.locked_until < now() and x.attempts >= p_max_attempts
      for update skip locked)
    returning o.id
  ),
  picked as (
    select o.id
    from crm.outbox o
    join crm.connections c on c.id = o.connection_id and c.status = 'active'
    where ((o.state = 'pending' and o.next_attempt_at <= now())
        or (o.state = 'processing' and o.locked_until < now() and o.attempts < p_max_attempts))
      and (p_connection_id is null or o.connection_id = p_connection_id)
      and (p_object is null or o.object = p_object)
      and (o.op = 'delete'
           or not exists (select 1 from crm.conflicts k
                          where k.object = o.object and k.record_id = o.record_id and k.resolution is null))
    order by o.next_attempt_at, o.id
    limit greatest(p_limit, 0)
    for update of o skip locked
  ),
  claimed as (
    update crm.outbox o
    set state = 'processing', attempts = o.attempts + 1, claimed_version = o.version,
        -- A create whose lease ran out (its worker died mid-push) may exist in the CRM.
        uncertain = o.uncertain or (o.state = 'processing' and o.op = 'insert'),
        lease = gen_random_uuid(), locked_until = now() + p_lease, locked_by = p_worker,
        updated_at = now()
    from picked
    where o.id = picked.id
    returning o.id
  )
  select coalesce(array_agg(claimed.id), '{}'::bigint[]) into v_ids from claimed;

  return query
  with img as (
    select o.id, o.connection_id, o.object, o.record_id, o.op, o.changed_columns, o.lease,
           case o.object
             when 'contacts' then (select to_jsonb(t) from crm.contacts t where t.id = o.record_id)
             when 'companies' then (select to_jsonb(t) from crm.companies t where t.id = o.record_id)
             when 'deals' then (select to_jsonb(t) from crm.deals t where t.id = o.record_id)
           end as row
    from crm.outbox o
    where o.id = any (v_ids)
  ),
  snap as (
    select i.*,
           i.op <> 'delete' and (i.row is null or i.row ->> 'deleted_at' is not null) as orphan,
           case when i.op <> 'delete' and i.row is not null then
             (select coalesce(jsonb_object_agg(f.field, crm._field_value(i.row, f.field)), '{}'::jsonb)
              from unnest(i.changed_columns) as f(field))
           end as pushed
    from img i
  ),
  dropped as (
    delete from crm.outbox o using snap s where o.id = s.id and s.orphan
    returning o.id
  ),
  upd as (
    update crm.outbox o set pushed = s.pushed
    from snap s
    where o.id = s.id and not s.orphan
    returning o.id, o.connection_id, o.object, o.record_id, o.remote_id, o.op, o.changed_columns,
              o.attempts, o.version, o.lease, o.locked_until, o.pushed, o.uncertain
  ),
  ledger as (
    insert into crm.write_ledger (connection_id, object, record_id, field, value_hash, outbox_id, lease, pushed_at)
    select s.connection_id, s.object, s.record_id, p.key, crm._hash(p.value), s.id, s.lease, now()
    from snap s
    cross join lateral jsonb_each(s.pushed) as p
    where not s.orphan
    returning 1
  )
  select u.id, u.connection_id, u.object, u.record_id, u.remote_id, u.op, u.changed_columns,
         u.attempts, u.version, u.lease, u.locked_until, s.row, u.pushed, u.uncertain
  from upd u
  join snap s on s.id = u.id
  order by u.connection_id, u.object, u.id;
end
$$;
comment on function crm.claim_outbox(text, integer, interval, uuid, text, integer) is
  'Leases up to p_limit due outbox entries (FOR UPDATE SKIP LOCKED); returns them with lease token, current row, pushed values and uncertain; records the pushed values in crm.write_ledger.';

-- Marks pushed entries done. p_results: jsonb array of
--   {"id": bigint, "lease": uuid, "remote_id": text (new records),
--    "remote_version": timestamptz (alias "remote_updated_at": the version the write produced)}
-- Entries whose lease does not match (expired and reclaimed) are ignored. An entry changed
-- while in flight (version moved) is released for another push instead of deleted.
-- The pushed values become the agreed values in sync_state, for a released entry too (what
-- was sent is what the CRM has; the newer edit is still to push). Entries claimed before
-- pushed existed fall back to the row. The entry's ledger rows get the remote version. The
-- row gets its remote id, its remote_updated_at moves to the version, and (finished) needs_sync
-- false, sync_error NULL. Rows that point at a record which just got its first remote id
-- (contacts.company_id -> new company) get the *_remote_id filled and an update queued so the
-- association reaches the CRM.
create or replace function crm.complete_outbox(p_results jsonb)
  returns table (completed integer, released integer)
  language plpgsql
  set search_path = ''
  set timezone = 'UTC'
  set crm.engine = 'on'
as $$
declare
  v_completed integer;
  v_released integer;
  v_new_ids jsonb;
  v_entries jsonb;
  ref record;
begin
  with r as (
    select x.id, x.lease, nullif(x.remote_id, '') as remote_id,
           coalesce(x.remote_version, x.remote_updated_at) as remote_version
    from jsonb_to_recordset(coalesce(p_results, '[]'::jsonb))
      as x(id bigint, lease uuid, remote_id text, remote_version timestamptz, remote_updated_at timestamptz)
  ),
  hit as (
    select o.id, o.connection_id, o.object, o.record_id, o.op, o.changed_columns, o.pushed, o.lease,
           o.remote_id as old_remote_id, coalesce(o.remote_id, r.remote_id) as remote_id,
           r.remote_version, o.version = o.claimed_version as finished
    from crm.outbox o
    join r on r.id = o.id and r.lease = o.lease and o.state = 'processing'
    for update of o
  ),
  done as (
    delete from crm.outbox o using hit h where o.id = h.id and h.finished
    returning o.id
  ),
  rel as (
    update crm.outbox o
    set state = 'pending', lease = null, locked_until = null, locked_by = null, attempts = 0,
        next_attempt_at = now(), last_error = null, remote_id = h.remote_id,
        op = case when o.op = 'insert' and h.remote_id is not null then 'update' else o.op end,
        uncertain = false, pushed = null,
        updated_at = now()
    from hit h
    where o.id = h.id and not h.finished
    returning o.id
  ),
  sent as (
    select h.connection_id, h.object, h.record_id, h.remote_version,
           coalesce(h.pushed, case when h.finished then
             (select jsonb_object_agg(f.field, crm._field_value(t.row, f.field))
              from unnest(h.changed_columns) as f(field)
              where t.row is not null) end) as pushed
    from hit h
    cross join lateral (
      select case h.object
        when 'contacts' then (select to_jsonb(x) from crm.contacts x where x.id = h.record_id)
        when 'companies' then (select to_jsonb(x) from crm.companies x where x.id = h.record_id)
        when 'deals' then (select to_jsonb(x) from crm.deals x where x.id = h.record_id)
      end as row
    ) t
    where h.op <> 'delete'
  ),
  agreed as (
    insert into crm.sync_state as s (connection_id, object, record_id, field, agreed_hash, agreed_at,
                                     remote_changed_at)
    select e.connection_id, e.object, e.record_id, p.key, crm._hash(p.value), now(), e.remote_version
    from sent e
    cross join lateral jsonb_each(e.pushed) as p
    on conflict (object, record_id, field) do update set
      agreed_hash = excluded.agreed_hash,
      agreed_at = excluded.agreed_at,
      remote_changed_at = greatest(s.remote_changed_at, excluded.remote_changed_at),
      updated_at = now()
    returning s.record_id
  ),
  ledger as (
    update crm.write_ledger l
    set remote_version = coalesce(h.remote_version, l.remote_version)
    from hit h
    where l.outbox_id = h.id and l.lease = h.lease
    returning l.id
  ),
  m_contacts as (
    update crm.contacts t
    set remote_id = coalesce(t.remote_id, h.remote_id),
        needs_sync = not h.finished, sync_error = null,
        last_synced_at = case when h.finished then now() else t.last_synced_at end,
        remote_updated_at = greatest(t.remote_updated_at, h.remote_version)
    from hit h where h.object = 'contacts' and t.id = h.record_id
    returning t.id
  ),
  m_companies as (
    update crm.companies t
    set remote_id = coalesce(t.remote_id, h.remote_id),
        needs_sync = not h.finished, sync_error = null,
        last_synced_at = case when h.finished then now() else t.last_synced_at end,
        remote_updated_at = greatest(t.remote_updated_at, h.remote_version)
    from hit h where h.object = 'companies' and t.id = h.record_id
    returning t.id
  ),
  m_deals as (
    update crm.deals t
    set remote_id = coalesce(t.remote_id, h.remote_id),
        needs_sync = not h.finished, sync_error = null,
        last_synced_at = case when h.finished then now() else t.last_synced_at end,
        remote_updated_at = greatest(t.remote_updated_at, h.remote_version)
    from hit h where h.object = 'deals' and t.id = h.record_id
    returning t.id
  )
  select (select count(*) from done), (select count(*) from rel),
         (select jsonb_agg(jsonb_build_object('object', h.object, 'record_id', h.record_id,
                                              'remote_id', h.remote_id))
          from hit h where h.old_remote_id is null and h.remote_id is not null)
    into v_completed, v_released, v_new_ids;

  if v_new_ids is not null then
    for ref in select r.tbl, r.local_col, r.remote_col, r.target from crm._mirror_refs() r
               where r.target <> 'owners' loop
      execute format($q$
        with u as (
          update crm.%1$I x set %3$I = w.remote_id
          from jsonb_to_recordset($1) as w(object text, record_id uuid, remote_id text)
          where w.object = %4$L and x.%2$I = w.record_id and x.%3$I is null and x.deleted_at is null
          returning x.id, x.connection_id, x.remote_id
        )
        select jsonb_agg(jsonb_build_object(
                 'record_id', u.id, 'connection_id', u.connection_id, 'remote_id', u.remote_id,
                 'op', case when u.remote_id is null then 'insert' else 'update' end,
                 'columns', array[%3$L]))
        from u$q$, ref.tbl, ref.local_col, ref.remote_col, ref.target)
        into v_entries using v_new_ids;
      if v_entries is not null then
        perform crm._enqueue_outbox(ref.tbl, v_entries);
        execute format('update crm.%I x set needs_sync = true
                        where x.id in (select (e ->> %L)::uuid from jsonb_array_elements($1) e)',
                       ref.tbl, 'record_id')
          using v_entries;
      end if;
    end loop;
  end if;

  return query select v_completed, v_released;
end
$$;
comment on function crm.complete_outbox(jsonb) is
  'Completes leased outbox entries: [{id, lease, remote_id?, remote_version? (alias remote_updated_at)}]; the pushed values become agreed. Returns (completed, released).';

-- Records failed pushes. p_failures: jsonb array of
--   {"id": bigint, "lease": uuid, "error": text (the CRM's message),
--    "action": "retry" | "reauth" | "fix_data" | "gone" | "dead_letter",
--    "retryable": bool (old key, used when action is absent: false = dead_letter),
--    "retry_after_seconds": number (e.g. from Retry-After / a 429)}
-- retry: backoff _backoff(attempts) (at least retry_after_seconds), dead after p_max_attempts;
--   a create is marked uncertain (the CRM may have applied it).
-- reauth: back to pending as it was before the claim (the attempt is not counted, no error on
--   the row); the connection goes to error elsewhere and claims skip it until it is fixed.
-- fix_data, dead_letter: dead at once; the row's sync_error shows the CRM's message.
-- gone: on a delete the record is already gone (done); on an update the CRM deleted the
--   record: a recorded conflict settled by the connection's policy (top of this file); on an
--   insert it makes no sense and dead-letters.
-- Ledger rows of an attempt that certainly wrote nothing (reauth, fix_data, dead_letter, gone)
-- are removed. Returns (retrying, dead, released: reauth, gone). CRM01: unknown action.
drop function if exists crm.fail_outbox(jsonb, integer, interval, interval);
create function crm.fail_outbox(
  p_failures jsonb,
  p_max_attempts integer default 10,
  p_base_delay interval default '30 seconds',
  p_max_delay interval default '1 hour'
)
  returns table (retrying integer, dead integer, released integer, gone integer)
  language plpgsql
  volatile
  set search_path = ''
  set timezone = 'UTC'
  set crm.engine = 'on'
as $$
#variable_conflict use_column
declare
  v_bad text;
  v_hits jsonb;
  v_retrying integer;
  v_dead integer;
  v_released integer;
  v_gone integer;
  v_live uuid[];
  g record;
begin
  select string_agg(distinct x.action, ', ') into v_bad
  from jsonb_to_recordset(coalesce(p_failures, '[]'::jsonb)) as x(action text)
  where x.action is not null and x.action not in ('retry', 'reauth', 'fix_data', 'gone', 'dead_letter');
  if v_bad is not null then
    raise exception using errcode = 'CRM01', message = format('unknown outbox failure action(s): %s', v_bad),
      hint = 'Use retry, reauth, fix_data, gone or dead_letter.';
  end if;

  -- The entries still leased to the caller, locked, with the action they get.
  with r as (
    select x.id, x.lease, coalesce(nullif(x.error, ''), 'unknown error') as error,
           coalesce(x.action, case when x.retryable is false then 'dead_letter' else 'retry' end) as action,
           coalesce(x.retry_after_seconds, 0) as retry_after_seconds
    from jsonb_to_recordset(coalesce(p_failures, '[]'::jsonb))
      as x(id bigint, lease uuid, error text, action text, retryable boolean, retry_after_seconds double precision)
  ),
  h as (
    select o.id, o.lease, o.connection_id, o.object, o.record_id, o.op, o.pushed, o.changed_columns,
           r.error, r.retry_after_seconds,
           case when r.action <> 'gone' then r.action
                when o.op = 'delete' then 'gone_delete'
                when o.op = 'insert' then 'dead_letter'
                else 'gone' end as action
    from r
    join crm.outbox o on o.id = r.id and o.lease = r.lease and o.state = 'processing'
    for update of o
  )
  select coalesce(jsonb_agg(to_jsonb(h)), '[]'::jsonb) into v_hits from h;

  delete from crm.write_ledger l
  using jsonb_to_recordset(v_hits) as h(id bigint, lease uuid, action text)
  where h.action <> 'retry' and l.outbox_id = h.id and l.lease = h.lease;

  -- retry, fix_data, dead_letter.
  with f as (
    update crm.outbox o
    set state = case when h.action <> 'retry' or o.attempts >= p_max_attempts then 'dead' else 'pending' end,
        dead_at = case when h.action <> 'retry' or o.attempts >= p_max_attempts then now() end,
        next_attempt_at = case when h.action <> 'retry' or o.attempts >= p_max_attempts then o.next_attempt_at
          else now() + greatest(crm._backoff(o.attempts, p_base_delay, p_max_delay),
                                make_interval(secs => h.retry_after_seconds)) end,
        uncertain = o.uncertain or (h.action = 'retry' and o.op = 'insert'),
        lease = null, locked_until = null, locked_by = null,
        last_error = h.error, updated_at = now()
    from jsonb_to_recordset(v_hits) as h(id bigint, action text, error text, retry_after_seconds double precision)
    where o.id = h.id and h.action in ('retry', 'fix_data', 'dead_letter')
    returning o.id, o.object, o.record_id, o.state, o.last_error
  ),
  m_contacts as (
    update crm.contacts t
    set sync_error = case when f.state = 'dead' then 'dead letter: ' else '' end || f.last_error
    from f where f.object = 'contacts' and t.id = f.record_id
    returning t.id
  ),
  m_companies as (
    update crm.companies t
    set sync_error = case when f.state = 'dead' then 'dead letter: ' else '' end || f.last_error
    from f where f.object = 'companies' and t.id = f.record_id
    returning t.id
  ),
  m_deals as (
    update crm.deals t
    set sync_error = case when f.state = 'dead' then 'dead letter: ' else '' end || f.last_error
    from f where f.object = 'deals' and t.id = f.record_id
    returning t.id
  )
  select (count(*) filter (where f.state = 'pending'))::integer, (count(*) filter (where f.state = 'dead'))::integer
    into v_retrying, v_dead
  from f;

  -- reauth: as before the claim.
  update crm.outbox o
  set state = 'pending', lease = null, locked_until = null, locked_by = null,
      attempts = greatest(o.attempts - 1, 0), updated_at = now()
  from jsonb_to_recordset(v_hits) as h(id bigint, action text)
  where o.id = h.id and h.action = 'reauth';
  get diagnostics v_released = row_count;

  -- gone on a delete: the CRM no longer has the record; nothing left to do.
  with d as (
    delete from crm.outbox o
    using jsonb_to_recordset(v_hits) as h(id bigint, action text)
    where o.id = h.id and h.action = 'gone_delete'
    returning o.object, o.record_id
  ),
  m_contacts as (
    update crm.contacts t set needs_sync = false, sync_error = null, last_synced_at = now()
    from d where d.object = 'contacts' and t.id = d.record_id
    returning t.id
  ),
  m_companies as (
    update crm.companies t set needs_sync = false, sync_error = null, last_synced_at = now()
    from d where d.object = 'companies' and t.id = d.record_id
    returning t.id
  ),
  m_deals as (
    update crm.deals t set needs_sync = false, sync_error = null, last_synced_at = now()
    from d where d.object = 'deals' and t.id = d.record_id
    returning t.id
  )
  select count(*)::integer into v_gone from d;

  -- gone on an update: the CRM deleted the record; settled by policy, per connection and object.
  for g in
    select h.connection_id, h.object, crm._conflict_policy(c.settings) as policy,
           array_agg(h.record_id) as record_ids, array_agg(h.id) as ids
    from jsonb_to_recordset(v_hits) as h(id bigint, connection_id uuid, object text, record_id uuid, action text)
    join crm.connections c on c.id = h.connection_id
    where h.action = 'gone'
    group by h.connection_id, h.object, c.settings
  loop
    v_gone := v_gone + cardinality(g.ids);
    execute format('select coalesce(array_agg(t.id), ''{}''::uuid[]) from crm.%I t
                    where t.id = any ($1) and t.deleted_at is null', g.object)
      into v_live using g.record_ids;
    -- A row already gone or a tombstone (an inbound delete settled it): the entry just goes.
    delete from crm.outbox o where o.id = any (g.ids) and o.record_id <> all (v_live);
    insert into crm.conflicts as k (connection_id, object, record_id, remote_id, field, local_value,
                                    remote_value, local_changed_at, remote_changed_at, policy,
                                    resolution, resolved_by, resolved_at)
    select g.connection_id, g.object, o.record_id, o.remote_id, 'deleted_at',
           coalesce(o.pushed, '{}'::jsonb), '{"deleted": true}'::jsonb,
           (select max(s.local_changed_at) from crm.sync_state s
            where s.object = g.object and s.record_id = o.record_id),
           null, g.policy,
           case g.policy when 'manual' then null when 'app_wins' then 'local' else 'remote' end,
           case when g.policy <> 'manual' then 'policy' end,
           case when g.policy <> 'manual' then now() end
    from crm.outbox o
    where o.id = any (g.ids) and o.record_id = any (v_live)
    on conflict (object, record_id, field) where resolution is null do update set
      local_value = excluded.local_value, updated_at = now();
    if g.policy = 'app_wins' then
      perform crm._recreate_rows(g.object, v_live);
    elsif g.policy = 'manual' then
      -- Held: the open conflict keeps claims away from the record until it is resolved.
      update crm.outbox o
      set state = 'pending', lease = null, locked_until = null, locked_by = null, pushed = null,
          next_attempt_at = now(), last_error = 'deleted in the CRM: conflict open', updated_at = now()
      where o.id = any (g.ids) and o.record_id = any (v_live);
      execute format('update crm.%I t set sync_error = $2 where t.id = any ($1)', g.object)
        using v_live, 'deleted in the CRM while edited here: resolve the conflict (crm.resolve_conflict)';
    else
      perform crm._tombstone_rows(g.object, v_live);
    end if;
  end loop;

  return query select v_retrying, v_dead, v_released, v_gone;
end
$$;
comment on function crm.fail_outbox(jsonb, integer, interval, interval) is
  'Fails leased outbox entries: [{id, lease, error, action (retry|reauth|fix_data|gone|dead_letter)?, retryable?, retry_after_seconds?}]. Returns (retrying, dead, released, gone).';

revoke all on function crm.claim_outbox(text, integer, interval, uuid, text, integer),
  crm.fail_outbox(jsonb, integer, interval, interval) from public;
grant execute on function crm.claim_outbox(text, integer, interval, uuid, text, integer),
  crm.fail_outbox(jsonb, integer, interval, interval) to service_role;

-- Settles an open conflict (policy manual). 'remote': the CRM value is written to the row as
-- an engine write and becomes the agreed value. 'local': the app value is queued for the CRM,
-- and the remote value it overrides becomes the agreed one (a re-read of that remote version
-- then keeps the local value instead of raising the conflict again). A record-level conflict
-- (field 'deleted_at': the CRM deleted a record edited here): 'remote' tombstones the row,
-- 'local' creates the record in the CRM again.
create or replace function crm.resolve_conflict(p_conflict_id bigint, p_winner text)
  returns void
  language plpgsql
  set search_path = ''
  set timezone = 'UTC'
  set crm.engine = 'on'
as $$
declare
  k crm.conflicts;
  v_row jsonb;
  v_patch jsonb;
begin
  if p_winner is null or p_winner not in ('local', 'remote') then
    raise exception using errcode = 'CRM01', message = format('unknown winner %L', p_winner),
      hint = 'Use local or remote.';
  end if;
  select * into k from crm.conflicts c where c.id = p_conflict_id for update;
  if not found or k.resolution is not null then
    raise exception using errcode = 'CRM08',
      message = format('conflict %s is not open', p_conflict_id);
  end if;
  execute format('select to_jsonb(t) from crm.%I t where t.id = $1 for update', k.object)
    into v_row using k.record_id;
  if v_row is not null and k.field = 'deleted_at' then
    if p_winner = 'remote' then
      perform crm._tombstone_rows(k.object, array[k.record_id]);
    else
      perform crm._recreate_rows(k.object, array[k.record_id]);
    end if;
  elsif v_row is not null then
    if p_winner = 'remote' then
      v_patch := case when starts_with(k.field, 'custom.')
        then jsonb_build_object('custom', coalesce(v_row -> 'custom', '{}'::jsonb)
                                          || jsonb_build_object(substr(k.field, 8), k.remote_value))
        else jsonb_build_object(k.field, k.remote_value) end;
      execute format(
        'update crm.%1$I t set %2$I = (jsonb_populate_record(t, $2)).%2$I, updated_at = now() where t.id = $1',
        k.object, case when starts_with(k.field, 'custom.') then 'custom' else k.field end)
        using k.record_id, v_patch;
    end if;
    insert into crm.sync_state as s (connection_id, object, record_id, field, agreed_hash, agreed_at)
    values (k.connection_id, k.object, k.record_id, k.field, crm._hash(k.remote_value), now())
    on conflict (object, record_id, field) do update
      set agreed_hash = excluded.agreed_hash, agreed_at = excluded.agreed_at, updated_at = now();
    if p_winner = 'local' then
      perform crm._enqueue_outbox(k.object, jsonb_build_array(jsonb_build_object(
        'record_id', k.record_id, 'connection_id', k.connection_id, 'remote_id', v_row ->> 'remote_id',
        'op', case when v_row ->> 'remote_id' is null then 'insert' else 'update' end,
        'columns', array[k.field])));
      execute format('update crm.%I t set needs_sync = true where t.id = $1', k.object)
        using k.record_id;
    end if;
  end if;
  update crm.conflicts c
  set resolution = p_winner,
      resolved_by = coalesce(auth.uid()::text, current_user),
      resolved_at = now(), updated_at = now()
  where c.id = p_conflict_id;
end
$$;
comment on function crm.resolve_conflict(bigint, text) is
  'Settles an open conflict with the local or remote value (a deleted_at conflict: tombstone or create again). CRM01 bad winner, CRM08 not open.';

-- crm.apply_inbound as in 20261204010100_crm_apply_inbound_steps.sql, with:
-- * step 8: the decision 'echo' (write-ledger match) and 'keep' for any recent pushed value;
-- * step 9: settled also holds echoed fields equal to the row; the record action 'echo' (only
--   echoes, no patch, no conflict, nothing settled: no row write, counted unchanged) and
--   'delete_conflict' (a CRM delete of a record with a pending local edit under app_wins or
--   manual: the row is not tombstoned);
-- * step 11: echoed fields become agreed with their remote time; ledger rows without a remote
--   version get the record's time; CRM deletes of records with a pending local edit are recorded
--   conflicts settled by policy (top of this file);
-- * step 14: delete conflicts are counted as conflicts.
create or replace function crm.apply_inbound(p_connection_id uuid, p_object text, p_records jsonb)
  returns table (created integer, updated integer, unchanged integer, deleted integer,
                 stale integer, conflicts integer)
  language plpgsql
  set search_path = ''
  set timezone = 'UTC'
  set crm.engine = 'on'
  -- Each statement is small, but JIT would still compile its expressions on a 2,000-row page.
  set jit = off
as $fn$
declare
  v_typed constant text := 'crm_inbound_' || p_object;
  v_policy text;
  v_n integer;
  v_allowed text[];
  v_cols text[];
  v_problem text;
  v_lo integer;
  v_hi integer;
  v_mid integer;
  v_load text;
  v_link_rules text[][];
  v_unlinked boolean := false;
  v_candidate text := 'false';
  v_lock_ids uuid[];
  v_more_ids uuid[];
  v_typed_list text;
  v_typed_cols text;
  v_typed_sel text;
  v_set_cols text;
  v_sel_cols text;
  v_ins_cols text;
  v_bulk text;
  v_bulk_cols text;
  v_conflict_set text;
  v_full_inserts integer;
  v_full_written integer;
  v_bulk_written integer;
  v_bulk_deleted integer;
  v_losers integer;
  v_merges boolean;
  v_refs text;
  v_delete_conflicts integer := 0;
  ref record;
begin
  if p_object is null or p_object not in ('contacts', 'companies', 'deals', 'owners') then
    raise exception using errcode = 'CRM01',
      message = format('unknown object %L', p_object),
      hint = 'Use one of contacts, companies, deals, owners.';
  end if;
  select crm._conflict_policy(c.settings) into v_policy
  from crm.connections c where c.id = p_connection_id;
  if not found then
    raise exception using errcode = 'CRM02', message = format('connection %s not found', p_connection_id);
  end if;
  if p_records is null or jsonb_typeof(p_records) <> 'array' then
    raise exception using errcode = 'CRM03', message = 'p_records must be a jsonb array of records';
  end if;
  v_n := jsonb_array_length(p_records);
  if v_n = 0 then
    return query select 0, 0, 0, 0, 0, 0;
    return;
  end if;
  v_cols := crm._syncable_columns(p_object);
  v_allowed := v_cols || array['remote_id', 'remote_updated_at', 'deleted', 'merged_into', 'merged_ids'];

  -- 1. Shape.
  select format('record %s: %s', e.ord, p.problem) into v_problem
  from jsonb_array_elements(p_records) with ordinality as e(r, ord)
  cross join lateral (
    select case
      when jsonb_typeof(e.r) <> 'object' then 'not an object'
      when coalesce(jsonb_typeof(e.r -> 'remote_id'), 'missing') not in ('string', 'number')
        or e.r ->> 'remote_id' = '' then 'remote_id missing'
      when jsonb_typeof(e.r -> 'remote_updated_at') is distinct from 'string' then 'remote_updated_at missing'
      when e.r ? 'custom' and jsonb_typeof(e.r -> 'custom') <> 'object' then 'custom must be an object'
      when e.r ? 'deleted' and jsonb_typeof(e.r -> 'deleted') <> 'boolean' then 'deleted must be a boolean'
      when e.r ? 'merged_into' and jsonb_typeof(e.r -> 'merged_into') not in ('string', 'number', 'null')
        then 'merged_into must be a remote id'
      when e.r ? 'merged_ids' and (jsonb_typeof(e.r -> 'merged_ids') <> 'array'
        or exists (select 1 from jsonb_array_elements(e.r -> 'merged_ids') m
                   where jsonb_typeof(m) not in ('string', 'number')))
        then 'merged_ids must be an array of remote ids'
      when (e.r - v_allowed) <> '{}'::jsonb then
        (select 'unknown field(s) ' || string_agg(k, ', ' order by k)
         from jsonb_object_keys(e.r - v_allowed) k)
    end as problem
  ) p
  where p.problem is not null
  order by e.ord
  limit 1;
  if v_problem is not null then
    raise exception using errcode = 'CRM03', message = 'invalid inbound record: ' || v_problem;
  end if;

  perform crm._inbound_staging(p_object);
  -- For plpgsql_check (supabase db lint), which cannot see tables created at run time: the
  -- staging tables as crm._inbound_staging creates them (one line each: the pragma parser takes
  -- no line breaks). A constant, nothing at run time.
  perform 'PRAGMA:TABLE: pg_temp.crm_inbound_page (ord bigint, remote_id text, ts timestamptz, is_deleted boolean, merged_into text, merged_ids jsonb, named_loser boolean, body jsonb, target_id uuid, link_candidate boolean, linked boolean, row_ts timestamptz, row_deleted_at timestamptz, row_merged_into text, row_swept boolean, ob_state text, ob_op text, pending_cols text[], settled text[], full_patch jsonb, action text, remaining text[], still_pending boolean)';
  perform 'PRAGMA:TABLE: pg_temp.crm_inbound_field (remote_id text, target_id uuid, field text, val jsonb, local_val jsonb, ts timestamptz, agreed_hash uuid, local_changed_at timestamptz, remote_changed_at timestamptz, has_state boolean, open_conflict_id bigint, decision text)';
  perform 'PRAGMA:TABLE: pg_temp.crm_inbound_written (id uuid, remote_id text, action text, backfill boolean)';
  perform 'PRAGMA:TABLE: pg_temp.crm_inbound_loser (alias text, survivor text, id uuid, was_live boolean)';
  perform 'PRAGMA:TABLE: pg_temp.crm_inbound_row (id uuid, remote_id text, remote_updated_at timestamptz, deleted_at timestamptz, merged_into_remote_id text, swept boolean, custom jsonb, image jsonb, ob_state text, ob_op text, ob_columns text[])';
  delete from pg_temp.crm_inbound_page;
  delete from pg_temp.crm_inbound_field;
  delete from pg_temp.crm_inbound_written;
  delete from pg_temp.crm_inbound_loser;
  delete from pg_temp.crm_inbound_row;
  execute format('delete from pg_temp.%I', v_typed);

  -- 2. Load the page into crm_inbound_<object>: one version per remote id (the newest, then the
  -- last in the page), typed by the mirror table's column types and judged by its CHECK
  -- constraints, before anything is written. With it, each record's row by remote id, and
  -- whether an unlinked local row (remote_id null, not deleted) of the connection could be
  -- linked to it. A connection whose local rows are all linked (every backfill, most days)
  -- skips the link probes. The probes are correlated subqueries in the select list: one index
  -- probe per record, whatever the estimates. jsonb_to_record reads the synced columns only
  -- (jsonb_populate_record over the whole row type costs about twice as much per record).
  v_link_rules := case p_object
    when 'contacts' then array[array['email', 'lower'], array['phone', 'exact']]
    when 'companies' then array[array['domain', 'lower']]
  end;
  if v_link_rules is not null then
    execute format('select exists (select 1 from crm.%I t
                                   where t.connection_id = $1 and t.remote_id is null and t.deleted_at is null)',
                   p_object)
      into v_unlinked using p_connection_id;
  end if;
  for v_rule in 1 .. case when v_unlinked then array_length(v_link_rules, 1) else 0 end loop
    v_candidate := v_candidate || format(
      ' or exists (select 1 from crm.%1$I t where t.connection_id = $1 and t.remote_id is null
                     and t.deleted_at is null and %2$s)',
      p_object, crm._inbound_link_match(v_link_rules[v_rule][1], v_link_rules[v_rule][2], 'y'));
  end loop;
  select string_agg(format('%I %s', u.c, format_type(a.atttypid, a.atttypmod)), ', ' order by u.o),
         string_agg(format('%I', u.c), ', ' order by u.o),
         string_agg(format('x.%I', u.c), ', ' order by u.o)
    into v_typed_list, v_typed_cols, v_typed_sel
  from unnest(array['remote_id', 'remote_updated_at'] || v_cols) with ordinality as u(c, o)
  join pg_attribute a on a.attrelid = format('crm.%I', p_object)::regclass and a.attname = u.c;
  v_load := format(
    $q$insert into pg_temp.%1$I (ord, is_deleted, merged_into, merged_ids, %2$s, target_id, link_candidate)
       select y.*,
              (select t.id from crm.%5$I t where t.connection_id = $1 and t.remote_id = y.remote_id),
              not y.is_deleted and (%6$s)
       from (
         select distinct on (x.remote_id)
                e.ord,
                coalesce((e.r ->> 'deleted')::boolean, false) or nullif(e.r ->> 'merged_into', '') is not null,
                nullif(e.r ->> 'merged_into', ''),
                coalesce(e.r -> 'merged_ids', '[]'::jsonb),
                %3$s
         from jsonb_array_elements($2) with ordinality as e(r, ord)
         cross join lateral jsonb_to_record(e.r) as x(%4$s)
         where e.ord between $3 and $4
         order by x.remote_id, x.remote_updated_at desc, e.ord desc
       ) as y (ord, is_deleted, merged_into, merged_ids, %2$s)$q$,
    v_typed, v_typed_cols, v_typed_sel, v_typed_list, p_object, v_candidate);
  begin
    execute v_load using p_connection_id, p_records, 1, v_n;
  exception when data_exception or integrity_constraint_violation then
    -- Some record is invalid: find the first by halving (each try is rolled back on failure).
    v_lo := 1;
    v_hi := v_n;
    while v_lo < v_hi loop
      v_mid := (v_lo + v_hi) / 2;
      begin
        execute v_load using p_connection_id, p_records, v_lo, v_mid;
        v_lo := v_mid + 1;
      exception when data_exception or integrity_constraint_violation then
        v_hi := v_mid;
      end;
    end loop;
    begin
      execute v_load using p_connection_id, p_records, v_lo, v_lo;
    exception when data_exception or integrity_constraint_violation then
      v_problem := sqlerrm;
    end;
    raise exception using errcode = 'CRM03',
      message = format('invalid inbound record: record %s (remote_id %s): %s',
                       v_lo, p_records -> (v_lo - 1) ->> 'remote_id', coalesce(v_problem, sqlerrm));
  end;

  -- 3. Merges named by a survivor (merged_ids): losers the page does not carry itself, and
  -- records of the page a survivor names.
  v_losers := 0;
  execute format($q$select exists (select 1 from pg_temp.%I y where y.merged_ids <> '[]'::jsonb)$q$, v_typed)
    into v_merges;
  if v_merges then
    execute format(
      $q$insert into pg_temp.crm_inbound_loser (alias, survivor)
         select distinct on (m.alias) m.alias, y.remote_id
         from pg_temp.%1$I y
         cross join lateral jsonb_array_elements_text(y.merged_ids) as m(alias)
         where y.merged_ids <> '[]'::jsonb and m.alias <> y.remote_id
           and not exists (select 1 from pg_temp.%1$I x where x.remote_id = m.alias)
         order by m.alias, y.remote_updated_at desc$q$,
      v_typed);
    get diagnostics v_losers = row_count;
    execute format(
      $q$update pg_temp.%1$I y set named_loser = true
         where exists (select 1 from pg_temp.%1$I s, jsonb_array_elements_text(s.merged_ids) m
                       where s.merged_ids <> '[]'::jsonb and m = y.remote_id)$q$,
      v_typed);
  end if;

  -- 4. Records nobody has seen (no row, nothing to link, no part in a merge) are inserted as they
  -- came, deleted ones as tombstones: nothing local can disagree with them. A plain INSERT: ON
  -- CONFLICT makes every row a speculative insertion (one more probe of the unique index and a
  -- WAL record to confirm it), about a tenth of the CPU time of a backfill page. A record
  -- inserted concurrently since step 2 raises unique_violation instead; the statement then runs
  -- again with ON CONFLICT DO NOTHING, and the steps below take the records it skipped.
  select string_agg(
           case
             when r.local_col is not null then
               format('case when y.%2$I is not null
                         then (select o.id from crm.%1$I o where o.connection_id = $1 and o.remote_id = y.%2$I) end',
                      r.target, r.remote_col)
             when a.attnotnull and d.adbin is not null then
               format('coalesce(y.%I, %s)', u.c, pg_get_expr(d.adbin, d.adrelid))
             else format('y.%I', u.c)
           end, ', ' order by u.o),
         string_agg(format('%I', u.c), ', ' order by u.o),
         string_agg(case
                      when r.local_col is not null then format('x.%I', u.c)
                      when a.attnotnull and d.adbin is not null
                        then format('coalesce(x.%I, %s)', u.c, pg_get_expr(d.adbin, d.adrelid))
                      else format('x.%I', u.c)
                    end, ', ' order by u.o),
         string_agg(format('x.%I', u.c), ', ' order by u.o),
         string_agg(case when u.c = 'custom' then 'custom = t.custom || excluded.custom'
                         else format('%1$I = coalesce(excluded.%1$I, t.%1$I)', u.c) end, ', ' order by u.o)
    into v_bulk_cols, v_set_cols, v_ins_cols, v_sel_cols, v_conflict_set
  from unnest(v_cols || array(select r.local_col from crm._mirror_refs() r where r.tbl = p_object))
    with ordinality as u(c, o)
  join pg_attribute a on a.attrelid = format('crm.%I', p_object)::regclass and a.attname = u.c
  left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
  left join crm._mirror_refs() r on r.tbl = p_object and r.local_col = u.c;
  v_bulk := $q$with ins as (
         insert into crm.%1$I as t (connection_id, remote_id, remote_updated_at, last_synced_at, deleted_at,
                                    needs_sync, %3$s)
         select $1, y.remote_id, y.remote_updated_at, now(), case when y.is_deleted then now() end, false, %4$s
         from pg_temp.%2$I y
         where y.target_id is null and not y.link_candidate and not y.named_loser
           and y.merged_into is null and y.merged_ids = '[]'::jsonb
         %5$s
         returning t.id, t.remote_id, t.deleted_at is not null as born_deleted
       ),
       w as (
         insert into pg_temp.crm_inbound_written (id, remote_id, action, backfill)
         select i.id, i.remote_id, case when i.born_deleted then 'insert_deleted' else 'insert' end, true
         from ins i
         returning action
       )
       select count(*)::integer, (count(*) filter (where w.action = 'insert_deleted'))::integer from w$q$;
  begin
    execute format(v_bulk, p_object, v_typed, v_set_cols, v_bulk_cols, '')
      into v_bulk_written, v_bulk_deleted
      using p_connection_id;
  exception when unique_violation then
    execute format(v_bulk, p_object, v_typed, v_set_cols, v_bulk_cols,
                   'on conflict (connection_id, remote_id) do nothing')
      into v_bulk_written, v_bulk_deleted
      using p_connection_id;
  end;

  -- 5. The records left (already seen, to link, in a merge, or inserted concurrently) go on to
  -- crm_inbound_page, with their bodies as they came.
  if v_bulk_written < v_n or v_losers > 0 then
    execute format(
      $q$insert into pg_temp.crm_inbound_page (ord, remote_id, ts, is_deleted, merged_into, merged_ids,
                                               named_loser, body, target_id, link_candidate)
         select y.ord, y.remote_id, y.remote_updated_at, y.is_deleted, y.merged_into, y.merged_ids,
                y.named_loser, ($1 -> (y.ord - 1)::integer) - '{remote_id,remote_updated_at,deleted,merged_into,merged_ids}'::text[],
                y.target_id, y.link_candidate
         from pg_temp.%1$I y
         where not exists (select 1 from pg_temp.crm_inbound_written w where w.remote_id = y.remote_id)$q$,
      v_typed)
      using p_records;
    -- Row count and the join keys' statistics for the planner (pg_statistic rows of this
    -- session's table are rewritten, no relation is created): the steps below join the records
    -- to mirror rows, sync_state and the outbox, and it must see a page of a few records as such.
    analyze pg_temp.crm_inbound_page (remote_id, ord, target_id);
  end if;

  if exists (select 1 from pg_temp.crm_inbound_page) or v_losers > 0 then
    -- 6. Lock the rows the steps below can touch (the records' own, merge losers', link
    -- candidates'), in id order, and keep each as it is then, with its outbox entry, in
    -- crm_inbound_row: every later step reads them as their last writer left them. Every row is
    -- found and locked by its own index probe (a correlated subquery; a locking subquery is
    -- never flattened into a join), so a page never scans a table. Measured with 100k contacts:
    -- "remote_id = any (page ids) for update" and a join of the page to contacts by id were both
    -- planned as sequential scans of all 100k rows for a page of 2,000 (about 20 ms a page).
    v_lock_ids := array(
      select p.target_id from pg_temp.crm_inbound_page p where p.target_id is not null);
    execute format(
      $q$select array(
           select t.id
           from (select p.remote_id from pg_temp.crm_inbound_page p where p.target_id is null
                 union all
                 select l.alias from pg_temp.crm_inbound_loser l) r
           cross join lateral (select t.id from crm.%1$I t
                               where t.connection_id = $1 and t.remote_id = r.remote_id) t)$q$,
      p_object)
      into v_more_ids using p_connection_id;
    v_lock_ids := v_lock_ids || v_more_ids;
    for v_rule in 1 .. case when v_unlinked then array_length(v_link_rules, 1) else 0 end loop
      execute format(
        $q$select array(
             select t.id
             from pg_temp.crm_inbound_page p
             join pg_temp.%2$I y on y.ord = p.ord
             join crm.%1$I t on t.connection_id = $1 and t.remote_id is null and t.deleted_at is null
                            and %3$s
             where p.link_candidate and p.target_id is null)$q$,
        p_object, v_typed, crm._inbound_link_match(v_link_rules[v_rule][1], v_link_rules[v_rule][2], 'y'))
        into v_more_ids using p_connection_id;
      v_lock_ids := v_lock_ids || v_more_ids;
    end loop;
    execute format(
      $q$insert into pg_temp.crm_inbound_row (id, remote_id, remote_updated_at, deleted_at, merged_into_remote_id,
                                              swept, custom, image, ob_state, ob_op, ob_columns)
         select l.id, l.remote_id, l.remote_updated_at, l.deleted_at, l.merged_into_remote_id, l.swept, l.custom,
                l.image, (l.ob).state, (l.ob).op, coalesce((l.ob).changed_columns, '{}'::text[])
         from (select distinct i.id from unnest($1::uuid[]) as i(id) order by i.id) i
         cross join lateral (
           select t.id, t.remote_id, t.remote_updated_at, t.deleted_at, t.merged_into_remote_id,
                  t.swept_at is not null as swept, t.custom, to_jsonb(t) as image,
                  (select o from crm.outbox o where o.object = $2 and o.record_id = t.id) as ob
           from crm.%1$I t
           where t.id = i.id
           for update of t
         ) l$q$,
      p_object)
      using v_lock_ids, p_object;
    analyze pg_temp.crm_inbound_row (id, remote_id);
    -- A record inserted concurrently since step 2 has its row now.
    if exists (select 1 from pg_temp.crm_inbound_page p where p.target_id is null) then
      update pg_temp.crm_inbound_page p set target_id = r.id
      from pg_temp.crm_inbound_row r
      where p.target_id is null and r.remote_id = p.remote_id;
    end if;

    -- 7. Link: each rule pairs each unlinked local row with at most one record and each record
    -- with at most one row (earliest record, then oldest row, first); later rules take what the
    -- earlier ones left.
    for v_rule in 1 .. case when v_unlinked then array_length(v_link_rules, 1) else 0 end loop
      execute format(
        'update pg_temp.crm_inbound_page p set target_id = m.target_id, linked = true
         from (
           select distinct on (c.remote_id) c.remote_id, c.target_id
           from (
             select distinct on (t.id) u.remote_id, t.id as target_id, t.created_at
             from pg_temp.crm_inbound_page u
             join pg_temp.%3$I y on y.ord = u.ord
             join crm.%1$I t on t.connection_id = $1 and t.remote_id is null and t.deleted_at is null
                            and %2$s
             where u.link_candidate and u.target_id is null
               and not exists (select 1 from pg_temp.crm_inbound_page l where l.linked and l.target_id = t.id)
             order by t.id, u.ord
           ) c
           order by c.remote_id, c.created_at, c.target_id
         ) m
         where p.remote_id = m.remote_id',
        p_object,
        crm._inbound_link_match(v_link_rules[v_rule][1], v_link_rules[v_rule][2], 'y'), v_typed)
        using p_connection_id;
    end loop;

    -- 8. Per field of records that have a row (a new record is inserted from its body as it
    -- came). Stale: older than the field's newest remote version (or, for a field never seen,
    -- the row's). Otherwise: not changed locally -> take; changed locally and equal -> agree;
    -- remote unchanged since the last agreement -> keep local; changed on both sides -> policy.
    -- An open conflict is settled only by agreement (manual policy semantics). A field whose
    -- value equals the row's, with no sync_state row, no open conflict and nothing pending, has
    -- nothing to decide and is left out.
    -- 'held': a field the record leaves out but the row has (non-null), when the record is newer
    -- than the row. Such a field without its own sync_state row was last changed remotely at the
    -- row's remote_updated_at (sync_state stays empty for records nobody edited); step 11 keeps
    -- that time in a row of its own when the record moves the row's time forward, so that an
    -- older out-of-order change to the field is still applied. These are the fields
    -- crm._changed_columns(null, row) lists, less the record's.
    -- sync_state and the open conflicts are probed by key: once per record (has it any), then per
    -- field of the records that have some. A join, or an EXISTS (which the planner may turn into
    -- a hashed subplan), let the planner read whole tables for a page.
    -- Both CTEs are materialized so that row images and probes are computed once, not once per
    -- reference.
    -- Echo (issue 12): a value whose hash equals a crm.write_ledger row of the record and field
    -- (pushed in the last 7 days, with remote_version NULL or not older than the record) is the
    -- engine's own write coming back: 'echo', decided after 'stale' and before everything else.
    -- It writes no field and raises no conflict; its field becomes agreed (the CRM has what was
    -- sent) and a pending local edit made since (L2 after the push of L1) stays pending. The ledger
    -- is probed like sync_state: once per record, per field only for records that have rows. A
    -- value pushed but outside that version window (a later CRM change to another field of the
    -- record) counts as agreed for the three-way merge: 'keep' for a pending field.
    execute format(
      $q$with rec as materialized (
           select p.remote_id, p.target_id, p.ts, p.body, t.remote_updated_at as row_ts,
                  t.ob_columns as pending_cols, t.image as row_image, to_jsonb(y) as typed,
                  coalesce((select true from crm.sync_state s
                            where s.object = $1 and s.record_id = p.target_id limit 1), false) as any_state,
                  coalesce((select true from crm.conflicts k
                            where k.object = $1 and k.record_id = p.target_id and k.resolution is null limit 1),
                           false) as any_conflict,
                  coalesce((select true from crm.write_ledger l
                            where l.object = $1 and l.record_id = p.target_id limit 1), false) as any_ledger
           from pg_temp.crm_inbound_page p
           join pg_temp.crm_inbound_row t on t.id = p.target_id
           join pg_temp.%1$I y on y.ord = p.ord
         ),
         fv as materialized (
           select r.remote_id, r.target_id, r.ts, r.row_ts, r.pending_cols, v.field, v.val,
                  coalesce(v.local_val, 'null'::jsonb) as local_val, v.held,
                  case when r.any_state then
                    (select s from crm.sync_state s
                     where s.object = $1 and s.record_id = r.target_id and s.field = v.field)
                  end as st,
                  case when r.any_conflict then
                    (select k.id from crm.conflicts k
                     where k.object = $1 and k.record_id = r.target_id and k.field = v.field
                       and k.resolution is null)
                  end as open_conflict_id,
                  case when r.any_ledger and not v.held then
                    (select bool_or(l.remote_version is null or r.ts <= l.remote_version)
                     from crm.write_ledger l
                     where l.object = $1 and l.record_id = r.target_id and l.field = v.field
                       and l.value_hash = crm._hash(v.val) and l.pushed_at > now() - interval '7 days')
                  end as ledger_echo
           from rec r
           cross join lateral (
             select k.key, r.typed -> k.key, r.row_image -> k.key, false
             from jsonb_object_keys(r.body) as k(key)
             where k.key <> 'custom'
             union all
             select 'custom.' || c.key, c.value, r.row_image -> 'custom' -> c.key, false
             from jsonb_each(coalesce(r.body -> 'custom', '{}'::jsonb)) as c
             union all
             select n.key, null, null, true
             from jsonb_each(r.row_image - $3) as n
             where r.ts > r.row_ts and n.value <> 'null'::jsonb and not r.body ? n.key
             union all
             select 'custom.' || c.key, null, null, true
             from jsonb_each(r.row_image -> 'custom') as c
             where r.ts > r.row_ts and c.value <> 'null'::jsonb
               and not coalesce(r.body -> 'custom', '{}'::jsonb) ? c.key
           ) as v(field, val, local_val, held)
         )
       insert into pg_temp.crm_inbound_field (remote_id, target_id, field, val, local_val, ts, agreed_hash,
                                              local_changed_at, remote_changed_at, has_state, open_conflict_id,
                                              decision)
       select f.remote_id, f.target_id, f.field, f.val, f.local_val, f.ts, (f.st).agreed_hash,
              (f.st).local_changed_at, (f.st).remote_changed_at, (f.st).record_id is not null, f.open_conflict_id,
              case
                when f.held then 'held'
                when f.ts < coalesce((f.st).remote_changed_at, f.row_ts) then 'stale'
                when f.ledger_echo then 'echo'
                when f.open_conflict_id is not null then
                  case when f.val = f.local_val then 'agree' else 'manual' end
                when f.field <> all (f.pending_cols) then 'take'
                when f.val = f.local_val then 'agree'
                when (f.st).agreed_hash is not null and crm._hash(f.val) = (f.st).agreed_hash then 'keep'
                -- A value the engine pushed whose completion (the new agreed value) is not in yet.
                when f.ledger_echo is not null then 'keep'
                when $2 = 'crm_wins' then 'take_conflict'
                when $2 = 'app_wins' then 'keep_conflict'
                when $2 = 'manual' then 'manual'
                when f.ts >= coalesce((f.st).local_changed_at, '-infinity'::timestamptz) then 'take_conflict'
                else 'keep_conflict'
              end
       from fv f
       where f.held or f.val <> f.local_val or (f.st).record_id is not null or f.open_conflict_id is not null
          or f.field = any (f.pending_cols) or f.ledger_echo is not null$q$,
      v_typed)
      using p_object, v_policy, crm._bookkeeping_columns() || array['custom', 'kind'];

    -- 9. Per record: the row's state, the patch (taken fields, custom keys merged into the row's;
    -- the whole body for a new record; local ids of the relations it sets), the action, and what
    -- the outbox entry still has to push.
    v_refs := '';
    for ref in select r.local_col, r.remote_col, r.target from crm._mirror_refs() r where r.tbl = p_object loop
      v_refs := v_refs || format(
        ' || case when b.patch ? %1$L then jsonb_build_object(%2$L,
               (select x.id from crm.%3$I x where x.connection_id = $2 and x.remote_id = b.patch ->> %1$L))
             else ''{}''::jsonb end',
        ref.remote_col, ref.local_col, ref.target);
    end loop;
    execute format(
      $q$with r as materialized (
           select p0.remote_id, p0.target_id, p0.ts, p0.is_deleted, p0.linked,
                  t.remote_updated_at as row_ts, t.deleted_at as row_deleted_at,
                  t.merged_into_remote_id as row_merged_into, coalesce(t.swept, false) as row_swept,
                  t.ob_state, t.ob_op, coalesce(t.ob_columns, '{}'::text[]) as pending_cols,
                  coalesce(d.settled, '{}'::text[]) as settled, x.full_patch, p0.merged_into,
                  coalesce(d.has_echo, false) as has_echo, coalesce(d.has_conflict, false) as has_conflict
           from pg_temp.crm_inbound_page p0
           left join pg_temp.crm_inbound_row t on t.id = p0.target_id
           left join (
             select f.remote_id,
                    jsonb_object_agg(f.field, f.val) filter (
                      where f.decision in ('take', 'take_conflict') and not starts_with(f.field, 'custom.')
                        and f.val is distinct from f.local_val) as cols,
                    jsonb_object_agg(substr(f.field, 8), f.val) filter (
                      where f.decision in ('take', 'take_conflict') and starts_with(f.field, 'custom.')
                        and f.val is distinct from f.local_val) as custom_patch,
                    array_agg(f.field) filter (where f.decision in ('take', 'take_conflict', 'agree', 'manual')
                                                  or (f.decision = 'echo' and f.val = f.local_val))
                      as settled,
                    bool_or(f.decision = 'echo') as has_echo,
                    bool_or(f.decision in ('take_conflict', 'keep_conflict', 'manual')) as has_conflict
             from pg_temp.crm_inbound_field f
             group by f.remote_id
           ) d on d.remote_id = p0.remote_id
           cross join lateral (
             select b.patch %2$s
             from (select case
                            when p0.target_id is null then p0.body
                            when d.custom_patch is not null
                              then coalesce(d.cols, '{}'::jsonb) || jsonb_build_object('custom', t.custom || d.custom_patch)
                            else coalesce(d.cols, '{}'::jsonb)
                          end as patch) b
           ) as x(full_patch)
         )
         update pg_temp.crm_inbound_page p set
           row_ts = r.row_ts, row_deleted_at = r.row_deleted_at, row_merged_into = r.row_merged_into,
           row_swept = r.row_swept, ob_state = r.ob_state, ob_op = r.ob_op, pending_cols = r.pending_cols,
           settled = r.settled, full_patch = r.full_patch, action = a.action, remaining = a.remaining,
           still_pending = case
             when r.ob_state is null then false
             when r.ob_state = 'processing' then true
             when a.action = 'tombstone' then false
             when r.ob_op = 'delete' then true
             else cardinality(a.remaining) > 0
           end
         from r
         cross join lateral (
           select array(select c from unnest(r.pending_cols) c where c <> all (r.settled)) as remaining,
             case
               when r.target_id is null then case when r.is_deleted then 'insert_deleted' else 'insert' end
               -- A CRM delete of a record with a pending local edit: under app_wins and manual a
               -- conflict settled in step 11 (the delete wins under the other policies).
               when r.is_deleted and r.row_deleted_at is null and r.ts >= coalesce(r.row_ts, '-infinity'::timestamptz)
                 then case when r.merged_into is null and r.ob_op in ('insert', 'update')
                                and $3 in ('app_wins', 'manual')
                           then 'delete_conflict' else 'tombstone' end
               -- A newer version restores a record the CRM had deleted (not a merged one, not one
               -- the app deleted); a sweep tombstone is restored by any version not older than it.
               when not r.is_deleted and r.row_deleted_at is not null and r.row_merged_into is null
                    and r.ob_op is distinct from 'delete'
                    and (r.ts > coalesce(r.row_ts, 'infinity'::timestamptz)
                         or (r.row_swept and r.ts >= coalesce(r.row_ts, '-infinity'::timestamptz)))
                 then 'restore'
               when r.full_patch <> '{}'::jsonb or r.linked then 'update'
               -- The engine's own echo and nothing else: no row write (see step 8).
               when r.has_echo and not r.has_conflict and not (r.pending_cols && r.settled) then 'echo'
               when r.ts > r.row_ts then 'touch'
               when r.ts < r.row_ts then 'stale'
               else 'unchanged'
             end as action
         ) a
         where p.remote_id = r.remote_id$q$,
      p_object, v_refs)
      using p_object, p_connection_id, v_policy;

    -- 10. Apply. Existing rows: the patch, times, tombstone or restore, what stays pending.
    execute format(
      'with upd as (
         update crm.%1$I t set
           (%2$s) = (select %3$s from jsonb_populate_record(t, p.full_patch) x),
           remote_id = p.remote_id,
           remote_updated_at = greatest(t.remote_updated_at, p.ts),
           deleted_at = case p.action when ''tombstone'' then coalesce(t.deleted_at, now())
                                      when ''restore'' then null else t.deleted_at end,
           merged_into_remote_id = case when p.action = ''tombstone'' then p.merged_into
                                        else t.merged_into_remote_id end,
           swept_at = case when p.action in (''tombstone'', ''restore'') then null else t.swept_at end,
           needs_sync = p.still_pending,
           sync_error = case when p.still_pending then t.sync_error end,
           last_synced_at = now(),
           updated_at = case when p.action = ''touch'' then t.updated_at else now() end
         from pg_temp.crm_inbound_page p
         where t.id = p.target_id and p.action in (''update'', ''tombstone'', ''restore'', ''touch'')
         returning t.id, p.remote_id, p.action, p.linked
       )
       insert into pg_temp.crm_inbound_written (id, remote_id, action, backfill)
       select u.id, u.remote_id, u.action, u.linked or u.action = ''restore'' from upd u',
      p_object, v_set_cols, v_sel_cols);
    -- New records the bulk insert left (merges, unmatched link candidates, concurrent inserts).
    select count(*)::integer into v_full_inserts
    from pg_temp.crm_inbound_page p where p.action in ('insert', 'insert_deleted');
    execute format(
      'with ins as (
         insert into crm.%1$I as t (connection_id, remote_id, remote_updated_at, last_synced_at, deleted_at,
                                    merged_into_remote_id, needs_sync, %2$s)
         select $1, p.remote_id, p.ts, now(), case when p.action = ''insert_deleted'' then now() end,
                p.merged_into, false, %3$s
         from pg_temp.crm_inbound_page p
         cross join lateral jsonb_populate_record(null::crm.%1$I, p.full_patch) x
         where p.action in (''insert'', ''insert_deleted'')
         on conflict (connection_id, remote_id) do update set
           %4$s,
           remote_updated_at = excluded.remote_updated_at,
           last_synced_at = now(),
           updated_at = now()
         where t.remote_updated_at is null or t.remote_updated_at <= excluded.remote_updated_at
         returning t.id, t.remote_id, (t.xmax = 0) as inserted, (t.deleted_at is not null) as born_deleted
       )
       insert into pg_temp.crm_inbound_written (id, remote_id, action, backfill)
       select i.id, i.remote_id,
              case when not i.inserted then ''upsert'' when i.born_deleted then ''insert_deleted'' else ''insert'' end,
              true
       from ins i',
      p_object, v_set_cols, v_ins_cols, v_conflict_set)
      using p_connection_id;
    get diagnostics v_full_written = row_count;

    -- 11. Bookkeeping: held remote change times (see step 8) of records that moved the row's time.
    insert into crm.sync_state as s (connection_id, object, record_id, field, remote_changed_at)
    select p_connection_id, p_object, f.target_id, f.field, p.row_ts
    from pg_temp.crm_inbound_field f
    join pg_temp.crm_inbound_page p on p.remote_id = f.remote_id
    where f.decision = 'held' and p.action in ('update', 'touch') and p.ts > p.row_ts
    on conflict (object, record_id, field) do update
      set remote_changed_at = excluded.remote_changed_at, updated_at = now()
      where s.remote_changed_at is null;
    -- Agreed hashes, remote change times and the last conflict of the decided fields. Fields
    -- taken or agreed need a row only when it changes something (sync_state stays empty for
    -- records nobody edited).
    insert into crm.sync_state as s (connection_id, object, record_id, field, agreed_hash, agreed_at,
                                     remote_changed_at, conflict)
    select p_connection_id, p_object, f.target_id, f.field,
           case when f.decision in ('take', 'take_conflict', 'agree', 'echo') then crm._hash(f.val) end,
           case when f.decision in ('take', 'take_conflict', 'agree', 'echo') then now() end,
           f.ts,
           case when f.decision in ('take_conflict', 'keep_conflict', 'manual') then
             jsonb_build_object('policy', v_policy, 'local', f.local_val, 'remote', f.val, 'at', now(),
               'winner', case f.decision when 'take_conflict' then 'remote'
                                         when 'keep_conflict' then 'local' end)
           end
    from pg_temp.crm_inbound_field f
    where f.decision not in ('stale', 'held')
      and (f.decision not in ('take', 'agree')
           or (f.has_state and (f.agreed_hash is distinct from crm._hash(f.val)
                                or f.remote_changed_at is null or f.remote_changed_at < f.ts)))
    on conflict (object, record_id, field) do update set
      agreed_hash = case when excluded.agreed_at is not null then excluded.agreed_hash else s.agreed_hash end,
      agreed_at = coalesce(excluded.agreed_at, s.agreed_at),
      remote_changed_at = greatest(s.remote_changed_at, excluded.remote_changed_at),
      conflict = coalesce(excluded.conflict, s.conflict),
      updated_at = now();
    -- Conflicts: every field changed on both sides (open for manual); an open one whose sides
    -- now agree is closed as converged.
    insert into crm.conflicts as k (connection_id, object, record_id, remote_id, field, local_value,
                                    remote_value, local_changed_at, remote_changed_at, policy,
                                    resolution, resolved_by, resolved_at)
    select p_connection_id, p_object, f.target_id, f.remote_id, f.field, f.local_val, f.val,
           f.local_changed_at, f.ts, v_policy,
           case f.decision when 'take_conflict' then 'remote' when 'keep_conflict' then 'local' end,
           case when f.decision <> 'manual' then 'policy' end,
           case when f.decision <> 'manual' then now() end
    from pg_temp.crm_inbound_field f
    where f.decision in ('take_conflict', 'keep_conflict', 'manual')
    on conflict (object, record_id, field) where resolution is null do update set
      remote_value = excluded.remote_value,
      remote_changed_at = excluded.remote_changed_at,
      local_value = excluded.local_value,
      updated_at = now();
    update crm.conflicts k
    set resolution = 'remote', resolved_by = 'converged', resolved_at = now(), updated_at = now()
    where k.id = any (array(select f.open_conflict_id from pg_temp.crm_inbound_field f
                            where (f.decision = 'agree' or (f.decision = 'echo' and f.val = f.local_val))
                              and f.open_conflict_id is not null));
    -- Echoes bind the ledger rows that had no remote version yet to the record's time.
    if exists (select 1 from pg_temp.crm_inbound_field f where f.decision = 'echo') then
      update crm.write_ledger l set remote_version = f.ts
      from pg_temp.crm_inbound_field f
      where f.decision = 'echo' and l.object = p_object and l.record_id = f.target_id and l.field = f.field
        and l.value_hash = crm._hash(f.val) and l.remote_version is null;
    end if;
    -- The outbox: an entry keeps the fields still to push (a linked insert becomes an update);
    -- an entry with nothing left, or of a record now tombstoned, goes. A leased entry is left to
    -- its worker. Most pages have no record with an entry.
    if exists (select 1 from pg_temp.crm_inbound_page p where p.ob_state is not null) then
      update crm.outbox o set
        changed_columns = p.remaining,
        op = case when o.op = 'insert' and p.linked then 'update' else o.op end,
        remote_id = coalesce(o.remote_id, p.remote_id),
        updated_at = now()
      from pg_temp.crm_inbound_page p
      where o.object = p_object and o.record_id = p.target_id and o.state <> 'processing'
        and p.action <> 'tombstone' and o.op <> 'delete'
        and cardinality(p.remaining) > 0
        and (p.remaining <> o.changed_columns or (o.op = 'insert' and p.linked));
      delete from crm.outbox o
      using pg_temp.crm_inbound_page p
      where o.object = p_object and o.record_id = p.target_id and o.state <> 'processing'
        and (p.action = 'tombstone' or (o.op <> 'delete' and cardinality(p.remaining) = 0));
      -- CRM deletes of records with a pending local edit: recorded conflicts (field deleted_at,
      -- local_value the pending values). The delete won above (tombstone) unless the policy is
      -- app_wins (the record is created again; a leased entry is left to its worker, whose push
      -- meets the delete and fail_outbox settles it) or manual (open; the row stays, claims hold
      -- its entry).
      insert into crm.conflicts as k (connection_id, object, record_id, remote_id, field, local_value,
                                      remote_value, local_changed_at, remote_changed_at, policy,
                                      resolution, resolved_by, resolved_at)
      select p_connection_id, p_object, p.target_id, p.remote_id, 'deleted_at',
             (select coalesce(jsonb_object_agg(c.col, crm._field_value(t.image, c.col)), '{}'::jsonb)
              from unnest(t.ob_columns) as c(col)),
             '{"deleted": true}'::jsonb,
             (select max(s.local_changed_at) from crm.sync_state s
              where s.object = p_object and s.record_id = p.target_id),
             p.ts, v_policy,
             case when p.action = 'tombstone' then 'remote' when v_policy = 'app_wins' then 'local' end,
             case when p.action = 'tombstone' or v_policy = 'app_wins' then 'policy' end,
             case when p.action = 'tombstone' or v_policy = 'app_wins' then now() end
      from pg_temp.crm_inbound_page p
      join pg_temp.crm_inbound_row t on t.id = p.target_id
      where t.ob_op in ('insert', 'update') and p.merged_into is null
        and (p.action = 'tombstone'
             or (p.action = 'delete_conflict' and (v_policy = 'manual' or t.ob_state <> 'processing')))
      on conflict (object, record_id, field) where resolution is null do update set
        local_value = excluded.local_value, remote_changed_at = excluded.remote_changed_at, updated_at = now();
      get diagnostics v_delete_conflicts = row_count;
      if v_policy = 'app_wins' then
        perform crm._recreate_rows(p_object, array(
          select p.target_id from pg_temp.crm_inbound_page p
          join pg_temp.crm_inbound_row t on t.id = p.target_id
          where p.action = 'delete_conflict' and t.ob_state <> 'processing'));
      end if;
    end if;

    -- 12. Merges: losers named by a survivor become tombstones pointing at it; every merge
    -- leaves an alias.
    execute format(
      'update pg_temp.crm_inbound_loser l set id = t.id, was_live = t.deleted_at is null
       from crm.%I t
       where t.connection_id = $1 and t.remote_id = l.alias
         and (t.deleted_at is null or t.merged_into_remote_id is distinct from l.survivor)',
      p_object)
      using p_connection_id;
    execute format(
      'update crm.%I t
       set deleted_at = coalesce(t.deleted_at, now()), merged_into_remote_id = l.survivor, swept_at = null,
           needs_sync = false, last_synced_at = now(), updated_at = now()
       from pg_temp.crm_inbound_loser l
       where t.id = l.id',
      p_object);
    delete from crm.outbox o
    using pg_temp.crm_inbound_loser l
    where o.object = p_object and o.record_id = l.id and o.state <> 'processing';
    insert into crm.record_aliases as a (connection_id, object, alias_remote_id, remote_id, merged_at)
    select p_connection_id, p_object, p.remote_id, p.merged_into, now()
    from pg_temp.crm_inbound_page p
    where p.merged_into is not null and p.merged_into <> p.remote_id
      and p.action in ('tombstone', 'insert_deleted', 'unchanged', 'touch', 'update')
    union all
    select p_connection_id, p_object, l.alias, l.survivor, now() from pg_temp.crm_inbound_loser l
    on conflict (connection_id, object, alias_remote_id) do update
      set remote_id = excluded.remote_id, merged_at = excluded.merged_at;
  end if;

  -- 13. Rows of the mirror tables that reference a record written here (inserted, linked or
  -- restored) by remote id get its local id. The rows are found by one scan of the partial
  -- remote-id index for the written remote ids (= any): joined to the written records, an
  -- unanalyzed page of one record was guessed at hundreds and the back-fill became a hash join
  -- over every row of the connection with the relation.
  for ref in select r.tbl, r.local_col, r.remote_col from crm._mirror_refs() r where r.target = p_object loop
    execute format(
      'update crm.%1$I x set %2$I = w.id
       from pg_temp.crm_inbound_written w
       where x.%3$I = any (array(select b.remote_id from pg_temp.crm_inbound_written b where b.backfill))
         and x.connection_id = $1 and w.backfill and w.remote_id = x.%3$I and x.%2$I is distinct from w.id',
      ref.tbl, ref.local_col, ref.remote_col)
      using p_connection_id;
  end loop;

  -- 14. Counts. A new record the full insert skipped (a newer row already there) is unchanged.
  if v_full_inserts is null and v_losers = 0 then
    -- Only the bulk insert ran (a backfill page).
    return query select v_bulk_written - v_bulk_deleted, 0, 0, v_bulk_deleted, 0, 0;
    return;
  end if;
  return query
    select
      (select count(*) from pg_temp.crm_inbound_written w where w.action = 'insert')::integer,
      (select count(*) from pg_temp.crm_inbound_written w where w.action in ('update', 'restore', 'upsert'))::integer,
      ((select count(*) from pg_temp.crm_inbound_page p where p.action in ('touch', 'unchanged', 'echo', 'delete_conflict'))
        + coalesce(v_full_inserts, 0) - coalesce(v_full_written, 0))::integer,
      ((select count(*) from pg_temp.crm_inbound_written w where w.action in ('insert_deleted', 'tombstone'))
        + (select count(*) from pg_temp.crm_inbound_loser l where l.was_live))::integer,
      (select count(*) from pg_temp.crm_inbound_page p where p.action = 'stale')::integer,
      ((select count(*) from pg_temp.crm_inbound_field f
        where f.decision in ('take_conflict', 'keep_conflict', 'manual')) + v_delete_conflicts)::integer;
exception when check_violation or not_null_violation or data_exception then
  -- Validated in step 2; what remains is a value valid alone but not in the row it patches.
  raise exception using errcode = 'CRM03', message = 'invalid inbound record: ' || sqlerrm;
end
$fn$;
comment on function crm.apply_inbound(uuid, text, jsonb) is
  'Applies one page of canonical inbound records for a connection/object in fixed steps: validated, ordered, linked, three-way merged. Returns counts. Errors: CRM01 object, CRM02 connection, CRM03 record.';
revoke all on function crm.apply_inbound(uuid, text, jsonb) from public;
grant execute on function crm.apply_inbound(uuid, text, jsonb) to service_role;
