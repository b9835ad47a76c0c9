-- A merge loser's app edit whose push was in flight when the merge was applied (chaos finding,
-- Pipedrive seed 3 app_wins): crm.apply_inbound leaves the claimed entry to its push, Pipedrive
-- answers the push 404, the push hands the entry back as a retry and
-- crm.retarget_merged_entries settles it against the survivor by the policy, as step 12 does.
-- Connection 1 app_wins, 2 crm_wins. Counts of apply_inbound: (created,updated,unchanged,
-- deleted,stale,conflicts).
begin;
select plan(13);

insert into crm.connections (id, account_id, provider, remote_account_id, status, settings)
select ('58000000-0000-4000-8000-0000000000c' || n)::uuid, '58000000-0000-4000-8000-0000000000a1',
       'pipedrive', 'gone-merge-' || n, 'active', jsonb_build_object('conflict_policy', p)
from (values (1, 'app_wins'), (2, 'crm_wins')) v(n, p);

set local crm.engine = 'on';
insert into crm.contacts (id, connection_id, remote_id, remote_updated_at, first_name, last_name)
select ('58000000-0000-4000-8000-0000000000' || n || r.k)::uuid,
       ('58000000-0000-4000-8000-0000000000c' || n)::uuid, r.rid, '2020-01-01T00:00:00Z', r.f, r.l
from generate_series(1, 2) n
cross join (values ('1', 'l', 'LoserF', 'LoserL'), ('2', 's', 'SurvF', 'SurvL')) r(k, rid, f, l);
reset crm.engine;
-- The app edits the losers' first_name; a push claims the entries (in flight).
update crm.contacts set first_name = 'AppF' where remote_id = 'l'
  and connection_id::text like '58000000-0000-4000-8000-0000000000c_';
create temp table claimed on commit drop as
select c.id, c.lease, c.record_id
from generate_series(1, 2) n
cross join lateral crm.claim_outbox('test push', 10, interval '2 minutes',
  ('58000000-0000-4000-8000-0000000000c' || n)::uuid, 'contacts') c;

create function pg_temp.apply(p_n integer, p_records jsonb) returns text language sql as $$
  select row(a.created, a.updated, a.unchanged, a.deleted, a.stale, a.conflicts)::text
  from crm.apply_inbound(('58000000-0000-4000-8000-0000000000c' || p_n)::uuid, 'contacts', p_records) a
$$;
create function pg_temp.row_of(p_n integer, p_remote text) returns text language sql as $$
  select t.first_name || '/' || (t.deleted_at is not null) || '/' || coalesce(t.merged_into_remote_id, '-')
         || '/' || coalesce((select o.state || ':' || array_to_string(o.changed_columns, ',')
                             from crm.outbox o where o.object = 'contacts' and o.record_id = t.id), '-')
  from crm.contacts t
  where t.connection_id = ('58000000-0000-4000-8000-0000000000c' || p_n)::uuid and t.remote_id = p_remote
$$;

select is((select count(*)::integer from claimed), 2, 'both losers'' entries are claimed by a push');
-- The merge is applied meanwhile (the loser's webhook delete event names the survivor; the
-- survivor read again, modified before the app's edit).
select is(pg_temp.apply(n, '[{"remote_id": "s", "remote_updated_at": "2020-06-01T00:00:00Z",
    "first_name": "SurvF", "last_name": "SurvL"},
  {"remote_id": "l", "remote_updated_at": "2020-06-01T00:00:00Z", "deleted": true, "merged_into": "s"}]'),
  '(0,0,1,1,0,0)', 'connection ' || n || ': loser merged away, its claimed entry left to the push')
from generate_series(1, 2) n;
select is(pg_temp.row_of(1, 'l'), 'AppF/true/s/processing:first_name', 'the loser is a merge tombstone, entry in flight');

-- The push's 404 becomes a retry (sync/gone_merges.ts), then the entries are re-targeted.
select is((select retrying from crm.fail_outbox((select jsonb_agg(jsonb_build_object(
    'id', c.id, 'lease', c.lease, 'action', 'retry', 'error', 'gone in the CRM, merged')) from claimed c))),
  2, 'the push hands the entries back');
select is(crm.retarget_merged_entries(('58000000-0000-4000-8000-0000000000c' || n)::uuid, 'contacts',
            array(select c.record_id from claimed c)), 1, 'connection ' || n || ': one merge conflict')
from generate_series(1, 2) n;

select is(pg_temp.row_of(1, 's'), 'AppF/false/-/pending:first_name', 'app_wins: the survivor takes the edit, queued');
select is(pg_temp.row_of(2, 's'), 'SurvF/false/-/-', 'crm_wins: the survivor keeps its value');
select is((select string_agg(k.remote_id || '/' || k.field || '/' || (k.local_value #>> '{}') || '/' ||
                             k.resolution || '/' || split_part(k.reason, ':', 1), ' ' order by k.connection_id)
           from crm.conflicts k where k.connection_id::text like '58000000-0000-4000-8000-0000000000c_'),
  's/first_name/AppF/local/merge s/first_name/AppF/remote/merge', 'recorded on the survivor, reason merge');
select is((select count(*)::integer from crm.outbox o where o.record_id in (select record_id from claimed)),
  0, 'the losers'' entries are gone');
-- Nothing else is moved: a live row's entry, or a call for no rows.
update crm.contacts set last_name = 'AppL' where remote_id = 's'
  and connection_id = '58000000-0000-4000-8000-0000000000c2';
select is(crm.retarget_merged_entries('58000000-0000-4000-8000-0000000000c2', 'contacts',
            array(select t.id from crm.contacts t where t.connection_id = '58000000-0000-4000-8000-0000000000c2')),
  0, 'a live row''s entry stays');
select throws_ok($$select crm.retarget_merged_entries('58000000-0000-4000-8000-0000000000c2', 'tickets', '{}')$$,
  'CRM01', 'unknown object ''tickets''', 'unknown objects are refused');

select * from finish();
rollback;
