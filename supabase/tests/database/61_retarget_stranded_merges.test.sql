-- A merge loser's entry that outlives its push (chaos finding, HubSpot seed 3 app_wins): the
-- merge is applied while the loser's push is in flight; the push then ends without finishing
-- the entry (released: the app edited the record again; retried: a 5xx; or its lease runs out).
-- The next crm.claim_outbox re-targets the entry to the survivor instead of dropping it.
-- Connections 1 and 3 app_wins (released, lease expired), 2 crm_wins (retried).
begin;
select plan(14);

insert into crm.connections (id, account_id, provider, remote_account_id, status, settings)
select ('61000000-0000-4000-8000-0000000000c' || n)::uuid, '61000000-0000-4000-8000-0000000000a1',
       'hubspot', 'stranded-merge-' || n, 'active', jsonb_build_object('conflict_policy', p)
from (values (1, 'app_wins'), (2, 'crm_wins'), (3, 'app_wins')) v(n, p);

set local crm.engine = 'on';
insert into crm.contacts (id, connection_id, remote_id, remote_updated_at, first_name, last_name)
select ('61000000-0000-4000-8000-0000000000' || n || r.k)::uuid,
       ('61000000-0000-4000-8000-0000000000c' || n)::uuid, r.rid, '2020-01-01T00:00:00Z', r.f, r.l
from generate_series(1, 3) n
cross join (values ('1', 'l', 'LoserF', 'LoserL'), ('2', 's', 'SurvF', 'SurvL')) r(k, rid, f, l);
reset crm.engine;

create function pg_temp.conn(p_n integer) returns uuid language sql as $$
  select ('61000000-0000-4000-8000-0000000000c' || p_n)::uuid
$$;
create function pg_temp.row_of(p_n integer, p_remote text) returns text language sql as $$
  select t.first_name || '/' || (t.deleted_at is not null) || '/' || coalesce(t.merged_into_remote_id, '-')
         || '/' || coalesce((select o.state || ':' || array_to_string(o.changed_columns, ',')
                             from crm.outbox o where o.object = 'contacts' and o.record_id = t.id), '-')
  from crm.contacts t
  where t.connection_id = pg_temp.conn(p_n) and t.remote_id = p_remote
$$;

-- The app edits the losers; pushes claim the entries (connection 3's lease is already over:
-- its worker was killed).
update crm.contacts set first_name = 'AppF1' where remote_id = 'l'
  and connection_id::text like '61000000-0000-4000-8000-0000000000c_';
create temp table claimed on commit drop as
select n, c.id, c.lease, c.record_id
from generate_series(1, 3) n
cross join lateral crm.claim_outbox('test push', 10,
  case when n = 3 then interval '-1 minute' else interval '2 minutes' end, pg_temp.conn(n), 'contacts') c;
select is((select count(*)::integer from claimed), 3, 'the three losers'' entries are claimed');
-- Connection 1's app edits its loser again while the push is in flight.
update crm.contacts set first_name = 'AppF2' where remote_id = 'l' and connection_id = pg_temp.conn(1);

-- The merge is applied meanwhile; the claimed entries are left to their pushes.
select is((select row(a.created, a.updated, a.unchanged, a.deleted)::text
           from crm.apply_inbound(pg_temp.conn(n), 'contacts', '[{"remote_id": "s",
             "remote_updated_at": "2020-06-01T00:00:00Z", "first_name": "SurvF", "last_name": "SurvL"},
             {"remote_id": "l", "remote_updated_at": "2020-06-01T00:00:00Z", "deleted": true,
              "merged_into": "s"}]') a),
  '(0,0,1,1)', 'connection ' || n || ': the loser is merged away')
from generate_series(1, 3) n;

-- The pushes end without finishing the entries.
select is((select row(c.completed, c.released)::text from crm.complete_outbox((select jsonb_agg(
    jsonb_build_object('id', x.id, 'lease', x.lease, 'remote_version', '2020-06-02T00:00:00Z'))
    from claimed x where x.n = 1)) c), '(0,1)', 'connection 1: released (edited again in flight)');
select is((select retrying from crm.fail_outbox((select jsonb_agg(jsonb_build_object(
    'id', x.id, 'lease', x.lease, 'action', 'retry', 'error', 'HTTP 503')) from claimed x where x.n = 2))),
  1, 'connection 2: handed back as a retry');
select is(pg_temp.row_of(n, 'l'), e.v, 'connection ' || n || ': a merge tombstone with its entry')
from (values (1, 'AppF2/true/s/pending:first_name'), (2, 'AppF1/true/s/pending:first_name'),
             (3, 'AppF1/true/s/processing:first_name')) e(n, v);

-- The next claims re-target them (connection 2's retry is not due yet: the sweep does not wait).
create temp table second on commit drop as
select n, c.record_id, c.remote_id, c.pushed
from generate_series(1, 3) n
cross join lateral crm.claim_outbox('test push 2', 10, interval '2 minutes', pg_temp.conn(n), 'contacts') c;
select is((select string_agg(n || ':' || remote_id || ':' || pushed::text, ' ' order by n) from second),
  '1:s:{"first_name": "AppF2"} 3:s:{"first_name": "AppF1"}',
  'app_wins: the survivors'' entries are claimed with the app''s latest values');
select is(pg_temp.row_of(2, 's'), 'SurvF/false/-/-', 'crm_wins: the survivor keeps its value');
select is((select count(*)::integer from crm.outbox o where o.record_id in (select record_id from claimed)),
  0, 'no entry is left on a loser');
select is((select string_agg(k.connection_id::text || '/' || k.field || '/' || (k.local_value #>> '{}') || '/'
                             || k.resolution || '/' || split_part(k.reason, ':', 1), ' ' order by k.connection_id)
           from crm.conflicts k where k.connection_id::text like '61000000-0000-4000-8000-0000000000c_'),
  pg_temp.conn(1) || '/first_name/AppF2/local/merge ' || pg_temp.conn(2) || '/first_name/AppF1/remote/merge '
    || pg_temp.conn(3) || '/first_name/AppF1/local/merge',
  'every re-targeted edit is a conflict on the survivor, reason merge');

select is(crm._retarget_stranded_merges(null, 'tickets'), 0, 'an unknown object is nobody''s');

select * from finish();
rollback;
