-- Why: the mirrored CRM records the app reads and writes: crm.owners, crm.companies,
-- crm.contacts, crm.deals, one shape for all three providers (canonical columns per DESIGN.md
-- section 3), plus crm.record_aliases for merged records.
--
-- Column families on every mirror table:
-- * canonical columns: the synced fields. Relations are synced by remote id (`*_remote_id`);
--   the local foreign keys (`owner_id`, `company_id`, `primary_contact_id`) are conveniences the
--   engine and the write trigger keep resolved. `custom jsonb` holds mapped custom properties
--   (tracked per key as `custom.<key>`).
-- * sync bookkeeping owned by the engine: remote_id (unique per connection), remote_updated_at
--   (the newest remote version applied), needs_sync, sync_error, last_synced_at,
--   deleted_at (tombstone: remote deletes and merges never hard-delete), merged_into_remote_id.
-- Salesforce Leads and Contacts both land in crm.contacts; `kind` tells them apart.
-- Owners are read-only from the CRM: the app may read them, never write them.

create table crm.owners (
  id uuid primary key default gen_random_uuid(),
  connection_id uuid not null references crm.connections (id) on delete cascade,
  remote_id text,
  email text,
  first_name text,
  last_name text,
  active boolean,
  custom jsonb not null default '{}'::jsonb,
  remote_updated_at timestamptz,
  needs_sync boolean not null default false,
  sync_error text,
  last_synced_at timestamptz,
  deleted_at timestamptz,
  merged_into_remote_id text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint owners_remote_unique unique (connection_id, remote_id),
  constraint owners_custom_check check (pg_catalog.jsonb_typeof(custom) = 'object')
);
comment on table crm.owners is 'CRM users/owners, mirrored read-only (HubSpot owners, Salesforce User, Pipedrive users).';

create table crm.companies (
  id uuid primary key default gen_random_uuid(),
  connection_id uuid not null references crm.connections (id) on delete cascade,
  remote_id text,
  name text,
  domain text,
  industry text,
  annual_revenue numeric,
  phone text,
  country text,
  city text,
  owner_remote_id text,
  owner_id uuid references crm.owners (id) on delete set null,
  custom jsonb not null default '{}'::jsonb,
  remote_updated_at timestamptz,
  needs_sync boolean not null default false,
  sync_error text,
  last_synced_at timestamptz,
  deleted_at timestamptz,
  merged_into_remote_id text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint companies_remote_unique unique (connection_id, remote_id),
  constraint companies_custom_check check (pg_catalog.jsonb_typeof(custom) = 'object'),
  constraint companies_phone_e164 check (phone ~ '^\+[1-9][0-9]{6,14}$')
);
comment on table crm.companies is 'CRM companies / accounts / organizations, mirrored both ways.';

create table crm.contacts (
  id uuid primary key default gen_random_uuid(),
  connection_id uuid not null references crm.connections (id) on delete cascade,
  remote_id text,
  kind text not null default 'contact',
  first_name text,
  last_name text,
  email text,
  phone text,
  phone_raw text,
  company_name text,
  company_remote_id text,
  company_id uuid references crm.companies (id) on delete set null,
  owner_remote_id text,
  owner_id uuid references crm.owners (id) on delete set null,
  lifecycle_stage text,
  lead_status text,
  job_title text,
  description text,
  last_activity_at timestamptz,
  custom jsonb not null default '{}'::jsonb,
  remote_updated_at timestamptz,
  needs_sync boolean not null default false,
  sync_error text,
  last_synced_at timestamptz,
  deleted_at timestamptz,
  merged_into_remote_id text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint contacts_remote_unique unique (connection_id, remote_id),
  constraint contacts_kind_check check (kind in ('contact', 'lead')),
  constraint contacts_custom_check check (pg_catalog.jsonb_typeof(custom) = 'object'),
  constraint contacts_phone_e164 check (phone ~ '^\+[1-9][0-9]{6,14}$')
);
comment on table crm.contacts is
  'CRM contacts (HubSpot contacts, Salesforce Contact and Lead by kind, Pipedrive persons), mirrored both ways.';
comment on column crm.contacts.phone is 'E.164; the unnormalised value is in phone_raw.';

create table crm.deals (
  id uuid primary key default gen_random_uuid(),
  connection_id uuid not null references crm.connections (id) on delete cascade,
  remote_id text,
  name text,
  amount numeric,
  currency text,
  pipeline text,
  stage text,
  status text,
  close_date date,
  probability numeric,
  owner_remote_id text,
  owner_id uuid references crm.owners (id) on delete set null,
  company_remote_id text,
  company_id uuid references crm.companies (id) on delete set null,
  primary_contact_remote_id text,
  primary_contact_id uuid references crm.contacts (id) on delete set null,
  custom jsonb not null default '{}'::jsonb,
  remote_updated_at timestamptz,
  needs_sync boolean not null default false,
  sync_error text,
  last_synced_at timestamptz,
  deleted_at timestamptz,
  merged_into_remote_id text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint deals_remote_unique unique (connection_id, remote_id),
  constraint deals_custom_check check (pg_catalog.jsonb_typeof(custom) = 'object'),
  constraint deals_status_check check (status in ('open', 'won', 'lost')),
  constraint deals_currency_check check (currency ~ '^[A-Z]{3}$'),
  constraint deals_probability_check check (probability between 0 and 1)
);
comment on table crm.deals is 'CRM deals / opportunities, mirrored both ways. probability is a fraction 0..1.';

-- Linking a new remote record to an unlinked local row (same email, then phone; companies by
-- domain) and resolving relations by remote id must not scan.
create index contacts_unlinked_email_idx on crm.contacts (connection_id, pg_catalog.lower(email))
  where remote_id is null and deleted_at is null;
create index contacts_unlinked_phone_idx on crm.contacts (connection_id, phone)
  where remote_id is null and deleted_at is null;
create index companies_unlinked_domain_idx on crm.companies (connection_id, pg_catalog.lower(domain))
  where remote_id is null and deleted_at is null;
create index contacts_company_remote_idx on crm.contacts (connection_id, company_remote_id);
create index contacts_owner_remote_idx on crm.contacts (connection_id, owner_remote_id);
create index companies_owner_remote_idx on crm.companies (connection_id, owner_remote_id);
create index deals_owner_remote_idx on crm.deals (connection_id, owner_remote_id);
create index deals_company_remote_idx on crm.deals (connection_id, company_remote_id);
create index deals_contact_remote_idx on crm.deals (connection_id, primary_contact_remote_id);
create index contacts_company_idx on crm.contacts (company_id);
create index contacts_owner_idx on crm.contacts (owner_id);
create index companies_owner_idx on crm.companies (owner_id);
create index deals_owner_idx on crm.deals (owner_id);
create index deals_company_idx on crm.deals (company_id);
create index deals_contact_idx on crm.deals (primary_contact_id);

-- Merges (HubSpot merge events, Salesforce Lead conversion / merge, Pipedrive merges): the
-- losing record becomes a tombstone with merged_into_remote_id, and its remote id is kept here
-- so later events for it resolve to the survivor instead of resurrecting it.
create table crm.record_aliases (
  connection_id uuid not null references crm.connections (id) on delete cascade,
  object text not null,
  alias_remote_id text not null,
  remote_id text not null,
  merged_at timestamptz not null default now(),
  primary key (connection_id, object, alias_remote_id),
  constraint record_aliases_object_check check (object in ('contacts', 'companies', 'deals', 'owners')),
  constraint record_aliases_not_self check (alias_remote_id <> remote_id)
);
comment on table crm.record_aliases is
  'Remote ids merged into another record: alias_remote_id now means remote_id (same connection and object).';

-- RLS. authenticated reads its own account's rows and may write contacts, companies and deals
-- of its own connections (that is how app changes reach the CRM). Owners and aliases are
-- engine-owned. service_role bypasses RLS.
alter table crm.owners enable row level security;
alter table crm.companies enable row level security;
alter table crm.contacts enable row level security;
alter table crm.deals enable row level security;
alter table crm.record_aliases enable row level security;

create policy owners_select_own on crm.owners for select to authenticated
  using (connection_id in (select c.id from crm.connections c
                           where c.account_id = (select crm.current_account_id())));
create policy record_aliases_select_own on crm.record_aliases for select to authenticated
  using (connection_id in (select c.id from crm.connections c
                           where c.account_id = (select crm.current_account_id())));

create policy companies_select_own on crm.companies for select to authenticated
  using (connection_id in (select c.id from crm.connections c
                           where c.account_id = (select crm.current_account_id())));
create policy companies_insert_own on crm.companies for insert to authenticated
  with check (connection_id in (select c.id from crm.connections c
                                where c.account_id = (select crm.current_account_id())));
create policy companies_update_own on crm.companies for update to authenticated
  using (connection_id in (select c.id from crm.connections c
                           where c.account_id = (select crm.current_account_id())))
  with check (connection_id in (select c.id from crm.connections c
                                where c.account_id = (select crm.current_account_id())));
create policy companies_delete_own on crm.companies for delete to authenticated
  using (connection_id in (select c.id from crm.connections c
                           where c.account_id = (select crm.current_account_id())));

create policy contacts_select_own on crm.contacts for select to authenticated
  using (connection_id in (select c.id from crm.connections c
                           where c.account_id = (select crm.current_account_id())));
create policy contacts_insert_own on crm.contacts for insert to authenticated
  with check (connection_id in (select c.id from crm.connections c
                                where c.account_id = (select crm.current_account_id())));
create policy contacts_update_own on crm.contacts for update to authenticated
  using (connection_id in (select c.id from crm.connections c
                           where c.account_id = (select crm.current_account_id())))
  with check (connection_id in (select c.id from crm.connections c
                                where c.account_id = (select crm.current_account_id())));
create policy contacts_delete_own on crm.contacts for delete to authenticated
  using (connection_id in (select c.id from crm.connections c
                           where c.account_id = (select crm.current_account_id())));

create policy deals_select_own on crm.deals for select to authenticated
  using (connection_id in (select c.id from crm.connections c
                           where c.account_id = (select crm.current_account_id())));
create policy deals_insert_own on crm.deals for insert to authenticated
  with check (connection_id in (select c.id from crm.connections c
                                where c.account_id = (select crm.current_account_id())));
create policy deals_update_own on crm.deals for update to authenticated
  using (connection_id in (select c.id from crm.connections c
                           where c.account_id = (select crm.current_account_id())))
  with check (connection_id in (select c.id from crm.connections c
                                where c.account_id = (select crm.current_account_id())));
create policy deals_delete_own on crm.deals for delete to authenticated
  using (connection_id in (select c.id from crm.connections c
                           where c.account_id = (select crm.current_account_id())));

revoke all on crm.owners, crm.companies, crm.contacts, crm.deals, crm.record_aliases
  from public, anon, authenticated;
grant select on crm.owners, crm.record_aliases to authenticated;
grant select, insert, update, delete on crm.companies, crm.contacts, crm.deals to authenticated;
grant select, insert, update, delete on crm.owners, crm.companies, crm.contacts, crm.deals,
  crm.record_aliases to service_role;
