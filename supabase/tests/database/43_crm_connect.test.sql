-- crm-connect's SQL (20261205060100): single-use state nonces bound to user, account and
-- provider; create-or-reactivate of a connection (same remote account keeps the row, another
-- one is refused, a remote account of another app account is refused); status and disconnect
-- scoped to the account; rights (service_role only, RLS on the nonce table).
begin;
select plan(25);

-- Nonces ------------------------------------------------------------------------------------
select lives_ok($$select crm.create_connect_state('43000000-0000-4000-8000-000000000001',
  '43000000-0000-4000-8000-0000000000a1', '43000000-0000-4000-8000-0000000000b1', 'hubspot',
  'https://app.example/crm', 'v1:cipher')$$, 'a state nonce is created');
select is((select count(*)::int from crm.consume_connect_state('43000000-0000-4000-8000-000000000001',
  '43000000-0000-4000-8000-0000000000a1', '43000000-0000-4000-8000-0000000000b2', 'hubspot')), 0,
  'another user cannot consume it');
select is((select count(*)::int from crm.consume_connect_state('43000000-0000-4000-8000-000000000001',
  '43000000-0000-4000-8000-0000000000a2', '43000000-0000-4000-8000-0000000000b1', 'hubspot')), 0,
  'another account cannot consume it');
select is((select count(*)::int from crm.consume_connect_state('43000000-0000-4000-8000-000000000001',
  '43000000-0000-4000-8000-0000000000a1', '43000000-0000-4000-8000-0000000000b1', 'salesforce')), 0,
  'another provider cannot consume it');
select is((select verifier from crm.consume_connect_state('43000000-0000-4000-8000-000000000001',
  '43000000-0000-4000-8000-0000000000a1', '43000000-0000-4000-8000-0000000000b1', 'hubspot')), 'v1:cipher',
  'its user, account and provider consume it once');
select is((select count(*)::int from crm.consume_connect_state('43000000-0000-4000-8000-000000000001',
  '43000000-0000-4000-8000-0000000000a1', '43000000-0000-4000-8000-0000000000b1', 'hubspot')), 0,
  'a second consume finds nothing (replay)');
select crm.create_connect_state('43000000-0000-4000-8000-000000000002',
  '43000000-0000-4000-8000-0000000000a1', '43000000-0000-4000-8000-0000000000b1', 'pipedrive', null, null);
update crm.connect_states set created_at = now() - interval '20 minutes', expires_at = now() - interval '1 second'
where nonce = '43000000-0000-4000-8000-000000000002';
select is((select count(*)::int from crm.consume_connect_state('43000000-0000-4000-8000-000000000002',
  '43000000-0000-4000-8000-0000000000a1', '43000000-0000-4000-8000-0000000000b1', 'pipedrive')), 0,
  'an expired nonce is refused');
select throws_ok($$select crm.create_connect_state('43000000-0000-4000-8000-000000000003',
  '43000000-0000-4000-8000-0000000000a1', '43000000-0000-4000-8000-0000000000b1', 'zoho', null, null)$$,
  'CRM22', null, 'an unknown provider is refused');
select throws_ok($$select crm.create_connect_state('43000000-0000-4000-8000-000000000004',
  '43000000-0000-4000-8000-0000000000a1', '43000000-0000-4000-8000-0000000000b1', 'hubspot', null, null,
  interval '2 hours')$$, '23514', null, 'a state lives at most 30 minutes');

-- Connections -------------------------------------------------------------------------------
create temp table c43 as
select * from crm.connect_connection('43000000-0000-4000-8000-0000000000a1', 'hubspot', 'hub-43', 'Hub 43',
                                     '{"base_url": "http://127.0.0.1:1"}');
select ok((select created from c43), 'a first connect creates the connection');
select is((select settings ->> 'base_url' from crm.connections where id = (select connection_id from c43)),
          'http://127.0.0.1:1', 'with the settings given over the defaults');
update crm.connections set status = 'error', last_error = 'refused' where id = (select connection_id from c43);
select is((select connection_id from crm.connect_connection('43000000-0000-4000-8000-0000000000a1', 'hubspot',
            'hub-43', null)), (select connection_id from c43), 'the same remote account reuses the row');
select is((select status || coalesce(last_error, '') from crm.connections where id = (select connection_id from c43)),
          'active', 'and re-activates it');
select throws_ok($$select crm.connect_connection('43000000-0000-4000-8000-0000000000a1', 'hubspot', 'hub-44', null)$$,
                 'CRM20', null, 'another remote account for an existing connection is refused');
select throws_ok($$select crm.connect_connection('43000000-0000-4000-8000-0000000000a2', 'hubspot', 'hub-43', null)$$,
                 'CRM21', null, 'a remote account connected to another account is refused');
select lives_ok($$select crm.connect_connection('43000000-0000-4000-8000-0000000000a1', 'pipedrive', 'pd-43', null)$$,
                'another provider is another connection');

select is(crm.lock_credentials((select connection_id from c43)), null,
          'lock_credentials answers the stored ciphertext (none yet)');
update crm.connections set credentials = convert_to('v1:a:b', 'UTF8') where id = (select connection_id from c43);
select is(crm.lock_credentials((select connection_id from c43)), 'v1:a:b',
          'and the ciphertext once stored');

-- Status and disconnect ---------------------------------------------------------------------
select is((select count(*)::int from crm.connect_status('43000000-0000-4000-8000-0000000000a1')), 2,
          'status lists the account''s connections');
select is((select count(*)::int from crm.connect_status('43000000-0000-4000-8000-0000000000a2')), 0,
          'and nothing of other accounts');
select is(crm.disconnect_connection('43000000-0000-4000-8000-0000000000a2', (select connection_id from c43)), null,
          'another account''s connection is not found');
select is(crm.disconnect_connection('43000000-0000-4000-8000-0000000000a1', (select connection_id from c43)),
          'disconnected', 'disconnect keeps the row');
select is((select status || ':' || (credentials is null)::text from crm.connections where id = (select connection_id from c43)),
          'disconnected:true', 'disconnected, without credentials');
select is(crm.disconnect_connection('43000000-0000-4000-8000-0000000000a1', (select connection_id from c43), true),
          'purged', 'purge deletes it');

-- Rights ------------------------------------------------------------------------------------
select ok(not has_function_privilege('authenticated', 'crm.consume_connect_state(uuid, uuid, uuid, text)', 'execute')
          and not has_function_privilege('authenticated', 'crm.connect_connection(uuid, text, text, text, jsonb)', 'execute')
          and not has_function_privilege('authenticated', 'crm.disconnect_connection(uuid, uuid, boolean)', 'execute')
          and not has_function_privilege('authenticated', 'crm.connect_status(uuid)', 'execute')
          and not has_function_privilege('authenticated', 'crm.lock_credentials(uuid)', 'execute')
          and not has_table_privilege('authenticated', 'crm.connect_states', 'select')
          and (select relrowsecurity from pg_class where oid = 'crm.connect_states'::regclass),
          'signed-in users reach none of it; the nonce table has RLS');

select * from finish();
rollback;
