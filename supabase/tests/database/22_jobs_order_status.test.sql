-- Job claims in dependency order per connection (owners, companies, contacts, deals), the
-- scale-out columns of crm.sync_status(): the stream's job, dead jobs, the oldest due age, the
-- connection's rate budget and live workers, and the health alerts for dead jobs and a budget
-- paused at its reserve.
begin;
select plan(15);

delete from crm.jobs;
delete from crm.job_workers;
delete from crm.job_accounts;
update crm.connections set status = 'paused' where status = 'active';
update crm.engine_settings set max_workers = 0, job_lease = '2 minutes';

insert into crm.connections (id, account_id, provider, remote_account_id, status) values
  ('22000000-0000-4000-8000-0000000000c1', '22000000-0000-4000-8000-0000000000a1', 'hubspot', 'order-1', 'active'),
  ('22000000-0000-4000-8000-0000000000c2', '22000000-0000-4000-8000-0000000000a2', 'hubspot', 'order-2', 'active');

create temporary table w (id bigint);
insert into w select crm.worker_started(null);
create function pg_temp.claim() returns text language sql as $$
  select object from crm.claim_job((select id from w))
$$;

-- Deals and contacts first in the queue, companies last: companies still goes first.
select crm.enqueue_job('inbound', '22000000-0000-4000-8000-0000000000c1', 'deals', 'delta', p_wake := false);
select crm.enqueue_job('inbound', '22000000-0000-4000-8000-0000000000c1', 'contacts', 'delta', p_wake := false);
select crm.enqueue_job('inbound', '22000000-0000-4000-8000-0000000000c1', 'companies', 'delta', p_wake := false);
select is(pg_temp.claim(), 'companies', 'the earliest dependency is claimed first');
select is(pg_temp.claim(), null, 'contacts and deals wait while companies runs');

-- Another connection's streams are not held back by this one's.
select crm.enqueue_job('inbound', '22000000-0000-4000-8000-0000000000c2', 'deals', 'delta', p_wake := false);
select is(pg_temp.claim(), 'deals', 'a stream of another connection runs meanwhile');

select crm.finish_job(j.id, j.lease_token, 'done') from crm.jobs j
where j.connection_id = '22000000-0000-4000-8000-0000000000c1' and j.object = 'companies';
select is(pg_temp.claim(), 'contacts', 'companies done: contacts next');
select is(pg_temp.claim(), null, 'deals wait for contacts');

-- A dependency waiting out a backoff does not hold the others.
select crm.fail_job(j.id, j.lease_token, 'CRM down') from crm.jobs j
where j.connection_id = '22000000-0000-4000-8000-0000000000c1' and j.object = 'contacts';
select is(pg_temp.claim(), 'deals', 'a dependency in backoff does not block deals');

-- sync_status: the streams' jobs.
select is((select job_state from crm.sync_status()
           where connection_id = '22000000-0000-4000-8000-0000000000c1' and object = 'contacts'),
          'waiting', 'a job in backoff is waiting');
select is((select job_state from crm.sync_status()
           where connection_id = '22000000-0000-4000-8000-0000000000c1' and object = 'deals'),
          'running', 'a claimed job is running');
select crm.enqueue_job('inbound', '22000000-0000-4000-8000-0000000000c1', 'owners', 'full',
                       p_run_after := now() - interval '5 minutes', p_wake := false);
select ok((select job_state = 'queued' and job_mode = 'full' and oldest_due_age >= interval '5 minutes'
           from crm.sync_status()
           where connection_id = '22000000-0000-4000-8000-0000000000c1' and object = 'owners'),
          'a due job: queued, its mode and how long it has been due');
update crm.jobs set state = 'dead', finished_at = now(), lease_expires_at = null, rerun_mode = null
where connection_id = '22000000-0000-4000-8000-0000000000c2' and object = 'deals';
select is((select jobs_dead from crm.sync_status()
           where connection_id = '22000000-0000-4000-8000-0000000000c2' and object = 'deals'),
          1::bigint, 'dead jobs per stream');

-- The budget: used of the ceiling per class once the connection has taken grants.
select granted from crm.take_rate_grant('22000000-0000-4000-8000-0000000000c1', 'list', 3, 'delta');
select matches((select budget from crm.sync_status()
                where connection_id = '22000000-0000-4000-8000-0000000000c1' and object = 'contacts'),
               '^burst 3/\d+, daily 3/\d+$', 'the budget: used/ceiling per class');
select is((select budget from crm.sync_status()
           where connection_id = '22000000-0000-4000-8000-0000000000c2' and object = 'contacts'),
          null, 'no budget used yet: null');
select is((select distinct live_workers from crm.sync_status()), 1, 'live workers');

-- Health alerts: the dead job, and a Salesforce budget down to its reserve (10 % of 15,000).
insert into crm.connections (id, account_id, provider, remote_account_id, status) values
  ('22000000-0000-4000-8000-0000000000c3', '22000000-0000-4000-8000-0000000000a3', 'salesforce', 'order-3', 'active');
select crm.observe_rate_limits('22000000-0000-4000-8000-0000000000c3',
                               '[{"class": "daily", "used": 14000, "limit": 15000}]');
select granted from crm.take_rate_grant('22000000-0000-4000-8000-0000000000c3', 'query', 1, 'delta');
select results_eq(
  $$select connection_id::text, object, kind from crm.check_health()
    where connection_id in ('22000000-0000-4000-8000-0000000000c2', '22000000-0000-4000-8000-0000000000c3')
    order by connection_id$$,
  $$values ('22000000-0000-4000-8000-0000000000c2', 'deals', 'dead_jobs'),
           ('22000000-0000-4000-8000-0000000000c3', 'connection', 'budget_paused')$$,
  'check_health alerts on dead jobs and on a budget paused at its reserve');

-- An authenticated user sees its own connection's budget, and none of another account's.
set local role authenticated;
select set_config('request.jwt.claims',
  '{"role": "authenticated", "app_metadata": {"account_id": "22000000-0000-4000-8000-0000000000a1"}}', true);
select ok((select bool_and(budget is not null) from crm.sync_status()
           where connection_id = '22000000-0000-4000-8000-0000000000c1')
          and not exists (select 1 from crm.sync_status()
                          where connection_id = '22000000-0000-4000-8000-0000000000c2'),
          'a user sees its own budget only');
reset role;

select * from finish();
rollback;
