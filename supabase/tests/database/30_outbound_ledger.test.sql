-- The outbound write ledger (issue 12): what claim_outbox pushes, what complete_outbox agrees
-- on, fail_outbox actions, echo suppression in apply_inbound (the L1/L2 race, binding of remote
-- versions), conflicts per policy, CRM deletes against pending local edits, resolve_conflict.
-- Everything runs through the real functions: app edits are trigger-queued app writes.
-- Counts of apply_inbound are shown as (created,updated,unchanged,deleted,stale,conflicts).
begin;
select plan(93);

insert into crm.connections (id, account_id, provider, remote_account_id, status, settings) values
  ('30000000-0000-4000-8000-0000000000c1', '30000000-0000-4000-8000-0000000000a1', 'hubspot', 'ledger-newest', 'active', '{}'),
  ('30000000-0000-4000-8000-0000000000c2', '30000000-0000-4000-8000-0000000000a1', 'hubspot', 'ledger-crm', 'active',
   '{"conflict_policy": "crm_wins"}'),
  ('30000000-0000-4000-8000-0000000000c3', '30000000-0000-4000-8000-0000000000a1', 'hubspot', 'ledger-app', 'active',
   '{"conflict_policy": "app_wins"}'),
  ('30000000-0000-4000-8000-0000000000c4', '30000000-0000-4000-8000-0000000000a1', 'hubspot', 'ledger-manual', 'active',
   '{"conflict_policy": "manual"}'),
  ('30000000-0000-4000-8000-0000000000c9', '30000000-0000-4000-8000-0000000000a9', 'hubspot', 'ledger-other', 'active', '{}');

create function pg_temp.apply(p_connection uuid, p_records jsonb) returns text language sql as $$
  select row(a.created, a.updated, a.unchanged, a.deleted, a.stale, a.conflicts)::text
  from crm.apply_inbound(p_connection, 'contacts', p_records) a
$$;
create function pg_temp.claim(p_connection uuid) returns setof record language sql as $$
  select c.id, c.lease, c.record_id, c.op, c.changed_columns, c.pushed, c.uncertain, c.record
  from crm.claim_outbox('ledger-test', 100, '5 minutes', p_connection, 'contacts') c
$$;
create function pg_temp.c(p_remote_id text) returns crm.contacts language sql as $$
  select * from crm.contacts where remote_id = p_remote_id
$$;
create function pg_temp.entry(p_record uuid) returns crm.outbox language sql as $$
  select * from crm.outbox where record_id = p_record
$$;

-- Records the CRM has, written by the engine.
set local crm.engine = 'on';
insert into crm.contacts (id, connection_id, remote_id, remote_updated_at, first_name, last_name, email) values
  ('30000000-0000-4000-8000-000000000001', '30000000-0000-4000-8000-0000000000c1', 'n-1', '2026-06-01T00:00:00Z', 'A0', 'Ash', 'n1@l.test'),
  ('30000000-0000-4000-8000-000000000002', '30000000-0000-4000-8000-0000000000c1', 'n-2', '2026-06-01T00:00:00Z', 'B0', 'Birch', 'n2@l.test'),
  ('30000000-0000-4000-8000-000000000003', '30000000-0000-4000-8000-0000000000c1', 'n-3', '2026-06-01T00:00:00Z', 'C0', 'Cedar', 'n3@l.test'),
  ('30000000-0000-4000-8000-000000000004', '30000000-0000-4000-8000-0000000000c1', 'n-4', '2026-06-01T00:00:00Z', 'D0', 'Dogwood', 'n4@l.test'),
  ('30000000-0000-4000-8000-000000000005', '30000000-0000-4000-8000-0000000000c1', 'n-5', '2026-06-01T00:00:00Z', 'E0', 'Elm', 'n5@l.test'),
  ('30000000-0000-4000-8000-000000000006', '30000000-0000-4000-8000-0000000000c1', 'n-6', '2026-06-01T00:00:00Z', 'F0', 'Fir', 'n6@l.test'),
  ('30000000-0000-4000-8000-000000000007', '30000000-0000-4000-8000-0000000000c1', 'n-7', '2026-06-01T00:00:00Z', 'G0', 'Gum', 'n7@l.test'),
  ('30000000-0000-4000-8000-000000000009', '30000000-0000-4000-8000-0000000000c1', 'n-9', '2026-06-01T00:00:00Z', 'I0', 'Ivy', 'n9@l.test'),
  ('30000000-0000-4000-8000-000000000011', '30000000-0000-4000-8000-0000000000c1', 'n-11', '2026-06-01T00:00:00Z', 'S0', 'Spruce', 'n11@l.test'),
  ('30000000-0000-4000-8000-000000000012', '30000000-0000-4000-8000-0000000000c1', 'n-12', '2026-06-01T00:00:00Z', 'T0', 'Teak', 'n12@l.test'),
  ('30000000-0000-4000-8000-000000000013', '30000000-0000-4000-8000-0000000000c1', 'n-13', '2026-06-01T00:00:00Z', 'U0', 'Ulmus', 'n13@l.test'),
  ('30000000-0000-4000-8000-000000000035', '30000000-0000-4000-8000-0000000000c3', 'a-5', '2026-06-01T00:00:00Z', 'V0', 'Vine', 'a5@l.test'),
  ('30000000-0000-4000-8000-000000000021', '30000000-0000-4000-8000-0000000000c2', 'c-1', '2026-06-01T00:00:00Z', 'K0', 'Kapok', 'c1@l.test'),
  ('30000000-0000-4000-8000-000000000031', '30000000-0000-4000-8000-0000000000c3', 'a-1', '2026-06-01T00:00:00Z', 'M0', 'Maple', 'a1@l.test'),
  ('30000000-0000-4000-8000-000000000032', '30000000-0000-4000-8000-0000000000c3', 'a-2', '2026-06-01T00:00:00Z', 'N0', 'Neem', 'a2@l.test'),
  ('30000000-0000-4000-8000-000000000033', '30000000-0000-4000-8000-0000000000c3', 'a-3', '2026-06-01T00:00:00Z', 'O0', 'Oak', 'a3@l.test'),
  ('30000000-0000-4000-8000-000000000041', '30000000-0000-4000-8000-0000000000c4', 'm-1', '2026-06-01T00:00:00Z', 'P0', 'Pine', 'm1@l.test'),
  ('30000000-0000-4000-8000-000000000042', '30000000-0000-4000-8000-0000000000c4', 'm-2', '2026-06-01T00:00:00Z', 'Q0', 'Quince', 'm2@l.test'),
  ('30000000-0000-4000-8000-000000000043', '30000000-0000-4000-8000-0000000000c4', 'm-3', '2026-06-01T00:00:00Z', 'R0', 'Rowan', 'm3@l.test'),
  ('30000000-0000-4000-8000-000000000091', '30000000-0000-4000-8000-0000000000c9', 'o-1', '2026-06-01T00:00:00Z', 'Z0', 'Zelkova', 'o1@l.test');
reset crm.engine;

-- 1. claim: pushed values, ledger rows, uncertain. ---------------------------------------------
update crm.contacts set first_name = 'L1' where id = '30000000-0000-4000-8000-000000000001';
create temporary table k1 (id bigint, lease uuid, record_id uuid, op text, changed_columns text[], pushed jsonb,
                           uncertain boolean, record jsonb);
insert into k1 select * from pg_temp.claim('30000000-0000-4000-8000-0000000000c1')
  as (id bigint, lease uuid, record_id uuid, op text, changed_columns text[], pushed jsonb, uncertain boolean, record jsonb);
select results_eq(
  $$select op, pushed, uncertain, record ->> 'first_name' from k1 where record_id = '30000000-0000-4000-8000-000000000001'$$,
  $$values ('update', '{"first_name": "L1"}'::jsonb, false, 'L1')$$,
  'claim returns pushed (the changed fields of the row image it returns) and uncertain');
select is((pg_temp.entry('30000000-0000-4000-8000-000000000001')).pushed, '{"first_name": "L1"}'::jsonb,
  'pushed is kept on the entry');
select results_eq(
  $$select l.field, l.value_hash = crm._hash('"L1"'), l.outbox_id = k1.id, l.lease = k1.lease, l.remote_version, l.connection_id
    from crm.write_ledger l join k1 on k1.record_id = l.record_id
    where l.record_id = '30000000-0000-4000-8000-000000000001'$$,
  $$values ('first_name', true, true, true, null::timestamptz, '30000000-0000-4000-8000-0000000000c1'::uuid)$$,
  'the claim records one ledger row per pushed field: hash, entry, lease, no remote version yet');

-- 2. The L1/L2 race, and completion with a newer edit (fault 1). ----------------------------------
update crm.contacts set first_name = 'L2' where id = '30000000-0000-4000-8000-000000000001';
select results_eq(
  $$select * from crm.complete_outbox((select jsonb_agg(jsonb_build_object('id', id, 'lease', lease,
      'remote_version', '2026-06-01T01:00:00Z')) from k1 where record_id = '30000000-0000-4000-8000-000000000001'))$$,
  $$values (0, 1)$$, 'completing L1 after the app edited L2: released, not completed');
select results_eq(
  $$select agreed_hash = crm._hash('"L1"'), agreed_hash = crm._hash('"L2"'), remote_changed_at from crm.sync_state
    where record_id = '30000000-0000-4000-8000-000000000001' and field = 'first_name'$$,
  $$values (true, false, '2026-06-01T01:00:00Z'::timestamptz)$$,
  'the agreed value is what was pushed (L1), not the row at completion (L2)');
select results_eq(
  $$select state, op, changed_columns, pushed from crm.outbox where record_id = '30000000-0000-4000-8000-000000000001'$$,
  $$values ('pending', 'update', array['first_name'], null::jsonb)$$, 'L2 is still pending');
select is((select remote_version from crm.write_ledger where record_id = '30000000-0000-4000-8000-000000000001'),
  '2026-06-01T01:00:00Z'::timestamptz, 'the ledger row gets the remote version of the write');
create temporary table before_echo as
  select ctid as row_ctid, updated_at from crm.contacts where id = '30000000-0000-4000-8000-000000000001';
select is(pg_temp.apply('30000000-0000-4000-8000-0000000000c1', '[{"remote_id": "n-1", "remote_updated_at": "2026-06-01T01:00:00Z",
  "first_name": "L1", "last_name": "Ash", "email": "n1@l.test"}]'), '(0,0,1,0,0,0)', 'the echo of L1 counts as unchanged');
select results_eq(
  $$select c.first_name, c.needs_sync, c.ctid = b.row_ctid from crm.contacts c, before_echo b
    where c.id = '30000000-0000-4000-8000-000000000001'$$,
  $$values ('L2', true, true)$$, 'the echo writes no row: L2 stays, still marked for sync');
select is((select count(*)::integer from crm.conflicts where record_id = '30000000-0000-4000-8000-000000000001'), 0,
  'the echo is no conflict');
select results_eq(
  $$select state, changed_columns from crm.outbox where record_id = '30000000-0000-4000-8000-000000000001'$$,
  $$values ('pending', array['first_name'])$$, 'L2 is still queued after the echo');
create temporary table k2 (id bigint, lease uuid, record_id uuid, op text, changed_columns text[], pushed jsonb,
                           uncertain boolean, record jsonb);
insert into k2 select * from pg_temp.claim('30000000-0000-4000-8000-0000000000c1')
  as (id bigint, lease uuid, record_id uuid, op text, changed_columns text[], pushed jsonb, uncertain boolean, record jsonb);
select is((select pushed from k2 where record_id = '30000000-0000-4000-8000-000000000001'), '{"first_name": "L2"}'::jsonb,
  'the next claim pushes L2');
select results_eq(
  $$select * from crm.complete_outbox((select jsonb_agg(jsonb_build_object('id', id, 'lease', lease,
      'remote_updated_at', '2026-06-01T02:00:00Z')) from k2 where record_id = '30000000-0000-4000-8000-000000000001'))$$,
  $$values (1, 0)$$, 'L2 completes (remote_updated_at still accepted as the version key)');
select results_eq(
  $$select s.agreed_hash = crm._hash('"L2"'), c.needs_sync, c.remote_updated_at from crm.sync_state s
    join crm.contacts c on c.id = s.record_id
    where s.record_id = '30000000-0000-4000-8000-000000000001' and s.field = 'first_name'$$,
  $$values (true, false, '2026-06-01T02:00:00Z'::timestamptz)$$, 'L2 agreed, the row synced at the new version');
select is(pg_temp.apply('30000000-0000-4000-8000-0000000000c1', '[{"remote_id": "n-1", "remote_updated_at": "2026-06-01T02:00:00Z",
  "first_name": "L2"}]'), '(0,0,1,0,0,0)', 'the echo of L2: unchanged');
select is(pg_temp.apply('30000000-0000-4000-8000-0000000000c1', '[{"remote_id": "n-1", "remote_updated_at": "2026-06-01T01:00:00Z",
  "first_name": "L1"}]'), '(0,0,0,0,1,0)', 'a late second delivery of the L1 echo is stale');
select results_eq(
  $$select c.first_name, (select count(*)::integer from crm.conflicts k where k.record_id = c.id),
           (select count(*)::integer from crm.outbox o where o.record_id = c.id)
    from crm.contacts c where c.id = '30000000-0000-4000-8000-000000000001'$$,
  $$values ('L2', 0, 0)$$, 'both sides hold L2: no conflict, nothing queued');

-- The race the other way round: the echo of S1 overtakes completion and the app already has S2.
update crm.contacts set first_name = 'S1' where id = '30000000-0000-4000-8000-000000000011';
create temporary table k13 (id bigint, lease uuid, record_id uuid, op text, changed_columns text[], pushed jsonb,
                            uncertain boolean, record jsonb);
insert into k13 select * from pg_temp.claim('30000000-0000-4000-8000-0000000000c1')
  as (id bigint, lease uuid, record_id uuid, op text, changed_columns text[], pushed jsonb, uncertain boolean, record jsonb);
update crm.contacts set first_name = 'S2' where id = '30000000-0000-4000-8000-000000000011';
create temporary table before_s as
  select ctid as row_ctid from crm.contacts where id = '30000000-0000-4000-8000-000000000011';
select is(pg_temp.apply('30000000-0000-4000-8000-0000000000c1', '[{"remote_id": "n-11", "remote_updated_at": "2026-06-01T03:00:00Z",
  "first_name": "S1"}]'), '(0,0,1,0,0,0)', 'an echo of S1 before completion, S2 pending: unchanged, no conflict');
select results_eq(
  $$select c.first_name, c.ctid = b.row_ctid, (select count(*)::integer from crm.conflicts k where k.record_id = c.id),
           (select o.changed_columns from crm.outbox o where o.record_id = c.id)
    from crm.contacts c, before_s b where c.id = '30000000-0000-4000-8000-000000000011'$$,
  $$values ('S2', true, 0, array['first_name'])$$, '... S2 stays (no row write) and is still queued');
select results_eq(
  $$select * from crm.complete_outbox((select jsonb_agg(jsonb_build_object('id', id, 'lease', lease)) from k13))$$,
  $$values (0, 1)$$, 'the S1 push completes late: released for S2');
-- Salesforce answers no version: the echo comes at a time newer than the row's.
update crm.contacts set first_name = 'T1' where id = '30000000-0000-4000-8000-000000000012';
create temporary table k14 (id bigint, lease uuid, record_id uuid, op text, changed_columns text[], pushed jsonb,
                            uncertain boolean, record jsonb);
insert into k14 select * from pg_temp.claim('30000000-0000-4000-8000-0000000000c1')
  as (id bigint, lease uuid, record_id uuid, op text, changed_columns text[], pushed jsonb, uncertain boolean, record jsonb);
select results_eq(
  $$select * from crm.complete_outbox((select jsonb_agg(jsonb_build_object('id', id, 'lease', lease)) from k14))$$,
  $$values (2, 0)$$, 'T1 and S2 complete without a version');
create temporary table before_t as
  select ctid as row_ctid from crm.contacts where id = '30000000-0000-4000-8000-000000000012';
select is(pg_temp.apply('30000000-0000-4000-8000-0000000000c1', '[{"remote_id": "n-12", "remote_updated_at": "2026-06-01T04:00:00Z",
  "first_name": "T1", "last_name": "Teak"}]'), '(0,0,1,0,0,0)', 'the echo of T1: unchanged');
select results_eq(
  $$select c.first_name, c.ctid = b.row_ctid, l.remote_version
    from crm.contacts c, before_t b, crm.write_ledger l
    where c.id = '30000000-0000-4000-8000-000000000012' and l.record_id = c.id$$,
  $$values ('T1', true, '2026-06-01T04:00:00Z'::timestamptz)$$,
  '... writes no row; the ledger row takes the echo''s time as the version');

-- 3. An echo before completion binds the ledger row's remote version. ------------------------------
update crm.contacts set first_name = 'B1' where id = '30000000-0000-4000-8000-000000000002';
create temporary table k3 (id bigint, lease uuid, record_id uuid, op text, changed_columns text[], pushed jsonb,
                           uncertain boolean, record jsonb);
insert into k3 select * from pg_temp.claim('30000000-0000-4000-8000-0000000000c1')
  as (id bigint, lease uuid, record_id uuid, op text, changed_columns text[], pushed jsonb, uncertain boolean, record jsonb);
select is(pg_temp.apply('30000000-0000-4000-8000-0000000000c1', '[{"remote_id": "n-2", "remote_updated_at": "2026-06-02T00:00:00Z",
  "first_name": "B1"}]'), '(0,0,1,0,0,0)', 'an echo that overtakes completion: unchanged');
select is((select remote_version from crm.write_ledger where record_id = '30000000-0000-4000-8000-000000000002'),
  '2026-06-02T00:00:00Z'::timestamptz, 'the ledger row is bound to the first record time it is seen at');
select is((select agreed_hash from crm.sync_state where record_id = '30000000-0000-4000-8000-000000000002' and field = 'first_name'),
  crm._hash('"B1"'), 'the echo makes the pushed value agreed');
select is(pg_temp.apply('30000000-0000-4000-8000-0000000000c1', '[{"remote_id": "n-2", "remote_updated_at": "2026-06-02T00:00:00Z",
  "first_name": "B1"}]'), '(0,0,1,0,0,0)', 'the same echo again (webhook and delta): unchanged');
update crm.contacts set first_name = 'B2' where id = '30000000-0000-4000-8000-000000000002';
select is(pg_temp.apply('30000000-0000-4000-8000-0000000000c1', '[{"remote_id": "n-2", "remote_updated_at": "2026-06-03T00:00:00Z",
  "first_name": "B1", "last_name": "Birch-CRM"}]'), '(0,1,0,0,0,0)',
  'a later CRM change to another field: taken; the pushed first_name is no echo now but no conflict either');
select results_eq(
  $$select first_name, last_name, needs_sync from crm.contacts where id = '30000000-0000-4000-8000-000000000002'$$,
  $$values ('B2', 'Birch-CRM', true)$$, 'B2 stays and is pending; the CRM''s last_name is taken');
select is(pg_temp.apply('30000000-0000-4000-8000-0000000000c1', '[{"remote_id": "n-2", "remote_updated_at": "2026-06-04T00:00:00Z",
  "first_name": "Bx"}]'), '(0,0,1,0,0,1)', 'a genuine CRM change after the bound version is a conflict (local newer: kept)');
select results_eq(
  $$select * from crm.complete_outbox((select jsonb_agg(jsonb_build_object('id', id, 'lease', lease))
      from k3 where record_id = '30000000-0000-4000-8000-000000000002'))$$,
  $$values (0, 1)$$, 'completion without a version (Salesforce): released (B2 is newer)');
select is((select remote_version from crm.write_ledger where record_id = '30000000-0000-4000-8000-000000000002'),
  '2026-06-02T00:00:00Z'::timestamptz, '... and the bound version stays');

-- 4. Both sides edit, under each policy. -----------------------------------------------------------
-- newest_wins: the CRM's change is newer (2999) -> taken; older than the app's edit -> kept.
update crm.contacts set job_title = 'App' where id in ('30000000-0000-4000-8000-000000000003', '30000000-0000-4000-8000-000000000004');
select is(pg_temp.apply('30000000-0000-4000-8000-0000000000c1', '[{"remote_id": "n-3", "remote_updated_at": "2999-01-01T00:00:00Z",
  "job_title": "Crm"}, {"remote_id": "n-4", "remote_updated_at": "2026-06-05T00:00:00Z", "job_title": "Crm"}]'),
  '(0,1,1,0,0,2)', 'newest_wins: two conflicts');
select results_eq(
  $$select c.remote_id, c.job_title, k.resolution, (select count(*)::integer from crm.outbox o where o.record_id = c.id)
    from crm.contacts c join crm.conflicts k on k.record_id = c.id
    where c.remote_id in ('n-3', 'n-4') order by 1$$,
  $$values ('n-3', 'Crm', 'remote', 0), ('n-4', 'App', 'local', 1)$$,
  'newest_wins: the newer side wins on both sides (the CRM''s value taken, or the app''s still queued)');
-- crm_wins.
update crm.contacts set job_title = 'App' where id = '30000000-0000-4000-8000-000000000021';
select is(pg_temp.apply('30000000-0000-4000-8000-0000000000c2', '[{"remote_id": "c-1", "remote_updated_at": "2026-06-05T00:00:00Z",
  "job_title": "Crm"}]'), '(0,1,0,0,0,1)', 'crm_wins: a conflict');
select results_eq(
  $$select c.job_title, k.resolution, (select count(*)::integer from crm.outbox o where o.record_id = c.id)
    from crm.contacts c join crm.conflicts k on k.record_id = c.id where c.remote_id = 'c-1'$$,
  $$values ('Crm', 'remote', 0)$$, 'crm_wins: the CRM value taken, nothing pushed');
-- app_wins.
update crm.contacts set job_title = 'App' where id = '30000000-0000-4000-8000-000000000031';
select is(pg_temp.apply('30000000-0000-4000-8000-0000000000c3', '[{"remote_id": "a-1", "remote_updated_at": "2999-01-01T00:00:00Z",
  "job_title": "Crm"}]'), '(0,0,1,0,0,1)', 'app_wins: a conflict');
create temporary table k4 (id bigint, lease uuid, record_id uuid, op text, changed_columns text[], pushed jsonb,
                           uncertain boolean, record jsonb);
insert into k4 select * from pg_temp.claim('30000000-0000-4000-8000-0000000000c3')
  as (id bigint, lease uuid, record_id uuid, op text, changed_columns text[], pushed jsonb, uncertain boolean, record jsonb);
select results_eq(
  $$select c.job_title, k.resolution, k4.pushed from crm.contacts c join crm.conflicts k on k.record_id = c.id
    join k4 on k4.record_id = c.id where c.remote_id = 'a-1'$$,
  $$values ('App', 'local', '{"job_title": "App"}'::jsonb)$$, 'app_wins: the app value kept and pushed');
select crm.complete_outbox((select jsonb_agg(jsonb_build_object('id', id, 'lease', lease, 'remote_version', '2999-01-01T00:00:01Z')) from k4));
-- manual: the record is held until a human decides.
update crm.contacts set job_title = 'App' where id = '30000000-0000-4000-8000-000000000041';
select is(pg_temp.apply('30000000-0000-4000-8000-0000000000c4', '[{"remote_id": "m-1", "remote_updated_at": "2999-01-01T00:00:00Z",
  "job_title": "Crm"}]'), '(0,0,1,0,0,1)', 'manual: an open conflict');
update crm.contacts set last_name = 'Pine-App' where id = '30000000-0000-4000-8000-000000000041';
select results_eq(
  $$select state, changed_columns from crm.outbox where record_id = '30000000-0000-4000-8000-000000000041'$$,
  $$values ('pending', array['last_name'])$$, 'manual: another field of the record is queued');
select is((select count(*)::integer from crm.claim_outbox('ledger-test', 100, '5 minutes', '30000000-0000-4000-8000-0000000000c4')
           where record_id = '30000000-0000-4000-8000-000000000041'), 0,
  'manual: claim hands out no entry of a record with an open conflict');

-- 5. resolve_conflict(id, 'local') queues the chosen value and frees the record. --------------------
select crm.resolve_conflict((select id from crm.conflicts where record_id = '30000000-0000-4000-8000-000000000041'
                                                          and resolution is null), 'local');
select results_eq(
  $$select o.state, o.changed_columns, c.job_title, c.needs_sync from crm.outbox o join crm.contacts c on c.id = o.record_id
    where o.record_id = '30000000-0000-4000-8000-000000000041'$$,
  $$values ('pending', array['job_title', 'last_name'], 'App', true)$$, 'local resolution: the app value is queued');
select is(pg_temp.apply('30000000-0000-4000-8000-0000000000c4', '[{"remote_id": "m-1", "remote_updated_at": "2999-01-01T00:00:00Z",
  "job_title": "Crm"}]'), '(0,0,1,0,0,0)', 'a re-read of the overridden remote version raises no new conflict');
create temporary table k5 (id bigint, lease uuid, record_id uuid, op text, changed_columns text[], pushed jsonb,
                           uncertain boolean, record jsonb);
insert into k5 select * from pg_temp.claim('30000000-0000-4000-8000-0000000000c4')
  as (id bigint, lease uuid, record_id uuid, op text, changed_columns text[], pushed jsonb, uncertain boolean, record jsonb);
select is((select pushed from k5 where record_id = '30000000-0000-4000-8000-000000000041'),
  '{"job_title": "App", "last_name": "Pine-App"}'::jsonb, 'the resolved record is claimed: the chosen value goes out');
select results_eq(
  $$select * from crm.complete_outbox((select jsonb_agg(jsonb_build_object('id', id, 'lease', lease,
      'remote_version', '2999-01-01T00:00:05Z')) from k5 where record_id = '30000000-0000-4000-8000-000000000041'))$$,
  $$values (1, 0)$$, 'and completes');
select is((select agreed_hash from crm.sync_state where record_id = '30000000-0000-4000-8000-000000000041' and field = 'job_title'),
  crm._hash('"App"'), 'the chosen value is agreed once pushed');

-- 6. CRM deletes against pending local edits. ----------------------------------------------------
-- Default (newest_wins): the delete wins, recorded.
update crm.contacts set job_title = 'Edited' where id = '30000000-0000-4000-8000-000000000005';
select is(pg_temp.apply('30000000-0000-4000-8000-0000000000c1', '[{"remote_id": "n-5", "remote_updated_at": "2026-06-05T00:00:00Z",
  "deleted": true}]'), '(0,0,0,1,0,1)', 'delete vs pending edit: deleted, one conflict');
select results_eq(
  $$select c.deleted_at is not null, c.needs_sync, (select count(*)::integer from crm.outbox o where o.record_id = c.id),
           k.field, k.resolution, k.resolved_by, k.policy, k.local_value, k.remote_value
    from crm.contacts c join crm.conflicts k on k.record_id = c.id where c.remote_id = 'n-5'$$,
  $$values (true, false, 0, 'deleted_at', 'remote', 'policy', 'newest_wins', '{"job_title": "Edited"}'::jsonb,
            '{"deleted": true}'::jsonb)$$,
  'the delete wins: tombstone, entry dropped, conflict recorded with the lost local values');
-- app_wins: the record is created again.
update crm.contacts set job_title = 'Edited' where id = '30000000-0000-4000-8000-000000000032';
select is(pg_temp.apply('30000000-0000-4000-8000-0000000000c3', '[{"remote_id": "a-2", "remote_updated_at": "2026-06-05T00:00:00Z",
  "deleted": true}]'), '(0,0,1,0,0,1)', 'app_wins: delete vs pending edit is a conflict; nothing deleted here');
select results_eq(
  $$select c.deleted_at, c.remote_id, c.needs_sync, o.op, o.remote_id, o.state,
           array['email', 'first_name', 'job_title', 'last_name'] <@ o.changed_columns, k.resolution
    from crm.contacts c join crm.outbox o on o.record_id = c.id join crm.conflicts k on k.record_id = c.id
    where c.id = '30000000-0000-4000-8000-000000000032'$$,
  $$values (null::timestamptz, null::text, true, 'insert', null::text, 'pending', true, 'local')$$,
  'app_wins: the row forgets the deleted remote id and is queued as a create of every field');
-- manual: open; the row stays; resolve remote tombstones it.
update crm.contacts set job_title = 'Edited' where id = '30000000-0000-4000-8000-000000000042';
select is(pg_temp.apply('30000000-0000-4000-8000-0000000000c4', '[{"remote_id": "m-2", "remote_updated_at": "2026-06-05T00:00:00Z",
  "deleted": true}]'), '(0,0,1,0,0,1)', 'manual: delete vs pending edit is an open conflict');
select results_eq(
  $$select c.deleted_at, c.remote_id, o.state, k.field, k.resolution from crm.contacts c
    join crm.outbox o on o.record_id = c.id join crm.conflicts k on k.record_id = c.id
    where c.id = '30000000-0000-4000-8000-000000000042'$$,
  $$values (null::timestamptz, 'm-2', 'pending', 'deleted_at', null::text)$$, 'manual: the row and its entry wait');
select is((select count(*)::integer from crm.claim_outbox('ledger-test', 100, '5 minutes', '30000000-0000-4000-8000-0000000000c4')
           where record_id = '30000000-0000-4000-8000-000000000042'), 0, 'manual: the entry is held');
select crm.resolve_conflict((select id from crm.conflicts where record_id = '30000000-0000-4000-8000-000000000042'
                                                          and resolution is null), 'remote');
select results_eq(
  $$select c.deleted_at is not null, c.needs_sync, (select count(*)::integer from crm.outbox o where o.record_id = c.id)
    from crm.contacts c where c.id = '30000000-0000-4000-8000-000000000042'$$,
  $$values (true, false, 0)$$, 'manual, resolved remote: the delete wins');

-- A stale entry never resurrects a CRM-deleted record: the delete arrives while the edit is in
-- flight; the worker dies; the entry is dropped at the next claim, not pushed.
update crm.contacts set job_title = 'Edited' where id = '30000000-0000-4000-8000-000000000007';
create temporary table k6 (id bigint, lease uuid, record_id uuid, op text, changed_columns text[], pushed jsonb,
                           uncertain boolean, record jsonb);
insert into k6 select * from pg_temp.claim('30000000-0000-4000-8000-0000000000c1')
  as (id bigint, lease uuid, record_id uuid, op text, changed_columns text[], pushed jsonb, uncertain boolean, record jsonb);
select is(pg_temp.apply('30000000-0000-4000-8000-0000000000c1', '[{"remote_id": "n-7", "remote_updated_at": "2026-06-05T00:00:00Z",
  "deleted": true}]'), '(0,0,0,1,0,1)', 'delete while the edit is in flight: tombstoned, conflict recorded');
select is((pg_temp.entry('30000000-0000-4000-8000-000000000007')).state, 'processing', 'the leased entry is left to its worker');
update crm.outbox set locked_until = now() - interval '1 second' where record_id = '30000000-0000-4000-8000-000000000007';
select is((select count(*)::integer from crm.claim_outbox('ledger-test', 100, '5 minutes', '30000000-0000-4000-8000-0000000000c1')
           where record_id = '30000000-0000-4000-8000-000000000007'), 0, 'the expired entry of a tombstone is not handed out');
select results_eq(
  $$select c.deleted_at is not null, (select count(*)::integer from crm.outbox o where o.record_id = c.id)
    from crm.contacts c where c.id = '30000000-0000-4000-8000-000000000007'$$,
  $$values (true, 0)$$, '... it is dropped and the record stays deleted');

-- 7. fail_outbox actions. ------------------------------------------------------------------------
-- gone on an update, default policy: tombstone, entry dropped, conflict.
update crm.contacts set job_title = 'Edited' where id = '30000000-0000-4000-8000-000000000006';
update crm.contacts set job_title = 'Edited' where id = '30000000-0000-4000-8000-000000000009';
insert into crm.contacts (id, connection_id, first_name, email)
values ('30000000-0000-4000-8000-000000000008', '30000000-0000-4000-8000-0000000000c1', 'New', 'n8@l.test');
create temporary table k7 (id bigint, lease uuid, record_id uuid, op text, changed_columns text[], pushed jsonb,
                           uncertain boolean, record jsonb);
insert into k7 select * from pg_temp.claim('30000000-0000-4000-8000-0000000000c1')
  as (id bigint, lease uuid, record_id uuid, op text, changed_columns text[], pushed jsonb, uncertain boolean, record jsonb);
select is((select count(*)::integer from k7 where record_id in ('30000000-0000-4000-8000-000000000006',
  '30000000-0000-4000-8000-000000000008', '30000000-0000-4000-8000-000000000009')), 3, 'three entries claimed');
select results_eq(
  $$select * from crm.fail_outbox((select jsonb_agg(jsonb_build_object('id', id, 'lease', lease, 'error', 'Not Found',
      'action', 'gone')) from k7 where record_id = '30000000-0000-4000-8000-000000000006'))$$,
  $$values (0, 0, 0, 1)$$, 'gone on an update: counted gone');
select results_eq(
  $$select c.deleted_at is not null, (select count(*)::integer from crm.outbox o where o.record_id = c.id),
           k.field, k.resolution, k.local_value,
           (select count(*)::integer from crm.write_ledger l where l.record_id = c.id)
    from crm.contacts c join crm.conflicts k on k.record_id = c.id where c.remote_id = 'n-6'$$,
  $$values (true, 0, 'deleted_at', 'remote', '{"job_title": "Edited"}'::jsonb, 0)$$,
  'gone: the delete wins (tombstone, entry dropped, conflict recorded, the attempt''s ledger rows removed)');
-- retry on a create: uncertain.
select results_eq(
  $$select * from crm.fail_outbox((select jsonb_agg(jsonb_build_object('id', id, 'lease', lease, 'error', 'timeout',
      'action', 'retry')) from k7 where record_id = '30000000-0000-4000-8000-000000000008'))$$,
  $$values (1, 0, 0, 0)$$, 'retry: backing off');
select results_eq(
  $$select state, uncertain, last_error, (select count(*)::integer from crm.write_ledger l where l.record_id = o.record_id) > 0
    from crm.outbox o where o.record_id = '30000000-0000-4000-8000-000000000008'$$,
  $$values ('pending', true, 'timeout', true)$$,
  'a create retried after an unknown outcome is uncertain; its ledger rows stay (it may have been written)');
update crm.outbox set next_attempt_at = now() where record_id = '30000000-0000-4000-8000-000000000008';
select is((select c.uncertain from crm.claim_outbox('ledger-test', 100, '5 minutes', '30000000-0000-4000-8000-0000000000c1') c
           where c.record_id = '30000000-0000-4000-8000-000000000008'), true, 'the claim hands it out as uncertain');
-- reauth: back as before the claim.
select results_eq(
  $$select * from crm.fail_outbox((select jsonb_agg(jsonb_build_object('id', id, 'lease', lease, 'error', '401',
      'action', 'reauth')) from k7 where record_id = '30000000-0000-4000-8000-000000000009'))$$,
  $$values (0, 0, 1, 0)$$, 'reauth: released');
select results_eq(
  $$select o.state, o.attempts, o.lease, c.sync_error, (select count(*)::integer from crm.write_ledger l where l.record_id = o.record_id)
    from crm.outbox o join crm.contacts c on c.id = o.record_id where o.record_id = '30000000-0000-4000-8000-000000000009'$$,
  $$values ('pending', 0, null::uuid, null::text, 0)$$,
  'reauth: pending, the attempt not counted, no error on the row, no ledger rows');
-- fix_data: a dead letter with the CRM's message.
create temporary table k8 (id bigint, lease uuid, record_id uuid, op text, changed_columns text[], pushed jsonb,
                           uncertain boolean, record jsonb);
insert into k8 select * from pg_temp.claim('30000000-0000-4000-8000-0000000000c1')
  as (id bigint, lease uuid, record_id uuid, op text, changed_columns text[], pushed jsonb, uncertain boolean, record jsonb);
select results_eq(
  $$select * from crm.fail_outbox((select jsonb_agg(jsonb_build_object('id', id, 'lease', lease,
      'error', 'REQUIRED_FIELD_MISSING: Last Name', 'action', 'fix_data')) from k8 where record_id = '30000000-0000-4000-8000-000000000009'))$$,
  $$values (0, 1, 0, 0)$$, 'fix_data: dead at once');
select results_eq(
  $$select o.state, c.sync_error from crm.outbox o join crm.contacts c on c.id = o.record_id
    where o.record_id = '30000000-0000-4000-8000-000000000009'$$,
  $$values ('dead', 'dead letter: REQUIRED_FIELD_MISSING: Last Name')$$, 'the row shows the CRM''s message');
select throws_ok(
  $$select crm.fail_outbox('[{"id": 1, "lease": "30000000-0000-4000-8000-000000000000", "error": "x", "action": "explode"}]')$$,
  'CRM01', null, 'an unknown action: CRM01');
-- An expired lease on a create: uncertain at the reclaim.
update crm.outbox set locked_until = now() - interval '1 second'
where record_id = '30000000-0000-4000-8000-000000000008';
update crm.outbox set uncertain = false where record_id = '30000000-0000-4000-8000-000000000008';
select is((select c.uncertain from crm.claim_outbox('ledger-test', 100, '5 minutes', '30000000-0000-4000-8000-0000000000c1') c
           where c.record_id = '30000000-0000-4000-8000-000000000008'), true,
  'a create whose worker died mid-push is uncertain when reclaimed');

-- gone on a delete: nothing left to do.
delete from crm.contacts where id = '30000000-0000-4000-8000-000000000003';
create temporary table k9 (id bigint, lease uuid, record_id uuid, op text, changed_columns text[], pushed jsonb,
                           uncertain boolean, record jsonb);
insert into k9 select * from pg_temp.claim('30000000-0000-4000-8000-0000000000c1')
  as (id bigint, lease uuid, record_id uuid, op text, changed_columns text[], pushed jsonb, uncertain boolean, record jsonb);
select results_eq(
  $$select op, pushed, record from k9 where record_id = '30000000-0000-4000-8000-000000000003'$$,
  $$values ('delete', null::jsonb, null::jsonb)$$, 'a hard delete is claimed with nothing pushed');
select results_eq(
  $$select * from crm.fail_outbox((select jsonb_agg(jsonb_build_object('id', id, 'lease', lease, 'error', 'Not Found',
      'action', 'gone')) from k9 where record_id = '30000000-0000-4000-8000-000000000003'))$$,
  $$values (0, 0, 0, 1)$$, 'gone on a delete: done');
select is((select count(*)::integer from crm.outbox where record_id = '30000000-0000-4000-8000-000000000003'), 0,
  '... the entry is gone');

-- gone on an update under app_wins: created again.
update crm.contacts set job_title = 'Edited' where id = '30000000-0000-4000-8000-000000000033';
create temporary table k10 (id bigint, lease uuid, record_id uuid, op text, changed_columns text[], pushed jsonb,
                            uncertain boolean, record jsonb);
insert into k10 select * from pg_temp.claim('30000000-0000-4000-8000-0000000000c3')
  as (id bigint, lease uuid, record_id uuid, op text, changed_columns text[], pushed jsonb, uncertain boolean, record jsonb);
select results_eq(
  $$select * from crm.fail_outbox((select jsonb_agg(jsonb_build_object('id', id, 'lease', lease, 'error', 'Not Found',
      'action', 'gone')) from k10 where record_id = '30000000-0000-4000-8000-000000000033'))$$,
  $$values (0, 0, 0, 1)$$, 'app_wins gone: counted gone');
select results_eq(
  $$select c.remote_id, c.deleted_at, o.op, o.state, o.lease, k.resolution from crm.contacts c
    join crm.outbox o on o.record_id = c.id join crm.conflicts k on k.record_id = c.id
    where c.id = '30000000-0000-4000-8000-000000000033'$$,
  $$values (null::text, null::timestamptz, 'insert', 'pending', null::uuid, 'local')$$,
  'app_wins gone: the record is queued as a create, conflict resolved for the app');

-- gone on an update under manual: open, held; resolve local creates it again.
update crm.contacts set job_title = 'Edited' where id = '30000000-0000-4000-8000-000000000043';
create temporary table k11 (id bigint, lease uuid, record_id uuid, op text, changed_columns text[], pushed jsonb,
                            uncertain boolean, record jsonb);
insert into k11 select * from pg_temp.claim('30000000-0000-4000-8000-0000000000c4')
  as (id bigint, lease uuid, record_id uuid, op text, changed_columns text[], pushed jsonb, uncertain boolean, record jsonb);
select results_eq(
  $$select * from crm.fail_outbox((select jsonb_agg(jsonb_build_object('id', id, 'lease', lease, 'error', 'Not Found',
      'action', 'gone')) from k11 where record_id = '30000000-0000-4000-8000-000000000043'))$$,
  $$values (0, 0, 0, 1)$$, 'manual gone: counted gone');
select results_eq(
  $$select c.remote_id, c.deleted_at, o.op, o.state, k.field, k.resolution, c.sync_error like 'deleted in the CRM%'
    from crm.contacts c join crm.outbox o on o.record_id = c.id join crm.conflicts k on k.record_id = c.id
    where c.id = '30000000-0000-4000-8000-000000000043'$$,
  $$values ('m-3', null::timestamptz, 'update', 'pending', 'deleted_at', null::text, true)$$,
  'manual gone: an open conflict, the row and entry wait');
select is((select count(*)::integer from crm.claim_outbox('ledger-test', 100, '5 minutes', '30000000-0000-4000-8000-0000000000c4')
           where record_id = '30000000-0000-4000-8000-000000000043'), 0, 'manual gone: held');
select crm.resolve_conflict((select id from crm.conflicts where record_id = '30000000-0000-4000-8000-000000000043'
                                                          and resolution is null), 'local');
select results_eq(
  $$select c.remote_id, o.op, o.state from crm.contacts c join crm.outbox o on o.record_id = c.id
    where c.id = '30000000-0000-4000-8000-000000000043'$$,
  $$values (null::text, 'insert', 'pending')$$, 'manual gone resolved local: created again');

-- The app_wins re-create of a-2 (section 6) was claimed with a-3.
select results_eq(
  $$select op, pushed ->> 'job_title', pushed ->> 'email' from k10 where record_id = '30000000-0000-4000-8000-000000000032'$$,
  $$values ('insert', 'Edited', 'a2@l.test')$$, 'the re-create pushes every field');

-- The CRM delete arrives while the edit is in flight, and the push then meets it (gone).
update crm.contacts set job_title = 'Edited' where id in ('30000000-0000-4000-8000-000000000013', '30000000-0000-4000-8000-000000000035');
create temporary table k15 (id bigint, lease uuid, record_id uuid, op text, changed_columns text[], pushed jsonb,
                            uncertain boolean, record jsonb);
insert into k15 select * from pg_temp.claim('30000000-0000-4000-8000-0000000000c1')
  as (id bigint, lease uuid, record_id uuid, op text, changed_columns text[], pushed jsonb, uncertain boolean, record jsonb);
insert into k15 select * from pg_temp.claim('30000000-0000-4000-8000-0000000000c3')
  as (id bigint, lease uuid, record_id uuid, op text, changed_columns text[], pushed jsonb, uncertain boolean, record jsonb);
select is(pg_temp.apply('30000000-0000-4000-8000-0000000000c1', '[{"remote_id": "n-13", "remote_updated_at": "2026-06-05T00:00:00Z",
  "deleted": true}]'), '(0,0,0,1,0,1)', 'default, edit in flight: the delete is applied and recorded at once');
select results_eq(
  $$select * from crm.fail_outbox((select jsonb_agg(jsonb_build_object('id', id, 'lease', lease, 'error', 'Not Found',
      'action', 'gone')) from k15 where record_id = '30000000-0000-4000-8000-000000000013'))$$,
  $$values (0, 0, 0, 1)$$, '... the push then meets the delete: gone');
select results_eq(
  $$select c.deleted_at is not null, (select count(*)::integer from crm.outbox o where o.record_id = c.id),
           (select count(*)::integer from crm.conflicts k where k.record_id = c.id)
    from crm.contacts c where c.id = '30000000-0000-4000-8000-000000000013'$$,
  $$values (true, 0, 1)$$, '... the entry goes, the tombstone stays, no second conflict');
select is(pg_temp.apply('30000000-0000-4000-8000-0000000000c3', '[{"remote_id": "a-5", "remote_updated_at": "2026-06-05T00:00:00Z",
  "deleted": true}]'), '(0,0,1,0,0,0)', 'app_wins, edit in flight: the delete waits for the push''s outcome');
select results_eq(
  $$select * from crm.fail_outbox((select jsonb_agg(jsonb_build_object('id', id, 'lease', lease, 'error', 'Not Found',
      'action', 'gone')) from k15 where record_id = '30000000-0000-4000-8000-000000000035'))$$,
  $$values (0, 0, 0, 1)$$, '... the push meets the delete: gone');
select results_eq(
  $$select c.remote_id, c.deleted_at, o.op, k.resolution from crm.contacts c
    join crm.outbox o on o.record_id = c.id join crm.conflicts k on k.record_id = c.id
    where c.id = '30000000-0000-4000-8000-000000000035'$$,
  $$values (null::text, null::timestamptz, 'insert', 'local')$$, '... and the record is created again, recorded once');

-- 8. Ledger window, RLS, cleanup. ------------------------------------------------------------------
insert into crm.write_ledger (connection_id, object, record_id, field, value_hash, pushed_at)
values ('30000000-0000-4000-8000-0000000000c9', 'contacts', '30000000-0000-4000-8000-000000000091', 'first_name',
        crm._hash('"Z1"'), now() - interval '8 days'),
       ('30000000-0000-4000-8000-0000000000c9', 'contacts', '30000000-0000-4000-8000-000000000091', 'last_name',
        crm._hash('"Zed"'), now() - interval '1 day');
update crm.contacts set first_name = 'Zapp', last_name = 'Zapp' where id = '30000000-0000-4000-8000-000000000091';
select is(pg_temp.apply('30000000-0000-4000-8000-0000000000c9', '[{"remote_id": "o-1", "remote_updated_at": "2026-06-05T00:00:00Z",
  "first_name": "Z1", "last_name": "Zed"}]'), '(0,0,1,0,0,1)',
  'a push older than 7 days is no echo: the value is a conflict (local newer: kept); a recent one is an echo');
select results_eq(
  $$select k.field from crm.conflicts k where k.record_id = '30000000-0000-4000-8000-000000000091'$$,
  $$values ('first_name')$$, '... the conflict is on the old push''s field only');

set local role authenticated;
set local request.jwt.claims to
  '{"role": "authenticated", "app_metadata": {"account_id": "30000000-0000-4000-8000-0000000000a9"}}';
select results_eq('select distinct connection_id from crm.write_ledger',
  $$values ('30000000-0000-4000-8000-0000000000c9'::uuid)$$, 'authenticated reads its own account''s ledger rows only');
select throws_ok($$delete from crm.write_ledger$$, '42501', null, 'authenticated cannot write the ledger');
reset role;
set local role anon;
select throws_ok($$select count(*) from crm.write_ledger$$, '42501', null, 'anon: denied');
reset role;

select is(crm.purge_write_ledger(), 1::bigint, 'purge removes ledger rows older than 7 days');
insert into crm.write_ledger (connection_id, object, record_id, field, value_hash, pushed_at)
values ('30000000-0000-4000-8000-0000000000c9', 'contacts', '30000000-0000-4000-8000-000000000091', 'email',
        crm._hash('"x"'), now() - interval '30 days');
select is((crm.cleanup() ->> 'write_ledger')::integer, 1, 'crm.cleanup purges the ledger');

select * from finish();
rollback;
