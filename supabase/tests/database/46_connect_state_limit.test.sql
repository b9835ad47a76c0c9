-- /start's throttle (20261205100100): at most 20 live connect nonces per user; expired ones do
-- not count; another user is not affected.
begin;
select plan(4);

select lives_ok($$
  select crm.create_connect_state(gen_random_uuid(), '46000000-0000-4000-8000-0000000000a1',
    '46000000-0000-4000-8000-0000000000b1', 'hubspot', null, null)
  from generate_series(1, 20)$$, 'twenty live nonces for one user');
select throws_ok($$
  select crm.create_connect_state(gen_random_uuid(), '46000000-0000-4000-8000-0000000000a1',
    '46000000-0000-4000-8000-0000000000b1', 'hubspot', null, null)$$,
  'CRM23', null, 'the twenty-first is refused');
select lives_ok($$
  select crm.create_connect_state(gen_random_uuid(), '46000000-0000-4000-8000-0000000000a1',
    '46000000-0000-4000-8000-0000000000b2', 'hubspot', null, null)$$,
  'another user of the account is not affected');
update crm.connect_states set created_at = now() - interval '20 minutes',
                              expires_at = now() - interval '1 second'
where nonce = (select nonce from crm.connect_states
               where user_id = '46000000-0000-4000-8000-0000000000b1' limit 1);
select lives_ok($$
  select crm.create_connect_state(gen_random_uuid(), '46000000-0000-4000-8000-0000000000a1',
    '46000000-0000-4000-8000-0000000000b1', 'hubspot', null, null)$$,
  'an expired nonce no longer counts');

select * from finish();
rollback;
