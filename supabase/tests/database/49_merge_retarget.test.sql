-- A pending app edit of a merge loser is settled against the survivor by the policy (issue 15,
-- chaos fixture hubspot-merge-unseen-survivor): never dropped with the loser's outbox entry.
-- Each policy has a connection whose loser (remote l) has a queued app edit of first_name and
-- is merged into a survivor (remote s) the mirror has not seen; the survivor's record names it
-- in merged_ids. A fifth connection reads only the loser's own record (merged_into a survivor
-- not in the mirror): the edit is recorded on the loser, not pushed.
-- Counts of apply_inbound are shown as (created,updated,unchanged,deleted,stale,conflicts).
begin;
select plan(18);

insert into crm.connections (id, account_id, provider, remote_account_id, status, settings)
select ('49000000-0000-4000-8000-0000000000c' || n)::uuid, '49000000-0000-4000-8000-0000000000a1',
       'hubspot', 'merge-retarget-' || n, 'active', jsonb_build_object('conflict_policy', p)
from (values (1, 'app_wins'), (2, 'crm_wins'), (3, 'newest_wins'), (4, 'manual'), (5, 'app_wins')) v(n, p);

set local crm.engine = 'on';
insert into crm.contacts (id, connection_id, remote_id, remote_updated_at, first_name, last_name)
select ('49000000-0000-4000-8000-00000000000' || n)::uuid, ('49000000-0000-4000-8000-0000000000c' || n)::uuid,
       'l', '2020-01-01T00:00:00Z', 'LoserF', 'LoserL'
from generate_series(1, 5) n;
reset crm.engine;
-- The app edits the losers' first_name (queued, not pushed).
update crm.contacts set first_name = 'AppF'
where connection_id::text like '49000000-0000-4000-8000-0000000000c_';

create function pg_temp.apply(p_n integer, p_records jsonb) returns text language sql as $$
  select row(a.created, a.updated, a.unchanged, a.deleted, a.stale, a.conflicts)::text
  from crm.apply_inbound(('49000000-0000-4000-8000-0000000000c' || p_n)::uuid, 'contacts', p_records) a
$$;
create function pg_temp.survivor(p_n integer) returns text language sql as $$
  select t.first_name || '/' || t.last_name || '/' || t.needs_sync || '/' ||
         coalesce((select array_to_string(o.changed_columns, ',') from crm.outbox o
                   where o.object = 'contacts' and o.record_id = t.id), '-')
  from crm.contacts t
  where t.connection_id = ('49000000-0000-4000-8000-0000000000c' || p_n)::uuid and t.remote_id = 's'
$$;
create function pg_temp.conflict(p_n integer) returns text language sql as $$
  select k.remote_id || '/' || k.field || '/' || (k.local_value #>> '{}') || '/' ||
         coalesce(k.remote_value #>> '{}', '-') || '/' || coalesce(k.resolution, 'open') || '/' ||
         split_part(k.reason, ':', 1)
  from crm.conflicts k
  where k.connection_id = ('49000000-0000-4000-8000-0000000000c' || p_n)::uuid
$$;

-- The survivor's record as HubSpot reads it after the merge (its modification time 2020-06-01,
-- before the app's edit: newest_wins keeps the app's value).
select is(pg_temp.apply(n, '[{"remote_id": "s", "remote_updated_at": "2020-06-01T00:00:00Z",
  "first_name": "SurvF", "last_name": "SurvL", "merged_ids": ["s", "l"]}]'),
  '(1,0,0,1,0,1)', 'connection ' || n || ': survivor created, loser merged, one conflict')
from generate_series(1, 4) n;

select is(pg_temp.survivor(1), 'AppF/SurvL/true/first_name', 'app_wins: the survivor takes the app''s edit, queued');
select is(pg_temp.conflict(1), 's/first_name/AppF/SurvF/local/merge', 'app_wins: recorded, app side won');
select is(pg_temp.survivor(2), 'SurvF/SurvL/false/-', 'crm_wins: the survivor keeps its value');
select is(pg_temp.conflict(2), 's/first_name/AppF/SurvF/remote/merge', 'crm_wins: recorded, CRM side won');
select is(pg_temp.survivor(3), 'AppF/SurvL/true/first_name', 'newest_wins: the app''s later edit wins');
select is(pg_temp.conflict(3), 's/first_name/AppF/SurvF/local/merge', 'newest_wins: recorded');
select is(pg_temp.survivor(4), 'AppF/SurvL/true/first_name', 'manual: the survivor holds the app''s value');
select is(pg_temp.conflict(4), 's/first_name/AppF/SurvF/open/merge', 'manual: an open conflict on the survivor');
select is((select count(*)::integer from crm.outbox o join crm.contacts t on t.id = o.record_id
           where t.connection_id::text similar to '49000000-0000-4000-8000-0000000000c[1-4]' and t.remote_id = 'l'),
  0, 'the losers'' entries are gone');
select is((select count(*)::integer from crm.contacts t
           where t.connection_id::text like '49000000-0000-4000-8000-0000000000c_' and t.remote_id = 'l'
             and t.deleted_at is not null and t.merged_into_remote_id = 's'),
  4, 'the losers are merged tombstones');
-- The CRM's value read again keeps the app's pending edit (the survivor's value is agreed).
select is(pg_temp.apply(1, '[{"remote_id": "s", "remote_updated_at": "2020-06-01T00:00:01Z",
  "first_name": "SurvF", "last_name": "SurvL"}]'), '(0,0,1,0,0,0)', 'app_wins: the survivor read again is no new conflict');
select is(pg_temp.survivor(1), 'AppF/SurvL/true/first_name', 'app_wins: the edit is still queued');

-- Connection 5: the loser's own record says it was merged into a survivor not in the mirror.
select is(pg_temp.apply(5, '[{"remote_id": "l", "remote_updated_at": "2020-06-01T00:00:00Z",
  "first_name": "LoserF", "last_name": "LoserL", "merged_into": "zz"}]'), '(0,0,0,1,0,1)',
  'unseen survivor: the loser is tombstoned, one conflict');
select is(pg_temp.conflict(5), 'l/first_name/AppF/-/remote/merge', 'unseen survivor: the edit is recorded on the loser');

select * from finish();
rollback;
