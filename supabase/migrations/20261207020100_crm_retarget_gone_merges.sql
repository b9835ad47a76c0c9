-- A merge loser's app edit whose push was in flight when the merge was applied (chaos finding,
-- Pipedrive seed 3 app_wins; docs/architecture.md §6, "Merges and pending app edits").
--
-- crm.apply_inbound step 12 re-targets a loser's pending edit to its survivor, but leaves an
-- entry claimed by a push to its worker: on HubSpot that push lands on the survivor (merged ids
-- resolve). Pipedrive answers it 404, and crm.fail_outbox then dropped the entry because the row
-- was already a tombstone: the edit was lost, the survivor kept the CRM's values. The push now
-- hands such an entry back as a retry (sync/gone_merges.ts) and calls this function, which
-- re-targets it exactly as step 12 would have (crm._retarget_merged_edits: settled against the
-- survivor by the policy, a conflict with reason 'merge' whichever side wins) and removes it.
--
-- Only pending update entries of rows that are merge tombstones (deleted_at and
-- merged_into_remote_id set) of the connection are moved; anything else is left alone. Rows are
-- locked before entries, as everywhere else: a call made while the inbox applies the merge
-- waits for it and then sees the tombstone.

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
       and o.op = ''update'' and o.state = ''pending'' and cardinality(o.changed_columns) > 0',
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
  'Re-targets the pending update entries of merge tombstones (rows merged away while their push was in flight) to their survivors, settled by the policy like crm.apply_inbound step 12 (crm._retarget_merged_edits). Returns the conflicts written.';
