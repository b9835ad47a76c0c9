-- The inbound engine's SQL side: run leases, atomic page writes with per-record fallback,
-- (leases, halving, failures and the sweep rule in detail: 10_inbound_runs.test.sql)
-- live pages that move no cursor, the full-walk sweep, and the connection error state.
begin;
select plan(25);

insert into crm.connections (id, account_id, provider, remote_account_id) values
  ('08000000-0000-4000-8000-0000000000c1', '08000000-0000-4000-8000-0000000000a1', 'hubspot', 'engine-test-1');

-- Leases ------------------------------------------------------------------------------------
create temporary table r1 as
  select * from crm.begin_inbound_run('08000000-0000-4000-8000-0000000000c1', 'contacts', 'cron', 'delta');
select is((select count(*)::int from r1), 1, 'begin_inbound_run opens a run');
select results_eq($$select watermark_at, delta_checkpoint from r1$$,
  $$values (null::timestamptz, null::jsonb)$$, 'no cursor yet');
select is((select count(*)::int from crm.begin_inbound_run('08000000-0000-4000-8000-0000000000c1', 'contacts', 'manual', 'delta')),
  0, 'a second run of the same stream is refused while the first holds the lease');
select is((select count(*)::int from crm.begin_inbound_run('08000000-0000-4000-8000-0000000000c1', 'deals', 'manual', 'delta')),
  1, 'another object of the same connection may run');
select throws_ok($$select * from crm.begin_inbound_run('08000000-0000-4000-8000-0000000000c1', 'contacts', 'cron', 'retry')$$,
  'CRM01', null, 'inbound mode must be delta or full');
select throws_ok($$select * from crm.begin_inbound_run('08000000-0000-4000-8000-00000000dead', 'contacts', 'cron', 'delta')$$,
  'CRM02', null, 'unknown connection: CRM02');

-- Page writes -------------------------------------------------------------------------------
create temporary table p1 as
  select * from crm.save_inbound_page((select run_id from r1), (select lease_token from r1), '08000000-0000-4000-8000-0000000000c1', 'contacts', 'delta',
    '[{"remote_id": "1", "remote_updated_at": "2026-01-01T00:00:00Z", "email": "a@example.com"},
      {"remote_id": "2", "remote_updated_at": "2026-01-01T00:00:01Z", "email": "b@example.com"}]',
    '2026-01-01T00:00:01Z', '2', '{"after": "x"}', '{"api_calls": 1}');
select results_eq($$select created, updated, failed from p1$$, $$values (2, 0, '[]'::jsonb)$$,
  'a page is applied set-based');
select results_eq($$select watermark_at, watermark_id, delta_checkpoint from crm.sync_cursors
                    where connection_id = '08000000-0000-4000-8000-0000000000c1' and object = 'contacts'$$,
  $$values ('2026-01-01T00:00:01Z'::timestamptz, '2', '{"after": "x"}'::jsonb)$$,
  'watermark and checkpoint move with the page');

create temporary table p2 as
  select * from crm.save_inbound_page((select run_id from r1), (select lease_token from r1), '08000000-0000-4000-8000-0000000000c1', 'contacts', 'delta',
    '[{"remote_id": "3", "remote_updated_at": "2026-01-01T00:00:02Z", "email": "c@example.com"},
      {"remote_id": "4", "remote_updated_at": "2026-01-01T00:00:03Z", "phone": "not-e164"},
      {"remote_id": "5", "remote_updated_at": "not a time"}]',
    '2026-01-01T00:00:03Z', '5', null, '{"api_calls": 1}');
select is((select created from p2), 1, 'a bad record does not sink the page: the good one is applied');
select is((select jsonb_array_length(failed) from p2), 2, 'both bad records come back');
select ok((select failed -> 0 ->> 'remote_id' = '4' and failed -> 0 ->> 'reason' ~ 'phone' from p2),
  'each with its reason');
select is((select count(*)::int from crm.contacts where connection_id = '08000000-0000-4000-8000-0000000000c1'),
  3, 'three contacts written');
select results_eq($$select processed, created, failed, api_calls from crm.sync_log where id = (select run_id from r1)$$,
  $$values (5, 3, 2, 2)$$, 'run counts follow the pages');

-- Live pages move no cursor
select lives_ok($$select * from crm.save_inbound_page((select run_id from r1), null, '08000000-0000-4000-8000-0000000000c1',
    'contacts', 'live', '[{"remote_id": "9", "remote_updated_at": "2027-01-01T00:00:00Z"}]', null, null, null)$$,
  'a live page applies');
select results_eq($$select watermark_id, delta_checkpoint from crm.sync_cursors
                    where connection_id = '08000000-0000-4000-8000-0000000000c1' and object = 'contacts'$$,
  $$values ('5', null::jsonb)$$, 'and leaves watermark alone (the delta checkpoint was cleared by the last page)');

-- Full walk and sweep -----------------------------------------------------------------------
-- Bookkeeping columns are the engine's: backdate them as the engine.
select set_config('crm.engine', 'on', true);
update crm.contacts set last_synced_at = now() - interval '1 hour'
where connection_id = '08000000-0000-4000-8000-0000000000c1';
select set_config('crm.engine', 'off', true);
select crm.close_inbound_run((select run_id from r1), (select lease_token from r1), 'success');
create temporary table r2 as
  select * from crm.begin_inbound_run('08000000-0000-4000-8000-0000000000c1', 'contacts', 'cron', 'full');
select is((select count(*)::int from r2), 1, 'a full run opens after the delta closed');
select lives_ok($$select * from crm.save_inbound_page((select run_id from r2), (select lease_token from r2), '08000000-0000-4000-8000-0000000000c1',
    'contacts', 'full', '[{"remote_id": "1", "remote_updated_at": "2026-01-01T00:00:00Z", "email": "a@example.com"},
                          {"remote_id": "3", "remote_updated_at": "2026-01-01T00:00:02Z", "email": "c@example.com"}]',
    '2026-01-01T00:00:02Z', '3', '{"page": 2}')$$, 'a full page applies');
select is((select full_sync_checkpoint from crm.sync_cursors
           where connection_id = '08000000-0000-4000-8000-0000000000c1' and object = 'contacts'),
  '{"page": 2}'::jsonb, 'full checkpoint saved');
select is((select count(*)::int from crm.full_sync_seen where connection_id = '08000000-0000-4000-8000-0000000000c1'),
  2, 'seen ids recorded');
select is((select tombstoned from crm.finish_full_sync_sweep('08000000-0000-4000-8000-0000000000c1', 'contacts',
                                    (select run_id from r2), (select lease_token from r2))), 2,
  'the sweep tombstones the two records the walk did not see');
select results_eq($$select remote_id from crm.contacts where connection_id = '08000000-0000-4000-8000-0000000000c1'
                    and deleted_at is not null order by remote_id$$,
  $$values ('2'), ('9')$$, 'exactly those');
select is((select count(*)::int from crm.outbox o join crm.contacts c on c.id = o.record_id
           where c.connection_id = '08000000-0000-4000-8000-0000000000c1'), 0,
  'sweeping is an engine write: nothing queued outbound');
select results_eq($$select full_sync_checkpoint, last_full_sync_at is not null from crm.sync_cursors
                    where connection_id = '08000000-0000-4000-8000-0000000000c1' and object = 'contacts'$$,
  $$values (null::jsonb, true)$$, 'the sweep finishes the full sync');

-- Connection error state --------------------------------------------------------------------
select crm.mark_connection_error('08000000-0000-4000-8000-0000000000c1', 'hubspot refused the stored credentials');
select results_eq($$select status, last_error from crm.connections where id = '08000000-0000-4000-8000-0000000000c1'$$,
  $$values ('error', 'hubspot refused the stored credentials')$$, 'mark_connection_error');
select throws_ok($$select * from crm.begin_inbound_run('08000000-0000-4000-8000-0000000000c1', 'deals', 'cron', 'delta')$$,
  'CRM06', null, 'an errored connection does not sync until resumed');

select * from finish();
rollback;
