-- pg_cron jobs, trigger_crm_sync (the HTTP request it queues), sync_status, pause/resume,
-- requeue, health check and cleanup.
begin;
select plan(55);

-- Known Vault secrets for this transaction (rolled back): the trailing slash must not double.
delete from vault.secrets where name in ('project_url', 'service_role_key');
select vault.create_secret('https://proj-ref.supabase.test/', 'project_url');
select vault.create_secret('sk-test-service-role', 'service_role_key');

create function pg_temp.request(p_id bigint)
  returns table (method text, url text, auth text, body jsonb, timeout integer)
  language sql as $$
  select q.method::text, q.url, q.headers ->> 'Authorization', convert_from(q.body, 'UTF8')::jsonb, q.timeout_milliseconds
  from net.http_request_queue q where q.id = p_id
$$;
create function pg_temp.run_job(p_name text) returns bigint language plpgsql as $$
declare
  v bigint;
begin
  execute (select command from cron.job where jobname = p_name) into v;
  return v;
end
$$;

-- Cron jobs -------------------------------------------------------------------------------------
-- Every job is SQL: the inbound ones enqueue (20261204020200), so does crm-outbound
-- (20261205010200); workers are woken through pg_net by crm.wake_workers.
select results_eq(
  $$select jobname::text collate "default", schedule from cron.job where jobname like 'crm-%' and jobname <> 'crm-platform-ping'
    order by jobname$$,
  $$values ('crm-cleanup', '23 3 * * *'), ('crm-drift-check', '7 * * * *'), ('crm-health-check', '*/5 * * * *'),
           ('crm-inbound-companies-deals', '*/15 * * * *'), ('crm-inbound-contacts', '*/5 * * * *'),
           ('crm-inbound-owners', '0 6 * * *'), ('crm-inbox', '* * * * *'), ('crm-outbound', '*/10 * * * *'), ('crm-retry-failures', '37 * * * *'),
           ('crm-workers', '* * * * *')$$,
  'the ten crm jobs with their schedules');
select is((select count(*)::integer from cron.job where jobname like 'crm-%' and command like '%net.http_post%'), 0,
  'no crm job calls a function itself (crm-outbound enqueues now)');
select is((select count(*)::integer from cron.job where command like '%sk-test-service-role%'
           or command like '%eyJ%'), 0, 'no key is stored in a job');
select results_eq(
  $$select jobname::text collate "default", command from cron.job
    where jobname like 'crm-%' and jobname <> 'crm-platform-ping' order by jobname$$,
  $$values ('crm-cleanup', 'select crm.cleanup() || crm.purge_jobs()'),
           ('crm-drift-check', 'select crm.enqueue_inbound(array[''contacts'', ''companies'', ''deals''], ''drift'')'),
           ('crm-health-check', 'select count(*) from crm.check_health()'),
           ('crm-inbound-companies-deals', 'select crm.enqueue_inbound(array[''companies'', ''deals''], ''delta'')'),
           ('crm-inbound-contacts', 'select crm.enqueue_inbound(array[''contacts''], ''delta'')'),
           ('crm-inbound-owners', 'select crm.enqueue_inbound(array[''owners''], ''full'')'),
           ('crm-inbox', 'select crm.enqueue_inbox(p_trigger => ''cron'')'),
           ('crm-outbound', 'select crm.enqueue_outbound(p_trigger => ''cron'')'),
           ('crm-retry-failures', 'select crm.enqueue_inbound(array[''owners'', ''companies'', ''contacts'', ''deals''], ''delta'')'),
           ('crm-workers', 'select crm.wake_workers(''cron'')')$$,
  'the jobs are SQL: the inbound and outbound ones enqueue, crm-workers wakes workers');
select is(pg_temp.run_job('crm-inbound-contacts'),
  (select count(*) from crm.connections
   where status = 'active' and (settings -> 'objects' is null or settings -> 'objects' ? 'contacts')),
  'the contacts job enqueues one job per active connection syncing contacts');
select is((select count(*)::integer from crm.connections c
           where c.status = 'active' and (c.settings -> 'objects' is null or c.settings -> 'objects' ? 'contacts')
             and not exists (select 1 from crm.jobs j where j.connection_id = c.id and j.kind = 'inbound'
                             and j.object = 'contacts' and j.mode = 'delta' and j.state in ('queued', 'running'))),
  0, 'each of them has a live contacts delta job');
select is(pg_temp.run_job('crm-outbound'),
  (select count(*) from crm.connections c
   where c.status = 'active'
     and exists (select 1 from crm.outbox o where o.connection_id = c.id
                 and ((o.state = 'pending' and o.next_attempt_at <= now())
                      or (o.state = 'processing' and o.locked_until < now())))),
  'the outbound job enqueues one job per active connection with due outbox entries (23_outbound_jobs has more)');
select lives_ok((select command from cron.job where jobname = 'crm-workers'), 'the workers job runs');
select lives_ok((select command from cron.job where jobname = 'crm-health-check'), 'the health check job runs');
select lives_ok((select command from cron.job where jobname = 'crm-cleanup'), 'the cleanup job runs');
select lives_ok(
  $$select cron.schedule('crm-outbound', '*/10 * * * *', (select command from cron.job where jobname = 'crm-outbound'))$$,
  're-registering a job by name');
select is((select count(*)::integer from cron.job where jobname = 'crm-outbound'), 1,
  're-registering does not duplicate');

-- trigger_crm_sync ----------------------------------------------------------------------------------
select is(public.trigger_crm_sync('outbound'),
  (select count(*) from crm.connections c
   where c.status = 'active'
     and exists (select 1 from crm.outbox o where o.connection_id = c.id
                 and ((o.state = 'pending' and o.next_attempt_at <= now())
                      or (o.state = 'processing' and o.locked_until < now())))),
  'trigger_crm_sync(outbound) returns the number of outbound jobs it queued or merged (23_outbound_jobs has more)');
select throws_ok($$select public.trigger_crm_sync('tickets')$$, 'CRM01',
  'unknown sync kind ''tickets''', 'unknown kind: CRM01 with a clear message');
select throws_ok($$select public.trigger_crm_sync(null)$$, 'CRM01', null, 'NULL kind: CRM01');
select throws_ok($$select public.trigger_crm_sync('Deals')$$, 'CRM01', null, 'kinds are exact');

insert into crm.connections (id, account_id, provider, remote_account_id, created_at) values
  ('07000000-0000-4000-8000-0000000000c1', '07000000-0000-4000-8000-0000000000a1', 'hubspot', 'admin-test-1', now() - interval '1 day'),
  ('07000000-0000-4000-8000-0000000000c2', '07000000-0000-4000-8000-0000000000a1', 'salesforce', 'admin-test-2', now() - interval '1 day');
select is(public.trigger_crm_sync('deals', '07000000-0000-4000-8000-0000000000c1'), 1::bigint,
  'trigger_crm_sync(deals, connection) enqueues one job and returns the count');
select results_eq(
  $$select kind, object, mode, payload from crm.jobs where connection_id = '07000000-0000-4000-8000-0000000000c1'$$,
  $$values ('inbound', 'deals', 'delta', '{"trigger": "manual"}'::jsonb)$$,
  'an inbound delta job of that connection, triggered manually');
select is(public.trigger_crm_sync('owners', '07000000-0000-4000-8000-0000000000c1'), 1::bigint, 'owners: one job');
select is((select mode from crm.jobs where connection_id = '07000000-0000-4000-8000-0000000000c1' and object = 'owners'),
  'full', 'owners are walked in full');
select is(public.trigger_crm_sync('all', '07000000-0000-4000-8000-0000000000c1'), 4::bigint,
  'all: one job per object (the deals and owners jobs merge)');
select is((select count(*)::integer from crm.jobs where connection_id = '07000000-0000-4000-8000-0000000000c1'), 4,
  'four live jobs, no duplicates');
select is((select count(*)::integer from crm.jobs
           where connection_id = '07000000-0000-4000-8000-0000000000c1' and kind = 'outbound'), 0,
  'all queues no outbound job while nothing is due outbound (23_outbound_jobs: with due entries)');
select is(public.trigger_crm_sync('contacts'),
  (select count(*) from crm.connections
   where status = 'active' and (settings -> 'objects' is null or settings -> 'objects' ? 'contacts')),
  'without a connection: one job per active connection');
select throws_ok($$select public.trigger_crm_sync('deals', '07000000-0000-4000-8000-00000000dead')$$, 'CRM02', null,
  'unknown connection: CRM02');
select throws_ok($$select public.trigger_crm_sync('outbound', '07000000-0000-4000-8000-00000000dead')$$, 'CRM02', null,
  'unknown connection (outbound): CRM02');

set local role service_role;
select lives_ok($$select public.trigger_crm_sync('outbound')$$, 'service_role may trigger syncs');
reset role;

-- pause / resume
select is(crm.pause_connection('07000000-0000-4000-8000-0000000000c2'), 'paused', 'pause');
select is((select status from crm.connections where id = '07000000-0000-4000-8000-0000000000c2'), 'paused', 'paused');
select throws_ok($$select public.trigger_crm_sync('deals', '07000000-0000-4000-8000-0000000000c2')$$, 'CRM06', null,
  'a paused connection cannot be triggered: CRM06');
select throws_ok($$select public.trigger_crm_sync('outbound', '07000000-0000-4000-8000-0000000000c2')$$, 'CRM06', null,
  'nor pushed: CRM06');
select is(crm.resume_connection('07000000-0000-4000-8000-0000000000c2'), 'active', 'resume');
update crm.connections set status = 'disconnected' where id = '07000000-0000-4000-8000-0000000000c2';
select throws_ok($$select crm.resume_connection('07000000-0000-4000-8000-0000000000c2')$$, 'CRM06', null,
  'a disconnected connection cannot be resumed');
select throws_ok($$select crm.pause_connection('07000000-0000-4000-8000-00000000dead')$$, 'CRM02', null,
  'pause of an unknown connection: CRM02');

-- Vault not configured: a clear error.
delete from vault.secrets where name = 'service_role_key';
select lives_ok($$select public.trigger_crm_sync('outbound')$$,
  'missing Vault secret: trigger_crm_sync(outbound) still enqueues (the wake is skipped with a warning)');
select is(public.trigger_crm_sync('companies', '07000000-0000-4000-8000-0000000000c1'), 1::bigint,
  'without Vault secrets an enqueue still stores its job (the wake is skipped with a warning)');

-- sync_status ------------------------------------------------------------------------------------
set local crm.engine = 'on';
insert into crm.contacts (connection_id, remote_id, email, deleted_at) values
  ('07000000-0000-4000-8000-0000000000c1', 's-1', 'a@s.test', null),
  ('07000000-0000-4000-8000-0000000000c1', 's-2', 'b@s.test', null),
  ('07000000-0000-4000-8000-0000000000c1', 's-3', 'c@s.test', now());
reset crm.engine;
update crm.contacts set first_name = 'X' where connection_id = '07000000-0000-4000-8000-0000000000c1' and remote_id = 's-1';
update crm.contacts set first_name = 'Y' where connection_id = '07000000-0000-4000-8000-0000000000c1' and remote_id = 's-2';
update crm.outbox set state = 'dead', dead_at = now()
where record_id = (select id from crm.contacts where connection_id = '07000000-0000-4000-8000-0000000000c1' and remote_id = 's-2');
insert into crm.sync_log (connection_id, object, direction, trigger, status, started_at, finished_at, error) values
  ('07000000-0000-4000-8000-0000000000c1', 'contacts', 'inbound', 'cron', 'success', now() - interval '3 minutes', now() - interval '2 minutes', null),
  ('07000000-0000-4000-8000-0000000000c1', 'contacts', 'inbound', 'cron', 'failed', now() - interval '9 minutes', now() - interval '8 minutes',
   '{"message": "HubSpot 429 DAILY"}'),
  ('07000000-0000-4000-8000-0000000000c1', 'contacts', 'inbound', 'cron', 'success', now() - interval '14 minutes', now() - interval '13 minutes', null),
  ('07000000-0000-4000-8000-0000000000c1', 'deals', 'inbound', 'cron', 'success', now() - interval '2 hours', now() - interval '2 hours', null);
select results_eq(
  $$select object, records, pending_outbound, dead_letters, runs_24h, failed_24h, error_rate_24h, last_error, stale
    from crm.sync_status() where connection_id = '07000000-0000-4000-8000-0000000000c1'$$,
  $$values ('contacts', 2::bigint, 1::bigint, 1::bigint, 3::bigint, 1::bigint, 0.3333::numeric, 'HubSpot 429 DAILY', false),
           ('companies', 0, 0, 0, 0, 0, null, null, true),
           ('deals', 0, 0, 0, 1, 0, 0.0000, null, true),
           ('owners', 0, 0, 0, 0, 0, null, null, false),
           ('outbound', null, 1, 1, 0, 0, null, null, false)$$,
  'sync_status per object: records, pending, dead letters, 24 h error rate, stale flags');
select is((select last_success_at from crm.sync_status()
           where connection_id = '07000000-0000-4000-8000-0000000000c1' and object = 'contacts'),
  now() - interval '2 minutes', 'last success');
select is((select last_failure_at from crm.sync_status()
           where connection_id = '07000000-0000-4000-8000-0000000000c1' and object = 'contacts'),
  now() - interval '8 minutes', 'last failure');
update crm.outbox set next_attempt_at = now() - interval '30 minutes'
where record_id = (select id from crm.contacts where connection_id = '07000000-0000-4000-8000-0000000000c1' and remote_id = 's-1');
select is((select stale from crm.sync_status() where connection_id = '07000000-0000-4000-8000-0000000000c1' and object = 'outbound'),
  true, 'outbound is stale when a change has been due for more than 20 minutes');
update crm.connections set settings = settings || '{"objects": ["contacts", "owners"]}'
where id = '07000000-0000-4000-8000-0000000000c1';
select results_eq(
  $$select object, enabled, stale from crm.sync_status()
    where connection_id = '07000000-0000-4000-8000-0000000000c1' and object in ('companies', 'deals')$$,
  $$values ('companies', false, false), ('deals', false, false)$$,
  'disabled objects are never stale');
select crm.pause_connection('07000000-0000-4000-8000-0000000000c1');
select is((select count(*)::integer from crm.sync_status()
           where connection_id = '07000000-0000-4000-8000-0000000000c1' and stale), 0, 'paused connections are never stale');
select crm.resume_connection('07000000-0000-4000-8000-0000000000c1');

-- Health check -----------------------------------------------------------------------------------
insert into crm.sync_log (connection_id, object, direction, trigger, started_at) values
  ('07000000-0000-4000-8000-0000000000c1', 'owners', 'inbound', 'manual', now() - interval '2 hours');
create temporary table alerts as select * from crm.check_health();
select results_eq(
  $$select object, kind from alerts where connection_id = '07000000-0000-4000-8000-0000000000c1' order by object, kind$$,
  $$values ('contacts', 'dead_letters'), ('contacts', 'error_rate'), ('outbound', 'dead_letters'), ('outbound', 'stale'),
           ('owners', 'error_rate')$$,
  'check_health opens alerts: dead letters, > 10 % failed runs (incl. the abandoned run), overdue outbound');
select results_eq(
  $$select status, error ->> 'message' from crm.sync_log
    where connection_id = '07000000-0000-4000-8000-0000000000c1' and object = 'owners'$$,
  $$values ('failed', 'abandoned: still running after 01:00:00')$$, 'a run left running for an hour is closed as failed');
select is((select count(*)::integer from crm.check_health() where connection_id = '07000000-0000-4000-8000-0000000000c1'), 5,
  'a second check reports the same open alerts');
select is((select count(*)::integer from crm.health_alerts where connection_id = '07000000-0000-4000-8000-0000000000c1'), 5,
  'no duplicate alert rows');

-- requeue_dead_letters resolves the dead-letter alerts at the next check.
select results_eq($$select * from crm.requeue_dead_letters('07000000-0000-4000-8000-0000000000c1')$$,
  $$values (1, 0)$$, 'requeue_dead_letters: (outbox, inbox) counts');
select is((select count(*)::integer from crm.outbox where connection_id = '07000000-0000-4000-8000-0000000000c1' and state = 'dead'),
  0, 'no dead letters after requeue');
select crm.check_health();
select results_eq(
  $$select object, kind, resolved_at is not null from crm.health_alerts
    where connection_id = '07000000-0000-4000-8000-0000000000c1' and kind = 'dead_letters' order by object$$,
  $$values ('contacts', 'dead_letters', true), ('outbound', 'dead_letters', true)$$,
  'alerts resolve when the problem is gone');
update crm.connections set status = 'error', last_error = 'refresh token revoked' where id = '07000000-0000-4000-8000-0000000000c2';
select is((select message from crm.check_health() where connection_id = '07000000-0000-4000-8000-0000000000c2'
           and kind = 'connection_error'), 'refresh token revoked', 'an errored connection raises an alert');

-- Cleanup --------------------------------------------------------------------------------------------
insert into crm.sync_log (connection_id, object, direction, trigger, status, started_at, finished_at) values
  ('07000000-0000-4000-8000-0000000000c1', 'contacts', 'inbound', 'cron', 'success', now() - interval '40 days', now() - interval '40 days'),
  ('07000000-0000-4000-8000-0000000000c1', 'contacts', 'inbound', 'cron', 'running', now() - interval '40 days', null);
insert into crm.webhook_events (provider, connection_id, event_type, dedupe_key, payload, state, processed_at, dead_at) values
  ('hubspot', '07000000-0000-4000-8000-0000000000c1', 'x', 'cleanup-test:old-done', '{}', 'done', now() - interval '31 days', null),
  ('hubspot', '07000000-0000-4000-8000-0000000000c1', 'x', 'cleanup-test:new-done', '{}', 'done', now() - interval '1 day', null),
  ('hubspot', '07000000-0000-4000-8000-0000000000c1', 'x', 'cleanup-test:old-dead', '{}', 'dead', null, now() - interval '90 days'),
  ('hubspot', '07000000-0000-4000-8000-0000000000c1', 'x', 'cleanup-test:old-pending', '{}', 'pending', null, null);
update crm.webhook_events set received_at = now() - interval '60 days' where dedupe_key like 'cleanup-test:old-%';
insert into net._http_response (id, status_code, created) values (-4242, 200, now() - interval '2 days'), (-4243, 200, now());
select ok((crm.cleanup() ->> 'sync_log')::integer >= 1, 'cleanup reports what it deleted');
select is((select count(*)::integer from crm.sync_log where connection_id = '07000000-0000-4000-8000-0000000000c1'
           and started_at < now() - interval '30 days'), 1, 'old finished runs go, a stuck running run stays');
select results_eq(
  $$select dedupe_key from crm.webhook_events where dedupe_key like 'cleanup-test:%' order by dedupe_key$$,
  $$values ('cleanup-test:new-done'), ('cleanup-test:old-dead'), ('cleanup-test:old-pending')$$,
  'processed events older than 30 days go; recent, dead and pending ones stay');
select results_eq($$select id from net._http_response where id in (-4242, -4243)$$, $$values (-4243::bigint)$$,
  'old pg_net responses go');
select is((select count(*)::integer from crm.sync_log where connection_id = '07000000-0000-4000-8000-0000000000c1'
           and started_at > now() - interval '1 day'), 5, 'recent runs stay');

select * from finish();
rollback;
