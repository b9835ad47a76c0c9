-- The drift check's SQL (20261205040100): runs of mode drift hold the stream's lease; one
-- statement per page compares listed (id, modified) with the mirror and returns what is missing,
-- stale or tombstoned but restorable, nothing for equal rows; after the walk, live rows it never
-- listed and nothing wrote since it started are deletion candidates; progress sums totals and
-- 'done' clears the walk. Every function checks the lease (CRM10) and only the service role may
-- call them.
begin;
select plan(21);

insert into crm.connections (id, account_id, provider, remote_account_id) values
  ('04100000-0000-4000-8000-0000000000c1', '04100000-0000-4000-8000-0000000000a1', 'hubspot', 'drift-test-1');

select is((select (a.created + a.deleted, a.updated)::text from crm.apply_inbound('04100000-0000-4000-8000-0000000000c1', 'contacts', '[
  {"remote_id": "eq", "remote_updated_at": "2026-01-01T10:00:00Z", "first_name": "Equal"},
  {"remote_id": "st", "remote_updated_at": "2026-01-01T10:00:00Z", "first_name": "Stale"},
  {"remote_id": "tb", "remote_updated_at": "2026-01-01T10:00:00Z", "first_name": "Gone", "deleted": true},
  {"remote_id": "te", "remote_updated_at": "2026-01-01T10:00:00Z", "first_name": "GoneEqual", "deleted": true},
  {"remote_id": "sw", "remote_updated_at": "2026-01-01T10:00:00Z", "first_name": "Swept"},
  {"remote_id": "c1", "remote_updated_at": "2026-01-01T10:00:00Z", "first_name": "Unlisted"},
  {"remote_id": "c2", "remote_updated_at": "2026-01-01T10:00:00Z", "first_name": "Unlisted2"},
  {"remote_id": "wr", "remote_updated_at": "2026-01-01T10:00:00Z", "first_name": "WrittenDuring"}
]'::jsonb) a), '(8,0)', 'eight mirror rows');
-- A sweep tombstone (restored by a listing of the same time).
set local crm.engine = 'on';
update crm.contacts set deleted_at = now(), swept_at = now()
where connection_id = '04100000-0000-4000-8000-0000000000c1' and remote_id = 'sw';
reset crm.engine;
insert into crm.record_aliases (connection_id, object, alias_remote_id, remote_id)
values ('04100000-0000-4000-8000-0000000000c1', 'contacts', 'al', 'eq');

create temp table run on commit drop as
  select b.run_id, b.lease_token
  from crm.begin_inbound_run('04100000-0000-4000-8000-0000000000c1', 'contacts', 'manual', 'drift') b;
select is((select l.mode from crm.sync_log l where l.id = (select run_id from run)), 'drift',
  'a drift run is logged with mode drift');
select is((select count(*)::int from crm.begin_inbound_run('04100000-0000-4000-8000-0000000000c1',
  'contacts', 'manual', 'full')), 0, 'a drift run holds the stream: no walk starts meanwhile');

select is((select s.resumed from run, crm.drift_walk_state(run.run_id, run.lease_token,
  '04100000-0000-4000-8000-0000000000c1', 'contacts') s), false, 'a fresh walk');
select is((select s.resumed from run, crm.drift_walk_state(run.run_id, run.lease_token,
  '04100000-0000-4000-8000-0000000000c1', 'contacts') s), true, 'the walk under way is resumed');

create function pg_temp.compare(p_stamps jsonb) returns text language sql as $$
  select coalesce(string_agg(c.remote_id || ':' || c.reason, ',' order by c.remote_id), '')
  from run, crm.drift_compare_page(run.run_id, run.lease_token,
    '04100000-0000-4000-8000-0000000000c1', 'contacts', p_stamps) c
$$;

select is(pg_temp.compare('[
  {"id": "eq", "m": "2026-01-01T10:00:00Z"},
  {"id": "st", "m": "2026-01-01T10:00:05Z"},
  {"id": "nw", "m": "2026-01-01T09:00:00Z"},
  {"id": "tb", "m": "2026-01-01T10:00:01Z"},
  {"id": "te", "m": "2026-01-01T10:00:00Z"},
  {"id": "sw", "m": "2026-01-01T10:00:00Z"},
  {"id": "al", "m": "2026-01-01T10:00:00Z"},
  {"id": "wr", "m": "2025-12-31T10:00:00Z"},
  {"id": "xx", "m": null}
]'), 'nw:missing,st:stale,sw:tombstoned,tb:tombstoned,xx:missing',
  'missing, newer remotely and restorable tombstones differ; equal, older, merged aliases and unrestorable tombstones do not');
select is(pg_temp.compare('[]'), '', 'an empty page compares to nothing');
select is(pg_temp.compare('[{"id": "eq", "m": "2026-01-01T10:00:00Z"}, {"id": "eq", "m": "2026-01-01T11:00:00Z"}]'),
  'eq:stale', 'an id listed twice counts once, with its newest time');
select is((select count(*)::int from crm.drift_seen where connection_id = '04100000-0000-4000-8000-0000000000c1'),
  9, 'every listed id is kept as seen, once');
select throws_ok($$select * from run, crm.drift_compare_page(run.run_id, run.lease_token + 1,
  '04100000-0000-4000-8000-0000000000c1', 'contacts', '[]')$$, 'CRM10', null,
  'a compare without the lease fails');
select throws_ok($$select * from run, crm.drift_compare_page(run.run_id, run.lease_token,
  '04100000-0000-4000-8000-0000000000c1', 'contacts', '{}')$$, 'CRM01', null,
  'stamps must be an array');
select throws_ok($$select * from run, crm.drift_deletion_candidates(run.run_id, run.lease_token,
  '04100000-0000-4000-8000-0000000000c1', 'contacts', null, 100)$$, 'CRM01', null,
  'no candidates before the walk finished');

-- A row written while the walk ran (a webhook) is no candidate.
set local crm.engine = 'on';
update crm.contacts set last_synced_at = clock_timestamp() + interval '1 minute'
where connection_id = '04100000-0000-4000-8000-0000000000c1' and remote_id = 'wr';
reset crm.engine;

select is((select (crm.save_drift_progress(run.run_id, run.lease_token,
  '04100000-0000-4000-8000-0000000000c1', 'contacts', 'confirm', null,
  '{"compared": 9, "stale": 1}') ->> 'compared') from run), '9', 'progress adds to the totals');
select is((select string_agg(c.remote_id, ',' order by c.remote_id) from run,
  crm.drift_deletion_candidates(run.run_id, run.lease_token,
    '04100000-0000-4000-8000-0000000000c1', 'contacts', null, 100) c), 'c1,c2',
  'live rows never listed and not written since the walk started are the candidates');
select is((select string_agg(c.remote_id, ',') from run,
  crm.drift_deletion_candidates(run.run_id, run.lease_token,
    '04100000-0000-4000-8000-0000000000c1', 'contacts', 'c1', 100) c), 'c2',
  'candidates continue after a position');
select is((select crm.save_drift_progress(run.run_id, run.lease_token,
  '04100000-0000-4000-8000-0000000000c1', 'contacts', 'done', null,
  '{"compared": 1, "deleted": 2}') from run), '{"stale": 1, "deleted": 2, "compared": 10}'::jsonb,
  'done returns the summed totals');
select is((select count(*)::int from crm.drift_seen where connection_id = '04100000-0000-4000-8000-0000000000c1')
  + (select count(*)::int from crm.drift_walks where connection_id = '04100000-0000-4000-8000-0000000000c1'),
  0, 'a finished walk leaves no staging behind');

-- Rights.
select ok(not has_function_privilege('authenticated',
  'crm.drift_compare_page(bigint, bigint, uuid, text, jsonb)', 'execute')
  and not has_function_privilege('anon', 'crm.drift_deletion_candidates(bigint, bigint, uuid, text, text, integer)', 'execute')
  and not has_function_privilege('authenticated', 'crm.save_drift_progress(bigint, bigint, uuid, text, text, jsonb, jsonb)', 'execute')
  and has_function_privilege('service_role', 'crm.drift_compare_page(bigint, bigint, uuid, text, jsonb)', 'execute'),
  'only the service role runs the drift functions');
select ok(not has_function_privilege('authenticated', 'crm._analyze_drift_seen()', 'execute')
  and not has_function_privilege('anon', 'crm._analyze_drift_seen()', 'execute'),
  'only the service role may refresh the staging statistics');
select ok(not has_table_privilege('authenticated', 'crm.drift_seen', 'select')
  and not has_table_privilege('anon', 'crm.drift_walks', 'select')
  and not has_table_privilege('authenticated', 'crm.drift_walks', 'insert'),
  'apps cannot read the staging or write the walks');
select ok((select bool_and(c.relrowsecurity) from pg_class c
           where c.oid in ('crm.drift_seen'::regclass, 'crm.drift_walks'::regclass)),
  'RLS is on for both drift tables');

select * from finish();
rollback;
