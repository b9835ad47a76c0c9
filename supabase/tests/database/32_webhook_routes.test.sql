-- crm-webhook's routes (20261205020100): a Salesforce URL token or Pipedrive webhook user names
-- at most one connection through its hash; only hex SHA-256 values are stored there; the
-- columns are not readable by signed-in users.
begin;
select plan(7);

insert into crm.connections (id, account_id, provider, remote_account_id, webhook_token_hash, webhook_user_hash) values
  ('32000000-0000-4000-8000-0000000000c1', '32000000-0000-4000-8000-0000000000a1', 'salesforce', 'wr-1',
   encode(extensions.digest('token-1', 'sha256'), 'hex'), null),
  ('32000000-0000-4000-8000-0000000000c2', '32000000-0000-4000-8000-0000000000a2', 'pipedrive', 'wr-2',
   null, encode(extensions.digest('user-2', 'sha256'), 'hex'));

select is((select id from crm.connections
           where provider = 'salesforce' and webhook_token_hash = encode(extensions.digest('token-1', 'sha256'), 'hex')),
          '32000000-0000-4000-8000-0000000000c1'::uuid, 'a token hash finds its connection');
select is((select id from crm.connections
           where provider = 'pipedrive' and webhook_user_hash = encode(extensions.digest('user-2', 'sha256'), 'hex')),
          '32000000-0000-4000-8000-0000000000c2'::uuid, 'a user hash finds its connection');
select throws_ok($$insert into crm.connections (account_id, provider, remote_account_id, webhook_token_hash)
                   values (gen_random_uuid(), 'salesforce', 'wr-3', encode(extensions.digest('token-1', 'sha256'), 'hex'))$$,
                 '23505', null, 'a token names at most one connection');
select throws_ok($$insert into crm.connections (account_id, provider, remote_account_id, webhook_user_hash)
                   values (gen_random_uuid(), 'pipedrive', 'wr-4', encode(extensions.digest('user-2', 'sha256'), 'hex'))$$,
                 '23505', null, 'a webhook user names at most one connection');
select throws_ok($$update crm.connections set webhook_token_hash = 'token-1'
                   where id = '32000000-0000-4000-8000-0000000000c1'$$,
                 '23514', null, 'a plain token is refused: only hex SHA-256 is stored');
select throws_ok($$update crm.connections set webhook_user_hash = upper(webhook_user_hash)
                   where id = '32000000-0000-4000-8000-0000000000c2'$$,
                 '23514', null, 'the user hash is lower-case hex');
select ok(not has_column_privilege('authenticated', 'crm.connections', 'webhook_token_hash', 'select'),
          'signed-in users cannot read the route hashes');

select * from finish();
rollback;
