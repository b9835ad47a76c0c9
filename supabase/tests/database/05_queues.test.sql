-- Outbox and inbox work queues: leases, completion, exponential backoff, dead letters, replay.
-- (Two concurrent claimers are proven in tests/db/claims.test.ts with two real sessions.)
begin;
select plan(61);

insert into crm.connections (id, account_id, provider, remote_account_id, status) values
  ('05000000-0000-4000-8000-0000000000c1', '05000000-0000-4000-8000-0000000000a1', 'hubspot', 'queue-test-1', 'active'),
  ('05000000-0000-4000-8000-0000000000c2', '05000000-0000-4000-8000-0000000000a1', 'hubspot', 'queue-test-2', 'paused');

set local crm.engine = 'on';
insert into crm.contacts (id, connection_id, remote_id, email) values
  ('05000000-0000-4000-8000-000000000001', '05000000-0000-4000-8000-0000000000c1', 'q-1', 'one@q.test'),
  ('05000000-0000-4000-8000-000000000002', '05000000-0000-4000-8000-0000000000c1', 'q-2', 'two@q.test'),
  ('05000000-0000-4000-8000-000000000003', '05000000-0000-4000-8000-0000000000c1', 'q-3', 'three@q.test'),
  ('05000000-0000-4000-8000-000000000009', '05000000-0000-4000-8000-0000000000c2', 'q-9', 'paused@q.test');
reset crm.engine;

-- App changes: three entries on the active connection, one on the paused one.
update crm.contacts set first_name = 'One' where id = '05000000-0000-4000-8000-000000000001';
update crm.contacts set first_name = 'Two' where id = '05000000-0000-4000-8000-000000000002';
update crm.contacts set first_name = 'Three' where id = '05000000-0000-4000-8000-000000000003';
update crm.contacts set first_name = 'Paused' where id = '05000000-0000-4000-8000-000000000009';
update crm.outbox set next_attempt_at = now() + interval '1 hour'
where record_id = '05000000-0000-4000-8000-000000000003';

-- claim ------------------------------------------------------------------------------------------
create temporary table c1 as
  select * from crm.claim_outbox('worker-1', 10, '5 minutes', null, 'contacts');
select is((select count(*)::integer from c1 where connection_id in
  ('05000000-0000-4000-8000-0000000000c1', '05000000-0000-4000-8000-0000000000c2')), 2,
  'claims the two due entries of the active connection');
select is((select count(*)::integer from c1 where record_id = '05000000-0000-4000-8000-000000000009'), 0,
  'entries of a paused connection are not handed out');
select is((select count(*)::integer from c1 where record_id = '05000000-0000-4000-8000-000000000003'), 0,
  'an entry in backoff is not handed out');
select results_eq(
  $$select op, changed_columns, attempts, locked_until = now() + interval '5 minutes', lease is not null,
           record ->> 'first_name', record ->> 'remote_id'
    from c1 where record_id = '05000000-0000-4000-8000-000000000001'$$,
  $$values ('update', array['first_name'], 1, true, true, 'One', 'q-1')$$,
  'a claim returns the entry, a lease, the attempt count and the current row');
select results_eq(
  $$select state, locked_by from crm.outbox where record_id = '05000000-0000-4000-8000-000000000001'$$,
  $$values ('processing', 'worker-1')$$, 'the entry is leased to the worker');
select is((select count(*)::integer from crm.claim_outbox('worker-2', 10, '5 minutes', '05000000-0000-4000-8000-0000000000c1')),
  0, 'leased entries are not claimed again while the lease runs');
select is((select count(*)::integer from crm.claim_outbox('worker-2', 0)), 0, 'limit 0 claims nothing');

-- complete -------------------------------------------------------------------------------------
select results_eq(
  $$select * from crm.complete_outbox(jsonb_build_array(jsonb_build_object(
      'id', (select id from c1 where record_id = '05000000-0000-4000-8000-000000000001'),
      'lease', gen_random_uuid())))$$,
  $$values (0, 0)$$, 'completing with a wrong lease does nothing');
select results_eq(
  $$select * from crm.complete_outbox((select jsonb_agg(jsonb_build_object('id', id, 'lease', lease,
      'remote_updated_at', '2026-05-05T00:00:00Z')) from c1 where record_id = '05000000-0000-4000-8000-000000000001'))$$,
  $$values (1, 0)$$, 'completing with the lease: completed 1');
select is((select count(*)::integer from crm.outbox where record_id = '05000000-0000-4000-8000-000000000001'), 0,
  'a completed entry is removed');
select results_eq(
  $$select needs_sync, sync_error, last_synced_at is not null, remote_updated_at from crm.contacts
    where id = '05000000-0000-4000-8000-000000000001'$$,
  $$values (false, null::text, true, '2026-05-05T00:00:00Z'::timestamptz)$$,
  'the row is marked synced');
select results_eq(
  $$select agreed_hash = crm._hash('"One"'), remote_changed_at from crm.sync_state
    where record_id = '05000000-0000-4000-8000-000000000001' and field = 'first_name'$$,
  $$values (true, '2026-05-05T00:00:00Z'::timestamptz)$$,
  'the pushed value becomes the agreed value');

-- A change while in flight: completion releases the entry for another push.
update crm.contacts set last_name = 'Late' where id = '05000000-0000-4000-8000-000000000002';
select results_eq(
  $$select * from crm.complete_outbox((select jsonb_agg(jsonb_build_object('id', id, 'lease', lease))
      from c1 where record_id = '05000000-0000-4000-8000-000000000002'))$$,
  $$values (0, 1)$$, 'an entry changed in flight is released, not completed');
select results_eq(
  $$select state, attempts, lease, changed_columns from crm.outbox where record_id = '05000000-0000-4000-8000-000000000002'$$,
  -- first_name was sent and the row still holds it: settled (20261207050100).
  $$values ('pending', 0, null::uuid, array['last_name'])$$,
  'released: pending again with the fields still to push');
select is((select needs_sync from crm.contacts where id = '05000000-0000-4000-8000-000000000002'), true,
  'released: needs_sync stays on');

-- Creates: the remote id is recorded, related rows get the association queued.
insert into crm.companies (id, connection_id, name)
values ('05000000-0000-4000-8000-0000000000e1', '05000000-0000-4000-8000-0000000000c1', 'NewCo');
insert into crm.contacts (id, connection_id, email, company_id)
values ('05000000-0000-4000-8000-000000000004', '05000000-0000-4000-8000-0000000000c1', 'four@q.test',
        '05000000-0000-4000-8000-0000000000e1');
create temporary table c2 as select * from crm.claim_outbox('worker-1', 10, '5 minutes', null, 'companies');
select is((select op from c2 where record_id = '05000000-0000-4000-8000-0000000000e1'), 'insert', 'company insert claimed');
select results_eq(
  $$select * from crm.complete_outbox((select jsonb_agg(jsonb_build_object('id', id, 'lease', lease, 'remote_id', 'hs-co-77'))
      from c2 where record_id = '05000000-0000-4000-8000-0000000000e1'))$$,
  $$values (1, 0)$$, 'company insert completed');
select is((select remote_id from crm.companies where id = '05000000-0000-4000-8000-0000000000e1'), 'hs-co-77',
  'the new remote id is recorded on the row');
select results_eq(
  $$select c.company_remote_id, o.op, 'company_remote_id' = any (o.changed_columns)
    from crm.contacts c join crm.outbox o on o.record_id = c.id where c.id = '05000000-0000-4000-8000-000000000004'$$,
  $$values ('hs-co-77', 'insert', true)$$,
  'a contact pointing at the new company gets the association filled and queued');

-- fail: backoff -----------------------------------------------------------------------------------
update crm.outbox set next_attempt_at = now() where record_id = '05000000-0000-4000-8000-000000000003';
create temporary table c3 as select * from crm.claim_outbox('worker-1', 1, '5 minutes', '05000000-0000-4000-8000-0000000000c1', 'contacts');
select is((select record_id from c3), '05000000-0000-4000-8000-000000000002'::uuid,
  'claims oldest due first (released entry is due now)');
select results_eq(
  $$select * from crm.fail_outbox((select jsonb_agg(jsonb_build_object('id', id, 'lease', lease, 'error', 'HTTP 502')) from c3))$$,
  $$values (1, 0, 0, 0)$$, 'a retryable failure: retrying 1');
select results_eq(
  $$select state, attempts, last_error, lease, next_attempt_at between now() + interval '30 seconds' and now() + interval '33 seconds'
    from crm.outbox where record_id = '05000000-0000-4000-8000-000000000002'$$,
  $$values ('pending', 1, 'HTTP 502', null::uuid, true)$$,
  'first failure waits 30 s (+ up to 10 % jitter)');
select is((select sync_error from crm.contacts where id = '05000000-0000-4000-8000-000000000002'), 'HTTP 502',
  'the row shows the error');
update crm.outbox set next_attempt_at = now() where record_id = '05000000-0000-4000-8000-000000000002';
create temporary table c4 as select * from crm.claim_outbox('worker-1', 1, '5 minutes', '05000000-0000-4000-8000-0000000000c1', 'contacts');
select crm.fail_outbox((select jsonb_agg(jsonb_build_object('id', id, 'lease', lease, 'error', 'HTTP 503')) from c4));
select ok((select next_attempt_at between now() + interval '60 seconds' and now() + interval '66 seconds'
           from crm.outbox where record_id = '05000000-0000-4000-8000-000000000002'),
  'second failure waits 60 s: exponential');
update crm.outbox set next_attempt_at = now() where record_id = '05000000-0000-4000-8000-000000000002';
create temporary table c5 as select * from crm.claim_outbox('worker-1', 1, '5 minutes', '05000000-0000-4000-8000-0000000000c1', 'contacts');
select crm.fail_outbox((select jsonb_agg(jsonb_build_object('id', id, 'lease', lease, 'error', '429',
  'retry_after_seconds', 900)) from c5));
select ok((select next_attempt_at >= now() + interval '900 seconds'
           from crm.outbox where record_id = '05000000-0000-4000-8000-000000000002'),
  'Retry-After is honoured when longer than the backoff');
select ok(crm._backoff(30, '30 seconds', '1 hour') between interval '1 hour' and interval '66 minutes',
  'backoff is capped at p_max (+ jitter)');
select ok(crm._backoff(1, '30 seconds', '1 hour') >= interval '30 seconds', 'backoff starts at p_base');

-- fail: dead letters -------------------------------------------------------------------------------
update crm.outbox set next_attempt_at = now() where record_id = '05000000-0000-4000-8000-000000000002';
create temporary table c6 as select * from crm.claim_outbox('worker-1', 1, '5 minutes', '05000000-0000-4000-8000-0000000000c1', 'contacts');
select is((select attempts from c6), 4, 'fourth attempt');
select results_eq(
  $$select * from crm.fail_outbox((select jsonb_agg(jsonb_build_object('id', id, 'lease', lease, 'error', 'still down')) from c6), 4)$$,
  $$values (0, 1, 0, 0)$$, 'failing the last allowed attempt dead-letters the entry');
select results_eq(
  $$select state, dead_at is not null, lease from crm.outbox where record_id = '05000000-0000-4000-8000-000000000002'$$,
  $$values ('dead', true, null::uuid)$$, 'dead letter is visible as data');
select is((select sync_error from crm.contacts where id = '05000000-0000-4000-8000-000000000002'), 'dead letter: still down',
  'the row says it is dead-lettered');
create temporary table c7 as select * from crm.claim_outbox('worker-1', 10, '5 minutes', '05000000-0000-4000-8000-0000000000c1', 'contacts');
select results_eq($$select record_id from c7 order by record_id$$,
  $$values ('05000000-0000-4000-8000-000000000003'::uuid), ('05000000-0000-4000-8000-000000000004'::uuid)$$,
  'the due entries are claimed; the dead letter is not');
select results_eq(
  $$select * from crm.fail_outbox((select jsonb_agg(jsonb_build_object('id', id, 'lease', lease, 'error', 'HTTP 400 invalid email',
      'retryable', false)) from c7 where record_id = '05000000-0000-4000-8000-000000000003'))$$,
  $$values (0, 1, 0, 0)$$, 'a non-retryable failure is dead at once');
select results_eq(
  $$select * from crm.fail_outbox((select jsonb_agg(jsonb_build_object('id', id, 'lease', lease, 'error', 'x'))
      from c7 where record_id = '05000000-0000-4000-8000-000000000003'))$$,
  $$values (0, 0, 0, 0)$$, 'failing an entry that is no longer leased does nothing');

-- replay -------------------------------------------------------------------------------------------
select is(crm.replay_outbox(array[(select id from crm.outbox where record_id = '05000000-0000-4000-8000-000000000003')]), 1,
  'replay by id');
select results_eq(
  $$select state, attempts, dead_at from crm.outbox where record_id = '05000000-0000-4000-8000-000000000003'$$,
  $$values ('pending', 0, null::timestamptz)$$, 'replayed: pending, attempts reset');
select is((select state from crm.outbox where record_id = '05000000-0000-4000-8000-000000000002'), 'dead',
  'replay by id leaves other dead letters alone');
select is(crm.replay_outbox(null, '05000000-0000-4000-8000-0000000000c1'), 1, 'replay a connection''s dead letters');
select is((select count(*)::integer from crm.outbox where connection_id = '05000000-0000-4000-8000-0000000000c1'
           and state = 'dead'), 0, 'no dead letters left');

-- Expired leases -----------------------------------------------------------------------------------
create temporary table c8 as select * from crm.claim_outbox('crashed', 1, '5 minutes', '05000000-0000-4000-8000-0000000000c1', 'contacts');
update crm.outbox set locked_until = now() - interval '1 second' where id = (select id from c8);
create temporary table c9 as select * from crm.claim_outbox('rescuer', 10, '5 minutes', '05000000-0000-4000-8000-0000000000c1', 'contacts');
select results_eq(
  $$select c9.attempts, c9.lease <> c8.lease from c9 join c8 on c8.id = c9.id$$,
  $$values (2, true)$$, 'an expired lease is reclaimed with a new lease token');
select results_eq(
  $$select * from crm.complete_outbox((select jsonb_agg(jsonb_build_object('id', id, 'lease', lease)) from c8))$$,
  $$values (0, 0)$$, 'the crashed worker''s late completion is refused');
update crm.outbox set locked_until = now() - interval '1 second', attempts = 10 where id = (select id from c8);
select is((select count(*)::integer from crm.claim_outbox('rescuer', 10) where id = (select id from c8)), 0,
  'an expired lease with no attempts left is not claimed again');
select results_eq(
  $$select state, last_error like '%lease expired after the last attempt' from crm.outbox where id = (select id from c8)$$,
  $$values ('dead', true)$$,
  '... it is dead-lettered instead');

-- Inbox --------------------------------------------------------------------------------------------
select results_eq(
  $$select * from crm.enqueue_webhook_events('[
    {"provider": "hubspot", "connection_id": "05000000-0000-4000-8000-0000000000c1", "object": "contacts",
     "remote_id": "q-1", "event_type": "contact.propertyChange", "occurred_at": "2026-01-01T00:00:02Z",
     "dedupe_key": "queue-test:a", "payload": {"propertyName": "email"}},
    {"provider": "hubspot", "connection_id": "05000000-0000-4000-8000-0000000000c1", "object": "contacts",
     "remote_id": "q-2", "event_type": "contact.creation", "occurred_at": "2026-01-01T00:00:01Z",
     "dedupe_key": "queue-test:b", "payload": {}},
    {"provider": "hubspot", "connection_id": "05000000-0000-4000-8000-0000000000c1", "object": "contacts",
     "remote_id": "q-2", "event_type": "contact.creation", "occurred_at": "2026-01-01T00:00:01Z",
     "dedupe_key": "queue-test:b", "payload": {}}
  ]')$$,
  $$values (2, 1)$$, 'enqueue: a repeat inside one request is dropped');
select results_eq(
  $$select * from crm.enqueue_webhook_events('[
    {"provider": "hubspot", "event_type": "contact.creation", "dedupe_key": "queue-test:a", "payload": {}},
    {"provider": "hubspot", "connection_id": "05000000-0000-4000-8000-0000000000c1", "object": "contacts",
     "event_type": "contact.deletion", "occurred_at": "2026-01-01T00:00:03Z", "dedupe_key": "queue-test:c", "payload": {}}
  ]')$$,
  $$values (1, 1)$$, 'enqueue: a redelivered event is dropped');
select is((select count(*)::integer from crm.webhook_events where dedupe_key = 'queue-test:a'), 1,
  'stored once');
select throws_ok(
  $$select crm.enqueue_webhook_events('[{"provider": "hubspot", "event_type": "x", "dedupe_key": "queue-test:d", "payload": {}},
                                         {"provider": "hubspot", "event_type": "x", "payload": {}}]')$$,
  'CRM03', null, 'an event without a dedupe key: CRM03');
select is((select count(*)::integer from crm.webhook_events where dedupe_key = 'queue-test:d'), 0,
  'and nothing of that request is stored');

create temporary table i1 as
  select * from crm.claim_inbox('proc-1', 2, '2 minutes', '05000000-0000-4000-8000-0000000000c1');
select results_eq($$select dedupe_key, attempts, state from i1 order by occurred_at$$,
  $$values ('queue-test:b', 1, 'processing'), ('queue-test:a', 1, 'processing')$$,
  'claim_inbox: oldest events first, leased');
create temporary table i1b as select * from crm.claim_inbox('proc-2', 10, '2 minutes', '05000000-0000-4000-8000-0000000000c1');
select results_eq($$select dedupe_key from i1b$$, $$values ('queue-test:c')$$,
  'a second processor gets only the unleased event');
select is(crm.complete_inbox((select jsonb_agg(jsonb_build_object('id', id, 'lease', lease)) from i1
                              where dedupe_key = 'queue-test:b')), 1, 'complete_inbox');
select results_eq($$select state, processed_at is not null, lease from crm.webhook_events where dedupe_key = 'queue-test:b'$$,
  $$values ('done', true, null::uuid)$$, 'done events are stamped');
select results_eq(
  $$select * from crm.fail_inbox((select jsonb_agg(jsonb_build_object('id', id, 'lease', lease, 'error', 'db busy'))
      from i1 where dedupe_key = 'queue-test:a'))$$,
  $$values (1, 0)$$, 'fail_inbox: retrying');
select results_eq(
  $$select state, last_error, next_attempt_at between now() + interval '30 seconds' and now() + interval '33 seconds'
    from crm.webhook_events where dedupe_key = 'queue-test:a'$$,
  $$values ('pending', 'db busy', true)$$, 'inbox backoff');
update crm.webhook_events set next_attempt_at = now() where dedupe_key = 'queue-test:a';
create temporary table i2 as select * from crm.claim_inbox('proc-1', 10, '2 minutes', '05000000-0000-4000-8000-0000000000c1');
select results_eq(
  $$select * from crm.fail_inbox((select jsonb_agg(jsonb_build_object('id', id, 'lease', lease, 'error', 'bad payload',
      'retryable', false)) from i2 where dedupe_key = 'queue-test:a'))$$,
  $$values (0, 1)$$, 'fail_inbox: non-retryable -> dead');
select is(crm.complete_inbox((select jsonb_agg(jsonb_build_object('id', id, 'lease', lease, 'ignored', true,
  'note', 'deletion of an object we do not sync')) from i1b where dedupe_key = 'queue-test:c')), 1, 'complete as ignored');
select results_eq($$select state, last_error from crm.webhook_events where dedupe_key = 'queue-test:c'$$,
  $$values ('ignored', 'deletion of an object we do not sync')$$, 'ignored events keep the reason');
select is(crm.replay_inbox(null, '05000000-0000-4000-8000-0000000000c1'), 1, 'replay_inbox');
create temporary table i3 as select * from crm.claim_inbox('proc-1', 10, '2 minutes', '05000000-0000-4000-8000-0000000000c1');
select is((select attempts from i3 where dedupe_key = 'queue-test:a'), 1, 'replayed event claimed afresh');
update crm.webhook_events set locked_until = now() - interval '1 second' where dedupe_key = 'queue-test:a';
select results_eq(
  $$select attempts, lease <> (select lease from i3 where dedupe_key = 'queue-test:a')
    from crm.claim_inbox('proc-9', 10, '2 minutes', '05000000-0000-4000-8000-0000000000c1') where dedupe_key = 'queue-test:a'$$,
  $$values (2, true)$$, 'an expired inbox lease is reclaimed');
select is(crm.complete_inbox((select jsonb_agg(jsonb_build_object('id', id, 'lease', lease)) from i3
                              where dedupe_key = 'queue-test:a')), 0, 'the old lease cannot complete it');

select * from finish();
rollback;
