-- crm.apply_inbound: one statement per page; ordering and tie rule; linking by email, phone,
-- domain; three-way merge with the outbox; conflict policies; tombstones, merges, relations.
-- Counts are shown as (created,updated,unchanged,deleted,stale,conflicts).
begin;
select plan(108);

insert into crm.connections (id, account_id, provider, remote_account_id) values
  ('04000000-0000-4000-8000-0000000000c1', '04000000-0000-4000-8000-0000000000a1', 'hubspot', 'apply-test-1'),
  ('04000000-0000-4000-8000-0000000000c2', '04000000-0000-4000-8000-0000000000a1', 'hubspot', 'apply-test-2');

create function pg_temp.apply(p_object text, p_records jsonb,
                              p_connection uuid default '04000000-0000-4000-8000-0000000000c1')
  returns text language sql as $$
  select row(a.created, a.updated, a.unchanged, a.deleted, a.stale, a.conflicts)::text
  from crm.apply_inbound(p_connection, p_object, p_records) a
$$;
create function pg_temp.contact(p_remote_id text) returns crm.contacts language sql as $$
  select * from crm.contacts where connection_id = '04000000-0000-4000-8000-0000000000c1' and remote_id = p_remote_id
$$;
create function pg_temp.policy(p text) returns void language sql as $$
  update crm.connections set settings = settings || jsonb_build_object('conflict_policy', p)
  where id = '04000000-0000-4000-8000-0000000000c1'
$$;

-- Validation: the whole page or nothing. -------------------------------------------------------
select throws_ok($$select crm.apply_inbound('04000000-0000-4000-8000-0000000000c1', 'leads', '[]')$$,
  'CRM01', null, 'unknown object: CRM01');
select throws_ok($$select crm.apply_inbound('04000000-0000-4000-8000-00000000dead', 'contacts', '[]')$$,
  'CRM02', null, 'unknown connection: CRM02');
select throws_ok($$select crm.apply_inbound('04000000-0000-4000-8000-0000000000c1', 'contacts', '{}')$$,
  'CRM03', null, 'records must be an array: CRM03');
select throws_ok($$select pg_temp.apply('contacts', '[{"remote_updated_at": "2026-01-01T00:00:00Z"}]')$$,
  'CRM03', 'invalid inbound record: record 1: remote_id missing', 'missing remote_id: CRM03');
select throws_ok($$select pg_temp.apply('contacts', '[{"remote_id": "x"}]')$$,
  'CRM03', 'invalid inbound record: record 1: remote_updated_at missing', 'missing remote_updated_at: CRM03');
select throws_ok(
  $$select pg_temp.apply('contacts', '[{"remote_id": "ok", "remote_updated_at": "2026-01-01T00:00:00Z"},
                                      {"remote_id": "x", "remote_updated_at": "2026-01-01T00:00:00Z", "emial": "a", "id": "b"}]')$$,
  'CRM03', 'invalid inbound record: record 2: unknown field(s) emial, id', 'unknown or engine-owned keys: CRM03');
select throws_ok(
  $$select pg_temp.apply('deals', '[{"remote_id": "x", "remote_updated_at": "2026-01-01T00:00:00Z", "amount": "lots"}]')$$,
  'CRM03', null, 'a value the column type rejects: CRM03');
select throws_ok(
  $$select pg_temp.apply('contacts', '[{"remote_id": "x", "remote_updated_at": "yesterday-ish"}]')$$,
  'CRM03', null, 'an unparsable remote_updated_at: CRM03');
select throws_ok(
  $$select pg_temp.apply('contacts', '[{"remote_id": "ok1", "remote_updated_at": "2026-01-01T00:00:00Z"},
                                      {"remote_id": "x", "remote_updated_at": "2026-01-01T00:00:00Z", "phone": "555 0100"}]')$$,
  'CRM03', null, 'a constraint violation (phone not E.164): CRM03');
select is((select count(*)::integer from crm.contacts where connection_id = '04000000-0000-4000-8000-0000000000c1'), 0,
  'a rejected page wrote nothing');
select is(pg_temp.apply('contacts', '[]'), '(0,0,0,0,0,0)', 'an empty page is a no-op');

-- Insert. -----------------------------------------------------------------------------------------
select is(pg_temp.apply('contacts', '[
  {"remote_id": "101", "remote_updated_at": "2026-01-01T10:00:00Z", "first_name": "Ada", "last_name": "King",
   "email": "ada@x.test", "phone": "+442071234567", "custom": {"score": 5}},
  {"remote_id": "102", "remote_updated_at": "2026-01-01T10:00:00Z", "first_name": "Bo", "email": "bo@x.test"},
  {"remote_id": "103", "remote_updated_at": "2026-01-01T10:00:00Z", "first_name": "Cy", "lifecycle_stage": "lead"}
]'), '(3,0,0,0,0,0)', 'three new records: created 3');
select results_eq(
  $$select first_name, email, custom, needs_sync, remote_updated_at, last_synced_at is not null
    from crm.contacts where connection_id = '04000000-0000-4000-8000-0000000000c1' and remote_id = '101'$$,
  $$values ('Ada', 'ada@x.test', '{"score": 5}'::jsonb, false, '2026-01-01T10:00:00Z'::timestamptz, true)$$,
  'inserted row carries the canonical values and sync bookkeeping');
select is((select count(*)::integer from crm.outbox where connection_id = '04000000-0000-4000-8000-0000000000c1'), 0,
  'inbound writes queue nothing outbound');
select is((select count(*)::integer from crm.sync_state s join crm.contacts c on c.id = s.record_id
           where c.connection_id = '04000000-0000-4000-8000-0000000000c1'), 0,
  'new records get no sync_state rows: the columns are the agreed values');
select is((select count(*)::integer from crm.conflicts
           where connection_id = '04000000-0000-4000-8000-0000000000c1'), 0, '... and no conflicts');
select is(crm.is_engine(), false, 'the engine flag does not leak out of apply_inbound');

-- Idempotent: the same page again changes nothing and writes nothing.
create temporary table before_ctid as
  select id, ctid::text as tid from crm.contacts where connection_id = '04000000-0000-4000-8000-0000000000c1';
select is(pg_temp.apply('contacts', '[
  {"remote_id": "101", "remote_updated_at": "2026-01-01T10:00:00Z", "first_name": "Ada", "last_name": "King",
   "email": "ada@x.test", "phone": "+442071234567", "custom": {"score": 5}},
  {"remote_id": "102", "remote_updated_at": "2026-01-01T10:00:00Z", "first_name": "Bo", "email": "bo@x.test"}
]'), '(0,0,2,0,0,0)', 'same page again: unchanged 2');
select is((select count(*)::integer from crm.contacts c join before_ctid b on b.id = c.id where b.tid <> c.ctid::text), 0,
  'unchanged records are not rewritten');

-- Update, stale, tie rule. ---------------------------------------------------------------------
select is(pg_temp.apply('contacts', '[{"remote_id": "101", "remote_updated_at": "2026-01-01T11:00:00Z", "first_name": "Adah"}]'),
  '(0,1,0,0,0,0)', 'a newer version updates');
select results_eq($$select first_name, last_name, remote_updated_at from pg_temp.contact('101')$$,
  $$values ('Adah', 'King', '2026-01-01T11:00:00Z'::timestamptz)$$,
  'partial record: present keys applied, absent keys kept, remote_updated_at advanced');
select is(pg_temp.apply('contacts', '[{"remote_id": "101", "remote_updated_at": "2026-01-01T10:30:00Z", "first_name": "Old"}]'),
  '(0,0,0,0,1,0)', 'an older version is stale');
select is((pg_temp.contact('101')).first_name, 'Adah', 'a stale version never overwrites a newer one');
select is(pg_temp.apply('contacts', '[{"remote_id": "101", "remote_updated_at": "2026-01-01T11:00:00Z", "first_name": "Adah B"}]'),
  '(0,1,0,0,0,0)', 'tie rule: a different version with the SAME timestamp is applied');
select is((pg_temp.contact('101')).first_name, 'Adah B', 'same-second newer event not dropped');
select is(pg_temp.apply('contacts', '[{"remote_id": "101", "remote_updated_at": "2026-01-01T11:00:00Z", "first_name": "Adah B"}]'),
  '(0,0,1,0,0,0)', 'tie rule: an identical redelivery is unchanged');
select is(pg_temp.apply('contacts', '[{"remote_id": "101", "remote_updated_at": "2026-01-01T11:30:00Z", "first_name": "Adah B"}]'),
  '(0,0,1,0,0,0)', 'a newer version with the same values is unchanged');
select is((pg_temp.contact('101')).remote_updated_at, '2026-01-01T11:30:00Z'::timestamptz,
  '... but still advances remote_updated_at (older events stay stale)');

-- Per-field ordering: a newer partial event, then an older full record.
select is(pg_temp.apply('contacts', '[{"remote_id": "102", "remote_updated_at": "2026-01-01T12:00:00Z", "phone": "+33123456789"}]'),
  '(0,1,0,0,0,0)', 'partial event (phone) at 12:00');
select is(pg_temp.apply('contacts', '[{"remote_id": "102", "remote_updated_at": "2026-01-01T11:00:00Z",
                                        "phone": null, "email": "bo@new.test"}]'),
  '(0,1,0,0,0,0)', 'full record at 11:00: newer for email, older for phone');
select results_eq($$select phone, email from pg_temp.contact('102')$$,
  $$values ('+33123456789', 'bo@new.test')$$,
  'per field: email (seen at 10:00) taken from 11:00, phone (seen at 12:00) kept');

-- Duplicates within one page: newest wins, then the later one.
select is(pg_temp.apply('contacts', '[
  {"remote_id": "103", "remote_updated_at": "2026-01-01T13:00:00Z", "first_name": "Cyd"},
  {"remote_id": "103", "remote_updated_at": "2026-01-01T12:00:00Z", "first_name": "Older"},
  {"remote_id": "104", "remote_updated_at": "2026-01-01T12:00:00Z", "first_name": "First"},
  {"remote_id": "104", "remote_updated_at": "2026-01-01T12:00:00Z", "first_name": "Second"}
]'), '(1,1,0,0,0,0)', 'duplicates in a page count once');
select results_eq(
  $$select remote_id, first_name from crm.contacts
    where connection_id = '04000000-0000-4000-8000-0000000000c1' and remote_id in ('103', '104') order by remote_id$$,
  $$values ('103', 'Cyd'), ('104', 'Second')$$,
  'duplicates: newest timestamp wins, equal timestamps: the later element');

-- Linking instead of duplicating. ----------------------------------------------------------------
insert into crm.contacts (id, connection_id, first_name, email)
values ('04000000-0000-4000-8000-000000000201', '04000000-0000-4000-8000-0000000000c1', 'Lina', 'Lina@Link.test');
insert into crm.contacts (id, connection_id, first_name, phone)
values ('04000000-0000-4000-8000-000000000202', '04000000-0000-4000-8000-0000000000c1', 'Pat', '+4915112345678');
insert into crm.contacts (id, connection_id, first_name, email)
values ('04000000-0000-4000-8000-000000000203', '04000000-0000-4000-8000-0000000000c2', 'Other', 'lina@link.test');
select is(pg_temp.apply('contacts', '[
  {"remote_id": "201", "remote_updated_at": "2020-01-01T00:00:00Z", "first_name": "Lina", "email": "lina@link.test", "last_name": "Lund"},
  {"remote_id": "202", "remote_updated_at": "2020-01-01T00:00:00Z", "first_name": "Pat", "phone": "+4915112345678", "email": "pat@link.test"}
]'), '(0,2,0,0,0,1)', 'two new remote records link to existing local rows (no creates)');
select results_eq(
  $$select id, remote_id, last_name from crm.contacts
    where connection_id = '04000000-0000-4000-8000-0000000000c1' and remote_id in ('201', '202') order by remote_id$$,
  $$values ('04000000-0000-4000-8000-000000000201'::uuid, '201', 'Lund'),
           ('04000000-0000-4000-8000-000000000202'::uuid, '202', null)$$,
  'linked by email (case-insensitive), then by phone; remote-only fields filled');
select is((select remote_id from crm.contacts where id = '04000000-0000-4000-8000-000000000203'), null,
  'a row of another connection is never linked');
select results_eq(
  $$select op, changed_columns, remote_id from crm.outbox where record_id = '04000000-0000-4000-8000-000000000201'$$,
  $$values ('update', array['email'], '201')$$,
  'linked row: its pending insert becomes an update of what the app still owns (email case, local newer)');
select is((select count(*)::integer from crm.outbox where record_id = '04000000-0000-4000-8000-000000000202'), 0,
  'linked row with nothing left to push: entry dropped');
select is((select needs_sync from crm.contacts where id = '04000000-0000-4000-8000-000000000202'), false,
  '... and needs_sync cleared');
select is((select email from crm.contacts where id = '04000000-0000-4000-8000-000000000202'), 'pat@link.test',
  'a field only the CRM had is taken');
select is(pg_temp.apply('contacts', '[{"remote_id": "205", "remote_updated_at": "2020-01-01T00:00:00Z", "email": "lina@link.test"}]'),
  '(1,0,0,0,0,0)', 'an already linked row is not linked twice');

insert into crm.companies (id, connection_id, name, domain)
values ('04000000-0000-4000-8000-000000000301', '04000000-0000-4000-8000-0000000000c1', 'Dom', 'Dom.Test');
select is(pg_temp.apply('companies', '[{"remote_id": "c-1", "remote_updated_at": "2020-01-01T00:00:00Z", "name": "Dom", "domain": "dom.test"}]'),
  '(0,1,0,0,0,1)', 'companies link by domain');
select is((select remote_id from crm.companies where id = '04000000-0000-4000-8000-000000000301'), 'c-1',
  'company linked');

-- Three-way merge with pending app changes. ------------------------------------------------
update crm.contacts set first_name = 'Ada (app)' where connection_id = '04000000-0000-4000-8000-0000000000c1' and remote_id = '101';
select is(pg_temp.apply('contacts', '[{"remote_id": "101", "remote_updated_at": "2026-01-01T12:00:00Z",
                                        "first_name": "Adah B", "last_name": "Kingsley"}]'),
  '(0,1,0,0,0,0)', 'remote changed last_name, local changed first_name: no conflict');
select results_eq($$select first_name, last_name from pg_temp.contact('101')$$,
  $$values ('Ada (app)', 'Kingsley')$$,
  'both sides'' changes survive (remote first_name unchanged since agreed -> local kept)');
select is((select changed_columns from crm.outbox o join crm.contacts c on c.id = o.record_id
           where c.remote_id = '101' and c.connection_id = '04000000-0000-4000-8000-0000000000c1'),
  array['first_name'], 'the local change is still queued');
select is(pg_temp.apply('contacts', '[{"remote_id": "101", "remote_updated_at": "2026-01-01T12:10:00Z", "first_name": "Ada (app)"}]'),
  '(0,0,1,0,0,0)', 'the CRM now has the same value as the app');
select is((select count(*)::integer from crm.outbox o join crm.contacts c on c.id = o.record_id
           where c.remote_id = '101' and c.connection_id = '04000000-0000-4000-8000-0000000000c1'), 0,
  'agreement drops the field, and the empty entry');
select is((pg_temp.contact('101')).needs_sync, false, 'needs_sync cleared when nothing is left');

-- Conflict: newest_wins (default). The app changed first_name just now (now()).
update crm.contacts set first_name = 'App' where connection_id = '04000000-0000-4000-8000-0000000000c1' and remote_id = '101';
select is(pg_temp.apply('contacts', '[{"remote_id": "101", "remote_updated_at": "2026-01-01T13:00:00Z", "first_name": "Crm"}]'),
  '(0,0,1,0,0,1)', 'newest_wins: both changed, app change is newer');
select is((pg_temp.contact('101')).first_name, 'App', 'newest_wins: the newer app value stays');
select results_eq(
  $$select policy, resolution, local_value, remote_value from crm.conflicts k join crm.contacts c on c.id = k.record_id
    where c.remote_id = '101' and c.connection_id = '04000000-0000-4000-8000-0000000000c1' and k.field = 'first_name'$$,
  $$values ('newest_wins', 'local', '"App"'::jsonb, '"Crm"'::jsonb)$$,
  'the conflict and its resolution are recorded');
select is(pg_temp.apply('contacts', '[{"remote_id": "101", "remote_updated_at": "2999-01-01T00:00:00Z", "first_name": "Crm2"}]'),
  '(0,1,0,0,0,1)', 'newest_wins: a remote change newer than the app''s wins');
select is((pg_temp.contact('101')).first_name, 'Crm2', 'remote value taken');
select is((select count(*)::integer from crm.outbox o join crm.contacts c on c.id = o.record_id
           where c.remote_id = '101' and c.connection_id = '04000000-0000-4000-8000-0000000000c1'), 0,
  'the losing local change is withdrawn from the outbox');

-- crm_wins / app_wins.
select pg_temp.policy('crm_wins');
update crm.contacts set job_title = 'App title' where connection_id = '04000000-0000-4000-8000-0000000000c1' and remote_id = '102';
select is(pg_temp.apply('contacts', '[{"remote_id": "102", "remote_updated_at": "2026-01-01T13:00:00Z", "job_title": "CRM title"}]'),
  '(0,1,0,0,0,1)', 'crm_wins: conflict resolved for the CRM');
select results_eq($$select job_title, needs_sync from pg_temp.contact('102')$$, $$values ('CRM title', false)$$,
  'crm_wins: CRM value taken, nothing left to push');
select pg_temp.policy('app_wins');
update crm.contacts set job_title = 'App title 2' where connection_id = '04000000-0000-4000-8000-0000000000c1' and remote_id = '102';
select is(pg_temp.apply('contacts', '[{"remote_id": "102", "remote_updated_at": "2999-01-01T00:00:00Z", "job_title": "CRM title 2"}]'),
  '(0,0,1,0,0,1)', 'app_wins: conflict resolved for the app even when the CRM is newer');
select results_eq(
  $$select c.job_title, o.changed_columns from crm.contacts c join crm.outbox o on o.record_id = c.id
    where c.remote_id = '102' and c.connection_id = '04000000-0000-4000-8000-0000000000c1'$$,
  $$values ('App title 2', array['job_title'])$$,
  'app_wins: app value kept and still queued');

-- manual: the conflict waits for a human; the field is withheld from both sides.
select pg_temp.policy('manual');
update crm.contacts set lead_status = 'APP' where connection_id = '04000000-0000-4000-8000-0000000000c1' and remote_id = '103';
select is(pg_temp.apply('contacts', '[{"remote_id": "103", "remote_updated_at": "2999-01-01T00:00:00Z", "lead_status": "CRM"}]'),
  '(0,0,1,0,0,1)', 'manual: conflict queued');
select results_eq(
  $$select k.resolution, k.local_value, k.remote_value from crm.conflicts k join crm.contacts c on c.id = k.record_id
    where c.remote_id = '103' and c.connection_id = '04000000-0000-4000-8000-0000000000c1' and k.field = 'lead_status'$$,
  $$values (null::text, '"APP"'::jsonb, '"CRM"'::jsonb)$$,
  'manual: an open conflict holds both values');
select is((select lead_status from pg_temp.contact('103')), 'APP', 'manual: local value kept meanwhile');
select is((select count(*)::integer from crm.outbox o join crm.contacts c on c.id = o.record_id
           where c.remote_id = '103' and c.connection_id = '04000000-0000-4000-8000-0000000000c1'), 0,
  'manual: the field is not pushed while the conflict is open');
select is(pg_temp.apply('contacts', '[{"remote_id": "103", "remote_updated_at": "2999-01-02T00:00:00Z", "lead_status": "CRM2"}]'),
  '(0,0,1,0,0,1)', 'manual: another remote change updates the open conflict');
select results_eq(
  $$select count(*)::integer, max(k.remote_value::text) from crm.conflicts k join crm.contacts c on c.id = k.record_id
    where c.remote_id = '103' and c.connection_id = '04000000-0000-4000-8000-0000000000c1' and k.resolution is null$$,
  $$values (1, '"CRM2"')$$, 'manual: still one open conflict, with the latest remote value');
select lives_ok(
  $$select crm.resolve_conflict((select k.id from crm.conflicts k join crm.contacts c on c.id = k.record_id
      where c.remote_id = '103' and c.connection_id = '04000000-0000-4000-8000-0000000000c1' and k.resolution is null), 'remote')$$,
  'resolve_conflict(remote)');
select results_eq(
  $$select c.lead_status, s.agreed_hash = crm._hash('"CRM2"') from crm.contacts c
    join crm.sync_state s on s.record_id = c.id and s.field = 'lead_status'
    where c.remote_id = '103' and c.connection_id = '04000000-0000-4000-8000-0000000000c1'$$,
  $$values ('CRM2', true)$$, 'remote resolution: value written and agreed');
select is((select count(*)::integer from crm.outbox o join crm.contacts c on c.id = o.record_id
           where c.remote_id = '103' and c.connection_id = '04000000-0000-4000-8000-0000000000c1'), 0,
  'remote resolution queues nothing');
update crm.contacts set lead_status = 'APP3' where connection_id = '04000000-0000-4000-8000-0000000000c1' and remote_id = '103';
select pg_temp.apply('contacts', '[{"remote_id": "103", "remote_updated_at": "2999-01-03T00:00:00Z", "lead_status": "CRM3"}]');
delete from crm.outbox o using crm.contacts c
where c.id = o.record_id and c.remote_id = '103' and c.connection_id = '04000000-0000-4000-8000-0000000000c1';
select crm.resolve_conflict((select k.id from crm.conflicts k join crm.contacts c on c.id = k.record_id
  where c.remote_id = '103' and c.connection_id = '04000000-0000-4000-8000-0000000000c1' and k.resolution is null), 'local');
select results_eq(
  $$select c.lead_status, o.op, o.changed_columns from crm.contacts c join crm.outbox o on o.record_id = c.id
    where c.remote_id = '103' and c.connection_id = '04000000-0000-4000-8000-0000000000c1'$$,
  $$values ('APP3', 'update', array['lead_status'])$$, 'local resolution: the app value is queued for the CRM');
select throws_ok(
  $$select crm.resolve_conflict((select max(k.id) from crm.conflicts k join crm.contacts c on c.id = k.record_id
      where c.remote_id = '103' and c.connection_id = '04000000-0000-4000-8000-0000000000c1'), 'local')$$,
  'CRM08', null, 'a resolved conflict cannot be resolved again');
select pg_temp.policy('newest_wins');

-- Deletes, merges, restores. ---------------------------------------------------------------------
update crm.contacts set job_title = 'pending' where connection_id = '04000000-0000-4000-8000-0000000000c1' and remote_id = '104';
select is(pg_temp.apply('contacts', '[{"remote_id": "104", "remote_updated_at": "2026-01-01T11:00:00Z", "deleted": true}]'),
  '(0,0,0,0,1,0)', 'a delete older than the row is stale');
select is((pg_temp.contact('104')).deleted_at, null, 'stale delete ignored');
select is(pg_temp.apply('contacts', '[{"remote_id": "104", "remote_updated_at": "2026-01-01T14:00:00Z", "deleted": true}]'),
  '(0,0,0,1,0,1)', 'a newer delete tombstones; the pending local edit it overrides is a recorded conflict');
select ok((pg_temp.contact('104')).deleted_at is not null, 'tombstone set (row kept)');
select is((select count(*)::integer from crm.outbox o join crm.contacts c on c.id = o.record_id
           where c.remote_id = '104' and c.connection_id = '04000000-0000-4000-8000-0000000000c1'), 0,
  'a remote delete cancels pending local changes of the record');
select is(pg_temp.apply('contacts', '[{"remote_id": "104", "remote_updated_at": "2026-01-01T15:00:00Z", "first_name": "Back"}]'),
  '(0,1,0,0,0,0)', 'a newer live version restores a remotely deleted record');
select results_eq($$select deleted_at, first_name from pg_temp.contact('104')$$,
  $$values (null::timestamptz, 'Back')$$, 'restored');
select is(pg_temp.apply('contacts', '[{"remote_id": "999", "remote_updated_at": "2026-01-01T15:00:00Z", "deleted": true}]'),
  '(0,0,0,1,0,0)', 'a delete of an unknown record stores a tombstone');
select is(pg_temp.apply('contacts', '[{"remote_id": "999", "remote_updated_at": "2026-01-01T14:00:00Z", "first_name": "Zombie"}]'),
  '(0,0,0,0,1,0)', '... so an older create event cannot resurrect it');
select is(pg_temp.apply('contacts', '[{"remote_id": "102", "remote_updated_at": "2999-02-01T00:00:00Z", "merged_into": "101"}]'),
  '(0,0,0,1,0,1)', 'a merged record becomes a tombstone; its pending app edit is settled against the survivor (a conflict, reason merge)');
select results_eq(
  $$select c.merged_into_remote_id, c.deleted_at is not null, a.remote_id
    from crm.contacts c join crm.record_aliases a on a.connection_id = c.connection_id
      and a.object = 'contacts' and a.alias_remote_id = c.remote_id
    where c.remote_id = '102' and c.connection_id = '04000000-0000-4000-8000-0000000000c1'$$,
  $$values ('101', true, '101')$$, 'merge: tombstone points at the survivor, alias recorded');
select is(pg_temp.apply('contacts', '[{"remote_id": "102", "remote_updated_at": "2999-03-01T00:00:00Z", "first_name": "Loser"}]'),
  '(0,1,0,0,0,0)', 'a late event for a merged record updates the tombstone');
select ok((pg_temp.contact('102')).deleted_at is not null, '... but never resurrects it');

-- HubSpot style: the survivor lists the ids merged into it.
select pg_temp.apply('contacts', '[{"remote_id": "501", "remote_updated_at": "2026-01-01T00:00:00Z", "email": "m1@x.test"},
                                   {"remote_id": "502", "remote_updated_at": "2026-01-01T00:00:00Z", "email": "m2@x.test"}]');
update crm.contacts set job_title = 'pending' where connection_id = '04000000-0000-4000-8000-0000000000c1' and remote_id = '502';
select is(pg_temp.apply('contacts', '[{"remote_id": "501", "remote_updated_at": "2026-01-02T00:00:00Z",
                                        "merged_ids": ["502", "503"], "last_name": "Merged"}]'),
  '(0,1,0,1,0,1)', 'survivor with merged_ids: survivor updated, known loser tombstoned, its pending edit a conflict');
select results_eq(
  $$select c.remote_id, c.deleted_at is not null, c.merged_into_remote_id,
           (select count(*)::integer from crm.outbox o where o.record_id = c.id)
    from crm.contacts c where c.connection_id = '04000000-0000-4000-8000-0000000000c1' and c.remote_id in ('501', '502')
    order by c.remote_id$$,
  $$values ('501', false, null::text, 1), ('502', true, '501', 0)$$,
  'the loser points at the survivor; its pending edit (newer than the survivor) is queued for the survivor');
select results_eq(
  $$select alias_remote_id, remote_id from crm.record_aliases
    where connection_id = '04000000-0000-4000-8000-0000000000c1' and remote_id = '501' order by 1$$,
  $$values ('502', '501'), ('503', '501')$$,
  'aliases recorded for every merged id, known locally or not');
select throws_ok($$select pg_temp.apply('contacts', '[{"remote_id": "1", "remote_updated_at": "2026-01-01T00:00:00Z", "merged_ids": "502"}]')$$,
  'CRM03', null, 'merged_ids must be an array');

-- Relations by remote id, both ways. -------------------------------------------------------------
select is(pg_temp.apply('contacts', '[{"remote_id": "401", "remote_updated_at": "2026-01-01T00:00:00Z",
  "email": "rel@x.test", "company_remote_id": "c-1", "owner_remote_id": "own-1"}]'), '(1,0,0,0,0,0)', 'contact with relations');
select results_eq($$select company_id, owner_id from pg_temp.contact('401')$$,
  $$values ('04000000-0000-4000-8000-000000000301'::uuid, null::uuid)$$,
  'a known company resolves at once; an unknown owner stays NULL');
select is(pg_temp.apply('owners', '[{"remote_id": "own-1", "remote_updated_at": "2026-01-01T00:00:00Z",
  "email": "owner@x.test", "first_name": "Olga", "active": true}]'), '(1,0,0,0,0,0)', 'owner arrives later');
select is((pg_temp.contact('401')).owner_id,
  (select id from crm.owners where connection_id = '04000000-0000-4000-8000-0000000000c1' and remote_id = 'own-1'),
  'rows referencing the new owner get its local id');

-- Deals: numbers, dates, custom merge.
select is(pg_temp.apply('deals', '[{"remote_id": "d-1", "remote_updated_at": "2026-01-01T00:00:00Z", "name": "Deal",
  "amount": 100, "currency": "EUR", "close_date": "2026-03-31", "probability": 0.4, "status": "open",
  "company_remote_id": "c-1", "primary_contact_remote_id": "401", "custom": {"a": 1, "b": 2}}]'),
  '(1,0,0,0,0,0)', 'deal created');
select is(pg_temp.apply('deals', '[{"remote_id": "d-1", "remote_updated_at": "2026-01-02T00:00:00Z", "amount": "100.00", "custom": {"b": 3}}]'),
  '(0,1,0,0,0,0)', 'custom key changed (amount 100.00 equals 100)');
select results_eq(
  $$select amount, custom, close_date, company_id is not null, primary_contact_id is not null
    from crm.deals where connection_id = '04000000-0000-4000-8000-0000000000c1' and remote_id = 'd-1'$$,
  $$values (100::numeric, '{"a": 1, "b": 3}'::jsonb, '2026-03-31'::date, true, true)$$,
  'custom keys merge (not replace); typed values; associations resolved');
select is(pg_temp.apply('contacts', '[{"remote_id": "00Q1", "remote_updated_at": "2026-01-01T00:00:00Z", "kind": "lead", "email": "lead@x.test"}]',
  '04000000-0000-4000-8000-0000000000c2'), '(1,0,0,0,0,0)', 'Salesforce-style lead lands in contacts');
select is((select kind from crm.contacts where remote_id = '00Q1' and connection_id = '04000000-0000-4000-8000-0000000000c2'),
  'lead', '... with kind lead');

-- Implicit per-field state: rows only where a field's history differs from the row's. --------
select is(pg_temp.apply('contacts', '[{"remote_id": "imp-1", "remote_updated_at": "2026-02-01T10:00:00Z",
  "first_name": "Ida", "last_name": "Lane", "email": "ida@x.test", "job_title": "CTO"}]'), '(1,0,0,0,0,0)', 'record imp-1 created');
select is(pg_temp.apply('contacts', '[{"remote_id": "imp-1", "remote_updated_at": "2026-02-02T10:00:00Z",
  "first_name": "Ida", "last_name": "Lane", "email": "ida@x.test", "job_title": "CEO"}]'), '(0,1,0,0,0,0)', 'a full newer version');
select is((select count(*)::integer from crm.sync_state where record_id = (pg_temp.contact('imp-1')).id), 0,
  'a full version leaves no rows behind (every field is at the row''s time)');
-- A partial patch (one property, as webhooks send) moves the row's time forward: the other
-- fields keep their older time in rows of their own.
select is(pg_temp.apply('contacts', '[{"remote_id": "imp-1", "remote_updated_at": "2026-02-04T10:00:00Z",
  "first_name": "Idabel"}]'), '(0,1,0,0,0,0)', 'a partial newer patch');
select results_eq(
  $$select field, remote_changed_at, agreed_hash from crm.sync_state
    where record_id = (pg_temp.contact('imp-1')).id order by field$$,
  $$values ('email', '2026-02-02T10:00:00Z'::timestamptz, null::uuid),
           ('job_title', '2026-02-02T10:00:00Z'::timestamptz, null::uuid),
           ('last_name', '2026-02-02T10:00:00Z'::timestamptz, null::uuid)$$,
  'the fields the patch left out keep their older remote time');
select is(pg_temp.apply('contacts', '[{"remote_id": "imp-1", "remote_updated_at": "2026-02-03T10:00:00Z",
  "job_title": "Founder"}]'), '(0,1,0,0,0,0)', 'an older out-of-order change to another field still applies');
select is((pg_temp.contact('imp-1')).job_title, 'Founder', '... job_title taken');
select is(pg_temp.apply('contacts', '[{"remote_id": "imp-1", "remote_updated_at": "2026-02-03T10:00:00Z",
  "first_name": "Ida"}]'), '(0,0,0,0,1,0)', 'while the same age change to the newer field is stale');
-- The first app edit of an engine-written field records the value it replaced as agreed, so an
-- unchanged remote version keeps the edit and a changed one is a conflict.
update crm.contacts set last_name = 'Lane-Smith' where id = (pg_temp.contact('imp-1')).id;
select results_eq(
  $$select agreed_hash = crm._hash('"Lane"'), remote_changed_at, local_changed_at is not null
    from crm.sync_state where record_id = (pg_temp.contact('imp-1')).id and field = 'last_name'$$,
  $$values (true, '2026-02-02T10:00:00Z'::timestamptz, true)$$,
  'the edit keeps the hash of the replaced value; its remote time is kept');

-- A mixed page: new records take the bulk insert, the rest the full statement. --------------
insert into crm.contacts (connection_id, first_name, email)
values ('04000000-0000-4000-8000-0000000000c1', 'Local', 'mix-local@x.test');
select is(pg_temp.apply('contacts', '[
  {"remote_id": "mix-1", "remote_updated_at": "2026-03-01T00:00:00Z", "first_name": "Old"},
  {"remote_id": "mix-1", "remote_updated_at": "2026-03-02T00:00:00Z", "first_name": "New"},
  {"remote_id": "mix-2", "remote_updated_at": "2026-03-01T00:00:00Z", "email": "MIX-LOCAL@x.test"},
  {"remote_id": "imp-1", "remote_updated_at": "2026-03-01T00:00:00Z", "first_name": "Ida"},
  {"remote_id": "mix-3", "remote_updated_at": "2026-03-01T00:00:00Z", "deleted": true},
  {"remote_id": "mix-4", "remote_updated_at": "2026-03-01T00:00:00Z", "first_name": "Loser"},
  {"remote_id": "mix-5", "remote_updated_at": "2026-03-01T00:00:00Z", "merged_ids": ["mix-4"]}
]'), '(3,2,0,1,0,1)', 'new x3 (one twice, a survivor), linked + updated, born deleted; the linked email differs in case: a conflict');
select results_eq(
  $$select remote_id, first_name, deleted_at is not null from crm.contacts
    where connection_id = '04000000-0000-4000-8000-0000000000c1' and remote_id like 'mix-%' order by 1$$,
  $$values ('mix-1', 'New', false), ('mix-2', 'Local', false), ('mix-3', null, true),
           ('mix-4', 'Loser', false), ('mix-5', null, false)$$,
  'the newest duplicate wins; the local row is linked, not duplicated; the page''s own loser version stands');
select is((select count(*)::integer from crm.contacts
           where connection_id = '04000000-0000-4000-8000-0000000000c1' and email ilike 'mix-local@x.test'), 1,
  'one row for the linked email');

select * from finish();
rollback;
