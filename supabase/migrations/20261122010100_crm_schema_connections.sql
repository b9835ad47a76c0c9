-- Why: everything the sync engine owns lives in one dedicated schema, `crm` (like Heroku
-- Connect's `salesforce` schema and the Stripe sync engine's `stripe` schema), so it can be
-- granted, exposed and dropped as a unit. The first table is `crm.connections`: one CRM account
-- linked to one app account, which every other table hangs off and which RLS keys on.
--
-- Decisions recorded here:
-- * Tenancy: a row belongs to the app account `connections.account_id`. RLS reads the caller's
--   account from the JWT claim `app_metadata.account_id` (auth.jwt() -> 'app_metadata' ->>
--   'account_id'). On Supabase `app_metadata` is writable only with the service role (unlike
--   `user_metadata`), so a user cannot claim another account.
-- * Credentials are stored as ciphertext only (bytea). The key is an edge function secret; SQL
--   never sees plaintext, and `authenticated` cannot even select the column.
-- * Functions in `crm` are not executable by PUBLIC by default: each one is granted explicitly.

create schema if not exists crm;
comment on schema crm is
  'crm-sync: CRM connections, mirrored CRM records, sync queues and bookkeeping.';

revoke all on schema crm from public;
grant usage on schema crm to authenticated, service_role;
-- anon gets nothing in crm: no schema usage, no table grants, no policies.

alter default privileges in schema crm revoke execute on functions from public;

-- The app account of the caller, from the JWT PostgREST (or a test) puts into
-- request.jwt.claims. NULL when absent or not a uuid, so policies simply match nothing.
create or replace function crm.current_account_id()
  returns uuid
  language sql
  stable
  set search_path = ''
as $$
  select case
    when v ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then v::uuid
  end
  from (select auth.jwt() -> 'app_metadata' ->> 'account_id' as v) claims
$$;
comment on function crm.current_account_id() is
  'Account id from the JWT claim app_metadata.account_id (NULL if missing or malformed). Used by RLS.';
revoke all on function crm.current_account_id() from public;
grant execute on function crm.current_account_id() to authenticated, service_role;

-- True inside a transaction the sync engine marked with
--   set local crm.engine = 'on'   (or select set_config('crm.engine', 'on', true)).
-- Triggers use it to tell engine writes (never queued outbound) from app writes. Replaced in
-- 20261204010400_crm_app_write_guards.sql: engine rights come from the database role there;
-- this first version read the JWT's role claim, which a session can forge.
create or replace function crm.is_engine()
  returns boolean
  language sql
  stable
  set search_path = ''
as $$
  select case
    when coalesce(pg_catalog.current_setting('crm.engine', true), '') <> 'on' then false
    else coalesce(auth.jwt() ->> 'role', '') not in ('anon', 'authenticated')
  end
$$;
comment on function crm.is_engine() is
  'True when the transaction-local setting crm.engine = on marks the current write as the engine''s.';
revoke all on function crm.is_engine() from public;
grant execute on function crm.is_engine() to authenticated, service_role;

create table crm.connections (
  id uuid primary key default gen_random_uuid(),
  account_id uuid not null,
  provider text not null,
  -- HubSpot portalId, Salesforce org id, Pipedrive company id: routes webhooks to a connection.
  remote_account_id text,
  name text,
  status text not null default 'active',
  status_changed_at timestamptz not null default now(),
  -- Ciphertext produced by the edge functions (key in a function secret); never plaintext.
  credentials bytea,
  credentials_updated_at timestamptz,
  -- conflict_policy newest_wins|crm_wins|app_wins|manual, default_phone_region (ISO 3166
  -- alpha-2), objects (enabled objects), base_url (sandbox / emulator API base URL override).
  settings jsonb not null default
    '{"conflict_policy": "newest_wins", "default_phone_region": "US", "objects": ["contacts", "companies", "deals", "owners"]}'::jsonb,
  last_synced_at timestamptz,
  last_error text,
  last_error_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint connections_provider_check check (provider in ('hubspot', 'salesforce', 'pipedrive')),
  constraint connections_status_check check (status in ('active', 'paused', 'error', 'disconnected')),
  constraint connections_settings_check check (
    pg_catalog.jsonb_typeof(settings) = 'object'
    and coalesce(settings ->> 'conflict_policy', 'newest_wins')
      in ('newest_wins', 'crm_wins', 'app_wins', 'manual')
    and (settings -> 'default_phone_region' is null
      or settings ->> 'default_phone_region' ~ '^[A-Z]{2}$')
    and (settings -> 'objects' is null
      or (pg_catalog.jsonb_typeof(settings -> 'objects') = 'array'
        and settings -> 'objects' <@ '["contacts", "companies", "deals", "owners"]'::jsonb))
    and (settings -> 'base_url' is null or pg_catalog.jsonb_typeof(settings -> 'base_url') = 'null'
      or settings ->> 'base_url' ~ '^https?://')
  ),
  constraint connections_remote_account_unique unique (provider, remote_account_id)
);
create index connections_account_idx on crm.connections (account_id);
comment on table crm.connections is
  'One CRM account (provider + remote account id) linked to one app account. Credentials are ciphertext only.';
comment on column crm.connections.credentials is
  'Ciphertext written by the edge functions; the key is a function secret, never stored in the database.';
comment on column crm.connections.settings is
  'conflict_policy (newest_wins|crm_wins|app_wins|manual), default_phone_region, objects (enabled), base_url (sandbox override).';

-- Conflict policy of a connection, defaulted.
create or replace function crm._conflict_policy(p_settings jsonb)
  returns text
  language sql
  immutable
  set search_path = ''
as $$ select coalesce(p_settings ->> 'conflict_policy', 'newest_wins') $$;
revoke all on function crm._conflict_policy(jsonb) from public;
grant execute on function crm._conflict_policy(jsonb) to service_role;

alter table crm.connections enable row level security;

-- authenticated: its own account's connections, read-only, never the credentials column.
create policy connections_select_own on crm.connections
  for select to authenticated
  using (account_id = (select crm.current_account_id()));

revoke all on crm.connections from public, anon, authenticated;
grant select (id, account_id, provider, remote_account_id, name, status, status_changed_at,
  credentials_updated_at, settings, last_synced_at, last_error, last_error_at, created_at,
  updated_at) on crm.connections to authenticated;
grant select, insert, update, delete on crm.connections to service_role;
