-- A push completed while the app edited the record (the entry is released, not deleted) leaves
-- in the entry only the fields still to push, so a field the push just wrote is no longer a
-- pending app edit: a CRM user's later edit of it is taken under app_wins (chaos harness,
-- HubSpot seed 3 app_wins: the create of an app insert carried first_name; an app edit of
-- last_name during that push kept first_name queued, and the next push wrote the insert's value
-- over the CRM user's edit). Counts of apply_inbound are (created,updated,unchanged,deleted,
-- stale,conflicts).
begin;
select plan(11);

insert into crm.connections (id, account_id, provider, remote_account_id, status, settings) values
  ('60000000-0000-4000-8000-0000000000c1', '60000000-0000-4000-8000-0000000000a1', 'hubspot',
   'remaining-fields', 'active', '{"conflict_policy": "app_wins"}');

create function pg_temp.claims() returns jsonb language sql as $$
  select coalesce(jsonb_agg(jsonb_build_object('id', c.id, 'lease', c.lease, 'remote_id', 'r' || c.record_id,
                                               'remote_version', '2026-06-02T12:00:00Z')), '[]'::jsonb)
  from crm.claim_outbox('test', 10, '5 minutes', '60000000-0000-4000-8000-0000000000c1', 'contacts') c
$$;
create function pg_temp.entry(p_id uuid) returns text language sql as $$
  select o.op || ':' || array_to_string(o.changed_columns, ',') from crm.outbox o
  where o.object = 'contacts' and o.record_id = p_id
$$;

-- 1: the app inserts; the create is claimed; the app edits last_name and job_title meanwhile.
insert into crm.contacts (id, connection_id, email, first_name, last_name, job_title) values
  ('60000000-0000-4000-8000-000000000001', '60000000-0000-4000-8000-0000000000c1', 'one@example.com',
   'AF1', 'AL1', 'AJ1');
create temp table held1 as select pg_temp.claims() as c;
update crm.contacts set last_name = 'AL1b', job_title = 'AJ1b'
where id = '60000000-0000-4000-8000-000000000001';
update held1 set c = jsonb_set(c, '{0,remote_id}', '"r1"');
select results_eq($$select completed, released from crm.complete_outbox((select c from held1))$$,
  $$values (0, 1)$$, 'the create completes with the app''s edit pending: released');
select is(pg_temp.entry('60000000-0000-4000-8000-000000000001'), 'update:job_title,last_name',
  'the entry keeps only the fields edited during the push, not the create''s first_name or email');

-- The CRM user then edits first_name (the CRM still has the create's last name and title).
select is((select row(a.created, a.updated, a.unchanged, a.deleted, a.stale, a.conflicts)::text
           from crm.apply_inbound('60000000-0000-4000-8000-0000000000c1', 'contacts',
             '[{"remote_id": "r1", "remote_updated_at": "2026-06-02T12:05:00Z", "email": "one@example.com",
                "first_name": "CF1", "last_name": "AL1", "job_title": "AJ1"}]') a),
          '(0,1,0,0,0,0)', 'the CRM user''s first-name edit is applied without a conflict');
select results_eq(
  $$select first_name, last_name, job_title from crm.contacts where id = '60000000-0000-4000-8000-000000000001'$$,
  $$values ('CF1'::text, 'AL1b'::text, 'AJ1b'::text)$$,
  'the row takes the CRM''s first name and keeps the app''s pending edits');
select is((select count(*)::integer from crm.conflicts where record_id = '60000000-0000-4000-8000-000000000001'),
  0, 'no conflict: the app never edited first_name after the create');
select is((select c -> 0 -> 'id' is not null from (select pg_temp.claims() as c) x), true, 'claimed again');
select is((select o.pushed from crm.outbox o where o.record_id = '60000000-0000-4000-8000-000000000001'),
  '{"job_title": "AJ1b", "last_name": "AL1b"}'::jsonb, 'the next push sends the app''s edits only');

-- 2: a field the push sent that the app changed again meanwhile stays, with the new fields.
insert into crm.contacts (id, connection_id, email, first_name, last_name) values
  ('60000000-0000-4000-8000-000000000002', '60000000-0000-4000-8000-0000000000c1', 'two@example.com',
   'AF2', 'AL2');
create temp table held2 as select pg_temp.claims() as c;
update crm.contacts set first_name = 'AF2b', job_title = 'AJ2' where id = '60000000-0000-4000-8000-000000000002';
select results_eq($$select completed, released from crm.complete_outbox((select c from held2))$$,
  $$values (0, 1)$$, 'released');
select is(pg_temp.entry('60000000-0000-4000-8000-000000000002'), 'update:first_name,job_title',
  'a field sent and edited again stays pending, with the field the edit added');

select crm.complete_outbox(pg_temp.claims());

-- 3: the app wrote back the value sent (edit and undo during the push): nothing is left to push.
insert into crm.contacts (id, connection_id, email, first_name) values
  ('60000000-0000-4000-8000-000000000003', '60000000-0000-4000-8000-0000000000c1', 'three@example.com', 'AF3');
create temp table held3 as select pg_temp.claims() as c;
update crm.contacts set first_name = 'AF3x' where id = '60000000-0000-4000-8000-000000000003';
update crm.contacts set first_name = 'AF3' where id = '60000000-0000-4000-8000-000000000003';
select results_eq($$select completed, released from crm.complete_outbox((select c from held3))$$,
  $$values (1, 0)$$, 'completed, not released');
select results_eq(
  $$select (select count(*)::integer from crm.outbox o where o.record_id = '60000000-0000-4000-8000-000000000003'),
           needs_sync from crm.contacts where id = '60000000-0000-4000-8000-000000000003'$$,
  $$values (0, false)$$, 'nothing left to push: the CRM has what the row holds');

select * from finish();
rollback;
