-- A CRM restore of a record the app deleted is a new event (issue 15, chaos fixture
-- hubspot-restore-after-app-hard-delete): the record comes back into the mirror as a live row.
-- Hard delete: the app's row is gone with its id; the CRM's delete, read back, leaves a
-- tombstone row of a new id, which the restore revives (or, when the delete was never read, the
-- restored record is inserted as a new row). Soft delete: the app's own row is revived.
-- Counts of apply_inbound are shown as (created,updated,unchanged,deleted,stale,conflicts).
begin;
select plan(8);

insert into crm.connections (id, account_id, provider, remote_account_id, status, settings) values
  ('48000000-0000-4000-8000-0000000000c1', '48000000-0000-4000-8000-0000000000a1', 'hubspot',
   'restore-after-app-delete', 'active', '{"conflict_policy": "app_wins"}');

create function pg_temp.apply(p_records jsonb) returns text language sql as $$
  select row(a.created, a.updated, a.unchanged, a.deleted, a.stale, a.conflicts)::text
  from crm.apply_inbound('48000000-0000-4000-8000-0000000000c1', 'contacts', p_records) a
$$;

set local crm.engine = 'on';
insert into crm.contacts (id, connection_id, remote_id, remote_updated_at, first_name) values
  ('48000000-0000-4000-8000-000000000001', '48000000-0000-4000-8000-0000000000c1', 'r1',
   '2026-06-02T12:00:00Z', 'Ash'),
  ('48000000-0000-4000-8000-000000000002', '48000000-0000-4000-8000-0000000000c1', 'r2',
   '2026-06-02T12:00:00Z', 'Birch'),
  ('48000000-0000-4000-8000-000000000003', '48000000-0000-4000-8000-0000000000c1', 'r3',
   '2026-06-02T12:00:00Z', 'Cedar');
reset crm.engine;

-- The app hard-deletes r1 and r2 and soft-deletes r3; the deletes are pushed (entries done).
delete from crm.contacts where id in ('48000000-0000-4000-8000-000000000001',
                                      '48000000-0000-4000-8000-000000000002');
update crm.contacts set deleted_at = now() where id = '48000000-0000-4000-8000-000000000003';
select is((select count(*)::integer from crm.outbox
           where connection_id = '48000000-0000-4000-8000-0000000000c1' and op = 'delete'),
  3, 'three deletes queued');
delete from crm.outbox where connection_id = '48000000-0000-4000-8000-0000000000c1';

-- r1: the CRM's delete is read back (a tombstone of a new id), then the restore.
select is(pg_temp.apply('[{"remote_id": "r1", "remote_updated_at": "2026-06-02T12:00:05Z",
  "deleted": true, "first_name": "Ash"}]'), '(0,0,0,1,0,0)', 'r1: the archive read back is a tombstone');
select is(pg_temp.apply('[{"remote_id": "r1", "remote_updated_at": "2026-06-02T12:00:09Z",
  "first_name": "Ash"}]'), '(0,1,0,0,0,0)', 'r1: the restore revives it');
-- r2: the delete was never read (a lost webhook); the restored record arrives.
select is(pg_temp.apply('[{"remote_id": "r2", "remote_updated_at": "2026-06-02T12:00:09Z",
  "first_name": "Birch"}]'), '(1,0,0,0,0,0)', 'r2: the restored record is a new row');
-- r3: soft-deleted by the app, restored in the CRM.
select is(pg_temp.apply('[{"remote_id": "r3", "remote_updated_at": "2026-06-02T12:00:09Z",
  "first_name": "Cedar"}]'), '(0,1,0,0,0,0)', 'r3: the restore revives the app''s row');
select results_eq(
  $$select remote_id, first_name, deleted_at is null, needs_sync from crm.contacts
    where connection_id = '48000000-0000-4000-8000-0000000000c1' order by remote_id$$,
  $$values ('r1', 'Ash', true, false), ('r2', 'Birch', true, false), ('r3', 'Cedar', true, false)$$,
  'all three are live rows, nothing to push');
select is((select id from crm.contacts where remote_id = 'r3'
             and connection_id = '48000000-0000-4000-8000-0000000000c1'),
  '48000000-0000-4000-8000-000000000003'::uuid, 'the soft-deleted row keeps its id');
select is((select count(*)::integer from crm.outbox
           where connection_id = '48000000-0000-4000-8000-0000000000c1'),
  0, 'nothing queued by the restores');

select * from finish();
rollback;
