-- RLS on every crm table: anon sees nothing, authenticated sees only its account
-- (JWT claim app_metadata.account_id), service_role sees all; app writes only where allowed.
begin;
select plan(76);

-- Fixture (as postgres): accounts A and B, one connection each, one row in every table.
insert into crm.connections (id, account_id, provider, remote_account_id, credentials) values
  ('0a000000-0000-4000-8000-00000000c0a1', '0a000000-0000-4000-8000-0000000000a1', 'hubspot', 'rls-test-A', '\x01'),
  ('0b000000-0000-4000-8000-00000000c0b1', '0b000000-0000-4000-8000-0000000000b1', 'pipedrive', 'rls-test-B', '\x02');

set local crm.engine = 'on';
insert into crm.owners (id, connection_id, remote_id, email) values
  ('0a000000-0000-4000-8000-000000000a01', '0a000000-0000-4000-8000-00000000c0a1', 'o1', 'a@owner.test'),
  ('0b000000-0000-4000-8000-000000000b01', '0b000000-0000-4000-8000-00000000c0b1', 'o1', 'b@owner.test');
insert into crm.companies (id, connection_id, remote_id, name) values
  ('0a000000-0000-4000-8000-000000000a02', '0a000000-0000-4000-8000-00000000c0a1', 'co1', 'A Corp'),
  ('0b000000-0000-4000-8000-000000000b02', '0b000000-0000-4000-8000-00000000c0b1', 'co1', 'B Corp');
insert into crm.contacts (id, connection_id, remote_id, email) values
  ('0a000000-0000-4000-8000-000000000a03', '0a000000-0000-4000-8000-00000000c0a1', 'c1', 'a@contact.test'),
  ('0b000000-0000-4000-8000-000000000b03', '0b000000-0000-4000-8000-00000000c0b1', 'c1', 'b@contact.test');
insert into crm.deals (id, connection_id, remote_id, name) values
  ('0a000000-0000-4000-8000-000000000a04', '0a000000-0000-4000-8000-00000000c0a1', 'd1', 'A deal'),
  ('0b000000-0000-4000-8000-000000000b04', '0b000000-0000-4000-8000-00000000c0b1', 'd1', 'B deal');
reset crm.engine;

insert into crm.record_aliases (connection_id, object, alias_remote_id, remote_id)
select c.id, 'contacts', 'c0', 'c1' from crm.connections c where c.remote_account_id in ('rls-test-A', 'rls-test-B');
insert into crm.sync_state (connection_id, object, record_id, field, agreed_hash)
select t.connection_id, 'contacts', t.id, 'email', crm._hash(to_jsonb(t.email))
from crm.contacts t where t.remote_id = 'c1' and t.connection_id in
  ('0a000000-0000-4000-8000-00000000c0a1', '0b000000-0000-4000-8000-00000000c0b1');
insert into crm.conflicts (connection_id, object, record_id, field, policy)
select t.connection_id, 'contacts', t.id, 'email', 'manual'
from crm.contacts t where t.remote_id = 'c1' and t.connection_id in
  ('0a000000-0000-4000-8000-00000000c0a1', '0b000000-0000-4000-8000-00000000c0b1');
insert into crm.field_mappings (connection_id, provider, object, remote_object, column_name, remote_property)
values ('0a000000-0000-4000-8000-00000000c0a1', 'hubspot', 'contacts', 'contacts', 'custom.score', 'score'),
       ('0b000000-0000-4000-8000-00000000c0b1', 'pipedrive', 'contacts', 'persons', 'custom.score', 'abc123');
insert into crm.outbox (connection_id, object, record_id, remote_id, op, changed_columns)
select t.connection_id, 'contacts', t.id, t.remote_id, 'update', '{email}'
from crm.contacts t where t.remote_id = 'c1' and t.connection_id in
  ('0a000000-0000-4000-8000-00000000c0a1', '0b000000-0000-4000-8000-00000000c0b1');
insert into crm.webhook_events (provider, connection_id, object, remote_id, event_type, dedupe_key, payload) values
  ('hubspot', '0a000000-0000-4000-8000-00000000c0a1', 'contacts', 'c1', 'contact.creation', 'rls-test-A-1', '{}'),
  ('pipedrive', '0b000000-0000-4000-8000-00000000c0b1', 'contacts', 'c1', 'create.person', 'rls-test-B-1', '{}');
insert into crm.sync_log (connection_id, object, direction, trigger) values
  ('0a000000-0000-4000-8000-00000000c0a1', 'contacts', 'inbound', 'cron'),
  ('0b000000-0000-4000-8000-00000000c0b1', 'contacts', 'inbound', 'cron');
insert into crm.sync_cursors (connection_id, object, watermark_at) values
  ('0a000000-0000-4000-8000-00000000c0a1', 'contacts', now()),
  ('0b000000-0000-4000-8000-00000000c0b1', 'contacts', now());
insert into crm.health_alerts (connection_id, object, kind, message) values
  ('0a000000-0000-4000-8000-00000000c0a1', 'contacts', 'stale', 'A'),
  ('0b000000-0000-4000-8000-00000000c0b1', 'contacts', 'stale', 'B');

-- anon: no access at all ----------------------------------------------------------------------
set local role anon;
set local request.jwt.claims to '{"role": "anon"}';
select throws_ok('select count(*) from crm.connections', '42501', null, 'anon: connections denied');
select throws_ok('select count(*) from crm.owners', '42501', null, 'anon: owners denied');
select throws_ok('select count(*) from crm.companies', '42501', null, 'anon: companies denied');
select throws_ok('select count(*) from crm.contacts', '42501', null, 'anon: contacts denied');
select throws_ok('select count(*) from crm.deals', '42501', null, 'anon: deals denied');
select throws_ok('select count(*) from crm.record_aliases', '42501', null, 'anon: record_aliases denied');
select throws_ok('select count(*) from crm.sync_state', '42501', null, 'anon: sync_state denied');
select throws_ok('select count(*) from crm.conflicts', '42501', null, 'anon: conflicts denied');
select throws_ok('select count(*) from crm.field_mappings', '42501', null, 'anon: field_mappings denied');
select throws_ok('select count(*) from crm.outbox', '42501', null, 'anon: outbox denied');
select throws_ok('select count(*) from crm.webhook_events', '42501', null, 'anon: webhook_events denied');
select throws_ok('select count(*) from crm.sync_log', '42501', null, 'anon: sync_log denied');
select throws_ok('select count(*) from crm.sync_cursors', '42501', null, 'anon: sync_cursors denied');
select throws_ok('select count(*) from crm.health_alerts', '42501', null, 'anon: health_alerts denied');
select throws_ok($$select public.trigger_crm_sync('contacts')$$, '42501', null, 'anon: trigger_crm_sync denied');
select throws_ok('select * from crm.sync_status()', '42501', null, 'anon: sync_status denied');
reset role;

-- authenticated, account A: own rows only ------------------------------------------------------
set local role authenticated;
set local request.jwt.claims to
  '{"role": "authenticated", "sub": "0a000000-0000-4000-8000-0000000000f1", "app_metadata": {"account_id": "0a000000-0000-4000-8000-0000000000a1"}}';

select results_eq('select remote_account_id from crm.connections', $$values ('rls-test-A')$$,
  'A sees only its connection');
select results_eq('select email from crm.owners', $$values ('a@owner.test')$$, 'A sees only its owners');
select results_eq('select name from crm.companies', $$values ('A Corp')$$, 'A sees only its companies');
select results_eq('select email from crm.contacts', $$values ('a@contact.test')$$, 'A sees only its contacts');
select results_eq('select name from crm.deals', $$values ('A deal')$$, 'A sees only its deals');
select results_eq('select connection_id from crm.record_aliases',
  $$values ('0a000000-0000-4000-8000-00000000c0a1'::uuid)$$, 'A sees only its aliases');
select results_eq('select connection_id from crm.sync_state',
  $$values ('0a000000-0000-4000-8000-00000000c0a1'::uuid)$$, 'A sees only its sync_state');
select results_eq('select connection_id from crm.conflicts',
  $$values ('0a000000-0000-4000-8000-00000000c0a1'::uuid)$$, 'A sees only its conflicts');
select results_eq('select connection_id from crm.outbox',
  $$values ('0a000000-0000-4000-8000-00000000c0a1'::uuid)$$, 'A sees only its outbox');
select results_eq('select dedupe_key from crm.webhook_events', $$values ('rls-test-A-1')$$,
  'A sees only its webhook events');
select results_eq('select connection_id from crm.sync_log',
  $$values ('0a000000-0000-4000-8000-00000000c0a1'::uuid)$$, 'A sees only its runs');
select results_eq('select connection_id from crm.sync_cursors',
  $$values ('0a000000-0000-4000-8000-00000000c0a1'::uuid)$$, 'A sees only its cursors');
select results_eq('select message from crm.health_alerts', $$values ('A')$$, 'A sees only its alerts');
select is((select count(*)::integer from crm.field_mappings where connection_id is not null), 1,
  'A sees its own mapping overrides only');
select ok((select count(*) from crm.field_mappings where connection_id is null) > 0,
  'A sees the provider default mappings');
select is((select count(distinct connection_id)::integer from crm.sync_status()), 1,
  'sync_status as A reports only A''s connection');
select is((select count(*)::integer from crm.sync_status()
           where connection_id = '0b000000-0000-4000-8000-00000000c0b1'), 0,
  'sync_status as A shows nothing of B');

-- B's rows are invisible even when asked for by id.
select is((select count(*)::integer from crm.contacts where connection_id = '0b000000-0000-4000-8000-00000000c0b1'),
  0, 'A reading B''s contacts gets none');
select is((select count(*)::integer from crm.deals where id = '0b000000-0000-4000-8000-000000000b04'),
  0, 'A reading B''s deal by id gets none');
select is((select count(*)::integer from crm.connections where account_id = '0b000000-0000-4000-8000-0000000000b1'),
  0, 'A reading B''s connection gets none');

-- Credentials are never readable by the app, not even its own.
select throws_ok('select credentials from crm.connections', '42501', null,
  'authenticated cannot select credentials');
select lives_ok('select id, provider, status, settings from crm.connections',
  'authenticated can select the other connection columns');

-- App writes: allowed on its own mirror rows, invisible/refused for B's, refused on engine tables.
select lives_ok(
  $$insert into crm.contacts (connection_id, first_name, email)
    values ('0a000000-0000-4000-8000-00000000c0a1', 'New', 'new@a.test')$$,
  'A can insert a contact for its connection');
select is((select count(*)::integer from crm.outbox o join crm.contacts c on c.id = o.record_id
           where c.email = 'new@a.test' and o.op = 'insert'),
  1, 'the app insert queued an outbox entry (trigger works under RLS)');
select throws_ok(
  $$insert into crm.contacts (connection_id, first_name) values ('0b000000-0000-4000-8000-00000000c0b1', 'Intruder')$$,
  '42501', null, 'A cannot insert into B''s connection');
with u as (update crm.contacts set first_name = 'Hacked'
           where id = '0b000000-0000-4000-8000-000000000b03' returning 1)
select is((select count(*)::integer from u), 0, 'A cannot update B''s contact');
with d as (delete from crm.deals where id = '0b000000-0000-4000-8000-000000000b04' returning 1)
select is((select count(*)::integer from d), 0, 'A cannot delete B''s deal');
select lives_ok(
  $$update crm.deals set amount = 10 where id = '0a000000-0000-4000-8000-000000000a04'$$,
  'A can update its own deal');
select throws_ok(
  $$insert into crm.owners (connection_id, email) values ('0a000000-0000-4000-8000-00000000c0a1', 'x@y.z')$$,
  '42501', null, 'owners are read-only for the app');
select throws_ok(
  $$insert into crm.outbox (connection_id, object, record_id, op)
    values ('0a000000-0000-4000-8000-00000000c0a1', 'contacts', gen_random_uuid(), 'update')$$,
  '42501', null, 'the app cannot write the outbox');
select throws_ok($$delete from crm.sync_log$$, '42501', null, 'the app cannot write sync_log');
select throws_ok($$update crm.connections set status = 'paused'$$, '42501', null,
  'the app cannot change connections');
select throws_ok(
  $$select crm.apply_inbound('0a000000-0000-4000-8000-00000000c0a1', 'contacts', '[]')$$,
  '42501', null, 'the app cannot call engine functions');
select throws_ok($$select public.trigger_crm_sync('contacts')$$, '42501', null,
  'authenticated cannot trigger syncs');
select throws_ok(
  $$select crm._enqueue_outbox('contacts', '[]')$$, '42501', null,
  'the app cannot call the internal queue helper');

-- The engine flag means nothing to an API caller: still an app write, still guarded.
set local crm.engine = 'on';
select is(crm.is_engine(), false, 'crm.engine is ignored under an authenticated JWT');
select throws_ok(
  $$update crm.contacts set remote_id = 'spoofed' where id = '0a000000-0000-4000-8000-000000000a03'$$,
  'CRM05', null, 'engine-managed columns stay protected even with crm.engine set');
update crm.contacts set last_name = 'Sneaky' where id = '0a000000-0000-4000-8000-000000000a03';
select is((select changed_columns from crm.outbox where record_id = '0a000000-0000-4000-8000-000000000a03'),
  array['email', 'last_name'], '... and the change is queued like any app write');
reset crm.engine;

-- The account comes from app_metadata only: user_metadata (user-editable) is ignored.
set local request.jwt.claims to
  '{"role": "authenticated", "sub": "0a000000-0000-4000-8000-0000000000f2", "user_metadata": {"account_id": "0b000000-0000-4000-8000-0000000000b1"}}';
select is((select count(*)::integer from crm.contacts), 0, 'user_metadata.account_id grants nothing');
select is((select count(*)::integer from crm.connections), 0, 'no app_metadata claim: no connections');
set local request.jwt.claims to
  '{"role": "authenticated", "app_metadata": {"account_id": "not-a-uuid"}}';
select is((select count(*)::integer from crm.contacts), 0, 'a malformed account claim sees nothing (no error)');

-- authenticated, account B: symmetric.
set local request.jwt.claims to
  '{"role": "authenticated", "app_metadata": {"account_id": "0b000000-0000-4000-8000-0000000000b1"}}';
select results_eq('select email from crm.contacts', $$values ('b@contact.test')$$, 'B sees only its contacts');
select is((select count(*)::integer from crm.contacts where email = 'new@a.test'), 0,
  'B does not see A''s new contact');
reset role;

-- service_role: everything, and may write engine-owned tables.
set local role service_role;
set local request.jwt.claims to '{"role": "service_role"}';
select is((select count(*)::integer from crm.connections where remote_account_id in ('rls-test-A', 'rls-test-B')),
  2, 'service_role sees both connections');
select is((select count(*)::integer from crm.contacts where connection_id in
  ('0a000000-0000-4000-8000-00000000c0a1', '0b000000-0000-4000-8000-00000000c0b1')), 3,
  'service_role sees all contacts');
select is((select count(*)::integer from crm.outbox where connection_id in
  ('0a000000-0000-4000-8000-00000000c0a1', '0b000000-0000-4000-8000-00000000c0b1')), 4,
  'service_role sees all outbox entries');
select is((select count(*)::integer from crm.webhook_events where dedupe_key like 'rls-test-%'), 2,
  'service_role sees all webhook events');
select is((select count(*)::integer from crm.sync_log where connection_id in
  ('0a000000-0000-4000-8000-00000000c0a1', '0b000000-0000-4000-8000-00000000c0b1')), 2,
  'service_role sees all runs');
select is((select count(*)::integer from crm.sync_state where connection_id in
  ('0a000000-0000-4000-8000-00000000c0a1', '0b000000-0000-4000-8000-00000000c0b1')) >= 2, true,
  'service_role sees all sync_state');
select isnt((select credentials from crm.connections where remote_account_id = 'rls-test-A'), null,
  'service_role can read the ciphertext');
select lives_ok(
  $$update crm.connections set status = 'paused' where remote_account_id = 'rls-test-B'$$,
  'service_role can change connections');
select lives_ok(
  $$insert into crm.sync_log (connection_id, direction, trigger) values ('0b000000-0000-4000-8000-00000000c0b1', 'outbound', 'manual')$$,
  'service_role can write sync_log');
select lives_ok(
  $$select crm.apply_inbound('0b000000-0000-4000-8000-00000000c0b1', 'owners',
      '[{"remote_id": "o2", "remote_updated_at": "2026-01-01T00:00:00Z", "email": "two@owner.test"}]')$$,
  'service_role can run the engine functions');
select lives_ok(
  $$select * from crm.claim_outbox('rls-test', 1, '1 minute', '0a000000-0000-4000-8000-00000000c0a1')$$,
  'service_role can claim');
select lives_ok($$select crm.advance_cursor('0a000000-0000-4000-8000-00000000c0a1', 'deals', now(), '1')$$,
  'service_role can advance cursors');
select lives_ok($$select * from crm.sync_status()$$, 'service_role can read sync_status');
select ok((select count(distinct connection_id) from crm.sync_status()
           where connection_id in ('0a000000-0000-4000-8000-00000000c0a1', '0b000000-0000-4000-8000-00000000c0b1')) = 2,
  'sync_status as service_role covers every connection');
reset role;

-- Policies exist per table as designed (select-only for engine tables).
select policies_are('crm', 'contacts',
  array['contacts_select_own', 'contacts_insert_own', 'contacts_update_own', 'contacts_delete_own']);
select policies_are('crm', 'outbox', array['outbox_select_own']);
select policy_roles_are('crm', 'contacts', 'contacts_update_own', array['authenticated']);

select * from finish();
rollback;
