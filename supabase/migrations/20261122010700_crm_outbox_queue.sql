-- Why: outbound workers (several edge function instances at once) must share crm.outbox
-- without double-pushing and without holding a transaction open across CRM calls. Claims are
-- leases (visibility timeouts) taken with FOR UPDATE SKIP LOCKED; a worker that dies simply
-- lets its lease expire and another worker reclaims the entry. Failures back off
-- exponentially and end as visible dead letters that SQL can replay (DESIGN.md section 6:
-- "claims are leases, not open transactions; backoff and dead letters are data").
--
-- Data-modifying CTEs run to completion whether or not the main query reads them.
-- Lifecycle: pending --claim--> processing --complete--> (deleted)
--                                          --complete, changed while in flight--> pending
--                                          --fail--> pending (backoff) | dead
--            processing with an expired lease is claimable again; once it has used up its
--            attempts it goes to dead instead. dead --replay / a new app change--> pending.
-- attempts counts claims (a crash mid-push is an attempt too).

-- Delay before retry number p_attempts (1-based): p_base * 2^(attempts-1), capped at p_max,
-- plus up to 10 % jitter so a burst of failures does not come back as a burst.
create or replace function crm._backoff(p_attempts integer, p_base interval, p_max interval)
  returns interval
  language sql
  volatile
  set search_path = ''
as $$
  select least(p_base * power(2, greatest(p_attempts, 1) - 1)::double precision, p_max)
         * (1 + random() * 0.1)
$$;
revoke all on function crm._backoff(integer, interval, interval) from public;
grant execute on function crm._backoff(integer, interval, interval) to service_role;

-- Claims up to p_limit due entries for p_lease. Returns each entry with its lease token and
-- the current row as jsonb (NULL when the row was hard-deleted). Entries of paused,
-- errored or disconnected connections are not handed out.
create or replace function crm.claim_outbox(
  p_worker text,
  p_limit integer default 100,
  p_lease interval default '5 minutes',
  p_connection_id uuid default null,
  p_object text default null,
  p_max_attempts integer default 10
)
  returns table (
    id bigint, connection_id uuid, object text, record_id uuid, remote_id text, op text,
    changed_columns text[], attempts integer, version integer, lease uuid,
    locked_until timestamptz, record jsonb
  )
  language sql
  volatile
  set search_path = ''
as $$
  with expired as (
    update crm.outbox o
    set state = 'dead', dead_at = now(), lease = null, locked_until = null, locked_by = null,
        last_error = coalesce(o.last_error || ' / ', '') || 'lease expired after the last attempt',
        updated_at = now()
    where o.id in (
      select x.id from crm.outbox x
      where x.state = 'processing' and x.locked_until < now() and x.attempts >= p_max_attempts
      for update skip locked)
    returning o.id
  ),
  picked as (
    select o.id
    from crm.outbox o
    join crm.connections c on c.id = o.connection_id and c.status = 'active'
    where ((o.state = 'pending' and o.next_attempt_at <= now())
        or (o.state = 'processing' and o.locked_until < now() and o.attempts < p_max_attempts))
      and (p_connection_id is null or o.connection_id = p_connection_id)
      and (p_object is null or o.object = p_object)
    order by o.next_attempt_at, o.id
    limit greatest(p_limit, 0)
    for update of o skip locked
  ),
  claimed as (
    update crm.outbox o
    set state = 'processing', attempts = o.attempts + 1, claimed_version = o.version,
        lease = gen_random_uuid(), locked_until = now() + p_lease, locked_by = p_worker,
        updated_at = now()
    from picked
    where o.id = picked.id
    returning o.*
  )
  select c.id, c.connection_id, c.object, c.record_id, c.remote_id, c.op, c.changed_columns,
         c.attempts, c.version, c.lease, c.locked_until,
         case c.object
           when 'contacts' then (select to_jsonb(t) from crm.contacts t where t.id = c.record_id)
           when 'companies' then (select to_jsonb(t) from crm.companies t where t.id = c.record_id)
           when 'deals' then (select to_jsonb(t) from crm.deals t where t.id = c.record_id)
         end
  from claimed c
  order by c.connection_id, c.object, c.id
$$;
comment on function crm.claim_outbox(text, integer, interval, uuid, text, integer) is
  'Leases up to p_limit due outbox entries (FOR UPDATE SKIP LOCKED); returns them with lease token and current row.';

-- Marks pushed entries done. p_results: jsonb array of
--   {"id": bigint, "lease": uuid, "remote_id": text (new records), "remote_updated_at": ts}
-- Entries whose lease does not match (expired and reclaimed) are ignored. An entry changed
-- while in flight (version moved) is released for another push instead of deleted.
-- On success the row gets its remote id, needs_sync false, sync_error NULL, and the pushed
-- fields become the agreed values in sync_state. Rows that point at a record which just got
-- its first remote id (contacts.company_id -> new company) get the *_remote_id filled and an
-- update queued so the association reaches the CRM.
create or replace function crm.complete_outbox(p_results jsonb)
  returns table (completed integer, released integer)
  language plpgsql
  set search_path = ''
  set timezone = 'UTC'
  set crm.engine = 'on'
as $$
declare
  v_completed integer;
  v_released integer;
  v_new_ids jsonb;
  v_entries jsonb;
  ref record;
begin
  with r as (
    select x.id, x.lease, nullif(x.remote_id, '') as remote_id, x.remote_updated_at
    from jsonb_to_recordset(coalesce(p_results, '[]'::jsonb))
      as x(id bigint, lease uuid, remote_id text, remote_updated_at timestamptz)
  ),
  hit as (
    select o.id, o.object, o.record_id, o.op, o.changed_columns, o.remote_id as old_remote_id,
           coalesce(o.remote_id, r.remote_id) as remote_id, r.remote_updated_at,
           o.version = o.claimed_version as finished
    from crm.outbox o
    join r on r.id = o.id and r.lease = o.lease and o.state = 'processing'
    for update of o
  ),
  done as (
    delete from crm.outbox o using hit h where o.id = h.id and h.finished
    returning o.id
  ),
  rel as (
    update crm.outbox o
    set state = 'pending', lease = null, locked_until = null, locked_by = null, attempts = 0,
        next_attempt_at = now(), last_error = null, remote_id = h.remote_id,
        op = case when o.op = 'insert' and h.remote_id is not null then 'update' else o.op end,
        updated_at = now()
    from hit h
    where o.id = h.id and not h.finished
    returning o.id
  ),
  cur as (
    select h.*, t.row
    from hit h
    cross join lateral (
      select case h.object
        when 'contacts' then (select to_jsonb(x) from crm.contacts x where x.id = h.record_id)
        when 'companies' then (select to_jsonb(x) from crm.companies x where x.id = h.record_id)
        when 'deals' then (select to_jsonb(x) from crm.deals x where x.id = h.record_id)
      end as row
    ) t
  ),
  agreed as (
    insert into crm.sync_state as s (connection_id, object, record_id, field, agreed_hash, agreed_at,
                                     remote_changed_at)
    select (r.row ->> 'connection_id')::uuid, r.object, r.record_id, f.field,
           crm._hash(crm._field_value(r.row, f.field)), now(), r.remote_updated_at
    from cur r, unnest(r.changed_columns) as f(field)
    where r.finished and r.row is not null and r.op <> 'delete'
    on conflict (object, record_id, field) do update set
      agreed_hash = excluded.agreed_hash,
      agreed_at = excluded.agreed_at,
      remote_changed_at = greatest(s.remote_changed_at, excluded.remote_changed_at),
      updated_at = now()
    returning s.record_id
  ),
  m_contacts as (
    update crm.contacts t
    set remote_id = coalesce(t.remote_id, h.remote_id),
        needs_sync = not h.finished, sync_error = null,
        last_synced_at = case when h.finished then now() else t.last_synced_at end,
        remote_updated_at = case when h.finished then greatest(t.remote_updated_at, h.remote_updated_at)
                                 else t.remote_updated_at end
    from hit h where h.object = 'contacts' and t.id = h.record_id
    returning t.id
  ),
  m_companies as (
    update crm.companies t
    set remote_id = coalesce(t.remote_id, h.remote_id),
        needs_sync = not h.finished, sync_error = null,
        last_synced_at = case when h.finished then now() else t.last_synced_at end,
        remote_updated_at = case when h.finished then greatest(t.remote_updated_at, h.remote_updated_at)
                                 else t.remote_updated_at end
    from hit h where h.object = 'companies' and t.id = h.record_id
    returning t.id
  ),
  m_deals as (
    update crm.deals t
    set remote_id = coalesce(t.remote_id, h.remote_id),
        needs_sync = not h.finished, sync_error = null,
        last_synced_at = case when h.finished then now() else t.last_synced_at end,
        remote_updated_at = case when h.finished then greatest(t.remote_updated_at, h.remote_updated_at)
                                 else t.remote_updated_at end
    from hit h where h.object = 'deals' and t.id = h.record_id
    returning t.id
  )
  select (select count(*) from done), (select count(*) from rel),
         (select jsonb_agg(jsonb_build_object('object', h.object, 'record_id', h.record_id,
                                              'remote_id', h.remote_id))
          from hit h where h.old_remote_id is null and h.remote_id is not null)
    into v_completed, v_released, v_new_ids;

  if v_new_ids is not null then
    for ref in select r.tbl, r.local_col, r.remote_col, r.target from crm._mirror_refs() r
               where r.target <> 'owners' loop
      execute format($q$
        with u as (
          update crm.%1$I x set %3$I = w.remote_id
          from jsonb_to_recordset($1) as w(object text, record_id uuid, remote_id text)
          where w.object = %4$L and x.%2$I = w.record_id and x.%3$I is null and x.deleted_at is null
          returning x.id, x.connection_id, x.remote_id
        )
        select jsonb_agg(jsonb_build_object(
                 'record_id', u.id, 'connection_id', u.connection_id, 'remote_id', u.remote_id,
                 'op', case when u.remote_id is null then 'insert' else 'update' end,
                 'columns', array[%3$L]))
        from u$q$, ref.tbl, ref.local_col, ref.remote_col, ref.target)
        into v_entries using v_new_ids;
      if v_entries is not null then
        perform crm._enqueue_outbox(ref.tbl, v_entries);
        execute format('update crm.%I x set needs_sync = true
                        where x.id in (select (e ->> %L)::uuid from jsonb_array_elements($1) e)',
                       ref.tbl, 'record_id')
          using v_entries;
      end if;
    end loop;
  end if;

  return query select v_completed, v_released;
end
$$;
comment on function crm.complete_outbox(jsonb) is
  'Completes leased outbox entries: [{id, lease, remote_id?, remote_updated_at?}]. Returns (completed, released).';

-- Records failed pushes. p_failures: jsonb array of
--   {"id": bigint, "lease": uuid, "error": text, "retryable": bool (default true),
--    "retry_after_seconds": number (e.g. from Retry-After / a 429)}
-- Retryable failures wait _backoff(attempts) (at least retry_after_seconds); non-retryable
-- ones and those that used up p_max_attempts become dead letters. The row's sync_error shows
-- the error either way.
create or replace function crm.fail_outbox(
  p_failures jsonb,
  p_max_attempts integer default 10,
  p_base_delay interval default '30 seconds',
  p_max_delay interval default '1 hour'
)
  returns table (retrying integer, dead integer)
  language sql
  volatile
  set search_path = ''
  set crm.engine = 'on'
as $$
  with r as (
    select x.id, x.lease, coalesce(nullif(x.error, ''), 'unknown error') as error,
           coalesce(x.retryable, true) as retryable,
           coalesce(x.retry_after_seconds, 0) as retry_after_seconds
    from jsonb_to_recordset(coalesce(p_failures, '[]'::jsonb))
      as x(id bigint, lease uuid, error text, retryable boolean, retry_after_seconds double precision)
  ),
  f as (
    update crm.outbox o
    set state = case when not r.retryable or o.attempts >= p_max_attempts then 'dead' else 'pending' end,
        dead_at = case when not r.retryable or o.attempts >= p_max_attempts then now() end,
        next_attempt_at = case when not r.retryable or o.attempts >= p_max_attempts then o.next_attempt_at
          else now() + greatest(crm._backoff(o.attempts, p_base_delay, p_max_delay),
                                make_interval(secs => r.retry_after_seconds)) end,
        lease = null, locked_until = null, locked_by = null,
        last_error = r.error, updated_at = now()
    from r
    where o.id = r.id and o.lease = r.lease and o.state = 'processing'
    returning o.id, o.object, o.record_id, o.state, o.last_error
  ),
  m_contacts as (
    update crm.contacts t
    set sync_error = case when f.state = 'dead' then 'dead letter: ' else '' end || f.last_error
    from f where f.object = 'contacts' and t.id = f.record_id
    returning t.id
  ),
  m_companies as (
    update crm.companies t
    set sync_error = case when f.state = 'dead' then 'dead letter: ' else '' end || f.last_error
    from f where f.object = 'companies' and t.id = f.record_id
    returning t.id
  ),
  m_deals as (
    update crm.deals t
    set sync_error = case when f.state = 'dead' then 'dead letter: ' else '' end || f.last_error
    from f where f.object = 'deals' and t.id = f.record_id
    returning t.id
  )
  select (select count(*) from f where f.state = 'pending')::integer,
         (select count(*) from f where f.state = 'dead')::integer
$$;
comment on function crm.fail_outbox(jsonb, integer, interval, interval) is
  'Fails leased outbox entries: [{id, lease, error, retryable?, retry_after_seconds?}] -> backoff or dead letter. Returns (retrying, dead).';

-- Puts dead letters back in the queue (all, some ids, or one connection's). Returns how many.
create or replace function crm.replay_outbox(p_ids bigint[] default null, p_connection_id uuid default null)
  returns integer
  language sql
  volatile
  set search_path = ''
as $$
  with r as (
    update crm.outbox o
    set state = 'pending', dead_at = null, attempts = 0, next_attempt_at = now(), updated_at = now()
    where o.state = 'dead'
      and (p_ids is null or o.id = any (p_ids))
      and (p_connection_id is null or o.connection_id = p_connection_id)
    returning o.id
  )
  select count(*)::integer from r
$$;
comment on function crm.replay_outbox(bigint[], uuid) is
  'Requeues dead-lettered outbox entries (optionally by ids or connection); returns the count.';

revoke all on function crm.claim_outbox(text, integer, interval, uuid, text, integer),
  crm.complete_outbox(jsonb), crm.fail_outbox(jsonb, integer, interval, interval),
  crm.replay_outbox(bigint[], uuid) from public;
grant execute on function crm.claim_outbox(text, integer, interval, uuid, text, integer),
  crm.complete_outbox(jsonb), crm.fail_outbox(jsonb, integer, interval, interval),
  crm.replay_outbox(bigint[], uuid) to service_role;
