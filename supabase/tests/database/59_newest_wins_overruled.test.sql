-- newest_wins and an overruled CRM value (issue 15, 20261207040100_crm_newest_wins_overruled.sql):
-- once the app's edit has won a field's conflict, a later read of the same CRM value at a newer
-- record time (the engine's own write of another field moved it) is not a new CRM change. Times
-- are relative to the transaction's now(), the time of every app edit here. Counts of
-- apply_inbound are shown as (created,updated,unchanged,deleted,stale,conflicts).
begin;
select plan(12);

insert into crm.connections (id, account_id, provider, remote_account_id, status, settings) values
  ('59000000-0000-4000-8000-0000000000c1', '59000000-0000-4000-8000-0000000000a1', 'hubspot', 'overruled', 'active',
   '{"conflict_policy": "newest_wins"}');

set local crm.engine = 'on';
insert into crm.contacts (id, connection_id, remote_id, remote_updated_at, first_name, last_name, job_title)
select ('59000000-0000-4000-8000-00000000000' || i)::uuid, '59000000-0000-4000-8000-0000000000c1', i::text,
       now() - interval '60 seconds', 'F' || i, 'L' || i, 'J' || i
from generate_series(1, 2) i;
reset crm.engine;

create function pg_temp.held() returns jsonb language sql as $$
  select coalesce(jsonb_agg(jsonb_build_object('id', o.id, 'lease', o.lease,
                                               'remote_version', now() + interval '5 seconds')), '[]'::jsonb)
  from crm.outbox o where o.connection_id = '59000000-0000-4000-8000-0000000000c1' and o.state = 'processing'
$$;
create function pg_temp.apply(p_records jsonb) returns text language sql as $$
  select row(a.created, a.updated, a.unchanged, a.deleted, a.stale, a.conflicts)::text
  from crm.apply_inbound('59000000-0000-4000-8000-0000000000c1', 'contacts', p_records) a
$$;
create function pg_temp.rec(p_id text, p_at interval, p_last text, p_job text) returns jsonb language sql as $$
  select jsonb_build_array(jsonb_build_object('remote_id', p_id, 'remote_updated_at', now() + p_at,
                                              'first_name', 'F' || p_id, 'last_name', p_last, 'job_title', p_job))
$$;
create function pg_temp.job(p_id text) returns text language sql as $$
  select job_title from crm.contacts
  where remote_id = p_id and connection_id = '59000000-0000-4000-8000-0000000000c1'
$$;

-- Both records: a CRM user changed the job title a second before the app's edits (the engine has
-- not read it); the app edits the last name; its push is claimed; the app edits the job title.
update crm.contacts set last_name = 'AppL' || remote_id
where connection_id = '59000000-0000-4000-8000-0000000000c1';
select is((select count(*)::integer
           from crm.claim_outbox('test', 10, '5 minutes', '59000000-0000-4000-8000-0000000000c1', 'contacts')),
  2, 'the last-name pushes are claimed');
update crm.contacts set job_title = 'AppJ' || remote_id
where connection_id = '59000000-0000-4000-8000-0000000000c1';
-- The read before the write (the CRM's version: its user's edit) applies the records: the app's
-- job title is newer and wins.
select is(pg_temp.apply(pg_temp.rec('1', '-1 second', 'L1', 'Crm1') || pg_temp.rec('2', '-1 second', 'L2', 'Crm2')),
  '(0,0,2,0,0,2)', 'read before the write: the app''s newer job titles win');
-- The last-name writes land 5 s later: that is the records' new version.
select is((select row(c.completed, c.released)::text from crm.complete_outbox(pg_temp.held()) c),
  '(0,2)', 'completed; the entries go back for the job titles edited meanwhile');

-- 1: read again at the version the engine's write produced, with the same overruled job title.
select is(pg_temp.apply(pg_temp.rec('1', '5 seconds', 'AppL1', 'Crm1')), '(0,0,1,0,0,0)',
  'the overruled value at the engine''s write version: unchanged, no new conflict');
select is(pg_temp.job('1'), 'AppJ1', 'the row keeps the app''s job title');
select is((select changed_columns from crm.outbox where remote_id = '1'
           and connection_id = '59000000-0000-4000-8000-0000000000c1'), '{job_title}'::text[],
  'the job title is still to be pushed (the last name is the write''s echo)');
select is((select string_agg(resolution, ',' order by id) from crm.conflicts where field = 'job_title'
           and remote_id = '1' and connection_id = '59000000-0000-4000-8000-0000000000c1'), 'local',
  'one conflict, won by the app');
-- 2: a CRM user's new value after the app's edit: the CRM wins.
select is(pg_temp.apply(pg_temp.rec('2', '10 seconds', 'AppL2', 'Crm2b')), '(0,1,0,0,0,1)',
  'a CRM user''s later value: the CRM wins');
select is(pg_temp.job('2'), 'Crm2b', 'the row takes the CRM''s job title');
select is((select count(*)::integer from crm.outbox where remote_id = '2'
           and connection_id = '59000000-0000-4000-8000-0000000000c1'), 0, 'nothing is left to push');

-- 1 again: the push's read before write lets it go out over the overruled value.
select is((select count(*)::integer
           from crm.claim_outbox('test', 10, '5 minutes', '59000000-0000-4000-8000-0000000000c1', 'contacts') c
           where c.remote_id = '1'), 1, 'claimed again');
select is((select count(*)::integer from crm.recheck_outbox('59000000-0000-4000-8000-0000000000c1', 'contacts',
             (select jsonb_agg(jsonb_build_object('id', o.id, 'lease', o.lease)) from crm.outbox o
              where o.remote_id = '1' and o.connection_id = '59000000-0000-4000-8000-0000000000c1'),
             pg_temp.rec('1', '5 seconds', 'AppL1', 'Crm1'))), 0,
  'the recheck does not release it: the app''s job title is written');

select * from finish();
rollback;
