-- Job queue (issue 11): idempotent enqueue and merge, wakes (pg_net requests and worker rows),
-- claim order (priority, then least recently served account), heartbeats, continuations,
-- reruns, backoff, dead letters, deferral, replay, cancel, takeover after lease expiry with the
-- inbound stream fenced (CRM11 / CRM10), engine_status and job_status, purge. Two real sessions
-- claiming at once: tests/db/jobs.test.ts.
begin;
select plan(138);

-- The stack's own connections and jobs stay out of this transaction's claims and counts
-- (all rolled back).
delete from crm.jobs;
delete from crm.job_workers;
delete from crm.job_accounts;
update crm.connections set status = 'paused' where status = 'active';
update crm.engine_settings set max_workers = 0, job_lease = '2 minutes';
delete from vault.secrets where name in ('project_url', 'service_role_key');
select vault.create_secret('https://proj-ref.supabase.test', 'project_url');
select vault.create_secret('sk-test-service-role', 'service_role_key');

insert into crm.connections (id, account_id, provider, remote_account_id, status, settings) values
  ('20000000-0000-4000-8000-0000000000c1', '20000000-0000-4000-8000-0000000000a1', 'hubspot', 'jobs-test-1', 'active', default),
  ('20000000-0000-4000-8000-0000000000c2', '20000000-0000-4000-8000-0000000000a2', 'salesforce', 'jobs-test-2', 'active', default),
  ('20000000-0000-4000-8000-0000000000c3', '20000000-0000-4000-8000-0000000000a1', 'pipedrive', 'jobs-test-3', 'paused', default),
  ('20000000-0000-4000-8000-0000000000c4', '20000000-0000-4000-8000-0000000000a3', 'hubspot', 'jobs-test-4', 'active',
   '{"objects": ["contacts"]}');

create temporary table ids (name text primary key, id bigint);
create function pg_temp.id(p_name text) returns bigint language sql as $$
  select id from ids where name = p_name
$$;
create function pg_temp.job(p_name text) returns crm.jobs language sql as $$
  select * from crm.jobs where id = pg_temp.id(p_name)
$$;
create temporary table claims (n serial, who text, job_id bigint, kind text, connection_id uuid, account_id uuid,
                               object text, mode text, payload jsonb, lease_token bigint,
                               lease_expires_at timestamptz, attempts integer, claims integer);
-- Claims the next job for a named worker (optionally one connection's) and records it.
create function pg_temp.claim(p_who text, p_conn uuid default null) returns bigint language sql as $$
  insert into claims (who, job_id, kind, connection_id, account_id, object, mode, payload, lease_token,
                      lease_expires_at, attempts, claims)
  select p_who, c.* from crm.claim_job(pg_temp.id(p_who), null, p_conn) c;
  select job_id from claims where who = p_who order by n desc limit 1
$$;
create function pg_temp.token(p_job text) returns bigint language sql as $$
  select lease_token from claims where job_id = pg_temp.id(p_job) order by n desc limit 1
$$;
create function pg_temp.wake_requests() returns integer language sql as $$
  select count(*)::integer from net.http_request_queue q
  where q.url = 'https://proj-ref.supabase.test/functions/v1/crm-sync-bidirectional'
    and (convert_from(q.body, 'UTF8')::jsonb ->> 'worker_id')::bigint in (select w.id from crm.job_workers w)
$$;

-- Enqueue: idempotent, merging ------------------------------------------------------------------
insert into ids values ('d1', crm.enqueue_job('inbound', '20000000-0000-4000-8000-0000000000c1', 'contacts', 'delta',
                                              '{"trigger": "cron"}'));
select results_eq(
  $$select kind, object, mode, priority::integer, state, attempts, claims, max_attempts, payload, run_after = now()
    from crm.jobs where id = pg_temp.id('d1')$$,
  $$values ('inbound', 'contacts', 'delta', 30, 'queued', 0, 0, 8, '{"trigger": "cron"}'::jsonb, true)$$,
  'enqueue_job stores a queued inbound delta job in the delta lane (30), due now');
select is(crm.enqueue_job('inbound', '20000000-0000-4000-8000-0000000000c1', 'contacts', 'delta', '{"trigger": "cron"}'),
  pg_temp.id('d1'), 'enqueueing the same stream again returns the live job');
select is((select count(*)::integer from crm.jobs where connection_id = '20000000-0000-4000-8000-0000000000c1'), 1,
  'and adds no row');
select is(crm.enqueue_job('inbound', '20000000-0000-4000-8000-0000000000c1', 'contacts', 'full',
                          '{"trigger": "manual", "page_size": 50}'), pg_temp.id('d1'), 'a full request merges too');
select results_eq(
  $$select mode, priority::integer, payload from crm.jobs where id = pg_temp.id('d1')$$,
  $$values ('full', 30, '{"trigger": "manual", "page_size": 50}'::jsonb)$$,
  'queued merge: the mode upgrades to full, the priority stays the lower, payloads merge (newer keys win)');
select crm.enqueue_job('inbound', '20000000-0000-4000-8000-0000000000c1', 'contacts', 'drift');
select is((pg_temp.job('d1')).mode, 'full', 'a drift request does not downgrade a full walk');
select crm.enqueue_job('inbound', '20000000-0000-4000-8000-0000000000c1', 'contacts', 'delta', '{}', now() - interval '10 minutes');
select is((pg_temp.job('d1')).run_after, now() - interval '10 minutes', 'run_after moves to the earlier one');
select crm.enqueue_job('inbound', '20000000-0000-4000-8000-0000000000c1', 'contacts', 'delta', '{}', now() + interval '1 hour');
select is((pg_temp.job('d1')).run_after, now() - interval '10 minutes', 'and never later');
select is(crm._stronger_mode('delta', 'drift'), 'drift', 'drift covers delta');
select is(crm._stronger_mode('full', 'delta'), 'full', 'full covers delta');

insert into ids values
  ('o2', crm.enqueue_job('outbound', '20000000-0000-4000-8000-0000000000c2')),
  ('s2', crm.enqueue_job('setup', '20000000-0000-4000-8000-0000000000c2')),
  ('f2', crm.enqueue_job('inbound', '20000000-0000-4000-8000-0000000000c2', 'companies', 'full')),
  ('r2', crm.enqueue_job('inbound', '20000000-0000-4000-8000-0000000000c2', 'deals', 'drift'));
select results_eq(
  $$select kind, object, mode, priority::integer from crm.jobs
    where connection_id = '20000000-0000-4000-8000-0000000000c2' order by priority$$,
  $$values ('outbound', null::text, null::text, 10), ('setup', null, null, 20), ('inbound', 'companies', 'full', 40),
           ('inbound', 'deals', 'drift', 50)$$,
  'lanes: outbound 10, setup 20, full 40, drift 50; connection-wide kinds have no object');
select isnt(crm.enqueue_job('outbound', '20000000-0000-4000-8000-0000000000c2', 'contacts'), pg_temp.id('o2'),
  'an outbound job of one object is another stream than the connection-wide one');

select throws_ok($$select crm.enqueue_job('import', '20000000-0000-4000-8000-0000000000c1')$$, 'CRM01',
  'unknown job kind ''import''', 'unknown kind: CRM01');
select throws_ok($$select crm.enqueue_job('inbound', '20000000-0000-4000-8000-0000000000c1', null, 'delta')$$, 'CRM01', null,
  'an inbound job needs an object');
select throws_ok($$select crm.enqueue_job('inbound', '20000000-0000-4000-8000-0000000000c1', 'contacts', 'retry')$$, 'CRM01', null,
  'inbound modes are delta, full, drift');
select throws_ok($$select crm.enqueue_job('outbound', '20000000-0000-4000-8000-0000000000c1', null, 'delta')$$, 'CRM01', null,
  'other kinds have no mode');
select throws_ok($$select crm.enqueue_job('inbox', '20000000-0000-4000-8000-0000000000c1', 'contacts')$$, 'CRM01', null,
  'inbox jobs are connection-wide');
select throws_ok($$select crm.enqueue_job('setup', '20000000-0000-4000-8000-0000000000c1', null, null, '[]')$$, 'CRM01', null,
  'the payload is an object');
select throws_ok($$select crm.enqueue_job('setup', '20000000-0000-4000-8000-00000000dead')$$, 'CRM02', null,
  'unknown connection: CRM02');
select throws_ok($$select crm.enqueue_job('setup', '20000000-0000-4000-8000-0000000000c3')$$, 'CRM06', null,
  'paused connection: CRM06');
select is((select count(*)::integer from crm.job_workers), 0, 'max_workers 0: no worker is woken');

-- Wakes -------------------------------------------------------------------------------------------
-- Due now: d1, o2, s2, f2, r2 and the outbound contacts job: 6.
update crm.engine_settings set max_workers = 3;
select is(crm.wake_workers('test'), 3, 'a backlog of 6 wakes max_workers (3)');
select is(pg_temp.wake_requests(), 3, 'one pg_net request per woken worker');
select results_eq(
  $$select q.method::text, q.headers ->> 'Authorization', convert_from(q.body, 'UTF8')::jsonb
    from net.http_request_queue q join crm.job_workers w
      on (convert_from(q.body, 'UTF8')::jsonb ->> 'worker_id')::bigint = w.id
    order by w.id$$,
  $$select 'POST', 'Bearer sk-test-service-role', jsonb_build_object('worker', true, 'worker_id', w.id)
    from crm.job_workers w order by w.id$$,
  'each POSTs {"worker": true, "worker_id"} to crm-sync-bidirectional with the service key');
select ok((select bool_and(w.reason = 'test' and w.woken_at = now() and w.request_id is not null) from crm.job_workers w),
  'each wake is a job_workers row with its reason and pg_net request id');
select is(crm.wake_workers('test'), 0, 'no more while max_workers are live');
update crm.engine_settings set max_workers = 8;
select is(crm.wake_workers('test'), 3, 'a higher cap: the backlog less the idle live workers (6 - 3)');
select is(crm.wake_workers('test'), 0, 'every due job has an idle worker coming');
update crm.job_workers set woken_at = now() - interval '61 seconds' where id in (select min(id) from crm.job_workers);
select is(crm.wake_workers('test'), 1, 'a worker woken over a minute ago that never started no longer counts');
select crm.worker_finished(id, '{"jobs": 0}') from crm.job_workers;
select is((select live_workers from crm.engine_status()), 0, 'finished workers are not live');
select lives_ok($$select crm.enqueue_job('inbox', '20000000-0000-4000-8000-0000000000c2')$$, 'an enqueue');
select is((select count(*)::integer from crm.job_workers where finished_at is null), 7,
  'wakes a worker per due job (7), within max_workers');
select is(pg_temp.wake_requests(), 7 + 7, 'seven more requests');

-- Claim order -------------------------------------------------------------------------------------
delete from crm.jobs;
delete from crm.job_workers;
delete from ids;
insert into ids values
  ('later', crm.enqueue_job('inbound', '20000000-0000-4000-8000-0000000000c1', 'deals', 'delta', '{}',
                            now() + interval '1 hour', false)),
  ('f1', crm.enqueue_job('inbound', '20000000-0000-4000-8000-0000000000c2', 'deals', 'full', p_wake => false)),
  ('c1', crm.enqueue_job('inbound', '20000000-0000-4000-8000-0000000000c1', 'contacts', 'delta', p_wake => false)),
  ('c2', crm.enqueue_job('inbound', '20000000-0000-4000-8000-0000000000c2', 'contacts', 'delta', p_wake => false)),
  ('c4', crm.enqueue_job('inbound', '20000000-0000-4000-8000-0000000000c4', 'contacts', 'delta', p_wake => false)),
  ('o2', crm.enqueue_job('outbound', '20000000-0000-4000-8000-0000000000c2', p_wake => false));
insert into crm.jobs (kind, connection_id, object, mode, priority)
values ('inbound', '20000000-0000-4000-8000-0000000000c3', 'contacts', 'delta', 30);
-- Account a1 was served a minute ago, a2 ten minutes ago, a3 never.
update crm.job_accounts set last_served_at = now() - interval '1 minute'
where account_id = '20000000-0000-4000-8000-0000000000a1';
update crm.job_accounts set last_served_at = now() - interval '10 minutes'
where account_id = '20000000-0000-4000-8000-0000000000a2';
select is((select last_served_at from crm.job_accounts where account_id = '20000000-0000-4000-8000-0000000000a3'), null,
  'enqueue registers the account, not yet served');
insert into ids values ('w', crm.worker_started());
select is((select reason from crm.job_workers where id = pg_temp.id('w')), 'manual',
  'worker_started(null) registers a worker nobody woke');
select pg_temp.claim('w') from generate_series(1, 6);
select results_eq($$select job_id from claims order by n$$,
  $$values (pg_temp.id('o2')), (pg_temp.id('c4')), (pg_temp.id('c1')), (pg_temp.id('c2'))$$,
  'claim order: priority, then the least recently served account (never first; a claim serves its account)');
select is((select count(*)::integer from claims), 4,
  'jobs not yet due, jobs of paused connections, and a stream whose connection runs an earlier stream (deals after contacts) are not claimed');
select results_eq(
  $$select account_id, attempts, claims, lease_expires_at = now() + interval '2 minutes', payload from claims
    where job_id = pg_temp.id('c4')$$,
  $$values ('20000000-0000-4000-8000-0000000000a3'::uuid, 0, 1, true, '{}'::jsonb)$$,
  'a claim returns the account, attempts, claims and the lease (job_lease by default)');
select is((select count(distinct lease_token)::integer from claims), 4, 'each claim has its own fencing token');
select ok((select bool_and(state = 'running' and worker_id = pg_temp.id('w') and claimed_at = now() and heartbeat_at = now())
           from crm.jobs where id in (select job_id from claims)), 'claimed jobs are running under the worker');
select is((select last_served_at from crm.job_accounts where account_id = '20000000-0000-4000-8000-0000000000a3'), now(),
  'the account is marked served');
update crm.job_workers set last_seen_at = now() - interval '1 minute' where id = pg_temp.id('w');
select is((select count(*)::integer from crm.claim_job(pg_temp.id('w'))), 0, 'an empty claim returns no row');
select is((select last_seen_at from crm.job_workers where id = pg_temp.id('w')), now(), 'and still marks the worker seen');
select throws_ok($$select * from crm.claim_job(-1)$$, 'CRM01', null, 'an unknown worker: CRM01');
select throws_ok($$select * from crm.claim_job(pg_temp.id('w'), '0 seconds')$$, 'CRM01', null, 'a lease must be positive');
select is((select idle from crm._worker_counts()), 0, 'a worker holding a running job is not idle');

-- Heartbeat, continuation, rerun, done ----------------------------------------------------------
select is(crm.heartbeat_job(pg_temp.id('c1'), pg_temp.token('c1'), '5 minutes', '{"page": 3}'), now() + interval '5 minutes',
  'heartbeat extends the lease');
select is((pg_temp.job('c1')).progress, '{"page": 3}'::jsonb, 'and records progress');
select throws_ok(format('select crm.heartbeat_job(%s, %s)', pg_temp.id('c1'), pg_temp.token('c4')), 'CRM11', null,
  'another job''s token: CRM11');
select is(crm.finish_job(pg_temp.id('c1'), pg_temp.token('c1'), 'more', '{"cursor": "x"}'), 'queued',
  'finish more: a continuation');
select results_eq(
  $$select state, attempts, run_after = now(), progress, lease_expires_at from crm.jobs where id = pg_temp.id('c1')$$,
  $$values ('queued', 0, true, '{"page": 3, "cursor": "x"}'::jsonb, null::timestamptz)$$,
  'queued and due now, progress kept');
select throws_ok(format('select crm.heartbeat_job(%s, %s)', pg_temp.id('c1'), pg_temp.token('c1')), 'CRM11', null,
  'the old claim''s token no longer holds it');
select is(pg_temp.claim('w', '20000000-0000-4000-8000-0000000000c1'), pg_temp.id('c1'),
  'the continuation is claimed again (p_connection_id narrows claims)');
select ok((select claims = 2 and lease_token > (select min(lease_token) from claims c where c.job_id = pg_temp.id('c1'))
           from claims where job_id = pg_temp.id('c1') order by n desc limit 1), 'with a newer token, claims 2');
select is(crm.enqueue_job('inbound', '20000000-0000-4000-8000-0000000000c1', 'contacts', 'full', '{"trigger": "manual"}',
                          p_wake => false), pg_temp.id('c1'), 'an enqueue hits the running job');
select results_eq($$select state, mode, rerun_mode from crm.jobs where id = pg_temp.id('c1')$$,
  $$values ('running', 'delta', 'full')$$, 'it runs on as it is and is marked to run again in full');
select is(crm.finish_job(pg_temp.id('c1'), pg_temp.token('c1'), 'done'), 'queued', 'done with a rerun: queued again');
select results_eq($$select state, mode, priority::integer, rerun_mode, attempts, payload ->> 'trigger' from crm.jobs
                    where id = pg_temp.id('c1')$$,
  $$values ('queued', 'full', 40, null::text, 0, 'manual')$$, 'as the full walk asked for, in its lane');
select is(pg_temp.claim('w', '20000000-0000-4000-8000-0000000000c1'), pg_temp.id('c1'), 'claimed again');
select is(crm.finish_job(pg_temp.id('c1'), pg_temp.token('c1'), 'done', '{"records": 5}'), 'done', 'done');
select results_eq($$select state, finished_at = now(), progress ->> 'records' from crm.jobs where id = pg_temp.id('c1')$$,
  $$values ('done', true, '5')$$, 'finished, with its details');
select throws_ok(format('select crm.finish_job(%s, %s, %L)', pg_temp.id('c1'), pg_temp.token('c1'), 'done'), 'CRM11', null,
  'a finished job cannot be finished again');
select throws_ok(format('select crm.finish_job(%s, %s, %L)', pg_temp.id('c2'), pg_temp.token('c2'), 'partly'), 'CRM01', null,
  'outcomes are done and more');
select isnt(crm.enqueue_job('inbound', '20000000-0000-4000-8000-0000000000c1', 'contacts', 'delta',
                            p_run_after => now() + interval '1 hour', p_wake => false),
  pg_temp.id('c1'), 'after done the stream gets a new job');

-- Fail, backoff, dead -----------------------------------------------------------------------------
select is(crm.fail_job(pg_temp.id('c2'), pg_temp.token('c2'), 'HTTP 500'), 'queued', 'a failure is retried');
select results_eq($$select state, attempts, last_error, run_after between now() + interval '30 seconds'
                                                              and now() + interval '33 seconds'
                    from crm.jobs where id = pg_temp.id('c2')$$,
  $$values ('queued', 1, 'HTTP 500', true)$$, 'after 30 s (+ up to 10 % jitter), one attempt counted');
update crm.jobs set run_after = now() where id = pg_temp.id('c2');
select is(pg_temp.claim('w', '20000000-0000-4000-8000-0000000000c2'), pg_temp.id('c2'), 'due again: claimed');
select crm.fail_job(pg_temp.id('c2'), pg_temp.token('c2'), 'HTTP 502');
select ok((pg_temp.job('c2')).run_after between now() + interval '60 seconds' and now() + interval '66 seconds',
  'the second retry waits 60 s: backoff doubles');
update crm.jobs set run_after = now() where id = pg_temp.id('c2');
select pg_temp.claim('w', '20000000-0000-4000-8000-0000000000c2');
select crm.fail_job(pg_temp.id('c2'), pg_temp.token('c2'), 'HTTP 429', '5 minutes');
select results_eq($$select attempts, run_after from crm.jobs where id = pg_temp.id('c2')$$,
  $$values (3, now() + interval '5 minutes')$$, 'retry_after (a 429) replaces the backoff');
update crm.jobs set run_after = now() where id = pg_temp.id('c2');
select pg_temp.claim('w', '20000000-0000-4000-8000-0000000000c2');
select is(crm.fail_job(pg_temp.id('c2'), pg_temp.token('c2'), 'refresh token revoked', null, true), 'dead',
  'a permanent failure is a dead letter at once');
select results_eq($$select state, attempts, finished_at = now(), last_error from crm.jobs where id = pg_temp.id('c2')$$,
  $$values ('dead', 4, true, 'refresh token revoked')$$, 'with its error');
update crm.jobs set max_attempts = 2 where id = pg_temp.id('f1');
-- c2's contacts job is dead: its deals job (f1) is no longer held back.
select is(pg_temp.claim('w', '20000000-0000-4000-8000-0000000000c2'), pg_temp.id('f1'),
  'the deals walk runs once the contacts stream before it is no longer live');
select is(crm.fail_job(pg_temp.id('f1'), pg_temp.token('f1'), 'timeout'), 'queued', 'attempt 1 of 2');
update crm.jobs set run_after = now() where id = pg_temp.id('f1');
select pg_temp.claim('w', '20000000-0000-4000-8000-0000000000c2');
select is(crm.fail_job(pg_temp.id('f1'), pg_temp.token('f1'), 'timeout'), 'dead', 'out of attempts: dead');
select throws_ok(format('select crm.fail_job(%s, %s, %L)', pg_temp.id('f1'), pg_temp.token('f1'), 'x'), 'CRM11', null,
  'a dead job cannot be failed again');

-- Defer ---------------------------------------------------------------------------------------------
select is(crm.defer_job(pg_temp.id('c4'), pg_temp.token('c4'), now() + interval '10 minutes',
                        'rate budget paused: reserve reached'), 'queued', 'defer');
select results_eq($$select state, attempts, run_after, progress -> 'deferred' ->> 'reason' from crm.jobs
                    where id = pg_temp.id('c4')$$,
  $$values ('queued', 0, now() + interval '10 minutes', 'rate budget paused: reserve reached')$$,
  'queued until then, no attempt counted, the reason recorded');
select is((select deferred_reason from crm.job_status() where connection_id = '20000000-0000-4000-8000-0000000000c4'),
  'rate budget paused: reserve reached', 'job_status shows why it waits');

-- Replay ------------------------------------------------------------------------------------------
select is(crm.replay_job(pg_temp.id('c2')), pg_temp.id('c2'), 'replay_job queues a dead job again');
select results_eq($$select state, attempts, run_after = now(), finished_at from crm.jobs where id = pg_temp.id('c2')$$,
  $$values ('queued', 0, true, null::timestamptz)$$, 'attempts reset, due now');
select throws_ok(format('select crm.replay_job(%s)', pg_temp.id('c2')), 'CRM12', null, 'only dead jobs replay: CRM12');
select throws_ok($$select crm.replay_job(-1)$$, 'CRM12', null, 'an unknown job: CRM12');
insert into ids values ('n1', crm.enqueue_job('inbound', '20000000-0000-4000-8000-0000000000c2', 'deals', 'delta',
                                              p_wake => false));
select is(crm.replay_job(pg_temp.id('f1')), pg_temp.id('n1'), 'a dead job whose stream has a live job merges into it');
select results_eq($$select state, last_error ~ 'replayed into live job' from crm.jobs where id = pg_temp.id('f1')$$,
  $$values ('cancelled', true)$$, 'the dead row is cancelled with a pointer');
select is((pg_temp.job('n1')).mode, 'full', 'the live job takes the dead job''s full walk');
select is(crm.fail_job(pg_temp.id('o2'), pg_temp.token('o2'), 'bad', null, true), 'dead',
  'the outbound job claimed earlier fails permanently');
select is(pg_temp.claim('w', '20000000-0000-4000-8000-0000000000c2'), pg_temp.id('c2'), 'contacts claimed');
select crm.fail_job(pg_temp.id('c2'), pg_temp.token('c2'), 'bad', null, true);
select is(crm.replay_dead_jobs('20000000-0000-4000-8000-0000000000c2'), 2, 'replay_dead_jobs: the connection''s dead jobs');
select is((select count(*)::integer from crm.jobs where state = 'dead' and connection_id = '20000000-0000-4000-8000-0000000000c2'),
  0, 'none left dead');

-- Cancel ------------------------------------------------------------------------------------------
select is(pg_temp.claim('w', '20000000-0000-4000-8000-0000000000c2'), pg_temp.id('o2'), 'outbound running again');
select is(crm.cancel_jobs('20000000-0000-4000-8000-0000000000c2', 'outbound'), 1, 'cancel one kind of a connection');
select throws_ok(format('select crm.heartbeat_job(%s, %s)', pg_temp.id('o2'), pg_temp.token('o2')), 'CRM11', null,
  'the running worker''s next heartbeat: CRM11');
select is(crm.cancel_jobs('20000000-0000-4000-8000-0000000000c2'), 2, 'cancel the rest (the queued contacts and deals jobs)');
select results_eq($$select state, count(*)::integer from crm.jobs where connection_id = '20000000-0000-4000-8000-0000000000c2'
                    group by state$$, $$values ('cancelled', 4)$$, 'all cancelled (and the replayed row)');
select is(crm.cancel_jobs('20000000-0000-4000-8000-0000000000c2'), 0, 'nothing left to cancel');
select throws_ok($$select crm.cancel_jobs('20000000-0000-4000-8000-00000000dead')$$, 'CRM02', null, 'unknown connection: CRM02');
select throws_ok($$select crm.cancel_jobs(null)$$, 'CRM01', null, 'a connection is required');

-- Takeover after lease expiry ---------------------------------------------------------------------
select crm.cancel_jobs('20000000-0000-4000-8000-0000000000c1');
insert into ids values ('t1', crm.enqueue_job('inbound', '20000000-0000-4000-8000-0000000000c1', 'contacts', 'delta',
                                              p_wake => false)),
                       ('wa', crm.worker_started()), ('wb', crm.worker_started());
select is(pg_temp.claim('wa', '20000000-0000-4000-8000-0000000000c1'), pg_temp.id('t1'), 'worker A claims the stream job');
create temporary table run_a as
  select * from crm.begin_inbound_run('20000000-0000-4000-8000-0000000000c1', 'contacts', 'cron', 'delta');
create function pg_temp.page_a(p_id text) returns integer language sql as $$
  select created from crm.save_inbound_page((select run_id from run_a), (select lease_token from run_a),
    '20000000-0000-4000-8000-0000000000c1', 'contacts', 'delta',
    jsonb_build_array(jsonb_build_object('remote_id', p_id, 'remote_updated_at', '2026-01-01T00:00:00Z')),
    '2026-01-01T00:00:00Z', p_id, null)
$$;
select is(pg_temp.page_a('ta-1'), 1, 'and writes a page of its inbound run');
update crm.jobs set lease_expires_at = now() - interval '1 second' where id = pg_temp.id('t1');
select is((select queued from crm.engine_status()), 0, 'an expired running job is not queued');
select is(crm._due_jobs(), 1, 'but due: a worker is woken for it');
select is(pg_temp.claim('wb', '20000000-0000-4000-8000-0000000000c1'), pg_temp.id('t1'),
  'worker B takes the expired job over');
select results_eq(
  $$select b.attempts, b.claims, b.lease_token > (select lease_token from claims where who = 'wa' and job_id = b.job_id)
    from claims b where b.who = 'wb' and b.job_id = pg_temp.id('t1')$$,
  $$values (1, 2, true)$$, 'the lost claim counts as a failed attempt; newer token');
select results_eq($$select worker_id, last_error ~ '^lease expired' from crm.jobs where id = pg_temp.id('t1')$$,
  $$select pg_temp.id('wb'), true$$, 'held by B, saying why');
select results_eq($$select finished_at is not null, (stats ->> 'lost_job')::bigint from crm.job_workers
                    where id = pg_temp.id('wa')$$,
  $$select true, pg_temp.id('t1')$$, 'worker A is gone: it no longer holds a slot of max_workers');
select results_eq(
  $$select run_id, token from crm.inbound_leases
    where connection_id = '20000000-0000-4000-8000-0000000000c1' and object = 'contacts'$$,
  $$values (null::bigint, null::bigint)$$, 'the stream''s inbound lease is freed');
select results_eq($$select status, error ->> 'message' ~ '^lease lost' from crm.sync_log where id = (select run_id from run_a)$$,
  $$values ('failed', true)$$, 'A''s run is closed as lost');
select throws_ok(format('select crm.heartbeat_job(%s, %s)', pg_temp.id('t1'), pg_temp.token('t1') - 1), 'CRM11', null,
  'A''s heartbeat: CRM11');
select throws_ok(
  (select format('select crm.finish_job(%s, %s, %L)', job_id, lease_token, 'done') from claims where who = 'wa'),
  'CRM11', null, 'A''s finish: CRM11');
select throws_ok($$select pg_temp.page_a('ta-2')$$, 'CRM10', null, 'A''s late page write: CRM10');
select is((select count(*)::integer from crm.contacts where remote_id = 'ta-2'), 0, 'and it wrote nothing');
select isnt((select run_id from crm.begin_inbound_run('20000000-0000-4000-8000-0000000000c1', 'contacts', 'cron', 'delta')),
  null, 'B begins its run on the stream');
update crm.jobs set lease_expires_at = now() - interval '1 second', max_attempts = 2 where id = pg_temp.id('t1');
select is((select count(*)::integer from crm.claim_job(pg_temp.id('wa'), null, '20000000-0000-4000-8000-0000000000c1')), 0,
  'a lease that expires on the last attempt is not taken over');
select results_eq($$select state, attempts, last_error ~ 'last attempt' from crm.jobs where id = pg_temp.id('t1')$$,
  $$values ('dead', 2, true)$$, 'the job is a dead letter');
select is((select token from crm.inbound_leases
           where connection_id = '20000000-0000-4000-8000-0000000000c1' and object = 'contacts'), null,
  'and its stream is freed too');

-- engine_status, job_status ------------------------------------------------------------------------
delete from crm.jobs;
delete from crm.job_workers;
insert into ids values ('w2', crm.worker_started()), ('w3', crm.worker_started());
select crm.worker_finished(pg_temp.id('w3'), null);
select crm.enqueue_job('inbound', '20000000-0000-4000-8000-0000000000c1', 'contacts', 'delta', '{}',
                       now() - interval '5 minutes', false);
select crm.enqueue_job('inbound', '20000000-0000-4000-8000-0000000000c1', 'deals', 'delta', '{}',
                       now() + interval '5 minutes', false);
insert into ids values ('x2', crm.enqueue_job('inbound', '20000000-0000-4000-8000-0000000000c2', 'contacts', 'delta',
                                              p_wake => false));
select pg_temp.claim('w2', '20000000-0000-4000-8000-0000000000c2');
select crm.enqueue_job('inbound', '20000000-0000-4000-8000-0000000000c2', 'deals', 'delta', p_wake => false);
update crm.jobs set state = 'dead', finished_at = now(), last_error = 'HTTP 401'
where connection_id = '20000000-0000-4000-8000-0000000000c2' and object = 'deals';
insert into crm.jobs (kind, connection_id, object, mode, priority)
values ('inbound', '20000000-0000-4000-8000-0000000000c3', 'contacts', 'delta', 30);
select results_eq($$select * from crm.engine_status()$$,
  $$values (8, 1, 1, 1, 1, 1, 1, interval '5 minutes')$$,
  'engine_status: max_workers, live workers, due, waiting, running, dead, held (paused connection), oldest due age');
select results_eq(
  $$select connection_id, kind, object, queued, waiting, running, dead, oldest_due_age, last_error from crm.job_status()
    where connection_id in ('20000000-0000-4000-8000-0000000000c1', '20000000-0000-4000-8000-0000000000c2')
    order by connection_id, object$$,
  $$values ('20000000-0000-4000-8000-0000000000c1'::uuid, 'inbound', 'contacts', 1, 0, 0, 0, interval '5 minutes', null::text),
           ('20000000-0000-4000-8000-0000000000c1', 'inbound', 'deals', 0, 1, 0, 0, null, null),
           ('20000000-0000-4000-8000-0000000000c2', 'inbound', 'contacts', 0, 0, 1, 0, null, null),
           ('20000000-0000-4000-8000-0000000000c2', 'inbound', 'deals', 0, 0, 0, 1, null, 'HTTP 401')$$,
  'job_status per connection and stream');

-- enqueue_inbound ---------------------------------------------------------------------------------
delete from crm.jobs;
delete from crm.job_workers;
select is(crm.enqueue_inbound(array['contacts', 'deals'], 'delta'), 5,
  'one job per active connection and enabled object (c4 syncs contacts only; c3 is paused)');
select results_eq(
  $$select connection_id, object, mode, payload from crm.jobs order by id$$,
  $$values ('20000000-0000-4000-8000-0000000000c1'::uuid, 'contacts', 'delta', '{"trigger": "cron"}'::jsonb),
           ('20000000-0000-4000-8000-0000000000c2', 'contacts', 'delta', '{"trigger": "cron"}'),
           ('20000000-0000-4000-8000-0000000000c4', 'contacts', 'delta', '{"trigger": "cron"}'),
           ('20000000-0000-4000-8000-0000000000c1', 'deals', 'delta', '{"trigger": "cron"}'),
           ('20000000-0000-4000-8000-0000000000c2', 'deals', 'delta', '{"trigger": "cron"}')$$,
  'in dependency order per connection, triggered by cron');
select results_eq($$select reason, count(*)::integer from crm.job_workers group by reason$$,
  $$values ('cron', 5)$$, 'then one wake for the five due jobs');
select is(crm.enqueue_inbound(array['contacts', 'deals'], 'delta'), 5, 'again: the same five jobs');
select is((select count(*)::integer from crm.jobs), 5, 'merged, no new rows');
select is((select count(*)::integer from crm.job_workers), 5, 'and no more workers while they are live');
select is(crm.enqueue_inbound(array['owners'], 'full', '20000000-0000-4000-8000-0000000000c4', 'manual'), 0,
  'a connection that does not sync the object gets no job');
select throws_ok($$select crm.enqueue_inbound(array['contacts'], 'delta', '20000000-0000-4000-8000-0000000000c3')$$,
  'CRM06', null, 'a paused connection: CRM06');
select throws_ok($$select crm.enqueue_inbound(array['contacts'], 'delta', '20000000-0000-4000-8000-00000000dead')$$,
  'CRM02', null, 'unknown connection: CRM02');
select throws_ok($$select crm.enqueue_inbound(array['tickets'], 'delta')$$, 'CRM01', null, 'unknown object: CRM01');
select throws_ok($$select crm.enqueue_inbound(array['contacts'], 'retry')$$, 'CRM01', null, 'unknown mode: CRM01');

-- Without Vault secrets the job is stored; a direct wake fails loudly -------------------------------
delete from crm.job_workers;
delete from vault.secrets where name = 'service_role_key';
select lives_ok($$select crm.enqueue_job('setup', '20000000-0000-4000-8000-0000000000c1')$$,
  'enqueue without Vault secrets: stored, the wake skipped with a warning');
select is((select count(*)::integer from crm.jobs where kind = 'setup'), 1, 'the job is there');
select throws_ok($$select crm.wake_workers('cron')$$, 'CRM04', null, 'wake_workers (the cron job) fails loudly: CRM04');

-- Purge -------------------------------------------------------------------------------------------
update crm.jobs set state = 'done', finished_at = now() - interval '2 days'
where connection_id = '20000000-0000-4000-8000-0000000000c1' and object = 'contacts';
update crm.jobs set state = 'dead', finished_at = now() - interval '2 days'
where connection_id = '20000000-0000-4000-8000-0000000000c1' and object = 'deals';
insert into crm.job_workers (woken_at, finished_at, reason) values (now() - interval '2 days', now() - interval '2 days', 'old'),
                                                                  (now(), now(), 'recent');
select is(crm.purge_jobs(), '{"jobs": 1, "job_workers": 1, "job_accounts": 0}'::jsonb,
  'purge_jobs: finished jobs and workers older than a day');
select is((select count(*)::integer from crm.jobs where state = 'dead'), 1, 'dead jobs stay');

-- Privileges --------------------------------------------------------------------------------------
select function_privs_are('crm', 'claim_job', array['bigint', 'interval', 'uuid'], 'authenticated', array[]::text[],
  'authenticated cannot claim jobs');
select function_privs_are('crm', 'enqueue_job', array['text', 'uuid', 'text', 'text', 'jsonb', 'timestamp with time zone', 'boolean'],
  'service_role', array['EXECUTE'], 'service_role enqueues');
select table_privs_are('crm', 'jobs', 'authenticated', array['SELECT'], 'authenticated may read (its own) jobs');
select table_privs_are('crm', 'engine_settings', 'authenticated', array[]::text[], 'but not the engine settings');
set local role authenticated;
set local request.jwt.claims = '{"role": "authenticated", "app_metadata": {"account_id": "20000000-0000-4000-8000-0000000000a1"}}';
select is((select count(distinct connection_id)::integer from crm.jobs), 1, 'RLS: a user sees its account''s jobs only');
reset role;

select * from finish();
rollback;
