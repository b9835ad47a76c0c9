-- Why: three-way, per-field merging (DESIGN.md section 4, "Conflicts") needs, for every record
-- and field, the last value both sides agreed on and when each side last changed it. Row-level
-- last-writer-wins (what the seeds did) silently loses edits made on both sides. This migration
-- adds crm.sync_state, the crm.conflicts queue/audit, and the small pure helpers the triggers
-- and the inbound apply function share to name and hash fields.
--
-- Field names: a canonical column name (`email`, `amount`, ...) or `custom.<key>` for a key of
-- the `custom` jsonb column. Hashes are md5 of the jsonb value as a uuid (16 bytes); numbers are
-- hashed scale-free (100 and 100.00 agree); functions that hash run with timezone UTC so
-- timestamps render identically.

create table crm.sync_state (
  connection_id uuid not null references crm.connections (id) on delete cascade,
  object text not null,
  record_id uuid not null,
  field text not null,
  -- Hash of the last value both sides agreed on (NULL: never agreed, e.g. not yet pushed).
  agreed_hash uuid,
  agreed_at timestamptz,
  -- When the app last changed the field (set by the outbound trigger).
  local_changed_at timestamptz,
  -- remote_updated_at of the newest remote version seen for the field. A remote value older
  -- than this is stale for this field even if the record as a whole is newer.
  remote_changed_at timestamptz,
  -- The last conflict on this field: {policy, winner, local, remote, at}.
  conflict jsonb,
  updated_at timestamptz not null default now(),
  primary key (object, record_id, field),
  constraint sync_state_object_check check (object in ('contacts', 'companies', 'deals', 'owners'))
);
create index sync_state_connection_idx on crm.sync_state (connection_id);
comment on table crm.sync_state is
  'Per record and field: hash of the last agreed value, per-side change times, last conflict. Drives three-way merges.';

create table crm.conflicts (
  id bigint generated always as identity primary key,
  connection_id uuid not null references crm.connections (id) on delete cascade,
  object text not null,
  record_id uuid not null,
  remote_id text,
  field text not null,
  local_value jsonb,
  remote_value jsonb,
  local_changed_at timestamptz,
  remote_changed_at timestamptz,
  policy text not null,
  -- Which side won: 'local' or 'remote'. NULL = open, waiting for a human (policy manual).
  resolution text,
  resolved_by text,
  resolved_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint conflicts_object_check check (object in ('contacts', 'companies', 'deals')),
  constraint conflicts_policy_check check (policy in ('newest_wins', 'crm_wins', 'app_wins', 'manual')),
  constraint conflicts_resolution_check check (resolution in ('local', 'remote')),
  constraint conflicts_resolved_check check ((resolution is null) = (resolved_at is null))
);
-- At most one open conflict per field; a newer remote value updates it.
create unique index conflicts_open_unique on crm.conflicts (object, record_id, field)
  where resolution is null;
create index conflicts_connection_idx on crm.conflicts (connection_id, created_at);
comment on table crm.conflicts is
  'Every field changed on both sides since the last agreed value, with how it was resolved; open rows (resolution NULL) are the manual-policy queue.';

-- Columns of a mirror table that are sync bookkeeping or local conveniences, never synced as
-- fields. Everything else on a mirror table is a canonical field (custom is expanded per key).
create or replace function crm._bookkeeping_columns()
  returns text[]
  language sql
  immutable
  parallel safe
  set search_path = ''
as $$
  select array[
    'id', 'connection_id', 'remote_id', 'remote_updated_at', 'needs_sync', 'sync_error',
    'last_synced_at', 'deleted_at', 'merged_into_remote_id', 'created_at', 'updated_at',
    'owner_id', 'company_id', 'primary_contact_id'
  ]::text[]
$$;
revoke all on function crm._bookkeeping_columns() from public;

-- Canonical field columns of a mirror table (including `custom`), from the catalog.
create or replace function crm._syncable_columns(p_object text)
  returns text[]
  language sql
  stable
  set search_path = ''
as $$
  select coalesce(pg_catalog.array_agg(a.attname::text order by a.attnum), '{}'::text[])
  from pg_catalog.pg_attribute a
  where a.attrelid = pg_catalog.to_regclass('crm.' || pg_catalog.quote_ident(p_object))
    and a.attnum > 0
    and not a.attisdropped
    and a.attname::text <> all (crm._bookkeeping_columns())
    and p_object in ('contacts', 'companies', 'deals', 'owners')
$$;
revoke all on function crm._syncable_columns(text) from public;

-- Fields whose value differs between two row images (to_jsonb of a mirror row). p_old NULL
-- means an insert: every non-null field counts. Custom keys come out as `custom.<key>`.
-- contacts.kind is routing (which Salesforce object), not a pushable field: never listed.
create or replace function crm._changed_columns(p_old jsonb, p_new jsonb)
  returns text[]
  language sql
  immutable
  parallel safe
  set search_path = ''
as $$
  select coalesce(pg_catalog.array_agg(f.field order by f.field), '{}'::text[])
  from (
    select n.key as field
    from pg_catalog.jsonb_each(p_new - crm._bookkeeping_columns()) n
    where n.key not in ('custom', 'kind')
      and n.value is distinct from coalesce(p_old -> n.key, 'null'::jsonb)
    union all
    select 'custom.' || k.key
    from (
      select pg_catalog.jsonb_object_keys(coalesce(p_new -> 'custom', '{}'::jsonb)) as key
      union
      select pg_catalog.jsonb_object_keys(coalesce(p_old -> 'custom', '{}'::jsonb))
    ) k
    where coalesce(p_new -> 'custom' -> k.key, 'null'::jsonb)
      is distinct from coalesce(p_old -> 'custom' -> k.key, 'null'::jsonb)
  ) f
$$;
revoke all on function crm._changed_columns(jsonb, jsonb) from public;

-- Value of a field (canonical column or custom.<key>) in a row image.
create or replace function crm._field_value(p_row jsonb, p_field text)
  returns jsonb
  language sql
  immutable
  parallel safe
  set search_path = ''
as $$
  select coalesce(
    case when p_field like 'custom.%'
      then p_row -> 'custom' -> pg_catalog.substr(p_field, 8)
      else p_row -> p_field
    end,
    'null'::jsonb)
$$;
revoke all on function crm._field_value(jsonb, text) from public;

-- Stable hash of a field value: md5 as uuid; numbers scale-free so 100 and 100.00 agree.
create or replace function crm._hash(p_value jsonb)
  returns uuid
  language sql
  immutable
  parallel safe
  set search_path = ''
as $$
  select pg_catalog.md5(
    case when pg_catalog.jsonb_typeof(p_value) = 'number'
      then pg_catalog.trim_scale((p_value #>> '{}')::numeric)::text
      else coalesce(p_value, 'null'::jsonb)::text
    end)::uuid
$$;
revoke all on function crm._hash(jsonb) from public;

-- Internal helpers run inside the engine functions, which execute with the caller's rights.
grant execute on function crm._bookkeeping_columns(), crm._syncable_columns(text),
  crm._changed_columns(jsonb, jsonb), crm._field_value(jsonb, text), crm._hash(jsonb)
  to service_role;

alter table crm.sync_state enable row level security;
alter table crm.conflicts enable row level security;

create policy sync_state_select_own on crm.sync_state for select to authenticated
  using (connection_id in (select c.id from crm.connections c
                           where c.account_id = (select crm.current_account_id())));
create policy conflicts_select_own on crm.conflicts for select to authenticated
  using (connection_id in (select c.id from crm.connections c
                           where c.account_id = (select crm.current_account_id())));

revoke all on crm.sync_state, crm.conflicts from public, anon, authenticated;
grant select on crm.sync_state, crm.conflicts to authenticated;
grant select, insert, update, delete on crm.sync_state, crm.conflicts to service_role;
