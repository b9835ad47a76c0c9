-- A hold: a retry that gives back the attempt its claim counted. A push hands an entry back as
-- a hold when the failure is not the CRM's refusal of the write but a state the engine is still
-- settling: a Pipedrive merge loser answered 404 while its merge event waits in the inbox
-- (sync/gone_merges.ts). As a retry, each such hand-back counted as an attempt, and an entry
-- whose merge event was applied late became a dead letter ("not replayed") although nothing
-- was wrong with it (seen in the 1,000-op chaos benchmark). A hold is bounded by what it waits
-- for: the inbox event is applied, retried or parked by its own attempts, and once it is no
-- longer waiting the push settles the entry as a retry, a deletion or a re-targeted merge.
-- Only entries still leased to the caller are given their attempt back (a lost lease changes
-- nothing, as for every verb). Redefined: the crm.fail_outbox wrapper only; the body
-- (crm._fail_outbox_body) treats a hold as a retry.
create or replace function crm.fail_outbox(
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
declare
  v_failures constant jsonb := coalesce(p_failures, '[]'::jsonb);
begin
  perform crm._lock_outbox_rows(array(
    select x.id from jsonb_to_recordset(v_failures) as x(id bigint)
    where x.id is not null));
  -- The claim's attempt given back, before the body judges attempts against p_max_attempts.
  update crm.outbox o
  set attempts = greatest(o.attempts - 1, 0)
  from jsonb_to_recordset(v_failures) as x(id bigint, lease uuid, action text)
  where x.action = 'hold' and o.id = x.id and o.lease = x.lease and o.state = 'processing';
  return query select * from crm._fail_outbox_body(
    (select coalesce(jsonb_agg(case when f ->> 'action' = 'hold'
                                    then f || '{"action": "retry"}'::jsonb else f end), '[]'::jsonb)
     from jsonb_array_elements(v_failures) f),
    p_max_attempts, p_base_delay, p_max_delay);
end
$$;
comment on function crm.fail_outbox(jsonb, integer, interval, interval) is
  'Fails leased outbox entries: [{id, lease, error, action (retry|hold|reauth|fix_data|gone|dead_letter)?, retryable?, retry_after_seconds?}]; hold is a retry that gives the claim''s attempt back. Locks rows before entries. Returns (retrying, dead, released, gone).';
revoke all on function crm.fail_outbox(jsonb, integer, interval, interval) from public;
grant execute on function crm.fail_outbox(jsonb, integer, interval, interval) to service_role;
