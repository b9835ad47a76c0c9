-- Read before write (the push window, issue 15): crm.recheck_outbox releases a claimed update
-- entry only when the CRM, as read just before the write, holds for a field about to be pushed a
-- value the engine has not seen (not the agreed one, not the one being pushed, not the overruled
-- side of the field's last conflict), or when the row no longer holds the claimed value. The
-- records of released entries then go through crm.apply_inbound, where the policy decides.
-- Counts of apply_inbound are shown as (created,updated,unchanged,deleted,stale,conflicts).
begin;
select plan(17);

insert into crm.connections (id, account_id, provider, remote_account_id, status, settings) values
  ('50000000-0000-4000-8000-0000000000c1', '50000000-0000-4000-8000-0000000000a1', 'hubspot', 'recheck', 'active',
   '{"conflict_policy": "crm_wins"}');

-- Five synced contacts (as the engine wrote them), then the app edits each one's first name.
set local crm.engine = 'on';
insert into crm.contacts (id, connection_id, remote_id, remote_updated_at, first_name, last_name)
select ('50000000-0000-4000-8000-00000000000' || i)::uuid, '50000000-0000-4000-8000-0000000000c1', i::text,
       '2026-06-02T12:00:00Z', 'Old' || i, 'Last' || i
from generate_series(1, 5) i;
reset crm.engine;
update crm.contacts set first_name = 'App' || right(id::text, 1)
where connection_id = '50000000-0000-4000-8000-0000000000c1';

create function pg_temp.claims() returns jsonb language sql as $$
  select coalesce(jsonb_agg(jsonb_build_object('id', c.id, 'lease', c.lease)), '[]'::jsonb)
  from crm.claim_outbox('test', 10, '5 minutes', '50000000-0000-4000-8000-0000000000c1', 'contacts') c
$$;
create function pg_temp.held() returns jsonb language sql as $$
  select coalesce(jsonb_agg(jsonb_build_object('id', o.id, 'lease', o.lease)), '[]'::jsonb)
  from crm.outbox o where o.connection_id = '50000000-0000-4000-8000-0000000000c1' and o.state = 'processing'
$$;
create function pg_temp.recheck(p_claims jsonb, p_records jsonb) returns text language sql as $$
  select coalesce(string_agg(r.remote_id || ':' || array_to_string(r.fields, ','), ' ' order by r.remote_id), '')
  from crm.recheck_outbox('50000000-0000-4000-8000-0000000000c1', 'contacts', p_claims, p_records) r
$$;
create function pg_temp.apply(p_records jsonb) returns text language sql as $$
  select row(a.created, a.updated, a.unchanged, a.deleted, a.stale, a.conflicts)::text
  from crm.apply_inbound('50000000-0000-4000-8000-0000000000c1', 'contacts', p_records) a
$$;

-- As read before the write: 1 unchanged; 2 the CRM user changed the first name; 3 the CRM user
-- typed the app's value; 4 the CRM user changed the last name only; 5 not returned (deleted).
select is(pg_temp.recheck(pg_temp.claims(), '[
  {"remote_id": "1", "remote_updated_at": "2026-06-02T12:00:00Z", "first_name": "Old1", "last_name": "Last1"},
  {"remote_id": "2", "remote_updated_at": "2099-01-01T00:00:00Z", "first_name": "Crm2", "last_name": "Last2"},
  {"remote_id": "3", "remote_updated_at": "2099-01-01T00:00:00Z", "first_name": "App3", "last_name": "Last3"},
  {"remote_id": "4", "remote_updated_at": "2099-01-01T00:00:00Z", "first_name": "Old4", "last_name": "Crm4"}]'),
  '2:first_name', 'only the record whose pushed field the CRM changed is released');
select results_eq(
  $$select remote_id, state, lease is null, attempts from crm.outbox o
    where o.connection_id = '50000000-0000-4000-8000-0000000000c1' order by remote_id$$,
  $$values ('1', 'processing', false, 1), ('2', 'pending', true, 0), ('3', 'processing', false, 1),
           ('4', 'processing', false, 1), ('5', 'processing', false, 1)$$,
  'the released entry is pending again, its attempt not counted; the others stay leased');
select is((select count(*)::integer from crm.write_ledger l join crm.outbox o on o.id = l.outbox_id
           where o.remote_id = '2'), 0, 'nothing was sent: the released claim''s ledger rows are gone');
select is((select count(*)::integer from crm.write_ledger l join crm.outbox o on o.id = l.outbox_id
           where o.remote_id = '1'), 1, 'the ledger rows of entries still to be written stay');

-- The released record through the inbound path: crm_wins takes the CRM's value, records the
-- conflict, and the entry has nothing left to push.
select is(pg_temp.apply('[{"remote_id": "2", "remote_updated_at": "2099-01-01T00:00:00Z",
  "first_name": "Crm2", "last_name": "Last2"}]'), '(0,1,0,0,0,1)', 'applied: one conflict');
select results_eq(
  $$select k.field, k.local_value, k.remote_value, k.resolution from crm.conflicts k
    join crm.contacts c on c.id = k.record_id where c.remote_id = '2'$$,
  $$values ('first_name', '"App2"'::jsonb, '"Crm2"'::jsonb, 'remote')$$, 'the conflict, settled by crm_wins');
select is((select first_name from crm.contacts where remote_id = '2'
           and connection_id = '50000000-0000-4000-8000-0000000000c1'), 'Crm2', 'the row takes the CRM''s value');
select is((select count(*)::integer from crm.outbox where remote_id = '2'
           and connection_id = '50000000-0000-4000-8000-0000000000c1'), 0, 'nothing left to push');

-- app_wins: the app's value is kept and pushed; the overruled CRM value, read again before that
-- push, is not a new change.
select crm.complete_outbox(pg_temp.held());
update crm.connections set settings = '{"conflict_policy": "app_wins"}'
where id = '50000000-0000-4000-8000-0000000000c1';
update crm.contacts set first_name = 'AppB1' where remote_id = '1'
  and connection_id = '50000000-0000-4000-8000-0000000000c1';
select is(pg_temp.recheck(pg_temp.claims(), '[{"remote_id": "1", "remote_updated_at": "2099-01-01T00:00:00Z",
  "first_name": "CrmB1", "last_name": "Last1"}]'), '1:first_name', 'app_wins: the CRM''s edit is seen first');
select is(pg_temp.apply('[{"remote_id": "1", "remote_updated_at": "2099-01-01T00:00:00Z",
  "first_name": "CrmB1", "last_name": "Last1"}]'), '(0,0,1,0,0,1)', 'the app wins: the row stays, a conflict');
select is((select resolution from crm.conflicts k join crm.contacts c on c.id = k.record_id
           where c.remote_id = '1' and c.connection_id = '50000000-0000-4000-8000-0000000000c1'),
  'local', 'recorded as won by the app');
select is(pg_temp.recheck(pg_temp.claims(), '[{"remote_id": "1", "remote_updated_at": "2099-01-01T00:00:00Z",
  "first_name": "CrmB1", "last_name": "Last1"}]'), '', 'claimed again: the overruled value is pushed over');
select is((select pushed from crm.outbox where remote_id = '1'
           and connection_id = '50000000-0000-4000-8000-0000000000c1'), '{"first_name": "AppB1"}'::jsonb,
  'the app''s value goes out');
select crm.complete_outbox(pg_temp.held());

-- An inbound apply while the entry is leased takes the CRM's value (crm_wins) and leaves the
-- entry to its worker: the claimed value is stale, the entry goes back and has nothing left.
update crm.connections set settings = '{"conflict_policy": "crm_wins"}'
where id = '50000000-0000-4000-8000-0000000000c1';
update crm.contacts set first_name = 'AppC4' where remote_id = '4'
  and connection_id = '50000000-0000-4000-8000-0000000000c1';
select pg_temp.claims() is not null;
select is(pg_temp.apply('[{"remote_id": "4", "remote_updated_at": "2099-01-02T00:00:00Z",
  "first_name": "CrmC4", "last_name": "Crm4"}]'), '(0,1,0,0,0,1)', 'a webhook''s apply during the push: crm_wins');
select is(pg_temp.recheck(pg_temp.held(), '[{"remote_id": "4", "remote_updated_at": "2099-01-02T00:00:00Z",
  "first_name": "CrmC4", "last_name": "Crm4"}]'), '4:first_name', 'the row moved since the claim: released');
select is(pg_temp.apply('[{"remote_id": "4", "remote_updated_at": "2099-01-02T00:00:00Z",
  "first_name": "CrmC4", "last_name": "Crm4"}]'), '(0,0,1,0,0,0)', 'the same record again: they agree');
select is((select count(*)::integer from crm.outbox where remote_id = '4'
           and connection_id = '50000000-0000-4000-8000-0000000000c1'), 0,
  'the entry goes: nothing is pushed over the CRM''s value');

select * from finish();
rollback;
