-- Disconnect and webhooks (20261205080100): a disconnect clears the webhook lookup hashes (the
-- old Salesforce listener token and Pipedrive basic-auth user route to nothing) and records
-- webhook_setup 'removed'; another account's disconnect changes nothing; the state is allowed
-- by the check constraint and nothing else is; rights unchanged (service_role only).
begin;
select plan(7);

create temp table c44 as
select * from crm.connect_connection('44000000-0000-4000-8000-0000000000a1', 'salesforce', '00D440000000001',
                                     'Org 44');
update crm.connections
set credentials = convert_to('v1:a:b', 'UTF8'),
    webhook_token_hash = repeat('a', 64), webhook_user_hash = repeat('b', 64),
    webhook_setup = '{"state": "manual_step", "endpoint": "https://x/salesforce/abcd…"}'
where id = (select connection_id from c44);

select is(crm.disconnect_connection('44000000-0000-4000-8000-0000000000a2', (select connection_id from c44)), null,
          'another account''s disconnect finds nothing');
select is((select webhook_token_hash from crm.connections where id = (select connection_id from c44)), repeat('a', 64),
          'and leaves the routes alone');
select is(crm.disconnect_connection('44000000-0000-4000-8000-0000000000a1', (select connection_id from c44)),
          'disconnected', 'the owner disconnects');
select is((select row(webhook_token_hash, webhook_user_hash, credentials)::text from crm.connections
           where id = (select connection_id from c44)), '(,,)',
          'the lookup hashes go with the credentials');
select is((select webhook_setup ->> 'state' || ':' || (webhook_setup ->> 'provider') from crm.connections
           where id = (select connection_id from c44)), 'removed:salesforce',
          'webhook_setup says removed');
select throws_ok($$update crm.connections set webhook_setup = '{"state": "gone"}'
                   where id = (select connection_id from c44)$$,
                 '23514', null, 'webhook_setup states stay a closed list');
select ok(not has_function_privilege('authenticated', 'crm.disconnect_connection(uuid, uuid, boolean)', 'execute')
          and not has_function_privilege('anon', 'crm.disconnect_connection(uuid, uuid, boolean)', 'execute'),
          'users and anon cannot call disconnect_connection');

select * from finish();
rollback;
