-- A full walk's sweep (crm._sweep_unseen) of records the app edited meanwhile: a recorded
-- conflict (field deleted_at), settled by the connection's policy; unedited unseen rows are
-- swept as before, seen rows are left alone.
begin;
select plan(16);

insert into crm.connections (id, account_id, provider, remote_account_id, settings) values
  ('31000000-0000-4000-8000-0000000000c1', '31000000-0000-4000-8000-0000000000a1', 'hubspot', 'sw-1', '{}'),
  ('31000000-0000-4000-8000-0000000000c2', '31000000-0000-4000-8000-0000000000a1', 'hubspot', 'sw-2',
   '{"conflict_policy": "app_wins"}'),
  ('31000000-0000-4000-8000-0000000000c3', '31000000-0000-4000-8000-0000000000a1', 'hubspot', 'sw-3',
   '{"conflict_policy": "manual"}');

-- Each connection: an edited unseen row (e), an unedited unseen row (u), a seen row (s).
set local crm.engine = 'on';
insert into crm.contacts (id, connection_id, remote_id, first_name, last_synced_at)
select ('31000000-0000-4000-8000-0000000' || c.n || '000' || r.k)::uuid,
       ('31000000-0000-4000-8000-0000000000c' || c.n)::uuid, 'r' || c.n || r.k, 'Before',
       now() - interval '1 hour'
from (values (1), (2), (3)) c(n), (values (1), (2), (3)) r(k);
reset crm.engine;
update crm.contacts set first_name = 'Edited here' where remote_id in ('r11', 'r21', 'r31');
insert into crm.sync_cursors (connection_id, object, full_sync_started_at)
select ('31000000-0000-4000-8000-0000000000c' || n)::uuid, 'contacts', now() - interval '1 minute'
from (values (1), (2), (3)) c(n)
on conflict (connection_id, object) do update set full_sync_started_at = excluded.full_sync_started_at;
insert into crm.full_sync_seen (connection_id, object, remote_id)
select ('31000000-0000-4000-8000-0000000000c' || n)::uuid, 'contacts', 'r' || n || '3'
from (values (1), (2), (3)) c(n);

create function pg_temp.row_state(p_remote_id text) returns text language sql as $$
  select row(c.remote_id is not null, c.deleted_at is not null, c.first_name)::text
  from crm.contacts c where c.id = (select x.id from crm.contacts x where x.remote_id = p_remote_id
                                    union all
                                    select x.id from crm.contacts x
                                    where x.first_name = 'Edited here' and x.remote_id is null
                                      and p_remote_id = 'r21'
                                    limit 1)
$$;

-- newest_wins (the default): the delete wins.
select is((select tombstoned from crm._sweep_unseen('31000000-0000-4000-8000-0000000000c1', 'contacts', null)),
  2, 'default: the edited and the unedited unseen rows are swept');
select is(pg_temp.row_state('r11'), '(t,t,"Edited here")', 'the edited row is a tombstone');
select is(pg_temp.row_state('r13'), '(t,f,Before)', 'the seen row is left alone');
select is((select count(*)::integer from crm.outbox where record_id = '31000000-0000-4000-8000-000000010001'), 0,
  'its stale entry is dropped');
select results_eq(
  $$select field, resolution, policy, local_value ->> 'first_name', remote_value from crm.conflicts
    where record_id = '31000000-0000-4000-8000-000000010001'$$,
  $$values ('deleted_at', 'remote', 'newest_wins', 'Edited here', '{"deleted": true}'::jsonb)$$,
  'a recorded conflict: the delete won');
select is((select count(*)::integer from crm.conflicts where record_id = '31000000-0000-4000-8000-000000010002'), 0,
  'no conflict for a row nobody edited');

-- app_wins: the edited record is created again, not swept.
select is((select tombstoned from crm._sweep_unseen('31000000-0000-4000-8000-0000000000c2', 'contacts', null)),
  1, 'app_wins: only the unedited unseen row is swept');
select results_eq(
  $$select remote_id, deleted_at is null, first_name from crm.contacts where id = '31000000-0000-4000-8000-000000020001'$$,
  $$values (null::text, true, 'Edited here')$$,
  'the edited row is live again, without the deleted remote id');
select results_eq(
  $$select op, state from crm.outbox where record_id = '31000000-0000-4000-8000-000000020001'$$,
  $$values ('insert', 'pending')$$, 'and queued as a create');
select is((select resolution from crm.conflicts where record_id = '31000000-0000-4000-8000-000000020001'),
  'local', 'the conflict is recorded as won by the app');

-- manual: held, open, not swept.
select is((select tombstoned from crm._sweep_unseen('31000000-0000-4000-8000-0000000000c3', 'contacts', null)),
  1, 'manual: only the unedited unseen row is swept');
select is((select deleted_at is null from crm.contacts where id = '31000000-0000-4000-8000-000000030001'), true,
  'the edited row stays live');
select is((select resolution from crm.conflicts where record_id = '31000000-0000-4000-8000-000000030001'),
  null, 'an open conflict');
select matches((select sync_error from crm.contacts where id = '31000000-0000-4000-8000-000000030001'),
  'resolve the conflict', 'the row says why it waits');
select is((select count(*)::integer from crm.claim_outbox('w', 10, '1 minute', '31000000-0000-4000-8000-0000000000c3')),
  0, 'its entry is held while the conflict is open');
select lives_ok(
  $$select crm.resolve_conflict((select id from crm.conflicts where record_id = '31000000-0000-4000-8000-000000030001'), 'remote')$$,
  'resolving it for the CRM');

select * from finish();
rollback;
