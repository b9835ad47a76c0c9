-- sync_log runs (open / progress / close) and forward-only cursors.
begin;
select plan(34);

insert into crm.connections (id, account_id, provider, remote_account_id, last_error) values
  ('06000000-0000-4000-8000-0000000000c1', '06000000-0000-4000-8000-0000000000a1', 'hubspot', 'runs-test-1', 'old problem');

create temporary table run as
  select crm.open_sync_run('06000000-0000-4000-8000-0000000000c1', 'contacts', 'inbound', 'cron', 'delta',
                           '{"request_id": 42}') as id;
select results_eq(
  $$select status, object, direction, trigger, mode, processed, finished_at, details from crm.sync_log where id = (select id from run)$$,
  $$values ('running', 'contacts', 'inbound', 'cron', 'delta', 0, null::timestamptz, '{"request_id": 42}'::jsonb)$$,
  'open_sync_run: a running run');
select throws_ok($$select crm.open_sync_run('06000000-0000-4000-8000-0000000000c1', 'contacts', 'sideways', 'cron')$$,
  'CRM01', null, 'unknown direction: CRM01');
select throws_ok($$select crm.open_sync_run('06000000-0000-4000-8000-0000000000c1', 'contacts', 'inbound', 'cosmic_ray')$$,
  'CRM01', null, 'unknown trigger: CRM01');
select throws_ok($$select crm.open_sync_run('06000000-0000-4000-8000-0000000000c1', 'tickets', 'inbound', 'cron')$$,
  'CRM01', null, 'unknown object: CRM01');
select throws_ok($$select crm.open_sync_run('06000000-0000-4000-8000-0000000000c1', 'contacts', 'inbound', 'cron', 'turbo')$$,
  'CRM01', null, 'unknown mode: CRM01');
select throws_ok($$select crm.open_sync_run('06000000-0000-4000-8000-00000000dead', 'contacts', 'inbound', 'cron')$$,
  'CRM02', null, 'unknown connection: CRM02');
select lives_ok(
  $$select crm.open_sync_run('06000000-0000-4000-8000-0000000000c1', null, 'outbound', 'manual')$$,
  'a run may span all objects (object NULL)');

select crm.record_sync_progress((select id from run), '{"processed": 100, "created": 60, "updated": 30, "api_calls": 2}');
select crm.record_sync_progress((select id from run), '{"processed": 50, "unchanged": 50, "api_calls": 1}');
select results_eq(
  $$select processed, created, updated, unchanged, api_calls from crm.sync_log where id = (select id from run)$$,
  $$values (150, 60, 30, 50, 3)$$, 'progress increments add up');

select throws_ok($$select crm.close_sync_run((select id from run), 'done')$$, 'CRM01', null,
  'unknown final status: CRM01');
select results_eq(
  $$select status, processed, deleted, failed, finished_at is not null, duration_ms >= 0
    from crm.close_sync_run((select id from run), 'success', '{"processed": 10, "deleted": 1, "failed": 0}')$$,
  $$values ('success', 160, 1, 0, true, true)$$, 'close_sync_run: success with final increments');
select results_eq(
  $$select c.last_synced_at = l.finished_at, c.last_error from crm.connections c, crm.sync_log l
    where c.id = '06000000-0000-4000-8000-0000000000c1' and l.id = (select id from run)$$,
  $$values (true, null::text)$$, 'success stamps last_synced_at and clears last_error');
select results_eq(
  $$select status, processed from crm.close_sync_run((select id from run), 'failed', '{"processed": 1000}')$$,
  $$values ('success', 160)$$, 'closing a closed run changes nothing');

create temporary table run2 as
  select crm.open_sync_run('06000000-0000-4000-8000-0000000000c1', 'deals', 'inbound', 'webhook') as id;
select results_eq(
  $$select status, error ->> 'code' from crm.close_sync_run((select id from run2), 'failed', '{"failed": 3}',
      '{"message": "HubSpot 401: token expired", "code": "AUTH"}')$$,
  $$values ('failed', 'AUTH')$$, 'failed runs keep error details');
select results_eq(
  $$select last_error, last_error_at is not null from crm.connections where id = '06000000-0000-4000-8000-0000000000c1'$$,
  $$values ('HubSpot 401: token expired', true)$$, 'a failed run sets the connection''s last_error');
create temporary table run3 as
  select crm.open_sync_run('06000000-0000-4000-8000-0000000000c1', 'deals', 'outbound', 'cron') as id;
select is((select status from crm.close_sync_run((select id from run3), 'partial', '{"failed": 1}',
  '{"message": "1 of 50 failed"}')), 'partial', 'partial runs');
select isnt((select last_error from crm.connections where id = '06000000-0000-4000-8000-0000000000c1'), null,
  'partial leaves last_error alone');
select throws_ok(
  $$insert into crm.sync_log (connection_id, direction, trigger, status) values
    ('06000000-0000-4000-8000-0000000000c1', 'inbound', 'cron', 'success')$$,
  '23514', null, 'a finished run must have finished_at');

-- Cursors: only forward. ------------------------------------------------------------------------
select is(crm.advance_cursor('06000000-0000-4000-8000-0000000000c1', 'contacts', '2026-01-01T10:00:00Z', '500'), true,
  'first watermark is stored');
select is(crm.advance_cursor('06000000-0000-4000-8000-0000000000c1', 'contacts', '2026-01-01T09:00:00Z', '900'), false,
  'an older timestamp does not move it');
select is(crm.advance_cursor('06000000-0000-4000-8000-0000000000c1', 'contacts', '2026-01-01T10:00:00Z', '500'), false,
  'the same position does not move it');
select is(crm.advance_cursor('06000000-0000-4000-8000-0000000000c1', 'contacts', '2026-01-01T10:00:00Z', '60'), false,
  'same timestamp, smaller numeric id (60 < 500): no move');
select is(crm.advance_cursor('06000000-0000-4000-8000-0000000000c1', 'contacts', '2026-01-01T10:00:00Z', '1000'), true,
  'same timestamp, larger numeric id (1000 > 500, though "1000" < "500" as text): moves');
select results_eq(
  $$select watermark_at, watermark_id from crm.sync_cursors
    where connection_id = '06000000-0000-4000-8000-0000000000c1' and object = 'contacts'$$,
  $$values ('2026-01-01T10:00:00Z'::timestamptz, '1000')$$, 'watermark is (10:00, 1000)');
select is(crm.advance_cursor('06000000-0000-4000-8000-0000000000c1', 'contacts', '2026-01-01T10:00:01Z', '1'), true,
  'a newer timestamp moves it whatever the id');
select is(crm.advance_cursor('06000000-0000-4000-8000-0000000000c1', 'deals', '2026-01-01T10:00:00Z', '006Aa00000AbCdE'), true,
  'Salesforce ids');
select is(crm.advance_cursor('06000000-0000-4000-8000-0000000000c1', 'deals', '2026-01-01T10:00:00Z', '006Aa00000AbCdD'), false,
  'Salesforce ids compare bytewise');
select is(crm.advance_cursor('06000000-0000-4000-8000-0000000000c1', 'deals', '2026-01-01T10:00:00Z', '006Aa00000AbCdF'), true,
  'Salesforce ids compare bytewise (forward)');
select is((select watermark_at from crm.sync_cursors
           where connection_id = '06000000-0000-4000-8000-0000000000c1' and object = 'contacts'),
  '2026-01-01T10:00:01Z'::timestamptz, 'contacts and deals cursors are independent');
select ok(crm._id_sort_key('9') < crm._id_sort_key('10') collate "C", 'numeric ids sort as numbers');

select crm.save_full_sync_checkpoint('06000000-0000-4000-8000-0000000000c1', 'companies', '{"after": "100"}');
update crm.sync_cursors set full_sync_started_at = '2026-01-01T00:00:00Z'
where connection_id = '06000000-0000-4000-8000-0000000000c1' and object = 'companies';
select crm.save_full_sync_checkpoint('06000000-0000-4000-8000-0000000000c1', 'companies', '{"after": "200"}');
select results_eq(
  $$select full_sync_checkpoint, full_sync_started_at, watermark_at from crm.sync_cursors
    where connection_id = '06000000-0000-4000-8000-0000000000c1' and object = 'companies'$$,
  $$values ('{"after": "200"}'::jsonb, '2026-01-01T00:00:00Z'::timestamptz, null::timestamptz)$$,
  'a full walk checkpoints and keeps its start time; the delta watermark is untouched');
select crm.finish_full_sync('06000000-0000-4000-8000-0000000000c1', 'companies');
select results_eq(
  $$select full_sync_checkpoint, full_sync_started_at, last_full_sync_at is not null from crm.sync_cursors
    where connection_id = '06000000-0000-4000-8000-0000000000c1' and object = 'companies'$$,
  $$values (null::jsonb, null::timestamptz, true)$$, 'finishing clears the checkpoint');
select throws_ok(
  $$select crm.advance_cursor('06000000-0000-4000-8000-0000000000c1', 'tickets', now(), '1')$$,
  '23514', null, 'cursors only for known objects');
select throws_ok(
  $$select crm.advance_cursor('06000000-0000-4000-8000-00000000dead', 'contacts', now(), '1')$$,
  '23503', null, 'cursors only for existing connections');

-- Engine functions are callable by service_role.
set local role service_role;
select lives_ok($$select crm.close_sync_run(crm.open_sync_run('06000000-0000-4000-8000-0000000000c1', 'owners', 'inbound', 'cron', 'full'), 'success')$$,
  'service_role opens and closes runs');
reset role;

select * from finish();
rollback;
