-- The crm schema: tables, RLS switched on everywhere, privileges, triggers, seeded mappings.
begin;
select plan(64);

select has_schema('crm');
select tables_are('crm', array[
  'connections', 'owners', 'companies', 'contacts', 'deals', 'record_aliases', 'sync_state',
  'conflicts', 'field_mappings', 'outbox', 'webhook_events', 'sync_log', 'sync_cursors',
  'health_alerts', 'full_sync_seen', 'live_fetch_buckets', 'inbound_leases', 'inbound_failures',
  'jobs', 'job_accounts', 'job_workers', 'engine_settings', 'rate_budgets', 'provider_describes',
  'outbound_setup', 'outbound_wakes', 'write_ledger', 'drift_walks', 'drift_seen',
  'connect_states'
]);

-- RLS on every table in crm, now and for any table added later.
select is(
  (select array_agg(c.relname::text order by c.relname) from pg_class c
   where c.relnamespace = 'crm'::regnamespace and c.relkind in ('r', 'p') and not c.relrowsecurity),
  null,
  'every table in crm has row level security enabled');

-- Mirror table shape.
select has_column('crm', 'contacts', 'kind', 'contacts.kind (Salesforce Lead vs Contact)');
select col_is_unique('crm', 'contacts', array['connection_id', 'remote_id'], 'contacts: remote_id unique per connection');
select col_is_unique('crm', 'companies', array['connection_id', 'remote_id'], 'companies: remote_id unique per connection');
select col_is_unique('crm', 'deals', array['connection_id', 'remote_id'], 'deals: remote_id unique per connection');
select col_is_unique('crm', 'owners', array['connection_id', 'remote_id'], 'owners: remote_id unique per connection');
select col_type_is('crm', 'connections', 'credentials', 'bytea', 'credentials are ciphertext bytes');
select col_type_is('crm', 'contacts', 'custom', 'jsonb', 'contacts.custom is jsonb');
select col_type_is('crm', 'deals', 'custom', 'jsonb', 'deals.custom is jsonb');
select has_column('crm', 'deals', 'deleted_at', 'deals have a tombstone');
select has_column('crm', 'companies', 'merged_into_remote_id', 'companies record merges');
select col_is_unique('crm', 'outbox', array['object', 'record_id'], 'outbox: one entry per record');
select col_is_unique('crm', 'webhook_events', array['provider', 'dedupe_key'], 'inbox: dedupe key unique per provider');
select col_is_pk('crm', 'sync_state', array['object', 'record_id', 'field'], 'sync_state: per record and field');
select col_is_pk('crm', 'sync_cursors', array['connection_id', 'object'], 'sync_cursors: per connection and object');

-- Every mirror-ish table in crm is tied to a connection (RLS keys on it). live_fetch_buckets
-- limits a whole account and only the engine can read it; so does job_accounts (claim fairness,
-- readable by its own account); job_workers and engine_settings belong to the engine;
-- connect_states are OAuth nonces of a connection not made yet (account-bound, engine-only).
select is(
  (select array_agg(c.relname::text order by c.relname) from pg_class c
   where c.relnamespace = 'crm'::regnamespace and c.relkind = 'r'
     and c.relname not in ('connections', 'live_fetch_buckets', 'job_accounts', 'job_workers', 'engine_settings',
                           'connect_states')
     and not exists (select 1 from pg_attribute a where a.attrelid = c.oid and a.attname = 'connection_id')),
  null,
  'every crm table except connections has a connection_id');

-- Privileges.
select schema_privs_are('crm', 'anon', array[]::text[], 'anon has no access to schema crm');
select schema_privs_are('crm', 'authenticated', array['USAGE']);
select table_privs_are('crm', 'contacts', 'authenticated', array['SELECT', 'INSERT', 'UPDATE', 'DELETE']);
select table_privs_are('crm', 'companies', 'authenticated', array['SELECT', 'INSERT', 'UPDATE', 'DELETE']);
select table_privs_are('crm', 'deals', 'authenticated', array['SELECT', 'INSERT', 'UPDATE', 'DELETE']);
select table_privs_are('crm', 'owners', 'authenticated', array['SELECT'], 'owners are read-only for the app');
select table_privs_are('crm', 'outbox', 'authenticated', array['SELECT'], 'outbox is engine-owned');
select table_privs_are('crm', 'webhook_events', 'authenticated', array['SELECT'], 'inbox is engine-owned');
select table_privs_are('crm', 'sync_state', 'authenticated', array['SELECT'], 'sync_state is engine-owned');
select table_privs_are('crm', 'connections', 'authenticated', array[]::text[],
  'connections: no table-wide privilege (column grants only)');
select column_privs_are('crm', 'connections', 'credentials', 'authenticated', array[]::text[],
  'authenticated cannot read credentials');
select column_privs_are('crm', 'connections', 'settings', 'authenticated', array['SELECT']);
select table_privs_are('crm', 'outbox', 'service_role', array['SELECT', 'INSERT', 'UPDATE', 'DELETE']);
select table_privs_are('crm', 'contacts', 'anon', array[]::text[]);

select function_privs_are('public', 'trigger_crm_sync', array['text', 'uuid'], 'anon', array[]::text[],
  'anon cannot run trigger_crm_sync');
select function_privs_are('public', 'trigger_crm_sync', array['text', 'uuid'], 'authenticated', array[]::text[],
  'authenticated cannot run trigger_crm_sync');
select function_privs_are('public', 'trigger_crm_sync', array['text', 'uuid'], 'service_role', array['EXECUTE']);
select function_privs_are('crm', 'apply_inbound', array['uuid', 'text', 'jsonb'], 'authenticated', array[]::text[],
  'the app cannot call the engine''s apply');
select function_privs_are('crm', 'sync_status', array[]::text[], 'authenticated', array['EXECUTE']);
select is(
  (select array_agg(p.oid::regprocedure::text order by 1) from pg_proc p
   where p.pronamespace = 'crm'::regnamespace
     and has_function_privilege('anon', p.oid, 'execute')),
  null,
  'anon can execute no crm function');
select is(
  (select array_agg(p.oid::regprocedure::text order by 1) from pg_proc p
   where p.pronamespace = 'crm'::regnamespace and p.prosecdef
     and not coalesce('search_path=""' = any (p.proconfig), false)),
  null,
  'every security definer function in crm pins search_path to empty');

-- Engine functions the TypeScript side calls.
select has_function('crm', 'apply_inbound', array['uuid', 'text', 'jsonb']);
select has_function('crm', 'claim_outbox', array['text', 'integer', 'interval', 'uuid', 'text', 'integer']);
select has_function('crm', 'complete_outbox', array['jsonb']);
select has_function('crm', 'fail_outbox', array['jsonb', 'integer', 'interval', 'interval']);
select has_function('crm', 'replay_outbox', array['bigint[]', 'uuid']);
select has_function('crm', 'enqueue_webhook_events', array['jsonb']);
select has_function('crm', 'claim_inbox', array['text', 'integer', 'interval', 'uuid', 'integer']);
select has_function('crm', 'open_sync_run', array['uuid', 'text', 'text', 'text', 'text', 'jsonb']);
select has_function('crm', 'close_sync_run', array['bigint', 'text', 'jsonb', 'jsonb']);
select has_function('crm', 'advance_cursor', array['uuid', 'text', 'timestamp with time zone', 'text']);

-- Triggers on the app-writable mirror tables.
select triggers_are('crm', 'contacts', array['tg_contacts__before_write', 'tg_contacts__after_insert',
  'tg_contacts__after_update', 'tg_contacts__after_delete']);
select triggers_are('crm', 'companies', array['tg_companies__before_write', 'tg_companies__after_insert',
  'tg_companies__after_update', 'tg_companies__after_delete']);
select triggers_are('crm', 'deals', array['tg_deals__before_write', 'tg_deals__after_insert',
  'tg_deals__after_update', 'tg_deals__after_delete']);

-- Seeded default mappings: every provider x object, valid columns, owners inbound only.
select is(
  (select count(distinct (provider, object))::integer from crm.field_mappings where connection_id is null),
  12, 'default mappings for 3 providers x 4 objects');
select is(
  (select array_agg(distinct remote_object order by remote_object) from crm.field_mappings
   where connection_id is null and provider = 'salesforce'),
  array['Account', 'Contact', 'Lead', 'Opportunity', 'User'],
  'Salesforce defaults cover Contact, Lead, Account, Opportunity, User');
select is(
  (select array_agg(m.provider || '.' || m.remote_object || '.' || m.column_name) from crm.field_mappings m
   where m.connection_id is null and m.column_name <> all (crm._syncable_columns(m.object))),
  null,
  'every default mapping targets a canonical column of its object');
select is(
  (select count(*)::integer from crm.field_mappings where object = 'owners' and direction <> 'inbound'),
  0, 'owners are mapped inbound only');
select ok(
  (select bool_and(exists (select 1 from crm.field_mappings m where m.connection_id is null
                           and m.provider = 'hubspot' and m.object = 'contacts' and m.remote_property = p))
   from unnest(array['firstname', 'lastname', 'email', 'phone', 'lifecyclestage', 'hs_lead_status',
                     'jobtitle', 'company', 'hubspot_owner_id']) p),
  'HubSpot contact defaults include the standard properties');
select ok(
  (select bool_and(exists (select 1 from crm.field_mappings m where m.connection_id is null
                           and m.provider = 'hubspot' and m.object = 'deals' and m.remote_property = p))
   from unnest(array['dealname', 'amount', 'deal_currency_code', 'pipeline', 'dealstage', 'closedate',
                     'hs_deal_stage_probability']) p),
  'HubSpot deal defaults include the standard properties');
select is(
  (select transform from crm.field_mappings
   where connection_id is null and provider = 'hubspot' and object = 'contacts' and column_name = 'phone'),
  'phone_e164', 'phones normalise to E.164');
select throws_ok(
  $$insert into crm.field_mappings (provider, object, remote_object, column_name, remote_property, transform)
    values ('hubspot', 'contacts', 'contacts', 'email', 'x', 'rot13')$$,
  '23514', null, 'unknown transforms are rejected');

-- Connection settings are validated.
select throws_ok(
  $$insert into crm.connections (account_id, provider, settings)
    values (gen_random_uuid(), 'hubspot', '{"conflict_policy": "coin_flip"}')$$,
  '23514', null, 'unknown conflict policy is rejected');
select throws_ok(
  $$insert into crm.connections (account_id, provider) values (gen_random_uuid(), 'zoho')$$,
  '23514', null, 'unknown provider is rejected');
select lives_ok(
  $$insert into crm.connections (account_id, provider, settings) values (gen_random_uuid(), 'pipedrive',
    '{"conflict_policy": "manual", "default_phone_region": "DE", "objects": ["contacts"], "base_url": "http://127.0.0.1:54332"}')$$,
  'a sandbox base_url, region and enabled objects are accepted');
with c as (insert into crm.connections (account_id, provider) values (gen_random_uuid(), 'salesforce')
           returning settings)
select is((select settings ->> 'conflict_policy' from c), 'newest_wins', 'newest_wins is the default policy');

select * from finish();
rollback;
