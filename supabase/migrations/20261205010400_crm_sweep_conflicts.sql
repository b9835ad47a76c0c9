-- Why: a full walk's sweep finds records the CRM deleted without listing them (Pipedrive, and
-- every provider's hard deletes). A swept record the app had edited meanwhile is the same case
-- as an inbound delete of it (20261205010100): a recorded conflict (field deleted_at), settled
-- by the connection's policy, never a silent loss of the edit and never a resurrection by a
-- stale entry:
--   newest_wins, crm_wins: the delete wins: swept (a tombstone), the entry dropped;
--   app_wins: created again in the CRM (crm._recreate_rows), not swept;
--   manual: not swept; an open conflict holds the entry until crm.resolve_conflict.
-- Rows without a pending change are swept as before.

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
  v_policy text;
  v_unseen uuid[];
  v_edited uuid[];
  v_kept uuid[] := '{}';
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
      select coalesce(array_agg(t.id), '{}'::uuid[]) from crm.%1$I t
      where t.connection_id = $1 and t.remote_id is not null and t.deleted_at is null
        and (t.last_synced_at is null or t.last_synced_at < $2)
        and not exists (select 1 from crm.full_sync_seen s
                        where s.connection_id = $1 and s.object = $3 and s.remote_id = t.remote_id)
    $q$, p_object) into v_unseen using p_connection_id, coalesce(v_started, now()), p_object;

    -- Unseen records with a pending local change (not a delete: that one agrees).
    select coalesce(array_agg(o.record_id), '{}'::uuid[]) into v_edited
    from crm.outbox o
    where o.object = p_object and o.record_id = any (v_unseen) and o.op <> 'delete';
    if cardinality(v_edited) > 0 then
      select crm._conflict_policy(c.settings) into v_policy
      from crm.connections c where c.id = p_connection_id;
      execute format($q$
        insert into crm.conflicts as k (connection_id, object, record_id, remote_id, field, local_value,
                                        remote_value, local_changed_at, remote_changed_at, policy,
                                        resolution, resolved_by, resolved_at)
        select $1, %1$L, t.id, t.remote_id, 'deleted_at',
               coalesce((select jsonb_object_agg(f.f, crm._field_value(to_jsonb(t), f.f))
                         from unnest(o.changed_columns) as f(f)), '{}'::jsonb),
               '{"deleted": true}'::jsonb,
               (select max(s.local_changed_at) from crm.sync_state s
                where s.object = %1$L and s.record_id = t.id),
               null, $2,
               case $2 when 'manual' then null when 'app_wins' then 'local' else 'remote' end,
               case when $2 <> 'manual' then 'policy' end,
               case when $2 <> 'manual' then now() end
        from crm.%1$I t
        join crm.outbox o on o.object = %1$L and o.record_id = t.id
        where t.id = any ($3)
        on conflict (object, record_id, field) where resolution is null do update set
          local_value = excluded.local_value, updated_at = now()
      $q$, p_object) using p_connection_id, v_policy, v_edited;
      if v_policy = 'app_wins' then
        perform crm._recreate_rows(p_object, v_edited);
        v_kept := v_edited;
      elsif v_policy = 'manual' then
        execute format('update crm.%I t set sync_error = $2 where t.id = any ($1)', p_object)
          using v_edited, 'deleted in the CRM while edited here: resolve the conflict (crm.resolve_conflict)';
        v_kept := v_edited;
      else
        delete from crm.outbox o where o.object = p_object and o.record_id = any (v_edited);
      end if;
    end if;

    execute format($q$
      update crm.%1$I t
      set deleted_at = now(), swept_at = now(), last_synced_at = now(), updated_at = now(),
          needs_sync = false
      where t.id = any ($1) and t.id <> all ($2)
    $q$, p_object) using v_unseen, v_kept;
    get diagnostics v_count = row_count;
  end if;
  delete from crm.full_sync_seen s where s.connection_id = p_connection_id and s.object = p_object;
  update crm.sync_cursors c set full_sync_unidentified = 0
  where c.connection_id = p_connection_id and c.object = p_object and c.full_sync_unidentified <> 0;
  perform crm.finish_full_sync(p_connection_id, p_object);
  return query select v_count, v_skipped;
end
$$;
revoke all on function crm._sweep_unseen(uuid, text, bigint) from public;
grant execute on function crm._sweep_unseen(uuid, text, bigint) to service_role;
