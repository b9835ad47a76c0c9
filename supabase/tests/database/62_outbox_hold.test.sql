-- crm.fail_outbox's hold (20261209010100_crm_outbox_hold.sql): a retry that gives back the
-- attempt its claim counted, so an entry held for a merge event applied late never becomes a
-- dead letter for it; only an entry still leased to the caller gets its attempt back; a retry
-- still counts.
begin;
select plan(8);

insert into crm.connections (id, account_id, provider, remote_account_id, status)
values ('62000000-0000-4000-8000-0000000000c1', '62000000-0000-4000-8000-0000000000a1', 'pipedrive',
        'hold-1', 'active');
set local crm.engine = 'on';
insert into crm.contacts (id, connection_id, remote_id, remote_updated_at, first_name)
values ('62000000-0000-4000-8000-000000000001', '62000000-0000-4000-8000-0000000000c1', '101',
        '2020-01-01T00:00:00Z', 'Ada');
reset crm.engine;
update crm.contacts set first_name = 'AppF' where id = '62000000-0000-4000-8000-000000000001';

-- One claim and one failure of the entry; `p_action` hold or retry, max attempts 3.
create function pg_temp.cycle(p_action text, p_lease_ok boolean default true) returns text
language plpgsql as $$
declare
  c record;
begin
  update crm.outbox set next_attempt_at = now() - interval '1 second'
  where record_id = '62000000-0000-4000-8000-000000000001';
  select * into c from crm.claim_outbox('hold test', 1, interval '2 minutes',
                                        '62000000-0000-4000-8000-0000000000c1', 'contacts');
  perform crm.fail_outbox(jsonb_build_array(jsonb_build_object(
    'id', c.id, 'lease', case when p_lease_ok then c.lease else gen_random_uuid() end,
    'action', p_action, 'error', 'gone in the CRM, merged (its merge event waits in the inbox)',
    'retry_after_seconds', 5)), 3);
  return (select o.state || '/' || o.attempts from crm.outbox o
          where o.record_id = '62000000-0000-4000-8000-000000000001');
end
$$;

select is(pg_temp.cycle('hold'), 'pending/0', 'a hold hands the entry back with its attempt given back');
select ok((select next_attempt_at >= now() + interval '5 seconds' and last_error like 'gone in the CRM, merged%'
           from crm.outbox where record_id = '62000000-0000-4000-8000-000000000001'),
  'it waits at least its retry_after_seconds, with its reason');
select is((select sync_error from crm.contacts where id = '62000000-0000-4000-8000-000000000001'),
  'gone in the CRM, merged (its merge event waits in the inbox)', 'the row shows why it waits');
select is((select string_agg(pg_temp.cycle('hold'), ',') from generate_series(1, 5)),
  'pending/0,pending/0,pending/0,pending/0,pending/0', 'five more holds than max attempts: never dead');
select is(pg_temp.cycle('retry'), 'pending/1', 'a retry still counts');
select is(pg_temp.cycle('retry'), 'pending/2', 'so does the next');
select is(pg_temp.cycle('hold'), 'pending/2',
  'a hold at the last allowed attempt is no dead letter: the claim''s attempt is given back first');
-- A caller that lost its lease changes nothing (the entry stays processing, attempts as claimed).
select is(pg_temp.cycle('hold', false), 'processing/3', 'a hold with a lost lease gives nothing back');

select * from finish();
rollback;
