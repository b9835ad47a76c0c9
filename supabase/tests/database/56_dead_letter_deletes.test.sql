-- A dead letter is parked, not pending (20261206060200): a CRM delete of a record whose app edit
-- the CRM refused is applied under every policy, by the sweep (crm._sweep_unseen) and by the
-- inbound delete (crm.apply_inbound); the dead letter stays, its reason extended, and
-- crm.replay_outbox refuses to requeue it while the record is deleted. Found by the chaos
-- harness (tests/chaos/regressions/pipedrive-app-wins-dead-letter-resurrects.json).
begin;
select plan(15);

insert into crm.connections (id, account_id, provider, remote_account_id, settings) values
  ('56000000-0000-4000-8000-0000000000c1', '56000000-0000-4000-8000-0000000000a1', 'pipedrive', 'dl-1',
   '{"conflict_policy": "app_wins"}'),
  ('56000000-0000-4000-8000-0000000000c2', '56000000-0000-4000-8000-0000000000a1', 'salesforce', 'dl-2',
   '{"conflict_policy": "app_wins"}'),
  ('56000000-0000-4000-8000-0000000000c3', '56000000-0000-4000-8000-0000000000a1', 'salesforce', 'dl-3',
   '{"conflict_policy": "manual"}');

-- Per connection: a record with a dead letter (1) and one with a pending edit (2).
set local crm.engine = 'on';
insert into crm.contacts (id, connection_id, remote_id, remote_updated_at, first_name, last_synced_at)
select ('56000000-0000-4000-8000-00000000' || c.n || '00' || r.k)::uuid,
       ('56000000-0000-4000-8000-0000000000c' || c.n)::uuid, 'r' || c.n || r.k,
       '2026-06-01T00:00:00Z', 'Before', now() - interval '1 hour'
from (values (1), (2), (3)) c(n), (values (1), (2)) r(k);
reset crm.engine;
update crm.contacts set first_name = 'Edited here' where remote_id like 'r__';
update crm.outbox set state = 'dead', dead_at = now(), last_error = 'VALIDATION: refused by the CRM'
where record_id in (select id from crm.contacts where remote_id like 'r_1');

create function pg_temp.entry(p_remote_id text) returns text language sql as $$
  select row(o.op, o.state, o.last_error)::text from crm.outbox o
  join crm.contacts c on c.id = o.record_id where c.remote_id = p_remote_id
$$;
create function pg_temp.apply(p_connection uuid, p_records text) returns text language sql as $$
  select row(a.*)::text from crm.apply_inbound(p_connection, 'contacts', p_records::jsonb) a
$$;

-- 1. The sweep (Pipedrive's deletes), app_wins. -------------------------------------------------
insert into crm.sync_cursors (connection_id, object, full_sync_started_at)
values ('56000000-0000-4000-8000-0000000000c1', 'contacts', now() - interval '1 minute')
on conflict (connection_id, object) do update set full_sync_started_at = excluded.full_sync_started_at;
select is((select tombstoned from crm._sweep_unseen('56000000-0000-4000-8000-0000000000c1', 'contacts', null)),
  1, 'sweep, app_wins: the record with only a dead letter is swept; the pending edit is not');
select results_eq(
  $$select deleted_at is not null, remote_id from crm.contacts where id = '56000000-0000-4000-8000-000000001001'$$,
  $$values (true, 'r11'::text)$$, 'a tombstone that keeps its remote id (not created again)');
select is(pg_temp.entry('r11'),
  '(update,dead,"VALIDATION: refused by the CRM / deleted in the CRM after this edit was refused: not replayed (it would create the record again)")',
  'the dead letter stays, its reason extended');
select is((select count(*)::integer from crm.conflicts where record_id = '56000000-0000-4000-8000-000000001001'),
  0, 'no record-level conflict: nothing pending lost to the delete');
select results_eq(
  $$select c.remote_id, c.deleted_at is null, o.op, o.state from crm.contacts c
    join crm.outbox o on o.record_id = c.id where c.id = '56000000-0000-4000-8000-000000001002'$$,
  $$values (null::text, true, 'insert', 'pending')$$,
  'a pending edit still wins under app_wins: created again');

-- 2. The inbound delete (Salesforce's isDeleted, HubSpot's archive), app_wins and manual. -------
select is(pg_temp.apply('56000000-0000-4000-8000-0000000000c2',
  '[{"remote_id": "r21", "remote_updated_at": "2026-06-05T00:00:00Z", "deleted": true}]'),
  '(0,0,0,1,0,0)', 'inbound delete, app_wins: deleted, no conflict');
select is((select deleted_at is not null from crm.contacts where remote_id = 'r21'), true, 'a tombstone');
select matches(pg_temp.entry('r21'), '^\(update,dead,.*refused by the CRM / deleted in the CRM',
  'the dead letter stays with its reason');
select is(pg_temp.apply('56000000-0000-4000-8000-0000000000c2',
  '[{"remote_id": "r22", "remote_updated_at": "2026-06-05T00:00:00Z", "deleted": true}]'),
  '(0,0,1,0,0,1)', 'a pending edit is still a conflict the app wins');
select is(pg_temp.apply('56000000-0000-4000-8000-0000000000c3',
  '[{"remote_id": "r31", "remote_updated_at": "2026-06-05T00:00:00Z", "deleted": true}]'),
  '(0,0,0,1,0,0)', 'inbound delete, manual: deleted, no open conflict');
select is((select count(*)::integer from crm.conflicts where record_id = '56000000-0000-4000-8000-000000003001'),
  0, 'nothing held for a decision');

-- 3. Replay. --------------------------------------------------------------------------------------
select is(crm.replay_outbox(array[(select o.id from crm.outbox o join crm.contacts c on c.id = o.record_id
                                   where c.remote_id = 'r11')]),
  0, 'replay of a dead letter of a deleted record is refused');
select matches(pg_temp.entry('r11'), '^\(update,dead,', 'it stays a dead letter');
-- A dead letter of a live record is replayed as before.
update crm.outbox set state = 'dead', dead_at = now(), last_error = 'refused'
where record_id = '56000000-0000-4000-8000-000000002002';
select is(crm.replay_outbox(null, '56000000-0000-4000-8000-0000000000c2'), 1,
  'a connection''s replay requeues the dead letter of a live record only');
-- The app restoring the record queues its edit again (its own write), so nothing waits on a replay.
update crm.contacts set deleted_at = null where remote_id = 'r11';
select matches(pg_temp.entry('r11'), '^\(update,pending,', 'restored in the app: pending again');

select * from finish();
rollback;
