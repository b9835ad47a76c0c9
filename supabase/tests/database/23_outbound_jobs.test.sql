-- Outbound jobs (issue 12): the outbox trigger enqueues and wakes (debounced per connection,
-- for app users and for the engine's own follow-ups), crm.enqueue_outbound, the crm-outbound
-- cron job and trigger_crm_sync('outbound'), crm.outbound_setup with its health alert and
-- last_error, and the outbound columns of crm.sync_status().
begin;
select plan(62);

-- The stack's own connections and jobs stay out of this transaction (all rolled back).
delete from crm.jobs;
delete from crm.job_workers;
delete from crm.outbound_wakes;
update crm.connections set status = 'paused' where status = 'active';
update crm.engine_settings set max_workers = 8;
delete from vault.secrets where name in ('project_url', 'service_role_key');
select vault.create_secret('https://proj-ref.supabase.test', 'project_url');
select vault.create_secret('sk-test-service-role', 'service_role_key');

insert into crm.connections (id, account_id, provider, remote_account_id, status) values
  ('23000000-0000-4000-8000-0000000000c1', '23000000-0000-4000-8000-0000000000a1', 'hubspot', 'ob-1', 'active'),
  ('23000000-0000-4000-8000-0000000000c2', '23000000-0000-4000-8000-0000000000a2', 'salesforce', 'ob-2', 'active'),
  ('23000000-0000-4000-8000-0000000000c3', '23000000-0000-4000-8000-0000000000a1', 'pipedrive', 'ob-3', 'paused');

create function pg_temp.live_jobs(p_conn uuid) returns integer language sql as $$
  select count(*)::integer from crm.jobs
  where kind = 'outbound' and connection_id = p_conn and state in ('queued', 'running')
$$;
create function pg_temp.wakes(p_conn uuid) returns bigint language sql as $$
  select coalesce((select wakes from crm.outbound_wakes where connection_id = p_conn), 0)
$$;
create function pg_temp.wake_requests() returns integer language sql as $$
  select count(*)::integer from net.http_request_queue q
  where (convert_from(q.body, 'UTF8')::jsonb ->> 'worker_id')::bigint
        in (select w.id from crm.job_workers w where w.reason = 'outbox')
$$;
-- Ends the live outbound jobs (as if a worker had finished them).
create function pg_temp.finish_all() returns void language sql as $$
  update crm.jobs set state = 'done', finished_at = now(), rerun_mode = null, lease_expires_at = null
  where kind = 'outbound' and state in ('queued', 'running')
$$;

-- The trigger ------------------------------------------------------------------------------------
insert into crm.contacts (id, connection_id, email) values
  ('23000000-0000-4000-8000-000000000001', '23000000-0000-4000-8000-0000000000c1', 'one@ob.test');
select results_eq(
  $$select kind, object, mode, priority::integer, state, payload, run_after <= now()
    from crm.jobs where connection_id = '23000000-0000-4000-8000-0000000000c1'$$,
  $$values ('outbound', null::text, null::text, 10, 'queued', '{"trigger": "app"}'::jsonb, true)$$,
  'an app insert queues the connection''s outbound job: object NULL, lane 10, due now, trigger app');
select is(pg_temp.wakes('23000000-0000-4000-8000-0000000000c1'), 1::bigint, 'and wakes workers once');
select is(pg_temp.wake_requests(), 1, 'one worker woken through pg_net (none was live)');

-- A burst of 100 single-row statements within the debounce window.
create temporary table burst (started_at timestamptz, finished_at timestamptz);
do $$
declare
  t0 timestamptz := clock_timestamp();
begin
  for i in 1 .. 100 loop
    update crm.contacts set first_name = 'n' || i where id = '23000000-0000-4000-8000-000000000001';
  end loop;
  insert into burst values (t0, clock_timestamp());
end
$$;
select cmp_ok(pg_temp.wakes('23000000-0000-4000-8000-0000000000c1'), '<=',
  (1 + floor(extract(epoch from (select finished_at - started_at from burst))))::bigint,
  'a burst of 100 single-row statements wakes at most once a second');
select is(pg_temp.live_jobs('23000000-0000-4000-8000-0000000000c1'), 1, 'and leaves one live job');
select is(pg_temp.wake_requests(), 1, 'no second worker while the woken one is on its way');
select is((select first_name from crm.contacts where id = '23000000-0000-4000-8000-000000000001'), 'n100',
  'the writes themselves went through');

-- After the window: the next write wakes again.
update crm.outbound_wakes set woken_at = woken_at - interval '2 seconds'
where connection_id = '23000000-0000-4000-8000-0000000000c1';
create temporary table before (wakes bigint);
insert into before select pg_temp.wakes('23000000-0000-4000-8000-0000000000c1');
update crm.contacts set last_name = 'After' where id = '23000000-0000-4000-8000-000000000001';
select is(pg_temp.wakes('23000000-0000-4000-8000-0000000000c1'), (select wakes + 1 from before),
  'a write after the one-second window wakes again');
update crm.contacts set last_name = 'Again' where id = '23000000-0000-4000-8000-000000000001';
select is(pg_temp.wakes('23000000-0000-4000-8000-0000000000c1'), (select wakes + 1 from before),
  'and the next one within the window does not');

-- Within the window, but the job has finished: a new job needs a worker now.
select pg_temp.finish_all();
update crm.contacts set job_title = 'CTO' where id = '23000000-0000-4000-8000-000000000001';
select is(pg_temp.live_jobs('23000000-0000-4000-8000-0000000000c1'), 1, 'a write after the job finished queues a new one');
select is(pg_temp.wakes('23000000-0000-4000-8000-0000000000c1'), (select wakes + 2 from before),
  'and wakes at once, window or not');

-- Entries that are not due, or not pending, enqueue nothing.
select pg_temp.finish_all();
update crm.outbox set next_attempt_at = now() + interval '1 hour'
where connection_id = '23000000-0000-4000-8000-0000000000c1';
select is(pg_temp.live_jobs('23000000-0000-4000-8000-0000000000c1'), 0, 'an entry backing off (due later) queues nothing');
update crm.outbox set next_attempt_at = now() where connection_id = '23000000-0000-4000-8000-0000000000c1';
select pg_temp.finish_all();
select is((select count(*)::integer from crm.claim_outbox('w-test', 10, '5 minutes', '23000000-0000-4000-8000-0000000000c1')), 1,
  'claim_outbox leases the entry');
select is(pg_temp.live_jobs('23000000-0000-4000-8000-0000000000c1'), 0, 'a claim (pending -> processing) queues nothing');

-- An inactive connection: its entries wait, no job.
insert into crm.contacts (connection_id, email) values ('23000000-0000-4000-8000-0000000000c3', 'paused@ob.test');
select results_eq(
  $$select (select count(*)::integer from crm.outbox where connection_id = '23000000-0000-4000-8000-0000000000c3'),
           pg_temp.live_jobs('23000000-0000-4000-8000-0000000000c3'),
           pg_temp.wakes('23000000-0000-4000-8000-0000000000c3')$$,
  $$values (1, 0, 0::bigint)$$,
  'a paused connection''s write is queued in the outbox, but no job and no wake');

-- One bulk statement over 1,000 rows of two connections: one firing, one job each.
set local crm.engine = 'on';
insert into crm.contacts (connection_id, remote_id, email)
select c.id, 'bulk-' || c.n || '-' || i, 'bulk' || i || '@ob.test'
from (values ('23000000-0000-4000-8000-0000000000c1'::uuid, 1), ('23000000-0000-4000-8000-0000000000c2'::uuid, 2)) c(id, n),
     generate_series(1, 500) i;
reset crm.engine;
select pg_temp.finish_all();
update crm.contacts set lead_status = 'OPEN' where remote_id like 'bulk-%';
select results_eq(
  $$select (select count(*)::integer from crm.outbox where record_id in (select id from crm.contacts where remote_id like 'bulk-%')),
           pg_temp.live_jobs('23000000-0000-4000-8000-0000000000c1'), pg_temp.live_jobs('23000000-0000-4000-8000-0000000000c2')$$,
  $$values (1000, 1, 1)$$,
  'a bulk update of 1,000 rows queues one outbound job per connection it touched');

-- The app as an authenticated user (PostgREST): the trigger still enqueues and wakes.
select pg_temp.finish_all();
delete from crm.outbound_wakes;
set local role authenticated;
set local request.jwt.claims to
  '{"role": "authenticated", "app_metadata": {"account_id": "23000000-0000-4000-8000-0000000000a1"}}';
insert into crm.companies (id, connection_id, name) values
  ('23000000-0000-4000-8000-0000000000e1', '23000000-0000-4000-8000-0000000000c1', 'Acme');
insert into crm.contacts (id, connection_id, email, company_id) values
  ('23000000-0000-4000-8000-000000000002', '23000000-0000-4000-8000-0000000000c1', 'two@ob.test',
   '23000000-0000-4000-8000-0000000000e1');
select throws_ok($$select * from crm.outbound_wakes$$, '42501', null, 'the app cannot read the wake table');
reset role;
select results_eq(
  $$select state, payload, pg_temp.wakes('23000000-0000-4000-8000-0000000000c1')
    from crm.jobs where kind = 'outbound' and connection_id = '23000000-0000-4000-8000-0000000000c1'
      and state in ('queued', 'running')$$,
  $$values ('queued', '{"trigger": "app"}'::jsonb, 1::bigint)$$,
  'an authenticated app write queues the outbound job and wakes (security definer trigger)');

-- The engine as the writer: complete_outbox re-queues relation follow-ups and changes made in
-- flight. A worker holds the outbound job meanwhile.
create temporary table w as select crm.worker_started() as id;
create temporary table held as
  select * from crm.claim_job((select id from w), null, '23000000-0000-4000-8000-0000000000c1');
select is((select kind from held), 'outbound', 'a worker claims the outbound job');
create temporary table pushed as
  select * from crm.claim_outbox('w-test', 10, '5 minutes', '23000000-0000-4000-8000-0000000000c1', 'companies');
select is((select count(*)::integer from pushed), 1, 'it leases the new company');
select is((select rerun_mode from crm.jobs where id = (select job_id from held)), null, 'no rerun asked for yet');
select results_eq(
  $$select completed, released from crm.complete_outbox(
      (select jsonb_agg(jsonb_build_object('id', p.id, 'lease', p.lease, 'remote_id', 'hs-co-1')) from pushed p))$$,
  $$values (1, 0)$$,
  'the company''s create completes');
select results_eq(
  $$select c.company_remote_id, o.state, o.changed_columns @> array['company_remote_id']
    from crm.contacts c join crm.outbox o on o.record_id = c.id
    where c.id = '23000000-0000-4000-8000-000000000002'$$,
  $$values ('hs-co-1', 'pending', true)$$,
  'the contact pointing at it gets the remote id queued (the engine''s follow-up)');
select is((select rerun_mode from crm.jobs where id = (select job_id from held)), 'again',
  'the follow-up marks the running outbound job to run again');
select is(crm.finish_job((select job_id from held), (select lease_token from held), 'done'), 'queued',
  'so the job is queued again when the worker finishes it');

-- enqueue_outbound ---------------------------------------------------------------------------------
update crm.jobs set state = 'cancelled', finished_at = now(), rerun_mode = null, lease_expires_at = null
where state in ('queued', 'running');
update crm.outbox set state = 'pending', lease = null, locked_until = null, locked_by = null,
                      next_attempt_at = now() + interval '1 hour'
where connection_id = '23000000-0000-4000-8000-0000000000c2';
select pg_temp.finish_all();
select is(crm.enqueue_outbound(p_trigger => 'cron', p_wake => false), 1,
  'enqueue_outbound: one job per active connection with due entries (c2''s entries back off)');
select results_eq(
  $$select connection_id::text, payload from crm.jobs where kind = 'outbound' and state = 'queued'$$,
  $$values ('23000000-0000-4000-8000-0000000000c1', '{"trigger": "cron"}'::jsonb)$$,
  'the job of c1, with its trigger');
update crm.outbox set state = 'processing', lease = gen_random_uuid(), locked_until = now() - interval '1 minute',
                      locked_by = 'dead-worker'
where id = (select min(id) from crm.outbox where connection_id = '23000000-0000-4000-8000-0000000000c2');
select is(crm.enqueue_outbound(p_trigger => 'cron', p_wake => false), 2,
  'an expired lease is due too (c2), and c1''s job merges');
select is((select count(*)::integer from crm.jobs where kind = 'outbound' and state = 'queued'), 2, 'two live jobs, no duplicate');
select is(crm.enqueue_outbound('23000000-0000-4000-8000-0000000000c2', 'manual', false), 1, 'one connection only');
select throws_ok($$select crm.enqueue_outbound('23000000-0000-4000-8000-0000000000c3')$$, 'CRM06', null,
  'a paused connection: CRM06');
select throws_ok($$select crm.enqueue_outbound('23000000-0000-4000-8000-00000000dead')$$, 'CRM02', null,
  'an unknown connection: CRM02');
select throws_ok($$select crm.enqueue_outbound(p_trigger => 'webhook')$$, 'CRM01', null, 'an unknown trigger: CRM01');
update crm.outbox set state = 'pending', lease = null, locked_until = null, locked_by = null,
                      next_attempt_at = now() + interval '1 hour';
select is(crm.enqueue_outbound(p_trigger => 'cron'), 0, 'nothing due: no job');

-- Cron and trigger_crm_sync -------------------------------------------------------------------------
update crm.outbox set next_attempt_at = now()
where connection_id in ('23000000-0000-4000-8000-0000000000c1', '23000000-0000-4000-8000-0000000000c2');
select pg_temp.finish_all();
select is((select command from cron.job where jobname = 'crm-outbound'),
  'select crm.enqueue_outbound(p_trigger => ''cron'')', 'crm-outbound enqueues (no HTTP call)');
create temporary table cron_result (n integer);
do $$
declare
  v integer;
begin
  execute (select command from cron.job where jobname = 'crm-outbound') into v;
  insert into cron_result values (v);
end
$$;
select is((select n from cron_result), 2, 'the cron command queues one job per connection with due entries');
select pg_temp.finish_all();
select is(public.trigger_crm_sync('outbound', '23000000-0000-4000-8000-0000000000c1'), 1::bigint,
  'trigger_crm_sync(outbound, connection) returns the number of jobs (1)');
select is((select payload from crm.jobs where kind = 'outbound' and state = 'queued'), '{"trigger": "manual"}'::jsonb,
  'a manual job');
select is(public.trigger_crm_sync('outbound'), 2::bigint, 'trigger_crm_sync(outbound): every connection with due entries');
select is(public.trigger_crm_sync('all', '23000000-0000-4000-8000-0000000000c2'), 5::bigint,
  'all: four inbound jobs and the push');
select throws_ok($$select public.trigger_crm_sync('outbound', '23000000-0000-4000-8000-0000000000c3')$$, 'CRM06', null,
  'trigger_crm_sync(outbound) of a paused connection: CRM06');

-- Outbound set-up -------------------------------------------------------------------------------------
select is(crm.outbound_ready('23000000-0000-4000-8000-0000000000c1', 'companies'), null, 'never checked: NULL');
select is((crm.record_outbound_setup('23000000-0000-4000-8000-0000000000c1', 'contacts', 'crm_sync_id', true)).ok, true,
  'a set-up that worked');
select is(crm.outbound_ready('23000000-0000-4000-8000-0000000000c1', 'contacts'), true, 'ready');
select crm.record_outbound_setup('23000000-0000-4000-8000-0000000000c1', 'companies', 'crm_sync_id', false,
  'MISSING_SCOPES: crm.schemas.companies.write');
select is(crm.outbound_ready('23000000-0000-4000-8000-0000000000c1', 'companies'), false, 'failed: not ready');
select is((select last_error from crm.connections where id = '23000000-0000-4000-8000-0000000000c1'),
  'outbound setup failed, creates are held: companies.crm_sync_id: MISSING_SCOPES: crm.schemas.companies.write',
  'the connection''s last_error says so');
select crm.close_sync_run(crm.open_sync_run('23000000-0000-4000-8000-0000000000c1', 'contacts', 'inbound', 'cron', 'delta'),
                          'success');
select alike((select last_error from crm.connections where id = '23000000-0000-4000-8000-0000000000c1'),
  'outbound setup failed%', 'a successful run does not clear it');
select results_eq(
  $$select object, outbound_setup_error from crm.sync_status()
    where connection_id = '23000000-0000-4000-8000-0000000000c1' order by object$$,
  $$values ('companies', 'companies.crm_sync_id: MISSING_SCOPES: crm.schemas.companies.write'),
           ('contacts', null), ('deals', null), ('outbound', 'companies.crm_sync_id: MISSING_SCOPES: crm.schemas.companies.write'),
           ('owners', null)$$,
  'sync_status shows it on the companies row and the outbound row');
select results_eq(
  $$select object, kind, message, details -> 0 ->> 'remote_type' from crm.check_health()
    where connection_id = '23000000-0000-4000-8000-0000000000c1' and kind = 'outbound_setup'$$,
  $$values ('outbound', 'outbound_setup',
            'outbound setup failed, creates are held: companies.crm_sync_id: MISSING_SCOPES: crm.schemas.companies.write',
            'companies')$$,
  'check_health raises an outbound_setup alert with the error');
select crm.record_outbound_setup('23000000-0000-4000-8000-0000000000c1', 'companies', 'crm_sync_id', true);
select results_eq(
  $$select (select last_error from crm.connections where id = '23000000-0000-4000-8000-0000000000c1'),
           crm.outbound_ready('23000000-0000-4000-8000-0000000000c1', 'companies'),
           (select error from crm.outbound_setup where connection_id = '23000000-0000-4000-8000-0000000000c1'
              and remote_type = 'companies')$$,
  $$values (null::text, true, null::text)$$,
  'once set up: ready, no error, last_error cleared');
select is((select count(*)::integer from crm.check_health()
           where connection_id = '23000000-0000-4000-8000-0000000000c1' and kind = 'outbound_setup'), 0,
  'and the alert is resolved');
select is((crm.record_outbound_setup('23000000-0000-4000-8000-0000000000c2', 'Lead', 'Crm_Sync_Id__c', false)).error,
  'the external id property could not be set up', 'a failure without a message gets one');
select throws_ok($$select crm.record_outbound_setup('23000000-0000-4000-8000-0000000000c1', 'deals', 'crm_sync_id', null)$$,
  'CRM01', null, 'ok is required: CRM01');
select throws_ok($$select crm.record_outbound_setup('23000000-0000-4000-8000-00000000dead', 'deals', 'crm_sync_id', true)$$,
  'CRM02', null, 'unknown connection: CRM02');
set local role authenticated;
set local request.jwt.claims to
  '{"role": "authenticated", "app_metadata": {"account_id": "23000000-0000-4000-8000-0000000000a1"}}';
select results_eq($$select remote_type from crm.outbound_setup order by remote_type$$,
  $$values ('companies'), ('contacts')$$, 'a user sees its own connections'' set-ups only (RLS)');
select throws_ok($$select crm.record_outbound_setup('23000000-0000-4000-8000-0000000000c1', 'deals', 'x', true)$$,
  '42501', null, 'and cannot record one');
reset role;

-- sync_status: outbound columns -----------------------------------------------------------------------
-- (positions 28-33: after the job columns; 20261205050100 adds the inbox columns after them)
select is(
  (select (proargnames)[28:33] from pg_proc where oid = 'crm.sync_status'::regproc),
  array['outbox_pending', 'outbox_dead', 'outbox_oldest_pending_age', 'last_outbound_at', 'last_outbound_status',
        'outbound_setup_error'],
  'the outbound columns follow the job columns');
select is(
  (select (proargnames)[1:27] from pg_proc where oid = 'crm.sync_status'::regproc),
  (select proargnames from pg_proc where oid = 'crm._sync_status_jobs'::regproc),
  'the earlier columns keep their names and order');
-- c2: two due entries, one backing off, one processing, one dead, the oldest queued 10 minutes ago.
delete from crm.outbox where connection_id = '23000000-0000-4000-8000-0000000000c2';
set local crm.engine = 'on';
insert into crm.outbox (connection_id, object, record_id, op, changed_columns, state, next_attempt_at, lease, locked_until,
                        dead_at, created_at)
values
  ('23000000-0000-4000-8000-0000000000c2', 'contacts', gen_random_uuid(), 'update', '{email}', 'pending', now(), null, null, null,
   now() - interval '10 minutes'),
  ('23000000-0000-4000-8000-0000000000c2', 'contacts', gen_random_uuid(), 'update', '{email}', 'pending', now() + interval '1 hour',
   null, null, null, now() - interval '2 minutes'),
  ('23000000-0000-4000-8000-0000000000c2', 'contacts', gen_random_uuid(), 'update', '{email}', 'processing', now(), gen_random_uuid(),
   now() + interval '5 minutes', null, now() - interval '1 minute'),
  ('23000000-0000-4000-8000-0000000000c2', 'contacts', gen_random_uuid(), 'update', '{email}', 'dead', now(), null, null, now(),
   now() - interval '1 day'),
  ('23000000-0000-4000-8000-0000000000c2', 'deals', gen_random_uuid(), 'insert', '{name}', 'pending', now(), null, null, null,
   now() - interval '3 minutes');
reset crm.engine;
-- Runs: an inbound contacts run, then an outbound push over every object, and one of deals.
insert into crm.sync_log (connection_id, object, direction, trigger, status, started_at, finished_at) values
  ('23000000-0000-4000-8000-0000000000c2', 'contacts', 'inbound', 'cron', 'success', now() - interval '30 minutes',
   now() - interval '29 minutes'),
  ('23000000-0000-4000-8000-0000000000c2', null, 'outbound', 'app', 'partial', now() - interval '5 minutes',
   now() - interval '4 minutes'),
  ('23000000-0000-4000-8000-0000000000c2', 'deals', 'outbound', 'cron', 'failed', now() - interval '3 minutes',
   now() - interval '2 minutes');
select results_eq(
  $$select object, pending_outbound, outbox_pending, outbox_dead, outbox_oldest_pending_age, last_outbound_at,
           last_outbound_status, last_success_at
    from crm.sync_status() where connection_id = '23000000-0000-4000-8000-0000000000c2'$$,
  $$values ('contacts', 3::bigint, 2::bigint, 1::bigint, interval '10 minutes', now() - interval '4 minutes', 'partial',
            now() - interval '29 minutes'),
           ('companies', 0, 0, 0, null, now() - interval '4 minutes', 'partial', null),
           ('deals', 1, 1, 0, interval '3 minutes', now() - interval '2 minutes', 'failed', null),
           ('owners', 0, 0, 0, null, null, null, null),
           ('outbound', 4, 3, 1, interval '10 minutes', now() - interval '2 minutes', 'failed',
            now() - interval '4 minutes')$$,
  'per object and for the connection: outbox pending, dead, oldest age, the last outbound run; an outbound run is never an object''s last (inbound) success');

-- sync_log: an outbound run's life --------------------------------------------------------------------
create temporary table run as
  select crm.open_sync_run('23000000-0000-4000-8000-0000000000c2', null, 'outbound', 'app') as id;
select crm.record_sync_progress((select id from run), '{"processed": 3, "created": 1, "updated": 1, "api_calls": 2}');
select crm.close_sync_run((select id from run), 'partial', '{"failed": 1, "processed": 1}',
                          '{"message": "1 dead letter: REQUIRED_FIELD_MISSING"}');
select results_eq(
  $$select direction, object, mode, trigger, status, processed, created, updated, failed, api_calls
    from crm.sync_log where id = (select id from run)$$,
  $$values ('outbound', null::text, null::text, 'app', 'partial', 4, 1, 1, 1, 2)$$,
  'an outbound run (object NULL, no mode, trigger app) records progress and closes with its counts');
select is((select last_synced_at from crm.connections where id = '23000000-0000-4000-8000-0000000000c2'), null,
  'an outbound run does not stamp last_synced_at (an inbound notion)');
select is((select last_outbound_status from crm.sync_status()
           where connection_id = '23000000-0000-4000-8000-0000000000c2' and object = 'outbound'), 'partial',
  'sync_status shows the newest outbound run');

select * from finish();
rollback;
