-- crm.sync_status(): connection_name and current_error (20261206050100). current_error is the
-- latest error only while no success came after it; last_error keeps the history; the earlier
-- columns keep their names and order.
begin;
select plan(7);

insert into crm.connections (id, account_id, provider, remote_account_id, status, name) values
  ('55000000-0000-4000-8000-0000000000c1', '55000000-0000-4000-8000-0000000000a1', 'hubspot', 'ss-1', 'active', 'Sales HubSpot'),
  ('55000000-0000-4000-8000-0000000000c2', '55000000-0000-4000-8000-0000000000a1', 'pipedrive', 'ss-2', 'active', null);

select is(
  (select (proargnames)[1:37] from pg_proc where oid = 'crm.sync_status'::regproc),
  array['connection_id', 'account_id', 'provider', 'connection_status', 'object', 'enabled',
        'last_success_at', 'last_failure_at', 'last_error', 'records', 'pending_outbound',
        'dead_letters', 'runs_24h', 'failed_24h', 'error_rate_24h', 'expected_every', 'stale',
        'open_failures', 'job_state', 'job_mode', 'job_progress', 'jobs_dead', 'oldest_due_age',
        'budget', 'budget_paused_until', 'budget_pause_reason', 'live_workers', 'outbox_pending',
        'outbox_dead', 'outbox_oldest_pending_age', 'last_outbound_at', 'last_outbound_status',
        'outbound_setup_error', 'inbox_pending', 'inbox_processing', 'inbox_dead',
        'inbox_oldest_pending_age'],
  'the earlier columns keep their names and order');
select is(
  (select (proargnames)[38:39] from pg_proc where oid = 'crm.sync_status'::regproc),
  array['connection_name', 'current_error'],
  'connection_name and current_error come last');

select results_eq(
  $$select distinct connection_name from crm.sync_status()
    where connection_id = '55000000-0000-4000-8000-0000000000c1'$$,
  $$values ('Sales HubSpot'::text)$$,
  'every row of a connection carries its name');

-- contacts: failed, then succeeded (an old error). deals: succeeded, then failed (current).
-- companies: only a failure without a message.
insert into crm.sync_log (connection_id, object, direction, trigger, status, started_at, finished_at, error) values
  ('55000000-0000-4000-8000-0000000000c1', 'contacts', 'inbound', 'cron', 'failed',
   now() - interval '10 minutes', now() - interval '10 minutes', '{"message": "HTTP 500"}'),
  ('55000000-0000-4000-8000-0000000000c1', 'contacts', 'inbound', 'cron', 'success',
   now() - interval '5 minutes', now() - interval '5 minutes', null),
  ('55000000-0000-4000-8000-0000000000c1', 'deals', 'inbound', 'cron', 'success',
   now() - interval '10 minutes', now() - interval '10 minutes', null),
  ('55000000-0000-4000-8000-0000000000c1', 'deals', 'inbound', 'cron', 'failed',
   now() - interval '5 minutes', now() - interval '5 minutes', '{"message": "HTTP 429"}'),
  ('55000000-0000-4000-8000-0000000000c1', 'companies', 'inbound', 'cron', 'failed',
   now() - interval '5 minutes', now() - interval '5 minutes', null);

select results_eq(
  $$select last_error, current_error from crm.sync_status()
    where connection_id = '55000000-0000-4000-8000-0000000000c1' and object = 'contacts'$$,
  $$values ('HTTP 500'::text, null::text)$$,
  'an error followed by a success: last_error keeps it, current_error is empty');
select results_eq(
  $$select last_error, current_error from crm.sync_status()
    where connection_id = '55000000-0000-4000-8000-0000000000c1' and object = 'deals'$$,
  $$values ('HTTP 429'::text, 'HTTP 429'::text)$$,
  'a failure after the last success is current');
select ok(
  (select current_error is not null from crm.sync_status()
   where connection_id = '55000000-0000-4000-8000-0000000000c1' and object = 'companies'),
  'a failure without a message and no success at all is current too');
select is(
  (select count(*)::integer from crm.sync_status()
   where connection_id = '55000000-0000-4000-8000-0000000000c2' and current_error is null
     and connection_name is null),
  5, 'a connection without runs or a name: no current error, no name');

select * from finish();
rollback;
