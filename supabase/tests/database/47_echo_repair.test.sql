-- Echo repair (found by the chaos harness): a write-ledger match is the engine's own echo only
-- while the row holds the field's last pushed value, the incoming value, or a pending app edit.
-- A row left holding an older value (a same-second stale read applied after the push) takes the
-- CRM's value instead of dropping it as an echo for good.
-- Counts of apply_inbound are shown as (created,updated,unchanged,deleted,stale,conflicts).
begin;
select plan(6);

insert into crm.connections (id, account_id, provider, remote_account_id, status, settings) values
  ('47000000-0000-4000-8000-0000000000c1', '47000000-0000-4000-8000-0000000000a1', 'pipedrive', 'echo-repair', 'active', '{}');

create function pg_temp.apply(p_records jsonb) returns text language sql as $$
  select row(a.created, a.updated, a.unchanged, a.deleted, a.stale, a.conflicts)::text
  from crm.apply_inbound('47000000-0000-4000-8000-0000000000c1', 'contacts', p_records) a
$$;

-- Two records whose first_name the engine pushed as P1 (version 12:00:05); the CRM holds P1.
-- Record 1's row still holds P1 (the normal case); record 2's row holds A0, put back by a stale
-- read of the same second applied after the push.
set local crm.engine = 'on';
insert into crm.contacts (id, connection_id, remote_id, remote_updated_at, first_name, last_name) values
  ('47000000-0000-4000-8000-000000000001', '47000000-0000-4000-8000-0000000000c1', '1',
   '2026-06-02T12:00:05Z', 'P1', 'Ash'),
  ('47000000-0000-4000-8000-000000000002', '47000000-0000-4000-8000-0000000000c1', '2',
   '2026-06-02T12:00:05Z', 'A0', 'Birch');
reset crm.engine;
insert into crm.write_ledger (connection_id, object, record_id, field, value_hash, pushed_at, remote_version)
select '47000000-0000-4000-8000-0000000000c1', 'contacts', r, 'first_name', crm._hash('"P1"'),
       now() - interval '1 minute', '2026-06-02T12:00:05Z'
from unnest(array['47000000-0000-4000-8000-000000000001',
                  '47000000-0000-4000-8000-000000000002']::uuid[]) r;

select is(pg_temp.apply('[{"remote_id": "1", "remote_updated_at": "2026-06-02T12:00:05Z",
  "first_name": "P1", "last_name": "Ash"}]'), '(0,0,1,0,0,0)', 'the row holds the pushed value: the echo is unchanged');
select is(pg_temp.apply('[{"remote_id": "2", "remote_updated_at": "2026-06-02T12:00:05Z",
  "first_name": "P1", "last_name": "Birch"}]'), '(0,1,0,0,0,0)',
  'the row holds an older value: the CRM''s P1 is taken, not dropped as an echo');
select results_eq(
  $$select remote_id, first_name, needs_sync from crm.contacts
    where connection_id = '47000000-0000-4000-8000-0000000000c1' order by remote_id$$,
  $$values ('1', 'P1', false), ('2', 'P1', false)$$, 'both rows now hold what the CRM holds');
select is((select count(*)::integer from crm.conflicts where record_id = '47000000-0000-4000-8000-000000000002'),
  0, 'no conflict: the CRM holds the engine''s own last push');
select is(pg_temp.apply('[{"remote_id": "2", "remote_updated_at": "2026-06-02T12:00:05Z",
  "first_name": "P1", "last_name": "Birch"}]'), '(0,0,1,0,0,0)', 'the same read again: unchanged');

-- A pending app edit still makes the ledger match an echo (the L1/L2 race keeps L2).
update crm.contacts set first_name = 'L2' where id = '47000000-0000-4000-8000-000000000001';
select is(pg_temp.apply('[{"remote_id": "1", "remote_updated_at": "2026-06-02T12:00:06Z",
  "first_name": "P1", "last_name": "Ash"}]'), '(0,0,1,0,0,0)', 'a pending app edit: the echo of P1 keeps L2');

select * from finish();
rollback;
