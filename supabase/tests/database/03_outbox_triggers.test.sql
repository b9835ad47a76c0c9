-- needs_sync triggers: app writes queue exactly one coalesced outbox entry per record with the
-- changed fields; engine writes (crm.engine = on) and no-op updates queue nothing.
begin;
select plan(67);

insert into crm.connections (id, account_id, provider, remote_account_id) values
  ('03000000-0000-4000-8000-0000000000c1', '03000000-0000-4000-8000-0000000000a1', 'hubspot', 'trg-test-1'),
  ('03000000-0000-4000-8000-0000000000c2', '03000000-0000-4000-8000-0000000000a1', 'hubspot', 'trg-test-2');
-- Only fields a connection writes to the CRM are queued. The HubSpot defaults map no custom
-- key: this connection writes two.
insert into crm.field_mappings (connection_id, provider, object, remote_object, column_name,
                                remote_property, direction, transform) values
  ('03000000-0000-4000-8000-0000000000c1', 'hubspot', 'contacts', 'contacts', 'custom.score', 'score', 'both', 'number'),
  ('03000000-0000-4000-8000-0000000000c1', 'hubspot', 'contacts', 'contacts', 'custom.tier', 'tier', 'both', 'text');

-- Engine writes: rows as they arrive from the CRM. Nothing may be queued for them.
set local crm.engine = 'on';
insert into crm.companies (id, connection_id, remote_id, name) values
  ('03000000-0000-4000-8000-0000000000e1', '03000000-0000-4000-8000-0000000000c1', 'co-1', 'Acme'),
  ('03000000-0000-4000-8000-0000000000e2', '03000000-0000-4000-8000-0000000000c2', 'co-9', 'Other');
insert into crm.contacts (id, connection_id, remote_id, first_name, email, custom) values
  ('03000000-0000-4000-8000-000000000001', '03000000-0000-4000-8000-0000000000c1', 'r-1', 'Sam', 'sam@x.test', '{"score": 1}'),
  ('03000000-0000-4000-8000-000000000002', '03000000-0000-4000-8000-0000000000c1', 'r-2', 'Kim', 'kim@x.test', '{}'),
  ('03000000-0000-4000-8000-000000000003', '03000000-0000-4000-8000-0000000000c1', 'r-3', 'Lou', 'lou@x.test', '{}');
update crm.contacts set job_title = 'CTO' where id = '03000000-0000-4000-8000-000000000002';
reset crm.engine;

select is((select count(*)::integer from crm.outbox where connection_id = '03000000-0000-4000-8000-0000000000c1'),
  0, 'engine inserts and updates queue nothing');
select is((select needs_sync from crm.contacts where id = '03000000-0000-4000-8000-000000000002'), false,
  'engine writes leave needs_sync false');

-- App insert: one insert entry listing the set fields; needs_sync on.
insert into crm.contacts (id, connection_id, first_name, email)
values ('03000000-0000-4000-8000-000000000010', '03000000-0000-4000-8000-0000000000c1', 'Ann', 'ann@x.test');
select results_eq(
  $$select op, changed_columns, version, state from crm.outbox where record_id = '03000000-0000-4000-8000-000000000010'$$,
  $$values ('insert', array['email', 'first_name'], 1, 'pending')$$,
  'app insert: one insert entry with the set fields');
select is((select needs_sync from crm.contacts where id = '03000000-0000-4000-8000-000000000010'), true,
  'app insert sets needs_sync');
select isnt((select local_changed_at from crm.sync_state where record_id = '03000000-0000-4000-8000-000000000010'
             and field = 'email'), null, 'app insert stamps local_changed_at per field');

-- Insert then updates: still one entry, still insert, fields merged, version bumped.
update crm.contacts set last_name = 'Lee' where id = '03000000-0000-4000-8000-000000000010';
update crm.contacts set phone = '+4930123456', first_name = 'Anne' where id = '03000000-0000-4000-8000-000000000010';
select results_eq(
  $$select op, changed_columns, version from crm.outbox where record_id = '03000000-0000-4000-8000-000000000010'$$,
  $$values ('insert', array['email', 'first_name', 'last_name', 'phone'], 3)$$,
  'insert + updates coalesce into one insert entry with the union of fields');
select is((select count(*)::integer from crm.outbox where record_id = '03000000-0000-4000-8000-000000000010'), 1,
  'exactly one entry per record');

-- No-op update: same values, or only bookkeeping columns.
update crm.contacts set first_name = 'Anne', updated_at = now() - interval '1 day'
where id = '03000000-0000-4000-8000-000000000010';
select is((select version from crm.outbox where record_id = '03000000-0000-4000-8000-000000000010'), 3,
  'an update to identical values queues nothing');
select ok((select updated_at > now() - interval '1 minute' from crm.contacts
           where id = '03000000-0000-4000-8000-000000000010'), 'the app cannot rewrite updated_at');
update crm.contacts set needs_sync = false, sync_error = 'x', last_synced_at = now(), remote_updated_at = now()
where id = '03000000-0000-4000-8000-000000000010';
select results_eq(
  $$select needs_sync, sync_error, last_synced_at, remote_updated_at from crm.contacts
    where id = '03000000-0000-4000-8000-000000000010'$$,
  $$values (true, null::text, null::timestamptz, null::timestamptz)$$,
  'engine-owned columns cannot be changed by the app');
select is((select version from crm.outbox where record_id = '03000000-0000-4000-8000-000000000010'), 3,
  'a bookkeeping-only update queues nothing');

-- Update of a synced record: update entry with just the changed field and the remote id.
update crm.contacts set email = 'sam@new.test' where id = '03000000-0000-4000-8000-000000000001';
select results_eq(
  $$select op, changed_columns, remote_id from crm.outbox where record_id = '03000000-0000-4000-8000-000000000001'$$,
  $$values ('update', array['email'], 'r-1')$$,
  'app update of a synced row: update entry with the changed field');
select is((select needs_sync from crm.contacts where id = '03000000-0000-4000-8000-000000000001'), true,
  'app update sets needs_sync');
update crm.contacts set custom = custom || '{"score": 2, "tier": "gold"}' where id = '03000000-0000-4000-8000-000000000001';
select is((select changed_columns from crm.outbox where record_id = '03000000-0000-4000-8000-000000000001'),
  array['custom.score', 'custom.tier', 'email'], 'custom keys are tracked as custom.<key>');

-- Unchanged rows of a multi-row statement queue nothing; changed ones one entry each.
update crm.contacts set job_title = 'CTO'
where id in ('03000000-0000-4000-8000-000000000002', '03000000-0000-4000-8000-000000000003');
select results_eq(
  $$select record_id from crm.outbox where record_id in
    ('03000000-0000-4000-8000-000000000002', '03000000-0000-4000-8000-000000000003')$$,
  $$values ('03000000-0000-4000-8000-000000000003'::uuid)$$,
  'a multi-row update queues only the rows that changed');

-- Update then delete: a delete entry.
delete from crm.contacts where id = '03000000-0000-4000-8000-000000000001';
select results_eq(
  $$select op, changed_columns, remote_id from crm.outbox where record_id = '03000000-0000-4000-8000-000000000001'$$,
  $$values ('delete', '{}'::text[], 'r-1')$$,
  'update + delete coalesce into a delete carrying the remote id');
select is((select count(*)::integer from crm.sync_state where record_id = '03000000-0000-4000-8000-000000000001'), 0,
  'a deleted row''s field state is dropped');

-- Delete of a synced row without pending changes: delete entry.
delete from crm.contacts where id = '03000000-0000-4000-8000-000000000002';
select results_eq(
  $$select op, remote_id from crm.outbox where record_id = '03000000-0000-4000-8000-000000000002'$$,
  $$values ('delete', 'r-2')$$,
  'app delete of a synced row queues a delete');

-- Insert then delete of a never-synced row: nothing to tell the CRM.
delete from crm.contacts where id = '03000000-0000-4000-8000-000000000010';
select is((select count(*)::integer from crm.outbox where record_id = '03000000-0000-4000-8000-000000000010'), 0,
  'insert + delete of a never-synced row cancels the entry');

-- ... unless the insert is in flight: then the delete must follow it.
insert into crm.contacts (id, connection_id, email)
values ('03000000-0000-4000-8000-000000000011', '03000000-0000-4000-8000-0000000000c1', 'fly@x.test');
update crm.outbox set state = 'processing', lease = gen_random_uuid(), locked_until = now() + interval '5 minutes',
  claimed_version = version, attempts = 1
where record_id = '03000000-0000-4000-8000-000000000011';
update crm.contacts set last_name = 'Fly' where id = '03000000-0000-4000-8000-000000000011';
select results_eq(
  $$select state, version, claimed_version, changed_columns from crm.outbox
    where record_id = '03000000-0000-4000-8000-000000000011'$$,
  $$values ('processing', 2, 1, array['email', 'last_name'])$$,
  'a change while in flight merges and bumps the version (the claim stays)');
delete from crm.contacts where id = '03000000-0000-4000-8000-000000000011';
select results_eq(
  $$select op, state from crm.outbox where record_id = '03000000-0000-4000-8000-000000000011'$$,
  $$values ('delete', 'processing')$$,
  'deleting a row whose insert is in flight turns the entry into a delete');

-- Soft delete.
update crm.contacts set deleted_at = now() where id = '03000000-0000-4000-8000-000000000003';
select results_eq(
  $$select op, changed_columns from crm.outbox where record_id = '03000000-0000-4000-8000-000000000003'$$,
  $$values ('delete', '{}'::text[])$$,
  'soft delete (deleted_at) of a synced row queues a delete');
update crm.contacts set first_name = 'Ghost' where id = '03000000-0000-4000-8000-000000000003';
select results_eq(
  $$select op, version from crm.outbox where record_id = '03000000-0000-4000-8000-000000000003'$$,
  $$values ('delete', 2)$$,
  'editing a tombstone queues nothing more');
update crm.contacts set deleted_at = null where id = '03000000-0000-4000-8000-000000000003';
select results_eq(
  $$select op, changed_columns from crm.outbox where record_id = '03000000-0000-4000-8000-000000000003'$$,
  $$values ('update', array['email', 'first_name', 'job_title'])$$,
  'restoring a soft-deleted row before the delete went out sends its fields as an update');

insert into crm.contacts (id, connection_id, email)
values ('03000000-0000-4000-8000-000000000012', '03000000-0000-4000-8000-0000000000c1', 'soft@x.test');
update crm.contacts set deleted_at = now() where id = '03000000-0000-4000-8000-000000000012';
select is((select count(*)::integer from crm.outbox where record_id = '03000000-0000-4000-8000-000000000012'), 0,
  'soft delete of a never-synced row cancels its insert');
select is((select needs_sync from crm.contacts where id = '03000000-0000-4000-8000-000000000012'), false,
  '... and clears needs_sync');

-- Engine tombstones and hard deletes by the engine queue nothing.
set local crm.engine = 'on';
insert into crm.contacts (id, connection_id, remote_id, email) values
  ('03000000-0000-4000-8000-000000000013', '03000000-0000-4000-8000-0000000000c1', 'r-13', 'e@x.test');
update crm.contacts set deleted_at = now() where id = '03000000-0000-4000-8000-000000000013';
delete from crm.contacts where id = '03000000-0000-4000-8000-000000000013';
reset crm.engine;
select is((select count(*)::integer from crm.outbox where record_id = '03000000-0000-4000-8000-000000000013'), 0,
  'engine tombstone and delete queue nothing');

-- The engine flag is transaction-local and only 'on' counts.
select is(crm.is_engine(), false, 'crm.engine reset: app mode');
set local crm.engine = 'off';
select is(crm.is_engine(), false, 'crm.engine = off is app mode');
reset crm.engine;

-- Dead letters are revived by a new change.
set local crm.engine = 'on';
insert into crm.contacts (id, connection_id, remote_id, email) values
  ('03000000-0000-4000-8000-000000000014', '03000000-0000-4000-8000-0000000000c1', 'r-14', 'd@x.test');
reset crm.engine;
update crm.contacts set first_name = 'Dee' where id = '03000000-0000-4000-8000-000000000014';
update crm.outbox set state = 'dead', dead_at = now(), attempts = 10, last_error = 'boom'
where record_id = '03000000-0000-4000-8000-000000000014';
update crm.contacts set last_name = 'Dead' where id = '03000000-0000-4000-8000-000000000014';
select results_eq(
  $$select state, attempts, dead_at, changed_columns from crm.outbox where record_id = '03000000-0000-4000-8000-000000000014'$$,
  $$values ('pending', 0, null::timestamptz, array['first_name', 'last_name'])$$,
  'a new change revives a dead-lettered entry');

-- Managed columns.
select throws_ok(
  $$update crm.contacts set remote_id = 'other' where id = '03000000-0000-4000-8000-000000000014'$$,
  'CRM05', null, 'the app cannot change remote_id');
select throws_ok(
  $$update crm.contacts set connection_id = '03000000-0000-4000-8000-0000000000c2' where id = '03000000-0000-4000-8000-000000000014'$$,
  'CRM05', null, 'the app cannot move a row to another connection');
select throws_ok(
  $$update crm.contacts set kind = 'lead' where id = '03000000-0000-4000-8000-000000000014'$$,
  'CRM05', null, 'the app cannot change kind');

-- Relations: a local company id fills the remote id (and vice versa).
update crm.contacts set company_id = '03000000-0000-4000-8000-0000000000e1'
where id = '03000000-0000-4000-8000-000000000014';
select results_eq(
  $$select company_id, company_remote_id from crm.contacts where id = '03000000-0000-4000-8000-000000000014'$$,
  $$values ('03000000-0000-4000-8000-0000000000e1'::uuid, 'co-1')$$,
  'setting company_id fills company_remote_id');
select ok((select 'company_remote_id' = any (changed_columns) from crm.outbox
  where record_id = '03000000-0000-4000-8000-000000000014'),
  'the association is queued as company_remote_id');
select ok((select not ('company_id' = any (changed_columns)) from crm.outbox
  where record_id = '03000000-0000-4000-8000-000000000014'),
  'local ids are never queued');
insert into crm.contacts (id, connection_id, email, company_remote_id)
values ('03000000-0000-4000-8000-000000000015', '03000000-0000-4000-8000-0000000000c1', 'rel@x.test', 'co-1');
select is((select company_id from crm.contacts where id = '03000000-0000-4000-8000-000000000015'),
  '03000000-0000-4000-8000-0000000000e1'::uuid, 'setting company_remote_id fills company_id');
select throws_ok(
  $$update crm.contacts set company_id = '03000000-0000-4000-8000-0000000000e2' where id = '03000000-0000-4000-8000-000000000015'$$,
  'CRM05', null, 'a company of another connection is refused');
insert into crm.companies (id, connection_id, name)
values ('03000000-0000-4000-8000-0000000000e3', '03000000-0000-4000-8000-0000000000c1', 'Brand New');
update crm.contacts set company_id = '03000000-0000-4000-8000-0000000000e3'
where id = '03000000-0000-4000-8000-000000000015';
select results_eq(
  $$select company_id, company_remote_id from crm.contacts where id = '03000000-0000-4000-8000-000000000015'$$,
  $$values ('03000000-0000-4000-8000-0000000000e3'::uuid, null::text)$$,
  'a not-yet-synced company: local id kept, remote id filled later by complete_outbox');

-- Companies and deals queue too, under their own object.
select results_eq(
  $$select object, op, changed_columns from crm.outbox where record_id = '03000000-0000-4000-8000-0000000000e3'$$,
  $$values ('companies', 'insert', array['name'])$$,
  'app insert of a company queues a companies entry');
insert into crm.deals (id, connection_id, name, amount, currency, company_id, primary_contact_id)
values ('03000000-0000-4000-8000-0000000000d1', '03000000-0000-4000-8000-0000000000c1', 'Big', 100, 'EUR',
        '03000000-0000-4000-8000-0000000000e1', '03000000-0000-4000-8000-000000000014');
select results_eq(
  $$select object, op, changed_columns from crm.outbox where record_id = '03000000-0000-4000-8000-0000000000d1'$$,
  $$values ('deals', 'insert', array['amount', 'company_remote_id', 'currency', 'name', 'primary_contact_remote_id'])$$,
  'app insert of a deal queues a deals entry with resolved associations');
update crm.deals set amount = 100.00 where id = '03000000-0000-4000-8000-0000000000d1';
select is((select version from crm.outbox where record_id = '03000000-0000-4000-8000-0000000000d1'), 1,
  'numerically equal amount (100 vs 100.00) is not a change');
update crm.deals set amount = 120 where id = '03000000-0000-4000-8000-0000000000d1';
select is((select version from crm.outbox where record_id = '03000000-0000-4000-8000-0000000000d1'), 2,
  'a changed amount is');

-- Owners are CRM-owned: even a direct write by an admin queues nothing.
insert into crm.owners (connection_id, remote_id, email)
values ('03000000-0000-4000-8000-0000000000c1', 'own-1', 'o@x.test');
select is((select count(*)::integer from crm.outbox o join crm.owners w on w.id = o.record_id), 0,
  'owners never reach the outbox');

-- Bulk app write: one entry per row, in one statement.
insert into crm.contacts (connection_id, email)
select '03000000-0000-4000-8000-0000000000c2', 'bulk' || g || '@x.test' from generate_series(1, 50) g;
select is((select count(*)::integer from crm.outbox where connection_id = '03000000-0000-4000-8000-0000000000c2'),
  50, 'a 50-row insert queues 50 entries');
update crm.contacts set lead_status = 'NEW' where connection_id = '03000000-0000-4000-8000-0000000000c2';
select results_eq(
  $$select count(*)::integer, min(version), max(version), bool_and(changed_columns = array['email', 'lead_status'])
    from crm.outbox where connection_id = '03000000-0000-4000-8000-0000000000c2'$$,
  $$values (50, 2, 2, true)$$,
  'a 50-row update coalesces into the same 50 entries');
delete from crm.contacts where connection_id = '03000000-0000-4000-8000-0000000000c2';
select is((select count(*)::integer from crm.outbox where connection_id = '03000000-0000-4000-8000-0000000000c2'),
  0, 'a 50-row delete of never-synced rows cancels all 50');

-- _changed_columns, the comparison the triggers use.
select is(crm._changed_columns(null, '{"email": "a", "phone": null, "custom": {"k": 1}, "kind": "contact"}'),
  array['custom.k', 'email'], 'insert: non-null fields, custom keys, never kind');
select is(crm._changed_columns('{"email": "a", "custom": {"k": 1, "j": 2}}', '{"email": "a", "custom": {"k": 1}}'),
  array['custom.j'], 'a removed custom key is a change');
select is(crm._changed_columns('{"amount": 1.50, "needs_sync": false}', '{"amount": 1.5, "needs_sync": true}'),
  '{}'::text[], 'equal numbers and bookkeeping columns are not changes');

-- Hash used for agreed values: stable, scale-free for numbers.
select is(crm._hash('100'), crm._hash('100.00'), 'hash ignores numeric scale');
select isnt(crm._hash('"100"'), crm._hash('100'), 'hash distinguishes a string from a number');
select is(crm._hash(null), crm._hash('null'), 'SQL NULL and JSON null hash alike');

-- Trigger functions are security definer with an empty search_path, not callable by the app.
select ok((select bool_and(p.prosecdef) from pg_proc p
           where p.pronamespace = 'crm'::regnamespace and p.proname like 'tg\_mirror\_\_%'),
  'trigger functions run as their owner');
select is((select count(*)::integer from pg_proc p
           where p.pronamespace = 'crm'::regnamespace and p.proname like 'tg\_mirror\_\_%'
             and has_function_privilege('authenticated', p.oid, 'execute')), 0,
  'the app cannot call trigger functions directly');

-- Authenticated app writes go through the same path.
set local role authenticated;
set local request.jwt.claims to '{"role": "authenticated", "app_metadata": {"account_id": "03000000-0000-4000-8000-0000000000a1"}}';
insert into crm.contacts (id, connection_id, email, company_id)
values ('03000000-0000-4000-8000-000000000020', '03000000-0000-4000-8000-0000000000c1', 'user@x.test',
        '03000000-0000-4000-8000-0000000000e1');
update crm.contacts set first_name = 'Ursula' where id = '03000000-0000-4000-8000-000000000020';
reset role;
select results_eq(
  $$select op, changed_columns, version from crm.outbox where record_id = '03000000-0000-4000-8000-000000000020'$$,
  $$values ('insert', array['company_remote_id', 'email', 'first_name'], 2)$$,
  'authenticated insert + update: one coalesced insert entry');
select is((select company_remote_id from crm.contacts where id = '03000000-0000-4000-8000-000000000020'), 'co-1',
  'relations resolve for authenticated writes');

-- updated_at moves only on real changes.
update crm.contacts set updated_at = '2000-01-01' where id = '03000000-0000-4000-8000-000000000020';
select ok((select updated_at > '2000-01-01' from crm.contacts where id = '03000000-0000-4000-8000-000000000020'),
  'updated_at is managed');
select is((select count(*)::integer from crm.outbox where connection_id = '03000000-0000-4000-8000-0000000000c1'
           and record_id not in (select id from crm.contacts union all select id from crm.companies
                                 union all select id from crm.deals)
           and op <> 'delete'), 0,
  'no orphan non-delete entries');

-- Deleting a referenced company (ON DELETE SET NULL) does not queue the referencing contacts.
delete from crm.outbox where record_id = '03000000-0000-4000-8000-000000000015';
delete from crm.companies where id = '03000000-0000-4000-8000-0000000000e3';
select results_eq(
  $$select c.company_id, (select count(*)::integer from crm.outbox o where o.record_id = c.id)
    from crm.contacts c where c.id = '03000000-0000-4000-8000-000000000015'$$,
  $$values (null::uuid, 0)$$,
  'a cascaded SET NULL of a local id queues nothing');

-- Deleting a connection removes its rows and queues nothing (no FK error from the triggers).
select lives_ok($$delete from crm.connections where id = '03000000-0000-4000-8000-0000000000c1'$$,
  'a connection with rows, relations and pending changes can be deleted');
select is((select count(*)::integer from crm.outbox where connection_id = '03000000-0000-4000-8000-0000000000c1')
          + (select count(*)::integer from crm.sync_state where connection_id = '03000000-0000-4000-8000-0000000000c1'),
  0, '... leaving no outbox entries or field state behind');

-- Inbound-only and unmapped fields are never queued, so they can never conflict.
reset role;
reset request.jwt.claims;
insert into crm.connections (id, account_id, provider, remote_account_id) values
  ('03000000-0000-4000-8000-0000000000c3', '03000000-0000-4000-8000-0000000000a1', 'hubspot', 'trg-test-3');
set local crm.engine = 'on';
insert into crm.contacts (id, connection_id, remote_id, first_name, phone_raw) values
  ('03000000-0000-4000-8000-000000000091', '03000000-0000-4000-8000-0000000000c3', 'r-91', 'Ivo', '555 0101');
reset crm.engine;
update crm.contacts set phone_raw = '555 0199', custom = '{"unmapped": 1}'
where id = '03000000-0000-4000-8000-000000000091';
select is((select count(*)::integer from crm.outbox where record_id = '03000000-0000-4000-8000-000000000091'), 0,
  'an edit of an inbound-only column and an unmapped custom key queues nothing');
select is((select needs_sync from crm.contacts where id = '03000000-0000-4000-8000-000000000091'), false,
  '... and leaves needs_sync false');
select is((select count(*)::integer from crm.sync_state where record_id = '03000000-0000-4000-8000-000000000091'), 0,
  '... and stamps no local change time');
update crm.contacts set phone_raw = '555 0142', first_name = 'Iva'
where id = '03000000-0000-4000-8000-000000000091';
select is((select changed_columns from crm.outbox where record_id = '03000000-0000-4000-8000-000000000091'),
  array['first_name'], 'with a written field: only that field is queued');
-- A connection's override that disables a default mapping stops its field from being queued.
insert into crm.field_mappings (connection_id, provider, object, remote_object, column_name,
                                remote_property, direction, transform, enabled)
values ('03000000-0000-4000-8000-0000000000c3', 'hubspot', 'contacts', 'contacts', 'job_title',
        'jobtitle', 'both', 'text', false);
update crm.contacts set job_title = 'Pilot' where id = '03000000-0000-4000-8000-000000000091';
select is((select changed_columns from crm.outbox where record_id = '03000000-0000-4000-8000-000000000091'),
  array['first_name'], 'a disabled mapping: its field is not queued');

select * from finish();
rollback;
