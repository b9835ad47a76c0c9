-- crm.backfill_progress() (20261206040100): per connection and object, the newest backfill
-- walk over its runs (a first run and its continuations, crm.mark_inbound_walk), the estimate
-- the pages recorded (crm.record_sync_progress with `remaining`), rate, ETA and state; it stays
-- readable after the walk ended and a later delta does not replace it. Signed-in users see
-- their own account's streams; anon cannot call it; only the service role marks walks.
begin;
select plan(28);

insert into crm.connections (id, account_id, provider, remote_account_id, status, name) values
  ('53000000-0000-4000-8000-0000000000c1', '53000000-0000-4000-8000-0000000000a1', 'hubspot', 'bp-1', 'active', 'HS'),
  ('53000000-0000-4000-8000-0000000000c2', '53000000-0000-4000-8000-0000000000a2', 'pipedrive', 'bp-2', 'active', 'PD');

select ok(has_function_privilege('authenticated', 'crm.backfill_progress()', 'execute'),
          'signed-in users can read the progress');
select ok(not has_function_privilege('anon', 'crm.backfill_progress()', 'execute'), 'anon cannot');
select ok(not has_function_privilege('authenticated', 'crm.mark_inbound_walk(bigint, boolean)', 'execute'),
          'only the engine marks walks');

create temporary table ids (name text primary key, id bigint) on commit drop;

-- HubSpot contacts: a backfill job, its first run, two pages with totals.
insert into crm.jobs (kind, connection_id, object, mode, priority, payload, created_at)
values ('inbound', '53000000-0000-4000-8000-0000000000c1', 'contacts', 'full', 40,
        '{"trigger": "backfill"}', now() - interval '200 seconds');
select is((select state from crm.backfill_progress()
           where connection_id = '53000000-0000-4000-8000-0000000000c1' and object = 'contacts'),
          'waiting', 'a queued backfill job with no run is waiting');

insert into ids select 'r1', crm.open_sync_run('53000000-0000-4000-8000-0000000000c1', 'contacts',
                                               'inbound', 'backfill', 'full');
select crm.mark_inbound_walk((select id from ids where name = 'r1'), false);
select is((select details -> 'walk_run' from crm.sync_log where id = (select id from ids where name = 'r1')),
          to_jsonb((select id from ids where name = 'r1')), 'a run from no checkpoint starts its walk');
select crm.record_sync_progress((select id from ids where name = 'r1'), '{"processed": 100, "remaining": 500}');
select is((select (details ->> 'estimated_total')::int from crm.sync_log where id = (select id from ids where name = 'r1')),
          500, 'the first page: nothing read before it, 500 remain from it on');
select crm.record_sync_progress((select id from ids where name = 'r1'), '{"processed": 100, "remaining": 400}');
select is((select (details ->> 'estimated_total')::int from crm.sync_log where id = (select id from ids where name = 'r1')),
          500, 'the second page: 100 read before it plus the 400 that remain');
select crm.record_sync_progress((select id from ids where name = 'r1'), '{"processed": 0}');
select is((select (details ->> 'estimated_total')::int from crm.sync_log where id = (select id from ids where name = 'r1')),
          500, 'a page without a total keeps the estimate');
update crm.sync_log set started_at = now() - interval '100 seconds',
                        details = details || '{"more": true}'
where id = (select id from ids where name = 'r1');
select crm.close_sync_run((select id from ids where name = 'r1'), 'success');

select results_eq(
  $$select state, records, estimated_total, runs from crm.backfill_progress()
    where connection_id = '53000000-0000-4000-8000-0000000000c1' and object = 'contacts'$$,
  $$values ('running', 200::bigint, 500::bigint, 1)$$,
  'between runs, with the job queued to continue, the walk is running');

-- The continuation (its trigger changed: an enqueue merged into the job).
insert into ids select 'r2', crm.open_sync_run('53000000-0000-4000-8000-0000000000c1', 'contacts',
                                               'inbound', 'cron', 'full');
select crm.mark_inbound_walk((select id from ids where name = 'r2'), true);
select is((select details -> 'walk_run' from crm.sync_log where id = (select id from ids where name = 'r2')),
          to_jsonb((select id from ids where name = 'r1')), 'a run from a checkpoint continues the walk');
select is((select (details ->> 'walk_before')::int from crm.sync_log where id = (select id from ids where name = 'r2')),
          200, 'knowing what the walk read before it');
select crm.record_sync_progress((select id from ids where name = 'r2'), '{"processed": 150, "remaining": 310}');
select is((select (details ->> 'estimated_total')::int from crm.sync_log where id = (select id from ids where name = 'r2')),
          510, 'its first page: 200 read by the walk before it plus the 310 that remain');

select results_eq(
  $$select state, records, estimated_total, rate, eta, finished_at from crm.backfill_progress()
    where connection_id = '53000000-0000-4000-8000-0000000000c1' and object = 'contacts'$$,
  $$values ('running', 350::bigint, 510::bigint, 3.5, interval '46 seconds', null::timestamptz)$$,
  'running: records over both runs, the newest estimate, 350 records in 100 s, (510 - 350) / 3.5 s left');

update crm.sync_log set details = details || '{"more": false}' where id = (select id from ids where name = 'r2');
select crm.close_sync_run((select id from ids where name = 'r2'), 'success');
update crm.sync_log set finished_at = now() - interval '90 seconds' where id = (select id from ids where name = 'r1');
update crm.sync_log set finished_at = now() - interval '50 seconds' where id = (select id from ids where name = 'r2');
update crm.jobs set state = 'done', finished_at = now()
where connection_id = '53000000-0000-4000-8000-0000000000c1' and object = 'contacts';

select results_eq(
  $$select state, records, estimated_total, rate, eta, started_at, finished_at, runs, last_error
    from crm.backfill_progress()
    where connection_id = '53000000-0000-4000-8000-0000000000c1' and object = 'contacts'$$,
  $$values ('done', 350::bigint, 510::bigint, 7.0, null::interval, now() - interval '100 seconds',
            now() - interval '50 seconds', 2, null::text)$$,
  'done: 350 records in the walk''s 50 s, no ETA, start and end of the walk');

-- A cron delta afterwards is a walk of its own, not a backfill: the backfill stays readable.
insert into ids select 'r3', crm.open_sync_run('53000000-0000-4000-8000-0000000000c1', 'contacts',
                                               'inbound', 'cron', 'delta');
select crm.mark_inbound_walk((select id from ids where name = 'r3'), false);
select crm.record_sync_progress((select id from ids where name = 'r3'), '{"processed": 3, "remaining": 3}');
select crm.close_sync_run((select id from ids where name = 'r3'), 'success');
insert into crm.jobs (kind, connection_id, object, mode, priority, payload)
values ('inbound', '53000000-0000-4000-8000-0000000000c1', 'contacts', 'delta', 30, '{"trigger": "cron"}');
select results_eq(
  $$select state, records, runs from crm.backfill_progress()
    where connection_id = '53000000-0000-4000-8000-0000000000c1' and object = 'contacts'$$,
  $$values ('done', 350::bigint, 2)$$,
  'after a later delta and with a cron delta queued, the backfill still reads done');

-- A continuation of another mode's walk does not join it.
insert into ids select 'r4', crm.open_sync_run('53000000-0000-4000-8000-0000000000c1', 'contacts',
                                               'inbound', 'cron', 'delta');
select crm.mark_inbound_walk((select id from ids where name = 'r4'), true);
select is((select details -> 'walk_run' from crm.sync_log where id = (select id from ids where name = 'r4')),
          to_jsonb((select id from ids where name = 'r3')), 'a delta continues the stream''s last delta walk');
select crm.close_sync_run((select id from ids where name = 'r4'), 'success');

-- Companies: waiting; deals: a failed walk whose job died; owners: a failed run being retried.
insert into crm.jobs (kind, connection_id, object, mode, priority, payload)
values ('inbound', '53000000-0000-4000-8000-0000000000c1', 'companies', 'full', 40, '{"trigger": "backfill"}');
insert into ids select 'd1', crm.open_sync_run('53000000-0000-4000-8000-0000000000c1', 'deals',
                                               'inbound', 'backfill', 'full');
select crm.mark_inbound_walk((select id from ids where name = 'd1'), false);
select crm.record_sync_progress((select id from ids where name = 'd1'), '{"processed": 40, "remaining": 90}');
select crm.close_sync_run((select id from ids where name = 'd1'), 'failed', '{}', '{"message": "HTTP 500"}');
insert into crm.jobs (kind, connection_id, object, mode, priority, payload, state, last_error, finished_at)
values ('inbound', '53000000-0000-4000-8000-0000000000c1', 'deals', 'full', 40, '{"trigger": "backfill"}',
        'dead', 'HTTP 500', now());
insert into ids select 'o1', crm.open_sync_run('53000000-0000-4000-8000-0000000000c1', 'owners',
                                               'inbound', 'backfill', 'full');
select crm.mark_inbound_walk((select id from ids where name = 'o1'), false);
select crm.close_sync_run((select id from ids where name = 'o1'), 'failed', '{}', '{"message": "timeout"}');
insert into crm.jobs (kind, connection_id, object, mode, priority, payload, run_after, attempts, created_at)
values ('inbound', '53000000-0000-4000-8000-0000000000c1', 'owners', 'full', 40, '{"trigger": "backfill"}',
        now() + interval '30 seconds', 1, now() - interval '1 minute');

select results_eq(
  $$select object, state, records, estimated_total, runs, last_error from crm.backfill_progress()
    where connection_id = '53000000-0000-4000-8000-0000000000c1'$$,
  $$values ('contacts', 'done', 350::bigint, 510::bigint, 2, null::text),
           ('companies', 'waiting', 0::bigint, null::bigint, 0, null),
           ('deals', 'failed', 40::bigint, 90::bigint, 1, 'HTTP 500'),
           ('owners', 'running', 0::bigint, null::bigint, 1, 'timeout')$$,
  'one row per stream with a backfill, in object order: waiting, failed with the error, retrying');
select is((select finished_at is not null and eta is null from crm.backfill_progress()
           where connection_id = '53000000-0000-4000-8000-0000000000c1' and object = 'deals'),
          true, 'a failed walk has an end and no ETA');
select is((select started_at from crm.backfill_progress()
           where connection_id = '53000000-0000-4000-8000-0000000000c1' and object = 'companies'),
          null, 'a waiting stream has not started');

-- Pipedrive gives no total: no estimate, no ETA, a rate all the same.
insert into ids select 'p1', crm.open_sync_run('53000000-0000-4000-8000-0000000000c2', 'deals',
                                               'inbound', 'backfill', 'delta');
select crm.mark_inbound_walk((select id from ids where name = 'p1'), false);
select crm.record_sync_progress((select id from ids where name = 'p1'), '{"processed": 80}');
update crm.sync_log set started_at = now() - interval '10 seconds' where id = (select id from ids where name = 'p1');
select results_eq(
  $$select provider, connection_name, state, records, estimated_total, rate, eta from crm.backfill_progress()
    where connection_id = '53000000-0000-4000-8000-0000000000c2'$$,
  $$values ('pipedrive', 'PD', 'running', 80::bigint, null::bigint, 8.0, null::interval)$$,
  'without a total: records and rate, no estimate, no ETA');
-- A request-driven backfill between two requests (more, no job) is still running, for a while.
update crm.sync_log set details = details || '{"more": true}' where id = (select id from ids where name = 'p1');
select crm.close_sync_run((select id from ids where name = 'p1'), 'success');
select is((select state from crm.backfill_progress()
           where connection_id = '53000000-0000-4000-8000-0000000000c2'), 'running',
          'a walk that said more a moment ago, with no job, is running');
update crm.sync_log set finished_at = now() - interval '10 minutes' where id = (select id from ids where name = 'p1');
select is((select state from crm.backfill_progress()
           where connection_id = '53000000-0000-4000-8000-0000000000c2'), 'failed',
          'one that said more long ago and that nothing continues failed');

-- Marking: runs that are not running are left alone; the counts stay as they were.
select crm.mark_inbound_walk((select id from ids where name = 'p1'), false);
select is((select details -> 'walk_run' from crm.sync_log where id = (select id from ids where name = 'p1')),
          to_jsonb((select id from ids where name = 'p1')), 'a closed run is not re-marked');
select crm.record_sync_progress((select id from ids where name = 'd1'), '{"processed": 5, "remaining": 1}');
select is((select processed from crm.sync_log where id = (select id from ids where name = 'd1')),
          40, 'a closed run takes no more progress');

-- Accounts: each signed-in user sees their own streams only.
set local role authenticated;
set local request.jwt.claims to
  '{"role": "authenticated", "app_metadata": {"account_id": "53000000-0000-4000-8000-0000000000a2"}}';
select results_eq(
  $$select connection_id::text, object, records from crm.backfill_progress()$$,
  $$values ('53000000-0000-4000-8000-0000000000c2', 'deals', 80::bigint)$$,
  'an account sees its own connection''s progress, not another''s');
set local request.jwt.claims to
  '{"role": "authenticated", "app_metadata": {"account_id": "53000000-0000-4000-8000-0000000000a1"}}';
select is((select count(*)::int from crm.backfill_progress()), 4, 'and the other account its four streams');
select throws_ok($$select crm.mark_inbound_walk(1, false)$$, '42501', null,
                 'a signed-in user cannot mark runs');
reset role;
set local role anon;
select throws_ok($$select * from crm.backfill_progress()$$, '42501', null, 'anon is refused');
reset role;

select * from finish();
rollback;
