-- The push window (issue 15, chaos harness `--push-window strict`): a CRM user's edit of a field
-- made while an app edit of the same field waited in the outbox was overwritten by the push (a
-- blind write) and came back as the engine's own echo: lost, with no conflict recorded.
--
-- Now the push reads the records of each chunk of updates by id first (one batched read per
-- chunk) and hands the mapped records to crm.recheck_outbox with the claims. An entry is
-- released (back to pending, due now, the attempt not counted, its ledger rows removed: nothing
-- was sent) when the CRM holds, for a field the entry is about to push, a value that
--   * differs from the field's agreed value (sync_state.agreed_hash: what both sides last had),
--   * differs from the value being pushed (the same value needs no decision: the write is
--     harmless and its completion makes it agreed),
--   * is not older than what the engine has already seen of the field (the 'stale' rule of
--     crm.apply_inbound), and
--   * is not the remote side of the field's last conflict at a version already seen (a
--     conflict the app won under app_wins/newest_wins: the CRM still holds the overruled value
--     and the push must overwrite it, not raise the same conflict again).
-- An entry is also released when the row no longer holds the value claimed for such a field
-- (an inbound apply took the CRM's value while the entry was leased, or the app edited again):
-- the claimed value is stale.
-- The worker then writes those records through the normal inbound path (crm.save_inbound_page,
-- mode live), where the released entry is an ordinary pending one: crm.apply_inbound's three-way
-- merge decides per field by the connection's policy, records the conflict, and reconciles the
-- entry (fields the CRM won leave it; an entry with nothing left goes; manual holds the record).
-- What is left is claimed again and pushed. Only records whose CRM value would be overwritten
-- pay the extra round; the read itself is one call per chunk.
-- Values are compared typed as apply_inbound types them (the mirror table's column types,
-- timestamps in UTC); a record its column types reject is not released (its push goes on as
-- before; the inbound path reports it). Fields the record does not carry are not compared.
-- Residual window: a CRM edit made between this read and the write is still overwritten.
create or replace function crm._typed_inbound(p_object text, p_body jsonb)
  returns jsonb
  language plpgsql
  stable
  set search_path = ''
  set timezone = 'UTC'
as $$
declare
  v jsonb;
begin
  if p_object not in ('contacts', 'companies', 'deals') then
    return null;
  end if;
  execute format('select to_jsonb(jsonb_populate_record(null::crm.%I, $1))', p_object)
    into v using p_body;
  return v;
exception when data_exception or integrity_constraint_violation then
  return null;
end
$$;
revoke all on function crm._typed_inbound(text, jsonb) from public;
grant execute on function crm._typed_inbound(text, jsonb) to service_role;

-- p_claims: [{id, lease}] (entries the caller holds); p_records: the chunk's records as read now,
-- mapped as for crm.save_inbound_page. Returns the released entries with the fields that made
-- each one go back (the caller applies those records inbound).
create or replace function crm.recheck_outbox(p_connection_id uuid, p_object text, p_claims jsonb,
                                              p_records jsonb)
  returns table (id bigint, record_id uuid, remote_id text, fields text[])
  language plpgsql
  volatile
  set search_path = ''
  set timezone = 'UTC'
as $$
#variable_conflict use_column
begin
  if p_object is null or p_object not in ('contacts', 'companies', 'deals') then
    raise exception using errcode = 'CRM01', message = format('unknown object %L', p_object);
  end if;
  return query
  with c as (
    select x.id, x.lease
    from jsonb_to_recordset(coalesce(p_claims, '[]'::jsonb)) as x(id bigint, lease uuid)
  ),
  r as (
    select distinct on (e.r ->> 'remote_id')
           e.r ->> 'remote_id' as remote_id, (e.r ->> 'remote_updated_at')::timestamptz as ts,
           e.r as body, crm._typed_inbound(p_object, e.r) as typed
    from jsonb_array_elements(coalesce(p_records, '[]'::jsonb)) as e(r)
    where jsonb_typeof(e.r) = 'object' and not coalesce((e.r ->> 'deleted')::boolean, false)
    order by e.r ->> 'remote_id', (e.r ->> 'remote_updated_at')::timestamptz desc
  ),
  o as (
    select ob.id, ob.lease, ob.record_id, ob.remote_id, ob.pushed, r.ts, r.body, r.typed, w.row,
           (w.row ->> 'remote_updated_at')::timestamptz as row_ts
    from c
    join crm.outbox ob on ob.id = c.id and ob.lease = c.lease and ob.state = 'processing'
    join r on r.remote_id = ob.remote_id
    cross join lateral (
      select case ob.object
               when 'contacts' then (select to_jsonb(t) from crm.contacts t where t.id = ob.record_id)
               when 'companies' then (select to_jsonb(t) from crm.companies t where t.id = ob.record_id)
               when 'deals' then (select to_jsonb(t) from crm.deals t where t.id = ob.record_id)
             end as row
    ) w
    where ob.connection_id = p_connection_id and ob.object = p_object and ob.op = 'update'
      and ob.pushed is not null and r.typed is not null and w.row is not null
  ),
  changed as (
    select o.id, o.lease, o.record_id, o.remote_id, array_agg(p.key order by p.key) as fields
    from o
    cross join lateral jsonb_each(o.pushed) as p
    cross join lateral (select crm._field_value(o.typed, p.key) as crm_val) v
    left join crm.sync_state s on s.object = p_object and s.record_id = o.record_id and s.field = p.key
    where case when starts_with(p.key, 'custom.')
               then coalesce(o.body -> 'custom', '{}'::jsonb) ? substr(p.key, 8)
               else o.body ? p.key end
      and crm._hash(v.crm_val) <> crm._hash(p.value)
      and (
        -- The CRM changed the field and the engine has not seen it.
        (s.agreed_hash is not null
         and crm._hash(v.crm_val) <> s.agreed_hash
         and o.ts >= coalesce(s.remote_changed_at, o.row_ts, '-infinity'::timestamptz)
         and not (s.conflict is not null and o.ts <= s.remote_changed_at
                  and crm._hash(s.conflict -> 'remote') = crm._hash(v.crm_val)))
        -- Or the row no longer holds what was claimed: an inbound apply (webhook, delta) took
        -- the CRM's value while the entry was leased (apply_inbound leaves a leased entry to its
        -- worker), or the app edited it again; the claimed value is stale either way.
        or crm._hash(crm._field_value(o.row, p.key)) <> crm._hash(p.value))
    group by o.id, o.lease, o.record_id, o.remote_id
  ),
  -- Nothing was sent under this lease (a data-modifying CTE runs whether read or not).
  unledger as (
    delete from crm.write_ledger l using changed ch where l.outbox_id = ch.id and l.lease = ch.lease
  ),
  released as (
    update crm.outbox ob
    set state = 'pending', lease = null, locked_until = null, locked_by = null,
        attempts = greatest(ob.attempts - 1, 0), pushed = null, next_attempt_at = now(),
        updated_at = now()
    from changed ch
    where ob.id = ch.id and ob.lease = ch.lease
    returning ob.id
  )
  select ch.id, ch.record_id, ch.remote_id, ch.fields
  from changed ch
  join released rl on rl.id = ch.id;
end
$$;
comment on function crm.recheck_outbox(uuid, text, jsonb, jsonb) is
  'Before a push: releases claimed update entries whose fields the CRM changed since the engine last saw them (records as read now, mapped); returns them for an inbound apply. See 20261206020100_crm_outbound_recheck.sql.';
revoke all on function crm.recheck_outbox(uuid, text, jsonb, jsonb) from public;
grant execute on function crm.recheck_outbox(uuid, text, jsonb, jsonb) to service_role;
