-- Pipedrive defaults added by 20261205090100 (issue 16, point 7): a person's job title and notes
-- and an organization's website and annual revenue are mapped both ways, so an app's edit of
-- them is queued for Pipedrive (before, an edit of job_title queued nothing), and inbound-only
-- columns still queue nothing.
begin;
select plan(6);

insert into crm.connections (id, account_id, provider, remote_account_id) values
  ('45000000-0000-4000-8000-0000000000c1', '45000000-0000-4000-8000-0000000000a1', 'pipedrive', 'pd-fields-test');

select results_eq(
  $$select remote_object, column_name, remote_property, direction, transform
    from crm.effective_field_mappings('45000000-0000-4000-8000-0000000000c1')
    where (remote_object, column_name) in (('persons', 'job_title'), ('persons', 'description'),
                                           ('organizations', 'domain'), ('organizations', 'annual_revenue'))
    order by remote_object, column_name$$,
  $$values ('organizations', 'annual_revenue', 'annual_revenue', 'both', 'currency'),
           ('organizations', 'domain', 'website', 'both', 'text'),
           ('persons', 'description', 'notes', 'both', 'text'),
           ('persons', 'job_title', 'job_title', 'both', 'text')$$,
  'the four Pipedrive fields are mapped both ways by default');

select ok(
  crm._outbound_fields('45000000-0000-4000-8000-0000000000c1', 'contacts') @> array['job_title', 'description'],
  'Pipedrive contacts write job_title and description');
select ok(
  crm._outbound_fields('45000000-0000-4000-8000-0000000000c1', 'companies') @> array['domain', 'annual_revenue'],
  'Pipedrive companies write domain and annual_revenue');

-- Synced rows, as the engine writes them.
set local crm.engine = 'on';
insert into crm.contacts (id, connection_id, remote_id, first_name) values
  ('45000000-0000-4000-8000-000000000001', '45000000-0000-4000-8000-0000000000c1', 'p-1', 'Ada');
insert into crm.companies (id, connection_id, remote_id, name) values
  ('45000000-0000-4000-8000-0000000000e1', '45000000-0000-4000-8000-0000000000c1', 'o-1', 'Engines');
reset crm.engine;

update crm.contacts set job_title = 'Analyst' where id = '45000000-0000-4000-8000-000000000001';
select results_eq(
  $$select op, changed_columns from crm.outbox where record_id = '45000000-0000-4000-8000-000000000001'$$,
  $$values ('update', array['job_title'])$$,
  'an app edit of a Pipedrive job title is queued');

update crm.companies set annual_revenue = 1200.50, domain = 'engines.example'
where id = '45000000-0000-4000-8000-0000000000e1';
select results_eq(
  $$select op, changed_columns from crm.outbox where record_id = '45000000-0000-4000-8000-0000000000e1'$$,
  $$values ('update', array['annual_revenue', 'domain'])$$,
  'an app edit of website and annual revenue is queued');

-- country stays inbound only (address parts are read only).
update crm.companies set country = 'UK' where id = '45000000-0000-4000-8000-0000000000e1';
select results_eq(
  $$select changed_columns from crm.outbox where record_id = '45000000-0000-4000-8000-0000000000e1'$$,
  $$values (array['annual_revenue', 'domain'])$$,
  'an inbound-only column (country) is still not queued');

select * from finish();
rollback;
