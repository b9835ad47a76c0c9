-- crm.sync_status(): the webhook inbox backlog per connection (20261205050100): pending,
-- processing and dead events and the oldest pending event's age, on every row of the
-- connection; zero and NULL without a backlog; never another account's.
begin;
select plan(10);

delete from crm.jobs;
delete from crm.webhook_events;

insert into crm.connections (id, account_id, provider, remote_account_id, status) values
  ('42000000-0000-4000-8000-0000000000c1', '42000000-0000-4000-8000-0000000000a1', 'hubspot', 'is-1', 'active'),
  ('42000000-0000-4000-8000-0000000000c2', '42000000-0000-4000-8000-0000000000a2', 'pipedrive', 'is-2', 'active');

select is(
  (select (proargnames)[34:37] from pg_proc where oid = 'crm.sync_status'::regproc),
  array['inbox_pending', 'inbox_processing', 'inbox_dead', 'inbox_oldest_pending_age'],
  'the inbox columns come last');
select is(
  (select (proargnames)[1:33] from pg_proc where oid = 'crm.sync_status'::regproc),
  (select proargnames from pg_proc where oid = 'crm._sync_status_outbound'::regproc),
  'the earlier columns keep their names and order');

-- No events: zeros and no age.
select results_eq(
  $$select distinct inbox_pending, inbox_processing, inbox_dead, inbox_oldest_pending_age
    from crm.sync_status() where connection_id = '42000000-0000-4000-8000-0000000000c1'$$,
  $$values (0::bigint, 0::bigint, 0::bigint, null::interval)$$,
  'without a backlog: 0, 0, 0 and no age');

-- c1: three pending (the oldest received 7 minutes ago), one processing, one dead, one done;
-- c2: one pending. Events without a connection belong to no row.
select is((select inserted from crm.enqueue_webhook_events($$[
  {"provider": "hubspot", "connection_id": "42000000-0000-4000-8000-0000000000c1", "object": "contacts",
   "remote_id": "1", "event_type": "upsert", "dedupe_key": "is-a", "payload": {}},
  {"provider": "hubspot", "connection_id": "42000000-0000-4000-8000-0000000000c1", "object": "contacts",
   "remote_id": "2", "event_type": "upsert", "dedupe_key": "is-b", "payload": {}},
  {"provider": "hubspot", "connection_id": "42000000-0000-4000-8000-0000000000c1", "object": "companies",
   "remote_id": "3", "event_type": "delete", "dedupe_key": "is-c", "payload": {}},
  {"provider": "hubspot", "connection_id": "42000000-0000-4000-8000-0000000000c1", "object": "contacts",
   "remote_id": "4", "event_type": "upsert", "dedupe_key": "is-d", "payload": {}},
  {"provider": "hubspot", "connection_id": "42000000-0000-4000-8000-0000000000c1", "object": "contacts",
   "remote_id": "5", "event_type": "upsert", "dedupe_key": "is-e", "payload": {}},
  {"provider": "hubspot", "connection_id": "42000000-0000-4000-8000-0000000000c1", "object": "deals",
   "remote_id": "6", "event_type": "upsert", "dedupe_key": "is-f", "payload": {}},
  {"provider": "pipedrive", "connection_id": "42000000-0000-4000-8000-0000000000c2", "object": "deals",
   "remote_id": "7", "event_type": "upsert", "dedupe_key": "is-g", "payload": {}},
  {"provider": "hubspot", "connection_id": null, "object": "contacts",
   "remote_id": "8", "event_type": "upsert", "dedupe_key": "is-h", "payload": {}}
]$$::jsonb)), 8, 'eight events stored');
update crm.webhook_events set received_at = now() - interval '7 minutes' where dedupe_key = 'is-a';
update crm.webhook_events set state = 'processing', attempts = 1, lease = gen_random_uuid(),
  locked_until = now() + interval '2 minutes', locked_by = 'w' where dedupe_key = 'is-d';
update crm.webhook_events set state = 'dead', dead_at = now(), attempts = 10 where dedupe_key = 'is-e';
update crm.webhook_events set state = 'done', processed_at = now() where dedupe_key = 'is-f';

select results_eq(
  $$select distinct inbox_pending, inbox_processing, inbox_dead,
           inbox_oldest_pending_age >= interval '7 minutes'
             and inbox_oldest_pending_age < interval '8 minutes'
    from crm.sync_status() where connection_id = '42000000-0000-4000-8000-0000000000c1'$$,
  $$values (3::bigint, 1::bigint, 1::bigint, true)$$,
  'c1: 3 pending, 1 processing, 1 dead (done not counted), oldest pending 7 minutes old');
select ok(
  (select count(*) > 1 and count(distinct inbox_pending) = 1
   from crm.sync_status() where connection_id = '42000000-0000-4000-8000-0000000000c1'),
  'every row of the connection carries the same backlog');
select results_eq(
  $$select distinct inbox_pending, inbox_processing, inbox_dead
    from crm.sync_status() where connection_id = '42000000-0000-4000-8000-0000000000c2'$$,
  $$values (1::bigint, 0::bigint, 0::bigint)$$,
  'c2: its own event only');

-- Applied events leave the backlog.
update crm.webhook_events set state = 'done', processed_at = now(), lease = null,
  locked_until = null, locked_by = null where dedupe_key in ('is-a', 'is-d');
select results_eq(
  $$select distinct inbox_pending, inbox_processing
    from crm.sync_status() where connection_id = '42000000-0000-4000-8000-0000000000c1'$$,
  $$values (2::bigint, 0::bigint)$$,
  'processed events leave the backlog');

-- The app (PostgREST, authenticated) sees its own account's backlog only.
set local role authenticated;
set local request.jwt.claims to
  '{"role": "authenticated", "app_metadata": {"account_id": "42000000-0000-4000-8000-0000000000a2"}}';
select results_eq(
  $$select distinct connection_id, inbox_pending from crm.sync_status()
    where connection_id in ('42000000-0000-4000-8000-0000000000c1', '42000000-0000-4000-8000-0000000000c2')$$,
  $$values ('42000000-0000-4000-8000-0000000000c2'::uuid, 1::bigint)$$,
  'an account sees its own connection''s backlog, not another''s');
reset role;

select ok(
  (select indexdef like '%WHERE (state = ANY (ARRAY[''processing''::text, ''dead''::text]))%'
   from pg_indexes where schemaname = 'crm' and indexname = 'webhook_events_backlog_idx'),
  'the processing/dead count has its partial index');

select * from finish();
rollback;
