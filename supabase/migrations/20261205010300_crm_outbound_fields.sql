-- Why: a column mapped inbound only (or not mapped at all) has nothing to send to the CRM
-- (issue 12, point 2). Queuing it anyway stamped sync_state.local_changed_at for the field, so
-- the next inbound value of it was taken for a both-sides edit (a conflict that could never be
-- pushed), and left needs_sync true with nothing to complete it. Now only the fields the
-- connection's effective mappings write (direction outbound or both, for any remote object of
-- the table) are queued, stamped and counted for needs_sync. A new record is queued even when
-- none of its fields is written (it must exist in the CRM to be linked later).
-- Salesforce contacts: a field written for Lead but not for Contact (company_name) is queued
-- for both kinds; the push leaves it out for a Contact (no outbound mapping there).

-- HubSpot: a contact's company is written too. The default read it only (associatedcompanyid,
-- HubSpot's derived primary company); the HubSpot writer turns a write of it into the v4
-- company association, so an app's contact.company_id reaches HubSpot instead of being undone
-- by the next delta.
update crm.field_mappings
set direction = 'both', updated_at = now()
where connection_id is null and provider = 'hubspot' and object = 'contacts'
  and remote_object = 'contacts' and column_name = 'company_remote_id';

-- The fields of p_object the connection writes to the CRM.
create or replace function crm._outbound_fields(p_connection_id uuid, p_object text)
  returns text[]
  language sql
  stable
  security definer
  set search_path = ''
as $$
  -- crm.effective_field_mappings narrowed to one object: a connection's row overrides the
  -- provider default of the same (remote_object, column_name).
  select coalesce(array_agg(distinct m.column_name), '{}'::text[])
  from (
    select distinct on (f.remote_object, f.column_name) f.column_name, f.direction, f.enabled
    from crm.field_mappings f
    join crm.connections c on c.id = p_connection_id and c.provider = f.provider
    where f.object = p_object and (f.connection_id is null or f.connection_id = p_connection_id)
    order by f.remote_object, f.column_name, f.connection_id nulls last
  ) m
  where m.enabled and m.direction in ('outbound', 'both')
$$;
revoke all on function crm._outbound_fields(uuid, text) from public;
grant execute on function crm._outbound_fields(uuid, text) to service_role;

create or replace function crm._enqueue_outbox(p_object text, p_entries jsonb)
  returns void
  language sql
  security definer
  set search_path = ''
  set enable_seqscan = off
as $$
  with written as materialized (
    -- Once per connection, not per entry.
    select d.connection_id, crm._outbound_fields(d.connection_id, p_object) as fields
    from (select distinct y.connection_id
          from jsonb_to_recordset(coalesce(p_entries, '[]'::jsonb)) as y(connection_id uuid)) d
  ),
  e as (
    select distinct on (x.record_id) x.record_id, x.connection_id, x.remote_id, x.op,
           array(select f.f from unnest(coalesce(x.columns, '{}'::text[])) as f(f)
                 where f.f = any (w.fields)) as columns,
           x.agreed, x.remote_at
    from jsonb_to_recordset(coalesce(p_entries, '[]'::jsonb))
      as x(record_id uuid, connection_id uuid, remote_id text, op text, columns text[],
           agreed jsonb, remote_at timestamptz)
    join written w on w.connection_id = x.connection_id
    -- Rows deleted because their connection is being deleted (ON DELETE CASCADE) have nothing
    -- left to sync.
    join crm.connections c on c.id = x.connection_id
    where x.op in ('insert', 'update', 'delete')
    order by x.record_id
  ),
  cur as (
    select e.*, o.id as cur_id, o.state as cur_state, o.remote_id as cur_remote_id
    from e
    left join lateral (
      select o0.id, o0.state, o0.remote_id from crm.outbox o0
      -- Triggers pass tg_table_name, a name: its collation "C" would make this comparison
      -- unusable for the (object, record_id) index and each probe a walk of the whole index.
      where o0.object = p_object collate "default" and o0.record_id = e.record_id
      offset 0
    ) o on true
  ),
  -- A never-synced record deleted before its insert went out: nothing to tell the CRM.
  cancel as (
    delete from crm.outbox o
    using cur
    where cur.op = 'delete'
      and coalesce(cur.remote_id, cur.cur_remote_id) is null
      and cur.cur_state is distinct from 'processing'
      and o.id = cur.cur_id
    returning o.record_id
  ),
  stamp as (
    insert into crm.sync_state as s (connection_id, object, record_id, field, local_changed_at,
                                     agreed_hash, agreed_at, remote_changed_at)
    select cur.connection_id, p_object, cur.record_id, c.field, now(),
           case when cur.agreed ? c.field then crm._hash(cur.agreed -> c.field) end,
           case when cur.agreed ? c.field then now() end,
           cur.remote_at
    from cur, unnest(cur.columns) as c(field)
    where cur.op <> 'delete'
    on conflict (object, record_id, field) do update
      set local_changed_at = excluded.local_changed_at,
          -- An existing hash was taken before an earlier, still unsent edit: it stays.
          agreed_hash = coalesce(s.agreed_hash, excluded.agreed_hash),
          agreed_at = case when s.agreed_hash is null then excluded.agreed_at else s.agreed_at end,
          remote_changed_at = coalesce(s.remote_changed_at, excluded.remote_changed_at),
          updated_at = now()
    returning s.record_id
  )
  insert into crm.outbox as o (connection_id, object, record_id, remote_id, op, changed_columns)
  select cur.connection_id, p_object, cur.record_id, cur.remote_id, cur.op,
         case when cur.op = 'delete' then '{}'::text[] else cur.columns end
  from cur
  where not (cur.op = 'delete'
             and coalesce(cur.remote_id, cur.cur_remote_id) is null
             and cur.cur_state is distinct from 'processing')
    and (cur.op in ('insert', 'delete') or cardinality(cur.columns) > 0)
  on conflict (object, record_id) do update set
    op = case
      when excluded.op = 'delete' then 'delete'
      when o.op = 'delete' then
        case when coalesce(excluded.remote_id, o.remote_id) is null then 'insert' else 'update' end
      when o.op = 'insert' or excluded.op = 'insert' then 'insert'
      else 'update'
    end,
    changed_columns = case
      when excluded.op = 'delete' then '{}'::text[]
      when o.op = 'delete' then excluded.changed_columns
      else array(select distinct c from unnest(o.changed_columns || excluded.changed_columns) as u(c)
                 order by c)
    end,
    remote_id = coalesce(excluded.remote_id, o.remote_id),
    version = o.version + 1,
    state = case when o.state = 'dead' then 'pending' else o.state end,
    attempts = case when o.state = 'dead' then 0 else o.attempts end,
    next_attempt_at = case when o.state = 'dead' then now() else o.next_attempt_at end,
    dead_at = null,
    updated_at = now()
$$;
revoke all on function crm._enqueue_outbox(text, jsonb) from public;
grant execute on function crm._enqueue_outbox(text, jsonb) to service_role;

create or replace function crm.tg_mirror__before_write()
  returns trigger
  language plpgsql
  security definer
  set search_path = ''
as $$
declare
  o jsonb;
  n jsonb;
  changed text[];
  refused text[];
  ref record;
  found_remote text;
  found_id uuid;
  hit boolean;
  refs_touched boolean;
begin
  if crm.is_engine() then
    return new;
  end if;
  n := to_jsonb(new);
  if tg_op = 'UPDATE' then
    o := to_jsonb(old);
    if new.connection_id <> old.connection_id or new.remote_id is distinct from old.remote_id
       or (n -> 'kind') is distinct from (o -> 'kind') then
      raise exception using
        errcode = 'CRM05',
        message = format('crm.%s: connection_id, remote_id and kind are managed by the sync engine',
                         tg_table_name),
        hint = 'Insert a new row instead of re-pointing an existing one.';
    end if;
    n := n || (select pg_catalog.jsonb_object_agg(c.col, o -> c.col)
               from pg_catalog.unnest(crm._engine_owned_columns() || array['created_at', 'updated_at']) as c(col)
               where o ? c.col);
  else
    select pg_catalog.array_agg(c.col order by c.col) into refused
    from pg_catalog.unnest(crm._engine_owned_columns()) as c(col)
    where n ? c.col
      and (n -> c.col) not in ('null'::jsonb, 'false'::jsonb)
      and not (c.col = 'kind' and (n -> c.col) = '"contact"'::jsonb);
    if refused is not null then
      raise exception using
        errcode = 'CRM05',
        message = format('crm.%s: %s cannot be set by an app insert; the sync engine manages them',
                         tg_table_name, pg_catalog.array_to_string(refused, ', ')),
        hint = 'Leave them out: the engine sets remote_id once the record reaches the CRM.';
    end if;
  end if;

  -- Relations: a changed local id fills the remote id (NULL until the target is synced; the
  -- engine fills it when the target's insert completes); a changed remote id fills the local id.
  -- The cheap test first (same columns as crm._mirror_refs): most writes touch no relation.
  refs_touched := case tg_table_name
    when 'contacts' then
      row(n -> 'company_id', n -> 'company_remote_id', n -> 'owner_id', n -> 'owner_remote_id')
      is distinct from row(coalesce(o -> 'company_id', 'null'), coalesce(o -> 'company_remote_id', 'null'),
                           coalesce(o -> 'owner_id', 'null'), coalesce(o -> 'owner_remote_id', 'null'))
    when 'companies' then
      row(n -> 'owner_id', n -> 'owner_remote_id')
      is distinct from row(coalesce(o -> 'owner_id', 'null'), coalesce(o -> 'owner_remote_id', 'null'))
    when 'deals' then
      row(n -> 'owner_id', n -> 'owner_remote_id', n -> 'company_id', n -> 'company_remote_id',
          n -> 'primary_contact_id', n -> 'primary_contact_remote_id')
      is distinct from row(coalesce(o -> 'owner_id', 'null'), coalesce(o -> 'owner_remote_id', 'null'),
                           coalesce(o -> 'company_id', 'null'), coalesce(o -> 'company_remote_id', 'null'),
                           coalesce(o -> 'primary_contact_id', 'null'),
                           coalesce(o -> 'primary_contact_remote_id', 'null'))
    else true
  end;
  for ref in select r.local_col, r.remote_col, r.target from crm._mirror_refs() r
             where refs_touched and r.tbl = tg_table_name loop
    if n ->> ref.local_col is not null
       and (n -> ref.local_col) is distinct from coalesce(o -> ref.local_col, 'null'::jsonb)
       and (n -> ref.remote_col) is not distinct from coalesce(o -> ref.remote_col, 'null'::jsonb) then
      execute format('select t.remote_id, true from crm.%I t where t.id = $1 and t.connection_id = $2',
                     ref.target)
        into found_remote, hit
        using (n ->> ref.local_col)::uuid, new.connection_id;
      if hit is null then
        raise exception using
          errcode = 'CRM05',
          message = format('crm.%s.%s: %s is not a %s row of this connection',
                           tg_table_name, ref.local_col, n ->> ref.local_col, ref.target);
      end if;
      n := jsonb_set(n, array[ref.remote_col], coalesce(to_jsonb(found_remote), 'null'::jsonb));
    elsif (n -> ref.remote_col) is distinct from coalesce(o -> ref.remote_col, 'null'::jsonb) then
      found_id := null;
      if n ->> ref.remote_col is not null then
        execute format('select t.id from crm.%I t where t.connection_id = $1 and t.remote_id = $2',
                       ref.target)
          into found_id
          using new.connection_id, n ->> ref.remote_col;
      end if;
      n := jsonb_set(n, array[ref.local_col], coalesce(to_jsonb(found_id), 'null'::jsonb));
    end if;
    hit := null;
  end loop;

  if n ->> 'deleted_at' is not null then
    if o is not null and o ->> 'deleted_at' is null then
      -- Soft delete: queued as a delete when the CRM knows the record.
      n := n || jsonb_build_object('needs_sync', (n ->> 'remote_id') is not null, 'updated_at', now());
    end if;
    -- Inserting or editing a tombstone: nothing to sync.
  else
    changed := crm._changed_columns(o, n);
    -- Only fields the connection writes to the CRM count: an edit of an inbound-only column
    -- has nothing to send. (Looked up only for an update that changed something.)
    if o is not null and o ->> 'deleted_at' is null and cardinality(changed) > 0 then
      changed := array(select c.f from pg_catalog.unnest(changed) as c(f)
                       where c.f = any (crm._outbound_fields(new.connection_id, tg_table_name::text)));
    end if;
    -- New row, restored tombstone, or a changed outbound field.
    if o is null or o ->> 'deleted_at' is not null or cardinality(changed) > 0 then
      n := n || jsonb_build_object('needs_sync', true, 'updated_at', now());
    end if;
  end if;
  new := jsonb_populate_record(new, n);
  return new;
end
$$;
revoke all on function crm.tg_mirror__before_write() from public;
