-- A merge loser's entry that outlives its push (issue 15, chaos finding: HubSpot seed 3
-- app_wins in a fresh clone; docs/architecture.md §6, "Merges and pending app edits").
--
-- crm.apply_inbound step 12 re-targets a loser's *pending* edit to its survivor and leaves a
-- *claimed* entry to its push. When that push ends without finishing the entry, the entry is
-- pending again on a merge tombstone: crm.complete_outbox releases it (the app edited the record
-- again while the push was in flight), crm.fail_outbox hands it back as a retry (a 5xx, a 429),
-- or its lease runs out (the worker was killed). crm.claim_outbox then dropped it as an orphan
-- ("a stale entry never resurrects a record"), so the app's later edit was lost without a trace:
-- the survivor kept the value of the first push.
--
-- Now crm.claim_outbox first re-targets such stranded entries (crm._retarget_stranded_merges:
-- rows locked before entries, as everywhere else, then crm.retarget_merged_entries, which
-- settles them against the survivor by the policy, a crm.conflicts row with reason 'merge'
-- whichever side wins) and never drops an update entry of a merge tombstone: one that becomes
-- stranded between the sweep and the claim is put back, pending, for the next claim's sweep.
-- crm.retarget_merged_entries also takes entries whose lease ran out (their worker is gone; a
-- late completion no longer matches the lease and is ignored).
-- Entries of tombstones the CRM deleted (no survivor) are still dropped, as before.

create or replace function crm.retarget_merged_entries(
  p_connection_id uuid, p_object text, p_record_ids uuid[])
  returns integer
  language plpgsql
  set search_path = ''
  set timezone = 'UTC'
  set crm.engine = 'on'
as $$
declare
  v_policy text;
  v_moves jsonb;
  v_entries bigint[];
  v_n integer;
begin
  if p_object is null or p_object not in ('contacts', 'companies', 'deals') then
    raise exception using errcode = 'CRM01', message = format('unknown object %L', p_object);
  end if;
  select crm._conflict_policy(c.settings) into v_policy
  from crm.connections c where c.id = p_connection_id;
  if not found or cardinality(coalesce(p_record_ids, '{}'::uuid[])) = 0 then
    return 0;
  end if;
  execute format(
    'select 1 from crm.%I t where t.id = any ($1) and t.connection_id = $2 order by t.id for update of t',
    p_object)
    using p_record_ids, p_connection_id;
  execute format(
    'select coalesce(jsonb_agg(jsonb_build_object(
              ''loser'', t.id, ''loser_remote_id'', t.remote_id, ''survivor'', t.merged_into_remote_id,
              ''columns'', to_jsonb(o.changed_columns), ''image'', to_jsonb(t)) order by t.id), ''[]''::jsonb),
            coalesce(array_agg(o.id order by o.id), ''{}''::bigint[])
     from crm.%I t
     join (select x.* from crm.outbox x
           where x.object = $3 and x.record_id = any ($1)
           order by x.id for update of x) o on o.record_id = t.id
     where t.id = any ($1) and t.connection_id = $2 and t.deleted_at is not null
       and t.merged_into_remote_id is not null and t.merged_into_remote_id <> t.remote_id
       and o.op = ''update'' and cardinality(o.changed_columns) > 0
       and (o.state = ''pending'' or (o.state = ''processing'' and o.locked_until < now()))',
    p_object)
    into v_moves, v_entries
    using p_record_ids, p_connection_id, p_object;
  if v_moves = '[]'::jsonb then
    return 0;
  end if;
  v_n := crm._retarget_merged_edits(p_connection_id, p_object, v_policy, v_moves);
  delete from crm.outbox o where o.id = any (v_entries);
  return v_n;
end
$$;
revoke all on function crm.retarget_merged_entries(uuid, text, uuid[]) from public;
grant execute on function crm.retarget_merged_entries(uuid, text, uuid[]) to service_role;
comment on function crm.retarget_merged_entries(uuid, text, uuid[]) is
  'Re-targets the update entries of merge tombstones (rows merged away while their push was in flight), pending or with an expired lease, to their survivors, settled by the policy like crm.apply_inbound step 12 (crm._retarget_merged_edits). Returns the conflicts written.';

-- The stranded entries of one connection (or all, NULL) and object (or all three): update
-- entries, pending or with an expired lease, of merge tombstones. Runs before a claim, holding
-- no lock yet, and locks rows before entries like any engine write. A claim must not stall
-- behind an app transaction holding a loser or survivor row: a group whose locks are not had
-- within lock_timeout (or that deadlocks) is skipped, its entries stay pending, and the claim
-- puts them back for the next sweep.
create or replace function crm._retarget_stranded_merges(p_connection_id uuid, p_object text)
  returns integer
  language plpgsql
  volatile
  set search_path = ''
  set lock_timeout = '1s'
as $$
declare
  v_object text;
  v_connection_id uuid;
  v_ids uuid[];
  v_n integer := 0;
begin
  foreach v_object in array array['companies', 'contacts', 'deals'] loop
    continue when p_object is not null and p_object <> v_object;
    for v_connection_id, v_ids in execute format(
      'select o.connection_id, array_agg(o.record_id order by o.record_id) as ids
       from crm.outbox o
       join crm.%I t on t.id = o.record_id
       where o.object = %L and o.op = ''update''
         and (o.state = ''pending'' or (o.state = ''processing'' and o.locked_until < now()))
         and ($1 is null or o.connection_id = $1)
         and t.deleted_at is not null and t.merged_into_remote_id is not null
         and t.merged_into_remote_id <> t.remote_id
       group by o.connection_id
       order by o.connection_id',
      v_object, v_object)
      using p_connection_id
    loop
      begin
        v_n := v_n + crm.retarget_merged_entries(v_connection_id, v_object, v_ids);
      exception when lock_not_available or deadlock_detected then
        null;
      end;
    end loop;
  end loop;
  return v_n;
end
$$;
revoke all on function crm._retarget_stranded_merges(uuid, text) from public;
grant execute on function crm._retarget_stranded_merges(uuid, text) to service_role;
comment on function crm._retarget_stranded_merges(uuid, text) is
  'Step 1 of crm.claim_outbox: re-targets the update entries of merge tombstones (pending, or with an expired lease) to their survivors (crm.retarget_merged_entries). Returns the conflicts written.';

-- crm.claim_outbox as in 20261205010100_crm_outbound_ledger.sql, with the sweep first and
-- update entries of merge tombstones put back instead of dropped.
create or replace function crm.claim_outbox(
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
  perform crm._retarget_stranded_merges(p_connection_id, p_object);

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
           -- Merged away after the sweep: the next claim's sweep re-targets it.
           i.op = 'update' and i.row ->> 'deleted_at' is not null
             and i.row ->> 'merged_into_remote_id' is not null
             and i.row ->> 'merged_into_remote_id' <> i.row ->> 'remote_id' as merged,
           case when i.op <> 'delete' and i.row is not null then
             (select coalesce(jsonb_object_agg(f.field, crm._field_value(i.row, f.field)), '{}'::jsonb)
              from unnest(i.changed_columns) as f(field))
           end as pushed
    from img i
  ),
  dropped as (
    delete from crm.outbox o using snap s where o.id = s.id and s.orphan and not s.merged
    returning o.id
  ),
  put_back as (
    update crm.outbox o
    set state = 'pending', attempts = greatest(o.attempts - 1, 0), lease = null, locked_until = null,
        locked_by = null, next_attempt_at = now(), updated_at = now()
    from snap s
    where o.id = s.id and s.merged
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
  'Leases up to p_limit due outbox entries (FOR UPDATE SKIP LOCKED) after re-targeting stranded merge-loser entries to their survivors; returns them with lease token, current row, pushed values and uncertain; records the pushed values in crm.write_ledger.';
