-- crm.register_webhooks (20261205030100): the admin verb that queues a connection's webhook
-- registration as a setup job. Service role only; validates its connection; merges into the
-- live setup job; marks webhook_setup queued (keeping the previous outcome); signed-in users
-- may read webhook_setup (never a secret) but not call the verb.
begin;
select plan(15);

insert into crm.connections (id, account_id, provider, remote_account_id, status, webhook_setup) values
  ('40000000-0000-4000-8000-0000000000c1', '40000000-0000-4000-8000-0000000000a1', 'pipedrive', 'rw-1', 'active',
   '{"state": "failed", "error": "timeout"}'),
  ('40000000-0000-4000-8000-0000000000c2', '40000000-0000-4000-8000-0000000000a1', 'hubspot', 'rw-2', 'paused', null);

select ok(not has_function_privilege('anon', 'crm.register_webhooks(uuid)', 'execute'),
          'anon cannot register webhooks');
select ok(not has_function_privilege('authenticated', 'crm.register_webhooks(uuid)', 'execute'),
          'signed-in users cannot register webhooks');
select ok(has_function_privilege('service_role', 'crm.register_webhooks(uuid)', 'execute'),
          'the service role can');
select ok(has_column_privilege('authenticated', 'crm.connections', 'webhook_setup', 'select'),
          'signed-in users can read how their webhooks are set up');

set local role authenticated;
select throws_ok($$select crm.register_webhooks('40000000-0000-4000-8000-0000000000c1')$$,
                 '42501', null, 'authenticated is refused at execution');
reset role;
set local role anon;
select throws_ok($$select crm.register_webhooks('40000000-0000-4000-8000-0000000000c1')$$,
                 '42501', null, 'anon is refused at execution');
reset role;

set local role service_role;
select throws_ok($$select crm.register_webhooks(null)$$, 'CRM01', null, 'a connection id is needed');
select throws_ok($$select crm.register_webhooks('40000000-0000-4000-8000-0000000000ff')$$,
                 'CRM02', null, 'an unknown connection is refused');
select throws_ok($$select crm.register_webhooks('40000000-0000-4000-8000-0000000000c2')$$,
                 'CRM06', null, 'a paused connection is refused');

create temporary table ids (n int, id bigint) on commit drop;
insert into ids select 1, crm.register_webhooks('40000000-0000-4000-8000-0000000000c1');
select is((select kind || ':' || state || ':' || (payload ->> 'webhooks') || ':' || priority
           from crm.jobs where id = (select id from ids where n = 1)),
          'setup:queued:true:20', 'one queued setup job with {webhooks: true} in lane 20');
select is((select webhook_setup ->> 'state' from crm.connections
           where id = '40000000-0000-4000-8000-0000000000c1'), 'queued', 'webhook_setup says queued');
select is((select webhook_setup -> 'last' ->> 'error' from crm.connections
           where id = '40000000-0000-4000-8000-0000000000c1'), 'timeout',
          'the previous outcome is kept while the job waits');
insert into ids select 2, crm.register_webhooks('40000000-0000-4000-8000-0000000000c1');
select is((select id from ids where n = 2), (select id from ids where n = 1),
          'a second call merges into the live job');
select is((select count(*)::int from crm.jobs
           where connection_id = '40000000-0000-4000-8000-0000000000c1' and kind = 'setup'), 1,
          'one setup job per connection');
select is((select webhook_setup -> 'last' ->> 'error' from crm.connections
           where id = '40000000-0000-4000-8000-0000000000c1'), 'timeout',
          'a repeated request does not nest the queued state');
reset role;

select * from finish();
rollback;
