-- Why: which CRM property feeds which canonical column, in which direction and through which
-- transform, is data, not code: defaults per provider x object ship here, and a connection can
-- override or disable any of them (or map custom properties to `custom.<key>`) without a
-- deploy. The engine reads crm.effective_field_mappings(connection_id).
--
-- transform names (the engine's mapper, supabase/functions/_shared/mapping/transforms.ts):
--   text (trimmed string; also numeric ids -> text), phone_e164 (with the connection's
--   default_phone_region), email_lower, number, currency (money as a decimal string, never a
--   float), date, timestamp, boolean, enum:<map> (options.map: remote -> canonical), and for
--   shapes a single scalar transform cannot express: lower, integer, percent (0..100 <->
--   fraction 0..1), not (negated boolean), deal_status (remote_property lists the "closed,won"
--   flags -> open|won|lost), association (first associated record's id), primary_email /
--   primary_phone (Pipedrive v2 labelled lists), name_split:first|last, name_join. The mapper
--   implements all of them inbound; outbound it skips deal_status, name_split and name_join
--   (values the CRM derives, or that cannot be split back).
-- Sources: HubSpot CRM v3 default properties, Salesforce Contact/Lead/Account/Opportunity/User
-- standard fields (API 62.0), Pipedrive API v2 persons/organizations/deals and v1 users.

create table crm.field_mappings (
  id bigint generated always as identity primary key,
  -- NULL: the provider default; otherwise an override for one connection.
  connection_id uuid references crm.connections (id) on delete cascade,
  provider text not null,
  object text not null,
  remote_object text not null,
  column_name text not null,
  remote_property text not null,
  direction text not null default 'both',
  transform text not null default 'text',
  options jsonb not null default '{}'::jsonb,
  enabled boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint field_mappings_provider_check check (provider in ('hubspot', 'salesforce', 'pipedrive')),
  constraint field_mappings_object_check check (object in ('contacts', 'companies', 'deals', 'owners')),
  constraint field_mappings_column_check check (column_name ~ '^([a-z][a-z0-9_]*|custom\.[A-Za-z0-9_.-]+)$'),
  constraint field_mappings_direction_check check (direction in ('inbound', 'outbound', 'both')),
  constraint field_mappings_transform_check check (transform ~ (
    '^(text|lower|email_lower|phone_e164|primary_email|primary_phone|number|integer|percent|'
    || 'currency|date|timestamp|boolean|not|deal_status|association|name_join|'
    || 'name_split:(first|last)|enum:[a-z0-9_]+)$')),
  constraint field_mappings_owners_inbound check (object <> 'owners' or direction = 'inbound'),
  constraint field_mappings_options_check check (pg_catalog.jsonb_typeof(options) = 'object'),
  constraint field_mappings_unique unique nulls not distinct
    (connection_id, provider, remote_object, column_name)
);
create index field_mappings_connection_idx on crm.field_mappings (connection_id);
comment on table crm.field_mappings is
  'Canonical column <-> CRM property, direction and transform. connection_id NULL = provider default; a connection row overrides (enabled = false disables).';

insert into crm.field_mappings
  (provider, object, remote_object, column_name, remote_property, direction, transform, options)
select v.provider, v.object, v.remote_object, v.column_name, v.remote_property, v.direction,
       v.transform, v.options::jsonb
from (values
  -- HubSpot CRM v3 --------------------------------------------------------------------------
  ('hubspot', 'contacts', 'contacts', 'first_name', 'firstname', 'both', 'text', '{}'),
  ('hubspot', 'contacts', 'contacts', 'last_name', 'lastname', 'both', 'text', '{}'),
  ('hubspot', 'contacts', 'contacts', 'email', 'email', 'both', 'email_lower', '{}'),
  ('hubspot', 'contacts', 'contacts', 'phone', 'phone', 'both', 'phone_e164', '{}'),
  ('hubspot', 'contacts', 'contacts', 'phone_raw', 'phone', 'inbound', 'text', '{}'),
  ('hubspot', 'contacts', 'contacts', 'company_name', 'company', 'both', 'text', '{}'),
  ('hubspot', 'contacts', 'contacts', 'company_remote_id', 'associatedcompanyid', 'inbound', 'text', '{}'),
  ('hubspot', 'contacts', 'contacts', 'owner_remote_id', 'hubspot_owner_id', 'both', 'text', '{}'),
  ('hubspot', 'contacts', 'contacts', 'lifecycle_stage', 'lifecyclestage', 'both', 'text', '{}'),
  ('hubspot', 'contacts', 'contacts', 'lead_status', 'hs_lead_status', 'both', 'text', '{}'),
  ('hubspot', 'contacts', 'contacts', 'job_title', 'jobtitle', 'both', 'text', '{}'),
  ('hubspot', 'contacts', 'contacts', 'last_activity_at', 'notes_last_updated', 'inbound', 'timestamp', '{}'),
  ('hubspot', 'companies', 'companies', 'name', 'name', 'both', 'text', '{}'),
  ('hubspot', 'companies', 'companies', 'domain', 'domain', 'both', 'text', '{}'),
  ('hubspot', 'companies', 'companies', 'industry', 'industry', 'both', 'text', '{}'),
  ('hubspot', 'companies', 'companies', 'annual_revenue', 'annualrevenue', 'both', 'currency', '{}'),
  ('hubspot', 'companies', 'companies', 'phone', 'phone', 'both', 'phone_e164', '{}'),
  ('hubspot', 'companies', 'companies', 'country', 'country', 'both', 'text', '{}'),
  ('hubspot', 'companies', 'companies', 'city', 'city', 'both', 'text', '{}'),
  ('hubspot', 'companies', 'companies', 'owner_remote_id', 'hubspot_owner_id', 'both', 'text', '{}'),
  ('hubspot', 'deals', 'deals', 'name', 'dealname', 'both', 'text', '{}'),
  ('hubspot', 'deals', 'deals', 'amount', 'amount', 'both', 'currency', '{}'),
  ('hubspot', 'deals', 'deals', 'currency', 'deal_currency_code', 'both', 'text', '{}'),
  ('hubspot', 'deals', 'deals', 'pipeline', 'pipeline', 'both', 'text', '{}'),
  ('hubspot', 'deals', 'deals', 'stage', 'dealstage', 'both', 'text', '{}'),
  ('hubspot', 'deals', 'deals', 'status', 'hs_is_closed,hs_is_closed_won', 'inbound', 'deal_status', '{}'),
  ('hubspot', 'deals', 'deals', 'close_date', 'closedate', 'both', 'date', '{}'),
  ('hubspot', 'deals', 'deals', 'probability', 'hs_deal_stage_probability', 'inbound', 'number', '{}'),
  ('hubspot', 'deals', 'deals', 'owner_remote_id', 'hubspot_owner_id', 'both', 'text', '{}'),
  ('hubspot', 'deals', 'deals', 'company_remote_id', 'associations.companies', 'both', 'association', '{}'),
  ('hubspot', 'deals', 'deals', 'primary_contact_remote_id', 'associations.contacts', 'both', 'association', '{}'),
  ('hubspot', 'owners', 'owners', 'email', 'email', 'inbound', 'email_lower', '{}'),
  ('hubspot', 'owners', 'owners', 'first_name', 'firstName', 'inbound', 'text', '{}'),
  ('hubspot', 'owners', 'owners', 'last_name', 'lastName', 'inbound', 'text', '{}'),
  ('hubspot', 'owners', 'owners', 'active', 'archived', 'inbound', 'not', '{}'),
  -- Salesforce (API 62.0) -------------------------------------------------------------------
  ('salesforce', 'contacts', 'Contact', 'first_name', 'FirstName', 'both', 'text', '{}'),
  ('salesforce', 'contacts', 'Contact', 'last_name', 'LastName', 'both', 'text', '{}'),
  ('salesforce', 'contacts', 'Contact', 'email', 'Email', 'both', 'email_lower', '{}'),
  ('salesforce', 'contacts', 'Contact', 'phone', 'Phone', 'both', 'phone_e164', '{}'),
  ('salesforce', 'contacts', 'Contact', 'phone_raw', 'Phone', 'inbound', 'text', '{}'),
  ('salesforce', 'contacts', 'Contact', 'company_name', 'Account.Name', 'inbound', 'text', '{}'),
  ('salesforce', 'contacts', 'Contact', 'company_remote_id', 'AccountId', 'both', 'text', '{}'),
  ('salesforce', 'contacts', 'Contact', 'owner_remote_id', 'OwnerId', 'both', 'text', '{}'),
  ('salesforce', 'contacts', 'Contact', 'job_title', 'Title', 'both', 'text', '{}'),
  ('salesforce', 'contacts', 'Contact', 'description', 'Description', 'both', 'text', '{}'),
  ('salesforce', 'contacts', 'Contact', 'last_activity_at', 'LastActivityDate', 'inbound', 'timestamp', '{}'),
  ('salesforce', 'contacts', 'Lead', 'first_name', 'FirstName', 'both', 'text', '{}'),
  ('salesforce', 'contacts', 'Lead', 'last_name', 'LastName', 'both', 'text', '{}'),
  ('salesforce', 'contacts', 'Lead', 'email', 'Email', 'both', 'email_lower', '{}'),
  ('salesforce', 'contacts', 'Lead', 'phone', 'Phone', 'both', 'phone_e164', '{}'),
  ('salesforce', 'contacts', 'Lead', 'phone_raw', 'Phone', 'inbound', 'text', '{}'),
  ('salesforce', 'contacts', 'Lead', 'company_name', 'Company', 'both', 'text', '{}'),
  ('salesforce', 'contacts', 'Lead', 'owner_remote_id', 'OwnerId', 'both', 'text', '{}'),
  ('salesforce', 'contacts', 'Lead', 'lead_status', 'Status', 'both', 'text', '{}'),
  ('salesforce', 'contacts', 'Lead', 'job_title', 'Title', 'both', 'text', '{}'),
  ('salesforce', 'contacts', 'Lead', 'description', 'Description', 'both', 'text', '{}'),
  ('salesforce', 'contacts', 'Lead', 'last_activity_at', 'LastActivityDate', 'inbound', 'timestamp', '{}'),
  ('salesforce', 'companies', 'Account', 'name', 'Name', 'both', 'text', '{}'),
  ('salesforce', 'companies', 'Account', 'domain', 'Website', 'both', 'text', '{}'),
  ('salesforce', 'companies', 'Account', 'industry', 'Industry', 'both', 'text', '{}'),
  ('salesforce', 'companies', 'Account', 'annual_revenue', 'AnnualRevenue', 'both', 'currency', '{}'),
  ('salesforce', 'companies', 'Account', 'phone', 'Phone', 'both', 'phone_e164', '{}'),
  ('salesforce', 'companies', 'Account', 'country', 'BillingCountry', 'both', 'text', '{}'),
  ('salesforce', 'companies', 'Account', 'city', 'BillingCity', 'both', 'text', '{}'),
  ('salesforce', 'companies', 'Account', 'owner_remote_id', 'OwnerId', 'both', 'text', '{}'),
  ('salesforce', 'deals', 'Opportunity', 'name', 'Name', 'both', 'text', '{}'),
  ('salesforce', 'deals', 'Opportunity', 'amount', 'Amount', 'both', 'currency', '{}'),
  ('salesforce', 'deals', 'Opportunity', 'currency', 'CurrencyIsoCode', 'both', 'text', '{}'),
  ('salesforce', 'deals', 'Opportunity', 'stage', 'StageName', 'both', 'text', '{}'),
  ('salesforce', 'deals', 'Opportunity', 'status', 'IsClosed,IsWon', 'inbound', 'deal_status', '{}'),
  ('salesforce', 'deals', 'Opportunity', 'close_date', 'CloseDate', 'both', 'date', '{}'),
  ('salesforce', 'deals', 'Opportunity', 'probability', 'Probability', 'both', 'percent', '{}'),
  ('salesforce', 'deals', 'Opportunity', 'owner_remote_id', 'OwnerId', 'both', 'text', '{}'),
  ('salesforce', 'deals', 'Opportunity', 'company_remote_id', 'AccountId', 'both', 'text', '{}'),
  ('salesforce', 'deals', 'Opportunity', 'primary_contact_remote_id', 'ContactId', 'both', 'text', '{}'),
  ('salesforce', 'owners', 'User', 'email', 'Email', 'inbound', 'email_lower', '{}'),
  ('salesforce', 'owners', 'User', 'first_name', 'FirstName', 'inbound', 'text', '{}'),
  ('salesforce', 'owners', 'User', 'last_name', 'LastName', 'inbound', 'text', '{}'),
  ('salesforce', 'owners', 'User', 'active', 'IsActive', 'inbound', 'boolean', '{}'),
  -- Pipedrive (API v2; users are v1 only) -----------------------------------------------------
  ('pipedrive', 'contacts', 'persons', 'first_name', 'first_name', 'both', 'text', '{}'),
  ('pipedrive', 'contacts', 'persons', 'last_name', 'last_name', 'both', 'text', '{}'),
  ('pipedrive', 'contacts', 'persons', 'email', 'emails', 'both', 'primary_email', '{}'),
  ('pipedrive', 'contacts', 'persons', 'phone', 'phones', 'both', 'primary_phone', '{}'),
  ('pipedrive', 'contacts', 'persons', 'phone_raw', 'phones', 'inbound', 'primary_phone', '{"raw": true}'),
  ('pipedrive', 'contacts', 'persons', 'company_remote_id', 'org_id', 'both', 'text', '{}'),
  ('pipedrive', 'contacts', 'persons', 'owner_remote_id', 'owner_id', 'both', 'text', '{}'),
  ('pipedrive', 'companies', 'organizations', 'name', 'name', 'both', 'text', '{}'),
  ('pipedrive', 'companies', 'organizations', 'country', 'address.country', 'inbound', 'text', '{}'),
  ('pipedrive', 'companies', 'organizations', 'city', 'address.locality', 'inbound', 'text', '{}'),
  ('pipedrive', 'companies', 'organizations', 'owner_remote_id', 'owner_id', 'both', 'text', '{}'),
  ('pipedrive', 'deals', 'deals', 'name', 'title', 'both', 'text', '{}'),
  ('pipedrive', 'deals', 'deals', 'amount', 'value', 'both', 'currency', '{}'),
  ('pipedrive', 'deals', 'deals', 'currency', 'currency', 'both', 'text', '{}'),
  ('pipedrive', 'deals', 'deals', 'pipeline', 'pipeline_id', 'both', 'text', '{}'),
  ('pipedrive', 'deals', 'deals', 'stage', 'stage_id', 'both', 'text', '{}'),
  ('pipedrive', 'deals', 'deals', 'status', 'status', 'both', 'enum:pipedrive_deal_status',
   '{"map": {"open": "open", "won": "won", "lost": "lost"}}'),
  ('pipedrive', 'deals', 'deals', 'close_date', 'expected_close_date', 'both', 'date', '{}'),
  ('pipedrive', 'deals', 'deals', 'probability', 'probability', 'both', 'percent', '{}'),
  ('pipedrive', 'deals', 'deals', 'owner_remote_id', 'owner_id', 'both', 'text', '{}'),
  ('pipedrive', 'deals', 'deals', 'company_remote_id', 'org_id', 'both', 'text', '{}'),
  ('pipedrive', 'deals', 'deals', 'primary_contact_remote_id', 'person_id', 'both', 'text', '{}'),
  ('pipedrive', 'owners', 'users', 'email', 'email', 'inbound', 'email_lower', '{}'),
  ('pipedrive', 'owners', 'users', 'first_name', 'name', 'inbound', 'name_split:first', '{}'),
  ('pipedrive', 'owners', 'users', 'last_name', 'name', 'inbound', 'name_split:last', '{}'),
  ('pipedrive', 'owners', 'users', 'active', 'active_flag', 'inbound', 'boolean', '{}')
) as v(provider, object, remote_object, column_name, remote_property, direction, transform, options)
on conflict on constraint field_mappings_unique do nothing;

-- The mappings in force for one connection: its overrides replace the provider defaults for
-- the same (remote_object, column_name); disabled rows drop out.
create or replace function crm.effective_field_mappings(p_connection_id uuid)
  returns setof crm.field_mappings
  language sql
  stable
  set search_path = ''
as $$
  select m.*
  from (
    select distinct on (f.remote_object, f.column_name) f.*
    from crm.field_mappings f
    join crm.connections c on c.id = p_connection_id and c.provider = f.provider
    where f.connection_id is null or f.connection_id = p_connection_id
    order by f.remote_object, f.column_name, f.connection_id nulls last
  ) m
  where m.enabled
  order by m.object, m.remote_object, m.column_name
$$;
comment on function crm.effective_field_mappings(uuid) is
  'Field mappings in force for a connection: per-connection overrides win over provider defaults.';
revoke all on function crm.effective_field_mappings(uuid) from public;
grant execute on function crm.effective_field_mappings(uuid) to authenticated, service_role;

alter table crm.field_mappings enable row level security;
-- Provider defaults are not secret; overrides belong to the connection's account.
create policy field_mappings_select_own on crm.field_mappings for select to authenticated
  using (connection_id is null
    or connection_id in (select c.id from crm.connections c
                         where c.account_id = (select crm.current_account_id())));

revoke all on crm.field_mappings from public, anon, authenticated;
grant select on crm.field_mappings to authenticated;
grant select, insert, update, delete on crm.field_mappings to service_role;
