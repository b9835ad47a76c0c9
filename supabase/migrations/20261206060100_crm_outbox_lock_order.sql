-- Lock order of the outbox verbs (issue 15, chaos harness): a record's row first, then its
-- outbox entry, as on the app path (an app UPDATE locks the row, then its trigger upserts the
-- entry). crm.complete_outbox and crm.fail_outbox locked the entries first (FOR UPDATE) and then
-- wrote the rows, so an app update of a record whose push was completing deadlocked with it and
-- Postgres aborted one of the two statements; an app user's statement must never be aborted by
-- the engine.
--
-- Both verbs now lock the rows of the entries they are given before anything else (per object
-- in a fixed order, rows by id, so two engine calls lock in the same order too), then run the
-- previous body unchanged: the bodies of 20261205010100_crm_outbound_ledger.sql are renamed to
-- crm._complete_outbox_body / crm._fail_outbox_body and the public names become wrappers. An
-- app edit made while the verb waits for the row lock commits first; the verb then sees the
-- entry's new version (complete releases it instead of deleting it).
-- Not changed, because they lock no rows: crm.claim_outbox (entries only, FOR UPDATE SKIP
-- LOCKED; row images are read without locks), crm.recheck_outbox and crm.replay_outbox (entries
-- only). A row already locked by the app makes the verb wait for that transaction, never fail.

-- Locks the mirror rows of the given outbox entries (entries already gone are skipped).
create or replace function crm._lock_outbox_rows(p_ids bigint[])
  returns void
  language plpgsql
  volatile
  set search_path = ''
as $$
declare
  v_object text;
begin
  for v_object in
    select distinct o.object from crm.outbox o where o.id = any (p_ids) order by o.object
  loop
    execute format(
      'select 1 from crm.%I t
       where t.id = any (array(select o.record_id from crm.outbox o where o.id = any ($1) and o.object = %L))
       order by t.id
       for update of t',
      v_object, v_object)
      using p_ids;
  end loop;
end
$$;
revoke all on function crm._lock_outbox_rows(bigint[]) from public;
grant execute on function crm._lock_outbox_rows(bigint[]) to service_role;

alter function crm.complete_outbox(jsonb) rename to _complete_outbox_body;
revoke all on function crm._complete_outbox_body(jsonb) from public;

create function crm.complete_outbox(p_results jsonb)
  returns table (completed integer, released integer)
  language plpgsql
  volatile
  set search_path = ''
as $$
begin
  perform crm._lock_outbox_rows(array(
    select x.id from jsonb_to_recordset(coalesce(p_results, '[]'::jsonb)) as x(id bigint)
    where x.id is not null));
  return query select * from crm._complete_outbox_body(p_results);
end
$$;
comment on function crm.complete_outbox(jsonb) is
  'Completes leased outbox entries: [{id, lease, remote_id?, remote_version? (alias remote_updated_at)}]; the pushed values become agreed. Locks rows before entries. Returns (completed, released).';
revoke all on function crm.complete_outbox(jsonb) from public;
grant execute on function crm.complete_outbox(jsonb) to service_role;

alter function crm.fail_outbox(jsonb, integer, interval, interval) rename to _fail_outbox_body;
revoke all on function crm._fail_outbox_body(jsonb, integer, interval, interval) from public;

create function crm.fail_outbox(
  p_failures jsonb,
  p_max_attempts integer default 10,
  p_base_delay interval default '30 seconds',
  p_max_delay interval default '1 hour'
)
  returns table (retrying integer, dead integer, released integer, gone integer)
  language plpgsql
  volatile
  set search_path = ''
as $$
begin
  perform crm._lock_outbox_rows(array(
    select x.id from jsonb_to_recordset(coalesce(p_failures, '[]'::jsonb)) as x(id bigint)
    where x.id is not null));
  return query select * from crm._fail_outbox_body(p_failures, p_max_attempts, p_base_delay, p_max_delay);
end
$$;
comment on function crm.fail_outbox(jsonb, integer, interval, interval) is
  'Fails leased outbox entries: [{id, lease, error, action (retry|reauth|fix_data|gone|dead_letter)?, retryable?, retry_after_seconds?}]. Locks rows before entries. Returns (retrying, dead, released, gone).';
revoke all on function crm.fail_outbox(jsonb, integer, interval, interval) from public;
grant execute on function crm.fail_outbox(jsonb, integer, interval, interval) to service_role;
