-- Why: two ways an app session could write what only the sync engine may write.
-- * An app INSERT could choose remote_id (and contacts.kind): the row was then linked to an
--   existing CRM record and an update to that record queued, a takeover of the record. The
--   bookkeeping columns were silently reset on insert, but not refused. Now an app insert that
--   sets any engine-owned column fails with CRM05, as an app update of remote_id, kind or
--   connection_id already did. The app never chooses kind: which Salesforce object a new
--   contact becomes (Lead or Contact) is not an app decision in this schema; a row the app
--   inserts is a contact, and only the engine writes leads (from the CRM).
-- * crm.is_engine() trusted the JWT's role claim: a session running as `authenticated` with a
--   claim {"role": "service_role"} and crm.engine = on wrote remote_id and remote_updated_at.
--   Engine rights now come from the database role, never from a claim (see crm.is_engine).

-- Engine rights: crm.engine = on, set by a session whose database role is the engine's:
-- service_role (PostgREST with the service key, or `set role`), postgres (the edge functions'
-- SUPABASE_DB_URL, pg_cron jobs) or a superuser. The role asked is the one SET ROLE chose
-- (the `role` setting; PostgREST switches roles that way) or, without SET ROLE, the login
-- role (session_user). Not current_user: the mirror triggers are SECURITY DEFINER, so inside
-- them current_user is always their owner. Neither setting is changed by SECURITY DEFINER, and
-- a session can only SET ROLE to roles its login role is a member of, so an `authenticated`
-- session cannot claim them. Engine functions are invoker functions granted to service_role
-- only, so their writes are seen under the caller's role (service_role or postgres).
-- A SECURITY DEFINER function that the app may call and that sets crm.engine = on would still
-- count as an app write here (its writes are guarded and queued): safe, not a bypass.
-- Inlinable on purpose (no SET clause; every operator and function schema-qualified): it is
-- the WHEN of the mirror row triggers through crm._maybe_app_write.
create or replace function crm.is_engine()
  returns boolean
  language sql
  stable
as $$
  select coalesce(pg_catalog.current_setting('crm.engine', true), '') operator(pg_catalog.=) 'on'
     and (pg_catalog.current_setting('is_superuser') operator(pg_catalog.=) 'on'
          or pg_catalog.current_setting('role') operator(pg_catalog.=) any (array['service_role', 'postgres'])
          or (pg_catalog.current_setting('role') operator(pg_catalog.=) 'none'
              and session_user::text operator(pg_catalog.=) any (array['service_role', 'postgres'])))
$$;
comment on function crm.is_engine() is
  'True when crm.engine = on and the session''s database role (SET ROLE, else the login role) is service_role, postgres or a superuser. JWT claims play no part.';
revoke all on function crm.is_engine() from public;
grant execute on function crm.is_engine() to authenticated, service_role;

-- The row triggers' WHEN: false only for engine writes, so the engine's bulk writes skip the
-- per-row call. Now the exact rule rather than an over-approximation (it inlines).
create or replace function crm._maybe_app_write()
  returns boolean
  language sql
  stable
as $$
  select not crm.is_engine()
$$;
revoke all on function crm._maybe_app_write() from public;
grant execute on function crm._maybe_app_write() to authenticated, service_role;

-- Columns of a mirror table that only the engine writes: the bookkeeping columns except the
-- ones that are the app's (its row id and connection, soft delete, timestamps, local relation
-- ids), plus contacts.kind. A bookkeeping column added later is engine-owned unless it is
-- listed here as the app's.
create or replace function crm._engine_owned_columns()
  returns text[]
  language sql
  immutable
  parallel safe
  set search_path = ''
as $$
  select pg_catalog.array_agg(c.col order by c.col)
  from (
    select b.col
    from pg_catalog.unnest(crm._bookkeeping_columns()) as b(col)
    where b.col <> all (array['id', 'connection_id', 'deleted_at', 'created_at', 'updated_at',
                              'owner_id', 'company_id', 'primary_contact_id'])
    union
    select 'kind'
  ) c
$$;
revoke all on function crm._engine_owned_columns() from public;

-- BEFORE INSERT OR UPDATE, per row, app writes only. Insert: engine-owned columns must be left
-- unset (NULL, or their defaults false / kind 'contact'), else CRM05. Update: remote_id, kind
-- and connection_id cannot change (CRM05); the other engine-owned columns, created_at and
-- updated_at keep the values the engine left. Then: marks needs_sync when a canonical field
-- changed, resolves relations between local ids and remote ids, bumps updated_at. Security
-- definer (the app needs no rights on the helpers); relation lookups are confined to the row's
-- own connection, and RLS (WITH CHECK, applied after BEFORE triggers) rejects the statement
-- unless that connection is the caller's.
-- An upsert (INSERT ... ON CONFLICT DO UPDATE) is checked as an insert first: it must leave
-- the engine-owned columns out too, even when it ends up updating an existing row.
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
    -- New row, restored tombstone, or a changed canonical field.
    if o is null or o ->> 'deleted_at' is not null or cardinality(changed) > 0 then
      n := n || jsonb_build_object('needs_sync', true, 'updated_at', now());
    end if;
  end if;
  new := jsonb_populate_record(new, n);
  return new;
end
$$;
revoke all on function crm.tg_mirror__before_write() from public;

-- AFTER INSERT, per statement: one insert entry per new live row. App inserts carry no
-- remote id (the BEFORE trigger refuses one), so every new row is new to the CRM too.
create or replace function crm.tg_mirror__after_insert()
  returns trigger
  language plpgsql
  security definer
  set search_path = ''
as $$
declare
  entries jsonb;
begin
  if crm.is_engine() then
    return null;
  end if;
  -- Transition tables are read through EXECUTE (plpgsql_check cannot see them statically).
  execute $q$
    select jsonb_agg(jsonb_build_object(
             'record_id', n.id, 'connection_id', n.connection_id, 'remote_id', null,
             'op', 'insert', 'columns', crm._changed_columns(null, to_jsonb(n))))
    from new_rows n
    where n.deleted_at is null
  $q$ into entries;
  perform crm._enqueue_outbox(tg_table_name, entries);
  return null;
end
$$;
revoke all on function crm.tg_mirror__after_insert() from public;
