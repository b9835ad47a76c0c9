-- The fields a released entry keeps (issue 15, chaos harness: HubSpot seed 3 app_wins). When an
-- app edit lands while a push of the record is leased, crm.complete_outbox sees the entry's new
-- version and releases it (pending again) instead of deleting it. It kept every changed column
-- of the claim in the entry, so the fields the push had just written stayed "pending local
-- edits": after an insert, every field of the create. A CRM user's later edit of such a field
-- (one the app never touched again) then met a pending app edit: the next push's read before
-- write sent it to crm.apply_inbound, where app_wins kept the app's old value and pushed it over
-- the CRM user's edit (newest_wins compared it with a local edit time the app never made).
--
-- Now a released entry keeps only the columns still to push: those the push did not send
-- (added by the edit made meanwhile) and those whose row value is no longer the value sent. A
-- column whose row still holds what was sent is settled (the CRM has it; complete_outbox makes
-- it agreed as before). An entry left with nothing to push (the app wrote back the value sent)
-- is completed like an unchanged one. Delete entries and claims without pushed values (a delete
-- turned into an insert or update meanwhile) keep all their columns, as before.
--
-- Redefines crm._complete_outbox_body (the body of 20261205010100_crm_outbound_ledger.sql,
-- renamed by 20261206060100_crm_outbox_lock_order.sql, whose crm.complete_outbox wrapper locks
-- the rows first and is unchanged); only the CTEs hit and rel differ.
create or replace function crm._complete_outbox_body(p_results jsonb)
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
  claimed as (
    select o.id, o.connection_id, o.object, o.record_id, o.op, o.changed_columns, o.pushed, o.lease,
           o.remote_id as old_remote_id, coalesce(o.remote_id, r.remote_id) as remote_id,
           r.remote_version, o.version = o.claimed_version as same_version
    from crm.outbox o
    join r on r.id = o.id and r.lease = o.lease and o.state = 'processing'
    for update of o
  ),
  hit as (
    select c.*, left_.remaining,
           c.same_version
           or (c.op <> 'delete' and c.remote_id is not null and c.pushed is not null
               and cardinality(left_.remaining) = 0) as finished
    from claimed c
    cross join lateral (
      select case c.object
        when 'contacts' then (select to_jsonb(x) from crm.contacts x where x.id = c.record_id)
        when 'companies' then (select to_jsonb(x) from crm.companies x where x.id = c.record_id)
        when 'deals' then (select to_jsonb(x) from crm.deals x where x.id = c.record_id)
      end as row
    ) t
    -- Still to push: not sent by this claim, or the row holds another value now.
    cross join lateral (
      select array(
        select f.field from unnest(c.changed_columns) as f(field)
        where c.op = 'delete' or c.pushed is null or t.row is null or not (c.pushed ? f.field)
           or crm._hash(crm._field_value(t.row, f.field)) <> crm._hash(c.pushed -> f.field)
        order by f.field) as remaining
    ) left_
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
        changed_columns = h.remaining,
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
revoke all on function crm._complete_outbox_body(jsonb) from public;
