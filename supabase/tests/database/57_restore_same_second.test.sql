-- A CRM restore within the second of the delete (issue 15, chaos Salesforce seed 3 app_wins;
-- 20261207010100_crm_restore_same_second.sql): Salesforce stamps to the second, so the undeleted
-- record reads back at the version the tombstone row already holds. A read made after the row's
-- last write restores it; without that bound (a direct apply, a run opened after its read) an
-- equal version stays unchanged, so a late read of the pre-delete version cannot revive it.
-- Counts are shown as (created,updated,unchanged,deleted,stale,conflicts).
begin;
select plan(15);

insert into crm.connections (id, account_id, provider, remote_account_id, status, settings) values
  ('57000000-0000-4000-8000-0000000000c1', '57000000-0000-4000-8000-0000000000a1', 'salesforce',
   'restore-same-second', 'active', '{"conflict_policy": "app_wins"}');

-- One page through crm.save_inbound_page (mode live: no lease) under run p_run.
create function pg_temp.save(p_run bigint, p_records jsonb) returns text language sql as $$
  select row(s.created, s.updated, s.unchanged, s.deleted, s.stale, s.conflicts)::text
  from crm.save_inbound_page(p_run, null, '57000000-0000-4000-8000-0000000000c1', 'contacts', 'live',
                             p_records, null, null, null) s
$$;
create function pg_temp.apply(p_records jsonb) returns text language sql as $$
  select row(a.created, a.updated, a.unchanged, a.deleted, a.stale, a.conflicts)::text
  from crm.apply_inbound('57000000-0000-4000-8000-0000000000c1', 'contacts', p_records) a
$$;
-- A run opened at p_started (sync_log's start is when its reads began).
create function pg_temp.run(p_started timestamptz, p_details jsonb default null) returns bigint
language sql as $$
  insert into crm.sync_log (connection_id, object, direction, trigger, started_at, details)
  values ('57000000-0000-4000-8000-0000000000c1', 'contacts', 'inbound', 'webhook', p_started, p_details)
  returning id
$$;
create function pg_temp.live(p_remote text) returns boolean language sql as $$
  select deleted_at is null from crm.contacts
  where connection_id = '57000000-0000-4000-8000-0000000000c1' and remote_id = p_remote
$$;

set local crm.engine = 'on';
insert into crm.contacts (id, connection_id, remote_id, remote_updated_at, first_name) values
  ('57000000-0000-4000-8000-000000000001', '57000000-0000-4000-8000-0000000000c1', 's1',
   '2026-06-02T12:00:05Z', 'Ash'),
  ('57000000-0000-4000-8000-000000000002', '57000000-0000-4000-8000-0000000000c1', 's2',
   '2026-06-02T12:00:05Z', 'Birch'),
  ('57000000-0000-4000-8000-000000000003', '57000000-0000-4000-8000-0000000000c1', 's3',
   '2026-06-02T12:00:05Z', 'Cedar'),
  ('57000000-0000-4000-8000-000000000004', '57000000-0000-4000-8000-0000000000c1', 's4',
   '2026-06-02T12:00:05Z', 'Dogwood');
reset crm.engine;

-- The app soft-deletes s1, s3, s4 and hard-deletes s2; the deletes of s1, s2, s3 are pushed (the
-- entries done: their completion set last_synced_at), s4's is still queued.
update crm.contacts set deleted_at = now()
where id in ('57000000-0000-4000-8000-000000000001', '57000000-0000-4000-8000-000000000003',
             '57000000-0000-4000-8000-000000000004');
delete from crm.contacts where id = '57000000-0000-4000-8000-000000000002';
delete from crm.outbox
where connection_id = '57000000-0000-4000-8000-0000000000c1'
  and record_id <> '57000000-0000-4000-8000-000000000004';
-- s2: the CRM's delete, read back in the same second, is a tombstone of a new id.
select is(pg_temp.apply('[{"remote_id": "s2", "remote_updated_at": "2026-06-02T12:00:05Z",
  "deleted": true, "first_name": "Birch"}]'), '(0,0,0,1,0,0)', 's2: the delete read back is a tombstone');
-- Every write above was a minute ago; the completions of the pushes too.
set local crm.engine = 'on';
update crm.contacts set updated_at = now() - interval '1 minute', last_synced_at = now() - interval '1 minute',
                        deleted_at = now() - interval '1 minute',
                        needs_sync = id = '57000000-0000-4000-8000-000000000004'
where connection_id = '57000000-0000-4000-8000-0000000000c1';
reset crm.engine;

-- The records read alive at the tombstones' own version (the undelete within the delete's
-- second, or the pre-delete version read late: the version cannot tell).
select is(pg_temp.apply('[{"remote_id": "s1", "remote_updated_at": "2026-06-02T12:00:05Z",
  "first_name": "Ash"}]'), '(0,0,1,0,0,0)', 'no read bound (a direct apply): a tie stays a tombstone');
select is(pg_temp.save(pg_temp.run(now() - interval '2 minutes'),
  '[{"remote_id": "s1", "remote_updated_at": "2026-06-02T12:00:05Z", "first_name": "Ash"}]'),
  '(0,0,1,0,0,0)', 'read before the tombstone was written: stays a tombstone');
select is(pg_temp.save(pg_temp.run(now(), '{"read_before_run": true}'),
  '[{"remote_id": "s1", "remote_updated_at": "2026-06-02T12:00:05Z", "first_name": "Ash"}]'),
  '(0,0,1,0,0,0)', 'a run opened after its read (read before write): stays a tombstone');
select ok(not pg_temp.live('s1'), 's1 still deleted');

-- The drift check: a listing (live records only) at a tombstone's own version differs when the
-- run began after the row's last write; s4's app delete is still queued.
create temp table run on commit drop as
  select b.run_id, b.lease_token
  from crm.begin_inbound_run('57000000-0000-4000-8000-0000000000c1', 'contacts', 'manual', 'drift') b;
create function pg_temp.compare() returns text language sql as $$
  select coalesce(string_agg(c.remote_id || ':' || c.reason, ',' order by c.remote_id), '')
  from run, crm.drift_compare_page(run.run_id, run.lease_token, '57000000-0000-4000-8000-0000000000c1',
    'contacts', '[{"id": "s1", "m": "2026-06-02T12:00:05Z"}, {"id": "s2", "m": "2026-06-02T12:00:05Z"},
                  {"id": "s3", "m": "2026-06-02T12:00:04Z"}, {"id": "s4", "m": "2026-06-02T12:00:05Z"}]') c
$$;
select is(pg_temp.compare(), 's1:tombstoned,s2:tombstoned', 'drift: listed live after the tombstones were written');
update crm.sync_log set started_at = now() - interval '2 minutes' where id = (select run_id from run);
select is(pg_temp.compare(), '', 'drift: a listing that may predate the tombstones does not differ');

select is(pg_temp.save(pg_temp.run(now()),
  '[{"remote_id": "s1", "remote_updated_at": "2026-06-02T12:00:05Z", "first_name": "Ash"}]'),
  '(0,1,0,0,0,0)', 's1 (app soft delete pushed), read after it: the undelete restores the row');
select is(pg_temp.save(pg_temp.run(now()),
  '[{"remote_id": "s2", "remote_updated_at": "2026-06-02T12:00:05Z", "first_name": "Birch", "last_name": "Roe"}]'),
  '(0,1,0,0,0,0)', 's2 (app hard delete pushed, read back), read after it: restored with the CRM''s values');
select ok(pg_temp.live('s2'), 's2 is live again (an update of the tombstone alone would count the same)');
select is(pg_temp.save(pg_temp.run(now()),
  '[{"remote_id": "s4", "remote_updated_at": "2026-06-02T12:00:05Z", "first_name": "Dogwood"}]'),
  '(0,0,1,0,0,0)', 's4: an app delete still queued is not restored by a read');
select is(pg_temp.save(pg_temp.run(now()),
  '[{"remote_id": "s3", "remote_updated_at": "2026-06-02T12:00:04Z", "first_name": "Cedar"}]'),
  '(0,0,0,0,1,0)', 's3: an older version is stale whenever it was read');

select results_eq(
  $$select remote_id, first_name, last_name, deleted_at is null, needs_sync from crm.contacts
    where connection_id = '57000000-0000-4000-8000-0000000000c1' order by remote_id$$,
  $$values ('s1', 'Ash', null::text, true, false), ('s2', 'Birch', 'Roe', true, false),
           ('s3', 'Cedar', null, false, false), ('s4', 'Dogwood', null, false, true)$$,
  's1 and s2 live, s3 and s4 tombstones');
select is((select id from crm.contacts where remote_id = 's1'
             and connection_id = '57000000-0000-4000-8000-0000000000c1'),
  '57000000-0000-4000-8000-000000000001'::uuid, 's1 keeps its id');
select is((select count(*)::integer from crm.outbox
           where connection_id = '57000000-0000-4000-8000-0000000000c1'
             and record_id <> '57000000-0000-4000-8000-000000000004'),
  0, 'nothing queued by the restores');

select * from finish();
rollback;
