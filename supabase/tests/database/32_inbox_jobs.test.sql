-- Inbox jobs (issue 13, processing): crm.claim_inbox hands out only events of active
-- connections (never connection-less ones, never those of paused or errored connections),
-- crm.inbox_due, crm.enqueue_inbox and the crm-inbox cron job, and the receiver's enqueue.
begin;
select plan(33);

-- The stack's own connections, events and jobs stay out of this transaction (all rolled back).
delete from crm.jobs;
delete from crm.job_workers;
delete from crm.webhook_events;
update crm.connections set status = 'paused' where status = 'active';
update crm.engine_settings set max_workers = 8;
delete from vault.secrets where name in ('project_url', 'service_role_key');
select vault.create_secret('https://proj-ref.supabase.test', 'project_url');
select vault.create_secret('sk-test-service-role', 'service_role_key');

insert into crm.connections (id, account_id, provider, remote_account_id, status) values
  ('32000000-0000-4000-8000-0000000000c1', '32000000-0000-4000-8000-0000000000a1', 'hubspot', 'ib-1', 'active'),
  ('32000000-0000-4000-8000-0000000000c2', '32000000-0000-4000-8000-0000000000a2', 'pipedrive', 'ib-2', 'active'),
  ('32000000-0000-4000-8000-0000000000c3', '32000000-0000-4000-8000-0000000000a1', 'salesforce', 'ib-3', 'paused'),
  ('32000000-0000-4000-8000-0000000000c4', '32000000-0000-4000-8000-0000000000a3', 'hubspot', 'ib-4', 'error');

-- Events: c1 two, c2 one, paused c3 one, errored c4 one, and one with no connection.
select is((select inserted from crm.enqueue_webhook_events($$[
  {"provider": "hubspot", "connection_id": "32000000-0000-4000-8000-0000000000c1", "object": "contacts",
   "remote_id": "101", "event_type": "upsert", "occurred_at": "2026-12-05T00:00:01Z", "dedupe_key": "a", "payload": {}},
  {"provider": "hubspot", "connection_id": "32000000-0000-4000-8000-0000000000c1", "object": "companies",
   "remote_id": "201", "event_type": "delete", "occurred_at": "2026-12-05T00:00:02Z", "dedupe_key": "b", "payload": {}},
  {"provider": "pipedrive", "connection_id": "32000000-0000-4000-8000-0000000000c2", "object": "deals",
   "remote_id": "7", "event_type": "upsert", "occurred_at": "2026-12-05T00:00:00Z", "dedupe_key": "c", "payload": {}},
  {"provider": "salesforce", "connection_id": "32000000-0000-4000-8000-0000000000c3", "object": "contacts",
   "remote_id": "003000000000001AAA", "event_type": "upsert", "dedupe_key": "d", "payload": {}},
  {"provider": "hubspot", "connection_id": "32000000-0000-4000-8000-0000000000c4", "object": "contacts",
   "remote_id": "401", "event_type": "upsert", "dedupe_key": "e", "payload": {}},
  {"provider": "hubspot", "connection_id": null, "object": "contacts",
   "remote_id": "501", "event_type": "upsert", "dedupe_key": "f", "payload": {}}
]$$::jsonb)), 6, 'six events stored, one without a connection');

-- inbox_due ------------------------------------------------------------------------------------
select results_eq($$select due, next_at from crm.inbox_due('32000000-0000-4000-8000-0000000000c1')$$,
  $$values (2, null::timestamptz)$$, 'inbox_due: two due, none in backoff');
select results_eq($$select due, next_at from crm.inbox_due('32000000-0000-4000-8000-0000000000c9')$$,
  $$values (0, null::timestamptz)$$, 'inbox_due of an unknown connection: nothing');

-- enqueue_inbox ----------------------------------------------------------------------------------
select is(crm.enqueue_inbox(p_trigger => 'cron'), 2, 'enqueue_inbox: one job per active connection with due events');
select results_eq(
  $$select connection_id, kind, object, mode, priority::integer, state, payload
    from crm.jobs order by connection_id$$,
  $$values ('32000000-0000-4000-8000-0000000000c1'::uuid, 'inbox', null::text, null::text, 10, 'queued', '{"trigger": "cron"}'::jsonb),
           ('32000000-0000-4000-8000-0000000000c2'::uuid, 'inbox', null::text, null::text, 10, 'queued', '{"trigger": "cron"}'::jsonb)$$,
  'inbox jobs: connection-wide (object NULL), lane 10, queued; none for paused, errored or missing connections');
select is(crm.enqueue_inbox(p_trigger => 'cron'), 2, 'enqueuing again merges into the live jobs');
select is((select count(*)::integer from crm.jobs), 2, '...still one job per connection');
select ok((select count(*) from crm.job_workers) >= 1, 'and wakes workers');
select is(crm.enqueue_inbox('32000000-0000-4000-8000-0000000000c2', 'manual', false), 1,
  'enqueue_inbox for one connection');
select throws_ok($$select crm.enqueue_inbox('32000000-0000-4000-8000-0000000000c3')$$, 'CRM06', null,
  'a paused connection: CRM06');
select throws_ok($$select crm.enqueue_inbox('32000000-0000-4000-8000-0000000000c9')$$, 'CRM02', null,
  'an unknown connection: CRM02');
select throws_ok($$select crm.enqueue_inbox(null, 'poll')$$, 'CRM01', null, 'an unknown trigger: CRM01');

-- The receiver's enqueue (SPEC13) merges into the same job.
select is(crm.enqueue_job('inbox', '32000000-0000-4000-8000-0000000000c1', null, null, '{"trigger":"webhook"}', now(), true),
  (select id from crm.jobs where connection_id = '32000000-0000-4000-8000-0000000000c1'),
  'the receiver''s enqueue_job(inbox) merges into the live job');

-- claim_inbox ------------------------------------------------------------------------------------
select results_eq(
  $$select remote_id from crm.claim_inbox('w1', 10, '2 minutes', '32000000-0000-4000-8000-0000000000c1') order by id$$,
  $$values ('101'), ('201')$$, 'claim for one connection: its due events, oldest first');
select is((select count(*)::integer from crm.claim_inbox('w1', 10, '2 minutes', '32000000-0000-4000-8000-0000000000c1')), 0,
  'leased events are not handed out twice');
select results_eq($$select remote_id from crm.claim_inbox('w2', 10)$$, $$values ('7')$$,
  'claim for any connection: only active connections'' events');
select results_eq(
  $$select remote_id, state, attempts from crm.webhook_events where dedupe_key in ('d', 'e', 'f') order by dedupe_key$$,
  $$values ('003000000000001AAA', 'pending', 0), ('401', 'pending', 0), ('501', 'pending', 0)$$,
  'the paused, errored and connection-less events stay pending, never claimed');
select is((select count(*)::integer from crm.claim_inbox('w3', 10, '2 minutes', '32000000-0000-4000-8000-0000000000c3')), 0,
  'claim for the paused connection: nothing');
select is((select count(*)::integer from crm.claim_inbox('w3', 10, '2 minutes', '32000000-0000-4000-8000-0000000000c4')), 0,
  'claim for the errored connection: nothing');

-- The connection-less event is never claimed, even with its lease "expired" or after retries.
update crm.webhook_events set next_attempt_at = now() - interval '1 day' where dedupe_key = 'f';
select is((select count(*)::integer from crm.claim_inbox('w4', 1000) where connection_id is null), 0,
  'no claim ever returns an event without a connection');
select is((select state from crm.webhook_events where dedupe_key = 'f'), 'pending', 'it is kept, visibly pending');
select is((select count(*)::integer from crm.inbox_due(null)), 1, 'inbox_due(null) is one row');
select is((select due from crm.inbox_due(null)), 0, '...counting nothing: connection-less events are nobody''s inbox');

-- Resume: the waiting events become claimable, and enqueue_inbox (the cron safety net) queues a drain.
select crm.resume_connection('32000000-0000-4000-8000-0000000000c3');
select is(crm.enqueue_inbox('32000000-0000-4000-8000-0000000000c3', 'cron', false), 1, 'after resume the paused connection''s events get a drain');
select results_eq($$select remote_id from crm.claim_inbox('w5', 10, '2 minutes', '32000000-0000-4000-8000-0000000000c3')$$,
  $$values ('003000000000001AAA')$$, 'and are claimed');

-- Backoff: a failed event is not due until its next attempt; inbox_due says when.
select is((select retrying from crm.fail_inbox((select jsonb_agg(jsonb_build_object('id', id, 'lease', lease, 'error', 'CRM down'))
                                                from crm.webhook_events where dedupe_key = 'c'))), 1,
  'a failed event goes back to pending');
select is((select due from crm.inbox_due('32000000-0000-4000-8000-0000000000c2')), 0, 'it is not due during its backoff');
select ok((select next_at > now() from crm.inbox_due('32000000-0000-4000-8000-0000000000c2')), 'inbox_due says when it is');
update crm.jobs set state = 'done', finished_at = now(), rerun_mode = null, lease_expires_at = null;
select is(crm.enqueue_inbox(p_trigger => 'cron'), 0, 'enqueue_inbox queues nothing for events in backoff or leased');

-- An expired lease makes the event due again (a worker that died mid-drain).
update crm.webhook_events set locked_until = now() - interval '1 second' where dedupe_key = 'a';
select is((select due from crm.inbox_due('32000000-0000-4000-8000-0000000000c1')), 1, 'an expired lease is due again');
select is(crm.enqueue_inbox(p_trigger => 'cron'), 1, 'and gets a drain');
select results_eq($$select remote_id, attempts from crm.claim_inbox('w6', 10, '2 minutes', '32000000-0000-4000-8000-0000000000c1')$$,
  $$values ('101', 2)$$, 'reclaimed with its attempt counted');

-- The cron job ---------------------------------------------------------------------------------
select is((select command from cron.job where jobname = 'crm-inbox'), 'select crm.enqueue_inbox(p_trigger => ''cron'')',
  'crm-inbox enqueues inbox drains every minute');

select * from finish();
rollback;
