-- App writes cannot choose engine-owned columns on INSERT (remote_id, kind, bookkeeping), and
-- engine rights come from the database role, never from a JWT claim.
begin;
select plan(29);

insert into crm.connections (id, account_id, provider, remote_account_id) values
  ('10000000-0000-4000-8000-0000000000c1', '10000000-0000-4000-8000-0000000000a1', 'salesforce', 'guard-test-1');

-- Records the CRM has, written by the engine (postgres session, crm.engine = on).
set local crm.engine = 'on';
insert into crm.companies (id, connection_id, remote_id, name, remote_updated_at) values
  ('10000000-0000-4000-8000-0000000000e1', '10000000-0000-4000-8000-0000000000c1', 'co-1', 'Acme', '2026-01-01');
insert into crm.contacts (id, connection_id, remote_id, kind, email, remote_updated_at) values
  ('10000000-0000-4000-8000-000000000001', '10000000-0000-4000-8000-0000000000c1', 'ct-1', 'lead', 'lead@g.test', '2026-01-01');
insert into crm.deals (id, connection_id, remote_id, name, remote_updated_at) values
  ('10000000-0000-4000-8000-0000000000d1', '10000000-0000-4000-8000-0000000000c1', 'dl-1', 'Big', '2026-01-01');
reset crm.engine;
select results_eq(
  $$select (select kind from crm.contacts where remote_id = 'ct-1'),
           (select count(*)::integer from crm.outbox where connection_id = '10000000-0000-4000-8000-0000000000c1')$$,
  $$values ('lead', 0)$$,
  'engine inserts may set remote_id and kind, and queue nothing');

-- An app insert setting one column; returns 'inserted' or the SQLSTATE it failed with.
create function pg_temp.app_insert_error(p_table text, p_column text, p_value text) returns text
  language plpgsql as $$
begin
  execute format('insert into crm.%I (connection_id, %I) values (%L, %L)', p_table, p_column,
                 '10000000-0000-4000-8000-0000000000c1', p_value);
  return 'inserted';
exception when others then
  return sqlstate;
end
$$;

-- The app, the way PostgREST runs it.
set local role authenticated;
set local request.jwt.claims to
  '{"role": "authenticated", "app_metadata": {"account_id": "10000000-0000-4000-8000-0000000000a1"}}';

-- An insert naming a CRM record: one the mirror has (the unique key alone would catch it) and
-- one it does not have yet (nothing else would: the takeover).
select throws_ok(
  $$insert into crm.contacts (connection_id, remote_id, email)
    values ('10000000-0000-4000-8000-0000000000c1', 'ct-1', 'mine@g.test')$$,
  'CRM05', 'crm.contacts: remote_id cannot be set by an app insert; the sync engine manages them',
  'contacts: an app insert with the remote_id of an existing record is refused');
select throws_ok(
  $$insert into crm.companies (connection_id, remote_id, name)
    values ('10000000-0000-4000-8000-0000000000c1', 'co-1', 'Mine')$$,
  'CRM05', null, 'companies: an app insert with remote_id is refused');
select throws_ok(
  $$insert into crm.deals (connection_id, remote_id, name)
    values ('10000000-0000-4000-8000-0000000000c1', 'dl-1', 'Mine')$$,
  'CRM05', null, 'deals: an app insert with remote_id is refused');
select throws_ok(
  $$insert into crm.contacts (connection_id, remote_id, email)
    values ('10000000-0000-4000-8000-0000000000c1', 'ct-not-mirrored-yet', 'mine@g.test')$$,
  'CRM05', null, 'takeover: the remote_id of a CRM record the mirror does not have yet is refused');
select throws_ok(
  $$insert into crm.contacts (connection_id, kind, email)
    values ('10000000-0000-4000-8000-0000000000c1', 'lead', 'lead2@g.test')$$,
  'CRM05', 'crm.contacts: kind cannot be set by an app insert; the sync engine manages them',
  'an app insert with kind = lead is refused');

-- Every bookkeeping column, on every table.
select results_eq(
  $$select t.tbl, t.col, pg_temp.app_insert_error(t.tbl, t.col, t.val)
    from (values ('contacts', 'remote_updated_at', '2099-01-01'), ('contacts', 'needs_sync', 'true'),
                 ('contacts', 'sync_error', 'x'), ('contacts', 'last_synced_at', '2099-01-01'),
                 ('contacts', 'merged_into_remote_id', 'ct-1'),
                 ('companies', 'remote_updated_at', '2099-01-01'), ('companies', 'needs_sync', 'true'),
                 ('companies', 'sync_error', 'x'), ('companies', 'last_synced_at', '2099-01-01'),
                 ('companies', 'merged_into_remote_id', 'co-1'),
                 ('deals', 'remote_updated_at', '2099-01-01'), ('deals', 'needs_sync', 'true'),
                 ('deals', 'sync_error', 'x'), ('deals', 'last_synced_at', '2099-01-01'),
                 ('deals', 'merged_into_remote_id', 'dl-1')) as t(tbl, col, val)$$,
  $$select t.tbl, t.col, 'CRM05'
    from (values ('contacts', 'remote_updated_at'), ('contacts', 'needs_sync'), ('contacts', 'sync_error'),
                 ('contacts', 'last_synced_at'), ('contacts', 'merged_into_remote_id'),
                 ('companies', 'remote_updated_at'), ('companies', 'needs_sync'), ('companies', 'sync_error'),
                 ('companies', 'last_synced_at'), ('companies', 'merged_into_remote_id'),
                 ('deals', 'remote_updated_at'), ('deals', 'needs_sync'), ('deals', 'sync_error'),
                 ('deals', 'last_synced_at'), ('deals', 'merged_into_remote_id')) as t(tbl, col)$$,
  'an app insert setting any bookkeeping column is refused with CRM05, on every table');
select throws_ok(
  $$insert into crm.deals (connection_id, name, remote_id, sync_error)
    values ('10000000-0000-4000-8000-0000000000c1', 'Two', 'dl-9', 'x')$$,
  'CRM05', 'crm.deals: remote_id, sync_error cannot be set by an app insert; the sync engine manages them',
  'the message names every refused column');
select is((select count(*)::integer from crm.outbox), 0, 'refused inserts queue nothing');
select is((select count(*)::integer from crm.contacts where email like 'mine@%' or email like 'lead2@%'), 0,
  '... and write nothing');

-- Normal app inserts still work and queue their insert entry.
insert into crm.contacts (id, connection_id, email, first_name) values
  ('10000000-0000-4000-8000-000000000010', '10000000-0000-4000-8000-0000000000c1', 'new@g.test', 'Nia');
insert into crm.companies (id, connection_id, name) values
  ('10000000-0000-4000-8000-0000000000e2', '10000000-0000-4000-8000-0000000000c1', 'NewCo');
insert into crm.deals (id, connection_id, name, amount) values
  ('10000000-0000-4000-8000-0000000000d2', '10000000-0000-4000-8000-0000000000c1', 'Fresh', 5);
select results_eq(
  $$select object, op, remote_id, changed_columns from crm.outbox
    where record_id in ('10000000-0000-4000-8000-000000000010', '10000000-0000-4000-8000-0000000000e2',
                        '10000000-0000-4000-8000-0000000000d2')
    order by object$$,
  $$values ('companies', 'insert', null::text, array['name']),
           ('contacts', 'insert', null::text, array['email', 'first_name']),
           ('deals', 'insert', null::text, array['amount', 'name'])$$,
  'a normal app insert queues one insert entry per table');
select results_eq(
  $$select kind, needs_sync, remote_id from crm.contacts where id = '10000000-0000-4000-8000-000000000010'$$,
  $$values ('contact', true, null::text)$$,
  'the new contact is a contact, needs sync, has no remote id');
select lives_ok(
  $$insert into crm.contacts (connection_id, email, kind, needs_sync, remote_id, sync_error)
    values ('10000000-0000-4000-8000-0000000000c1', 'explicit@g.test', 'contact', false, null, null)$$,
  'spelling out the unset values (kind contact, needs_sync false, nulls) is allowed');
select lives_ok(
  $$insert into crm.contacts (connection_id, email, deleted_at)
    values ('10000000-0000-4000-8000-0000000000c1', 'gone@g.test', now())$$,
  'deleted_at is the app''s soft delete, allowed on insert');
select is((select count(*)::integer from crm.outbox o join crm.contacts c on c.id = o.record_id
           where c.email = 'gone@g.test'), 0, '... and an inserted tombstone queues nothing');
-- crm.is_engine and a forged claim: an authenticated session claiming service_role, with the
-- engine flag set, is still the app.
set local request.jwt.claims to
  '{"role": "service_role", "app_metadata": {"account_id": "10000000-0000-4000-8000-0000000000a1"}}';
set local crm.engine = 'on';
select is(crm.is_engine(), false, 'authenticated + service_role claim + crm.engine = on: not the engine');
select throws_ok(
  $$insert into crm.contacts (connection_id, remote_id, email, remote_updated_at)
    values ('10000000-0000-4000-8000-0000000000c1', 'ct-1', 'forged@g.test', '2099-01-01')$$,
  'CRM05', null, 'the forged claim cannot insert a remote_id');
select throws_ok(
  $$update crm.contacts set remote_id = 'ct-stolen' where id = '10000000-0000-4000-8000-000000000010'$$,
  'CRM05', null, 'the forged claim cannot set remote_id on update');
update crm.contacts set remote_updated_at = '2099-01-01', first_name = 'Forged'
where id = '10000000-0000-4000-8000-000000000001';
select results_eq(
  $$select c.remote_updated_at, c.first_name, o.op, o.changed_columns
    from crm.contacts c join crm.outbox o on o.record_id = c.id
    where c.id = '10000000-0000-4000-8000-000000000001'$$,
  $$values ('2026-01-01'::timestamptz, 'Forged', 'update', array['first_name'])$$,
  'the forged claim cannot move remote_updated_at; its edit is queued like any app write');
reset crm.engine;
reset role;

-- Engine rights follow the database role, whatever the claim says.
set local crm.engine = 'on';
select is(crm.is_engine(), true, 'postgres (login role) + crm.engine = on: the engine');
set local role service_role;
set local request.jwt.claims to '{"role": "authenticated"}';
select is(crm.is_engine(), true, 'service_role + crm.engine = on: the engine, even with an authenticated claim');
reset crm.engine;
select is(crm.is_engine(), false, 'service_role without crm.engine: an app write');
select throws_ok(
  $$insert into crm.contacts (connection_id, remote_id, email)
    values ('10000000-0000-4000-8000-0000000000c1', 'ct-admin', 'admin@g.test')$$,
  'CRM05', null, 'a service_role insert without crm.engine is an app insert, guarded too');
reset role;

-- Engine functions as the edge functions' service_role calls them (crm.engine = on is their
-- SET clause): they still write remote ids and bookkeeping, and queue nothing.
set local role service_role;
set local request.jwt.claims to '{"role": "service_role"}';
select results_eq(
  $$select created from crm.apply_inbound('10000000-0000-4000-8000-0000000000c1', 'contacts',
      '[{"remote_id": "ct-2", "remote_updated_at": "2026-02-01T00:00:00Z", "email": "two@g.test", "kind": "lead"}]')$$,
  $$values (1)$$, 'apply_inbound as service_role creates a record');
select results_eq(
  $$select c.kind, c.needs_sync, (select count(*)::integer from crm.outbox o where o.record_id = c.id)
    from crm.contacts c where c.remote_id = 'ct-2'$$,
  $$values ('lead', false, 0)$$,
  '... with its kind, as an engine write that queues nothing');
create temporary table claimed as
  select * from crm.claim_outbox('guard-worker', 10, '5 minutes', '10000000-0000-4000-8000-0000000000c1', 'companies');
select results_eq(
  $$select * from crm.complete_outbox((select jsonb_agg(jsonb_build_object('id', id, 'lease', lease, 'remote_id', 'co-new'))
      from claimed where record_id = '10000000-0000-4000-8000-0000000000e2'))$$,
  $$values (1, 0)$$, 'complete_outbox as service_role completes the company insert');
select results_eq(
  $$select remote_id, needs_sync from crm.companies where id = '10000000-0000-4000-8000-0000000000e2'$$,
  $$values ('co-new', false)$$, '... and records its new remote id on the row');
create temporary table claimed_deal as
  select * from crm.claim_outbox('guard-worker', 10, '5 minutes', '10000000-0000-4000-8000-0000000000c1', 'deals');
select results_eq(
  $$select * from crm.fail_outbox((select jsonb_agg(jsonb_build_object('id', id, 'lease', lease, 'error', 'CRM said no',
                                                                       'retryable', false))
      from claimed_deal))$$,
  $$values (0, 1, 0, 0)$$, 'fail_outbox as service_role dead-letters the deal');
select is((select sync_error from crm.deals where id = '10000000-0000-4000-8000-0000000000d2'), 'dead letter: CRM said no',
  '... and writes sync_error on the row');
reset role;

select * from finish();
rollback;
