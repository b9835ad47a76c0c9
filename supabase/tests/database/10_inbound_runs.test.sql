-- Inbound runs (issue 10, items 1-4, 7): fenced leases, pages split in halves around bad
-- records, failures kept and cleared, the sweep never tombstoning what a walk read, previews
-- that write nothing. Two real sessions: tests/db/inbound_runs.test.ts.
begin;
select plan(46);

insert into crm.connections (id, account_id, provider, remote_account_id) values
  ('10000000-0000-4000-8000-0000000000c1', '10000000-0000-4000-8000-0000000000a1', 'hubspot', 'runs-test-1'),
  ('10000000-0000-4000-8000-0000000000c2', '10000000-0000-4000-8000-0000000000a2', 'hubspot', 'runs-test-2');

-- Halving: 64 records, 2 bad ------------------------------------------------------------------
create temporary table r1 as
  select * from crm.begin_inbound_run('10000000-0000-4000-8000-0000000000c1', 'contacts', 'cron', 'delta');
select ok((select lease_token is not null and lease_expires_at > now() from r1), 'a run gets a fencing token and a lease expiry');

create temporary table p64 as
  select * from crm.save_inbound_page((select run_id from r1), (select lease_token from r1),
    '10000000-0000-4000-8000-0000000000c1', 'contacts', 'delta',
    (select jsonb_agg(jsonb_build_object('remote_id', 'h' || g, 'remote_updated_at', '2026-01-01T00:00:00Z',
                                         'email', 'h' || g || '@example.com')
                      || case when g in (10, 50) then '{"phone": "not-e164"}'::jsonb else '{}'::jsonb end
                      order by g)
     from generate_series(1, 64) g),
    '2026-01-01T00:00:00Z', 'h64', null);
select is((select created from p64), 62, 'every good record of the page applies');
select results_eq($$select f ->> 'remote_id' from p64, jsonb_array_elements(failed) f$$,
  $$values ('h10'), ('h50')$$, 'both bad records come back, in page order');
select ok((select bool_and(f ->> 'reason' ~ 'phone') from p64, jsonb_array_elements(failed) f),
  'each with its reason');
select cmp_ok((select apply_calls from p64), '<=', 2 * 2 * 6 + 1,
  'apply statements bounded by 2·k·log2(n) + 1 (k = 2, n = 64)');
select cmp_ok((select apply_calls from p64), '>', 1, 'the page was split (apply calls are counted)');
select is((select apply_calls from crm.save_inbound_page((select run_id from r1), (select lease_token from r1),
    '10000000-0000-4000-8000-0000000000c1', 'contacts', 'delta',
    '[{"remote_id": "h1", "remote_updated_at": "2026-01-01T00:00:00Z"}]', null, null, null)), 1,
  'a clean page takes one apply statement');

-- A value too large for an index (program_limit_exceeded at the write, naming no record) fails
-- alone: the rest of the page applies and the stream moves on.
create temporary table p_big as
  select * from crm.save_inbound_page((select run_id from r1), (select lease_token from r1),
    '10000000-0000-4000-8000-0000000000c1', 'contacts', 'delta',
    (select jsonb_agg(jsonb_build_object('remote_id', 'big' || g, 'remote_updated_at', '2026-01-01T00:00:00Z')
                      || case when g = 3 then jsonb_build_object('company_remote_id',
                           (select string_agg(md5(g || '-' || x), '') from generate_series(1, 200) x))
                         else '{}'::jsonb end
                      order by g)
     from generate_series(1, 5) g),
    null, null, null);
select is((select created from p_big), 4, 'the other records of the page apply');
select results_eq($$select f ->> 'remote_id' from p_big, jsonb_array_elements(failed) f$$,
  $$values ('big3')$$, 'the record too large for an index fails alone');
delete from crm.inbound_failures where remote_id = 'big3';

-- Failures --------------------------------------------------------------------------------------
select results_eq($$select remote_id, stage, attempts from crm.inbound_failures
                    where connection_id = '10000000-0000-4000-8000-0000000000c1' order by remote_id$$,
  $$values ('h10', 'apply', 1), ('h50', 'apply', 1)$$, 'each failed record is kept by remote id');
select ok((select bool_and(reason ~ 'phone' and first_failed_at = last_failed_at) from crm.inbound_failures
           where connection_id = '10000000-0000-4000-8000-0000000000c1'), 'with its reason and first failure');
select results_eq($$select remote_id from crm.due_inbound_failures('10000000-0000-4000-8000-0000000000c1', 'contacts') order by 1$$,
  $$values ('h10'), ('h50')$$, 'a new failure is due at the next run');

select lives_ok($$select * from crm.save_inbound_page((select run_id from r1), (select lease_token from r1),
    '10000000-0000-4000-8000-0000000000c1', 'contacts', 'retry',
    '[{"remote_id": "h10", "remote_updated_at": "2026-01-01T00:00:00Z", "phone": "still-bad"},
      {"remote_id": "h50", "remote_updated_at": "2026-01-01T00:00:00Z", "phone": "+14155550100"}]',
    null, null, null, '{}', '[{"remote_id": "u1", "reason": "unparseable"}, {"remote_id": null, "reason": "no id"}]')$$,
  'a retry page applies');
select results_eq($$select remote_id, stage, attempts, next_retry_at > now() from crm.inbound_failures
                    where connection_id = '10000000-0000-4000-8000-0000000000c1' order by remote_id$$,
  $$values ('h10', 'apply', 2, true), ('u1', 'read', 1, false)$$,
  'a fixed record leaves the table, one failing again waits longer, adapter errors with an id are kept');
select results_eq($$select remote_id from crm.due_inbound_failures('10000000-0000-4000-8000-0000000000c1', 'contacts')$$,
  $$values ('u1')$$, 'only due failures are handed out');
select is((select phone from crm.contacts where connection_id = '10000000-0000-4000-8000-0000000000c1' and remote_id = 'h50'),
  '+14155550100', 'the fixed record applied');
select results_eq($$select watermark_id from crm.sync_cursors
                    where connection_id = '10000000-0000-4000-8000-0000000000c1' and object = 'contacts'$$,
  $$values ('h64')$$, 'a retry page moves no cursor');

select lives_ok($$select * from crm.save_inbound_page((select run_id from r1), (select lease_token from r1),
    '10000000-0000-4000-8000-0000000000c1', 'contacts', 'delta',
    '[{"remote_id": "u1", "remote_updated_at": "2026-01-02T00:00:00Z"}]', '2026-01-02T00:00:00Z', 'u1', null)$$,
  'the record arrives in a normal page');
select results_eq($$select remote_id from crm.inbound_failures
                    where connection_id = '10000000-0000-4000-8000-0000000000c1' order by remote_id$$,
  $$values ('h10')$$, 'and its failure is cleared');
select is((select open_failures from crm.sync_status()
           where connection_id = '10000000-0000-4000-8000-0000000000c1' and object = 'contacts'),
  1::bigint, 'sync_status counts open failures per stream');
select is((select open_failures from crm.sync_status()
           where connection_id = '10000000-0000-4000-8000-0000000000c1' and object = 'deals'),
  0::bigint, 'and none for other streams');

-- Preview (dry run) --------------------------------------------------------------------------
create temporary table before_preview as
  select (select count(*) from crm.contacts where connection_id = '10000000-0000-4000-8000-0000000000c1') as contacts,
         (select count(*) from crm.inbound_failures where connection_id = '10000000-0000-4000-8000-0000000000c1') as failures,
         (select processed from crm.sync_log where id = (select run_id from r1)) as processed;
create temporary table pv as
  select * from crm.preview_inbound_page('10000000-0000-4000-8000-0000000000c1', 'contacts', 'delta',
    '[{"remote_id": "new1", "remote_updated_at": "2026-02-01T00:00:00Z"},
      {"remote_id": "new2", "remote_updated_at": "2026-02-01T00:00:00Z", "phone": "bad"}]');
select results_eq($$select created, jsonb_array_length(failed) from pv$$, $$values (1, 1)$$,
  'a preview reports what the page would do');
select results_eq(
  $$select (select count(*) from crm.contacts where connection_id = '10000000-0000-4000-8000-0000000000c1'),
           (select count(*) from crm.inbound_failures where connection_id = '10000000-0000-4000-8000-0000000000c1'),
           (select processed from crm.sync_log where id = (select run_id from r1))$$,
  $$select contacts, failures, processed from before_preview$$, 'and writes nothing');

-- Leases -------------------------------------------------------------------------------------
select is((select count(*)::int from crm.begin_inbound_run('10000000-0000-4000-8000-0000000000c1', 'contacts', 'cron', 'delta')),
  0, 'the stream is held: no second run');
select throws_ok($$select * from crm.save_inbound_page((select run_id from r1), (select lease_token from r1) + 1000,
    '10000000-0000-4000-8000-0000000000c1', 'contacts', 'delta', '[]', null, null, null)$$,
  'CRM10', null, 'a page with a token that does not hold the stream is refused');
-- The lease runs out (no heartbeat); a new run takes the stream over.
update crm.inbound_leases set expires_at = now() - interval '1 second'
where connection_id = '10000000-0000-4000-8000-0000000000c1' and object = 'contacts';
create temporary table r2 as
  select * from crm.begin_inbound_run('10000000-0000-4000-8000-0000000000c1', 'contacts', 'manual', 'delta');
select ok((select r2.lease_token > r1.lease_token from r1, r2), 'an expired lease is taken over with a newer token');
select ok((select status = 'failed' and error ->> 'message' ~ '^lease lost' from crm.sync_log where id = (select run_id from r1)),
  'the old run is closed as failed: lease lost');
select throws_ok($$select * from crm.save_inbound_page((select run_id from r1), (select lease_token from r1),
    '10000000-0000-4000-8000-0000000000c1', 'contacts', 'delta',
    '[{"remote_id": "late", "remote_updated_at": "2030-01-01T00:00:00Z"}]', '2030-01-01T00:00:00Z', 'late', '{"x": 1}')$$,
  'CRM10', null, 'the old run cannot write a page, watermark or checkpoint');
select throws_ok($$select * from crm.finish_full_sync_sweep('10000000-0000-4000-8000-0000000000c1', 'contacts',
    (select run_id from r1), (select lease_token from r1))$$, 'CRM10', null, 'nor sweep');
select throws_ok($$select crm.close_inbound_run((select run_id from r1), (select lease_token from r1), 'success')$$,
  'CRM10', null, 'nor close');
select results_eq($$select watermark_id, (select count(*)::int from crm.contacts c where c.remote_id = 'late')
                    from crm.sync_cursors where connection_id = '10000000-0000-4000-8000-0000000000c1' and object = 'contacts'$$,
  $$values ('u1', 0)$$, 'nothing of the old run landed');
create temporary table hb as select lease_expires_at from r2;
select lives_ok($$select * from crm.save_inbound_page((select run_id from r2), (select lease_token from r2),
    '10000000-0000-4000-8000-0000000000c1', 'contacts', 'delta', '[]', null, null, null)$$,
  'the new holder writes');
select ok((select l.expires_at >= (select lease_expires_at from hb) from crm.inbound_leases l
           where l.connection_id = '10000000-0000-4000-8000-0000000000c1' and l.object = 'contacts'),
  'and each page extends its lease (heartbeat)');
select lives_ok($$select crm.close_inbound_run((select run_id from r2), (select lease_token from r2), 'success')$$,
  'the holder closes its run');
select results_eq($$select run_id, token from crm.inbound_leases
                    where connection_id = '10000000-0000-4000-8000-0000000000c1' and object = 'contacts'$$,
  $$values (null::bigint, null::bigint)$$, 'closing frees the stream');
create temporary table r3 as
  select * from crm.begin_inbound_run('10000000-0000-4000-8000-0000000000c1', 'contacts', 'cron', 'delta');
-- r3's worker died an hour ago; the health check closes its run.
update crm.sync_log set started_at = now() - interval '2 hours' where id = (select run_id from r3);
select count(*) from crm.check_health();
select is((select count(*)::int from crm.begin_inbound_run('10000000-0000-4000-8000-0000000000c1', 'contacts', 'cron', 'delta')),
  1, 'a run closed by the health check frees its stream at once');
select throws_ok($$select * from crm.save_inbound_page((select run_id from r3), (select lease_token from r3),
    '10000000-0000-4000-8000-0000000000c1', 'contacts', 'delta', '[]', null, null, null)$$,
  'CRM10', null, 'and can no longer write');

-- Sweep --------------------------------------------------------------------------------------
select set_config('crm.engine', 'on', true);
insert into crm.contacts (connection_id, remote_id, email, last_synced_at) values
  ('10000000-0000-4000-8000-0000000000c2', 's-ok', 'ok@example.com', now() - interval '1 hour'),
  ('10000000-0000-4000-8000-0000000000c2', 's-unparsed', 'u@example.com', now() - interval '1 hour'),
  ('10000000-0000-4000-8000-0000000000c2', 's-rejected', 'r@example.com', now() - interval '1 hour'),
  ('10000000-0000-4000-8000-0000000000c2', 's-gone', 'g@example.com', now() - interval '1 hour');
select set_config('crm.engine', 'off', true);
create temporary table f1 as
  select * from crm.begin_inbound_run('10000000-0000-4000-8000-0000000000c2', 'contacts', 'cron', 'full');
select lives_ok($$select * from crm.save_inbound_page((select run_id from f1), (select lease_token from f1),
    '10000000-0000-4000-8000-0000000000c2', 'contacts', 'full',
    '[{"remote_id": "s-ok", "remote_updated_at": "2026-01-01T00:00:00Z"},
      {"remote_id": "s-rejected", "remote_updated_at": "2026-01-01T00:00:00Z", "phone": "bad"}]',
    '2026-01-01T00:00:00Z', 's-rejected', '{"page": 1}', '{}',
    '[{"remote_id": "s-unparsed", "reason": "the adapter could not parse it"}]')$$, 'a full page with a rejected and an unparsed record');
select results_eq($$select * from crm.finish_full_sync_sweep('10000000-0000-4000-8000-0000000000c2', 'contacts',
                    (select run_id from f1), (select lease_token from f1))$$,
  $$values (1, null::text)$$, 'the sweep tombstones only the record the walk did not read');
select results_eq($$select remote_id, deleted_at is not null, swept_at is not null from crm.contacts
                    where connection_id = '10000000-0000-4000-8000-0000000000c2' order by remote_id$$,
  $$values ('s-gone', true, true), ('s-ok', false, false), ('s-rejected', false, false), ('s-unparsed', false, false)$$,
  'records that failed to parse or apply stay; the sweep tombstone is marked swept_at');
select crm.close_inbound_run((select run_id from f1), (select lease_token from f1), 'partial');

-- A walk that read a record without an id does not sweep at all.
create temporary table f2 as
  select * from crm.begin_inbound_run('10000000-0000-4000-8000-0000000000c2', 'contacts', 'cron', 'full');
select lives_ok($$select * from crm.save_inbound_page((select run_id from f2), (select lease_token from f2),
    '10000000-0000-4000-8000-0000000000c2', 'contacts', 'full',
    '[{"remote_id": "s-ok", "remote_updated_at": "2026-01-01T00:00:00Z"}]', null, null, '{"page": 1}', '{}',
    '[{"remote_id": null, "reason": "record without an id"}]')$$, 'a full page with a record without an id');
create temporary table sw2 as
  select * from crm.finish_full_sync_sweep('10000000-0000-4000-8000-0000000000c2', 'contacts',
    (select run_id from f2), (select lease_token from f2));
select ok((select tombstoned = 0 and skipped ~ 'without a usable remote id' from sw2), 'the sweep skips, saying why');
select is((select count(*)::int from crm.contacts where connection_id = '10000000-0000-4000-8000-0000000000c2' and deleted_at is null),
  3, 'nothing tombstoned');
select ok((select details ->> 'sweep_skipped' ~ 'without a usable remote id' from crm.sync_log where id = (select run_id from f2)),
  'the run''s details record why');
select is((select full_sync_unidentified from crm.sync_cursors
           where connection_id = '10000000-0000-4000-8000-0000000000c2' and object = 'contacts'),
  0, 'the next walk starts counting afresh');

-- RLS: an account reads its own failures only ---------------------------------------------
set local role authenticated;
set local request.jwt.claims to
  '{"role": "authenticated", "app_metadata": {"account_id": "10000000-0000-4000-8000-0000000000a2"}}';
select results_eq($$select remote_id from crm.inbound_failures order by 1$$, $$values ('s-rejected'), ('s-unparsed')$$,
  'authenticated sees its own account''s failures only');
reset role;

select * from finish();
rollback;
