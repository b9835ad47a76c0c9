-- Why: admins operate the sync from SQL (DESIGN.md: `select trigger_crm_sync('deals')`,
-- `select * from crm.sync_status()`), like the seeds' trigger_hubspot_sync() /
-- get_latest_sync_status() / get_sync_stats(), but for three providers and many connections
-- and without keys in plain tables: the function URL and the service-role key are read from
-- Vault (secrets `project_url` and `service_role_key`) at call time.
--
-- SQLSTATEs raised here (TypeScript and admins can match on them):
--   CRM01 unknown kind / argument   CRM02 connection not found   CRM04 Vault secret missing
--   CRM06 connection not in a state that allows the action     CRM08 conflict not open

-- How often each stream is scheduled (the cron jobs use the same cadence); a stream is stale
-- when its last success is older than twice this.
create or replace function crm._sync_interval(p_object text)
  returns interval
  language sql
  immutable
  set search_path = ''
as $$
  select case p_object
    when 'contacts' then interval '5 minutes'
    when 'companies' then interval '15 minutes'
    when 'deals' then interval '15 minutes'
    when 'owners' then interval '1 day'
    when 'outbound' then interval '10 minutes'
  end
$$;
revoke all on function crm._sync_interval(text) from public;
grant execute on function crm._sync_interval(text) to authenticated, service_role;

-- Queues a POST to an edge function through pg_net with the project URL and service-role key
-- from Vault. Returns the pg_net request id. Security definer: callers need no Vault access.
create or replace function crm._invoke_edge_function(p_slug text, p_body jsonb)
  returns bigint
  language plpgsql
  security definer
  set search_path = ''
as $$
declare
  v_url text;
  v_key text;
begin
  select s.decrypted_secret into v_url from vault.decrypted_secrets s where s.name = 'project_url';
  select s.decrypted_secret into v_key from vault.decrypted_secrets s where s.name = 'service_role_key';
  if v_url is null or v_key is null then
    raise exception using errcode = 'CRM04',
      message = 'Vault secrets project_url and service_role_key must be set',
      hint = 'select vault.create_secret(''https://<ref>.supabase.co'', ''project_url''); '
             || 'select vault.create_secret(''<service role key>'', ''service_role_key'');';
  end if;
  return net.http_post(
    url := rtrim(v_url, '/') || '/functions/v1/' || p_slug,
    body := p_body,
    headers := jsonb_build_object('Content-Type', 'application/json', 'Authorization', 'Bearer ' || v_key),
    timeout_milliseconds := 150000
  );
end
$$;
revoke all on function crm._invoke_edge_function(text, jsonb) from public;

-- Runs one sync now: queues a call of the crm-sync-bidirectional edge function and returns the
-- pg_net request id (see net._http_response for the answer).
--   kind: contacts | companies | deals (inbound delta), owners (inbound full),
--         outbound (push pending local changes), all (both directions, every object)
--   connection_id: only this connection (default: every active connection)
create or replace function public.trigger_crm_sync(kind text, connection_id uuid default null)
  returns bigint
  language plpgsql
  security definer
  set search_path = ''
as $$
declare
  v_body jsonb;
  v_status text;
begin
  v_body := case trigger_crm_sync.kind
    when 'contacts' then '{"direction": "inbound", "objects": ["contacts"], "mode": "delta"}'::jsonb
    when 'companies' then '{"direction": "inbound", "objects": ["companies"], "mode": "delta"}'::jsonb
    when 'deals' then '{"direction": "inbound", "objects": ["deals"], "mode": "delta"}'::jsonb
    when 'owners' then '{"direction": "inbound", "objects": ["owners"], "mode": "full"}'::jsonb
    when 'outbound' then '{"direction": "outbound"}'::jsonb
    when 'all' then
      '{"direction": "both", "objects": ["contacts", "companies", "deals", "owners"], "mode": "delta"}'::jsonb
  end;
  if v_body is null then
    raise exception using errcode = 'CRM01',
      message = format('unknown sync kind %L', trigger_crm_sync.kind),
      hint = 'Use one of contacts, companies, deals, owners, outbound, all.';
  end if;
  if trigger_crm_sync.connection_id is not null then
    select c.status into v_status from crm.connections c where c.id = trigger_crm_sync.connection_id;
    if not found then
      raise exception using errcode = 'CRM02',
        message = format('connection %s not found', trigger_crm_sync.connection_id);
    end if;
    if v_status <> 'active' then
      raise exception using errcode = 'CRM06',
        message = format('connection %s is %s', trigger_crm_sync.connection_id, v_status),
        hint = 'Resume it first: select crm.resume_connection(''<id>'');';
    end if;
    v_body := v_body || jsonb_build_object('connection_id', trigger_crm_sync.connection_id);
  end if;
  return crm._invoke_edge_function('crm-sync-bidirectional', v_body || '{"trigger": "manual"}'::jsonb);
end
$$;
comment on function public.trigger_crm_sync(text, uuid) is
  'Runs one sync now (contacts|companies|deals|owners|outbound|all, optionally one connection) via pg_net; returns the request id. CRM01 unknown kind.';
revoke all on function public.trigger_crm_sync(text, uuid) from public, anon, authenticated;
grant execute on function public.trigger_crm_sync(text, uuid) to service_role;

-- Health per connection and stream: one row per object (contacts, companies, deals, owners:
-- inbound) plus one row 'outbound'. Security invoker: an authenticated user sees only its own
-- account's connections (RLS), service_role and postgres see all.
--   stale: the connection is active, the stream enabled, and its last success (inbound) is
--   older than twice the schedule (contacts 10 min, companies/deals 30 min, owners 2 days), or
--   (outbound) a pending entry has been due for more than 20 minutes.
create or replace function crm.sync_status()
  returns table (
    connection_id uuid, account_id uuid, provider text, connection_status text, object text,
    enabled boolean, last_success_at timestamptz, last_failure_at timestamptz, last_error text,
    records bigint, pending_outbound bigint, dead_letters bigint, runs_24h bigint,
    failed_24h bigint, error_rate_24h numeric, expected_every interval, stale boolean
  )
  language sql
  stable
  set search_path = ''
as $$
  with cx as (
    select c.id, c.account_id, c.provider, c.status, c.settings, c.created_at, o.object
    from crm.connections c
    cross join (values ('contacts'), ('companies'), ('deals'), ('owners'), ('outbound')) as o(object)
  )
  select cx.id, cx.account_id, cx.provider, cx.status, cx.object,
         en.enabled,
         r.last_success_at, r.last_failure_at, lf.error,
         case cx.object
           when 'contacts' then (select count(*) from crm.contacts t where t.connection_id = cx.id and t.deleted_at is null)
           when 'companies' then (select count(*) from crm.companies t where t.connection_id = cx.id and t.deleted_at is null)
           when 'deals' then (select count(*) from crm.deals t where t.connection_id = cx.id and t.deleted_at is null)
           when 'owners' then (select count(*) from crm.owners t where t.connection_id = cx.id and t.deleted_at is null)
         end,
         ob.pending, ob.dead + ib.dead,
         r.runs_24h, r.failed_24h,
         case when r.runs_24h > 0 then round(r.failed_24h::numeric / r.runs_24h, 4) end,
         crm._sync_interval(cx.object),
         cx.status = 'active' and en.enabled and case
           when cx.object = 'outbound' then ob.overdue
           else coalesce(r.last_success_at, cx.created_at) < now() - 2 * crm._sync_interval(cx.object)
         end
  from cx
  cross join lateral (
    select cx.object = 'outbound' or cx.settings -> 'objects' is null
           or cx.settings -> 'objects' ? cx.object as enabled
  ) en
  cross join lateral (
    select max(l.finished_at) filter (where l.status in ('success', 'partial')) as last_success_at,
           max(l.finished_at) filter (where l.status = 'failed') as last_failure_at,
           count(*) filter (where l.started_at > now() - interval '24 hours' and l.status <> 'running') as runs_24h,
           count(*) filter (where l.started_at > now() - interval '24 hours' and l.status = 'failed') as failed_24h
    from crm.sync_log l
    where l.connection_id = cx.id
      and case when cx.object = 'outbound' then l.direction = 'outbound'
               else l.direction = 'inbound' and l.object = cx.object end
  ) r
  left join lateral (
    select coalesce(l.error ->> 'message', l.error::text, 'failed') as error
    from crm.sync_log l
    where l.connection_id = cx.id and l.status = 'failed'
      and case when cx.object = 'outbound' then l.direction = 'outbound'
               else l.direction = 'inbound' and l.object = cx.object end
    order by l.started_at desc
    limit 1
  ) lf on true
  cross join lateral (
    select count(*) filter (where o.state in ('pending', 'processing')) as pending,
           count(*) filter (where o.state = 'dead') as dead,
           coalesce(bool_or(o.state = 'pending'
                            and o.next_attempt_at < now() - 2 * crm._sync_interval('outbound')), false) as overdue
    from crm.outbox o
    where o.connection_id = cx.id and (cx.object = 'outbound' or o.object = cx.object)
  ) ob
  cross join lateral (
    select count(*) as dead
    from crm.webhook_events w
    where w.connection_id = cx.id and w.state = 'dead' and cx.object <> 'outbound' and w.object = cx.object
  ) ib
  order by cx.account_id, cx.id,
           array_position(array['contacts', 'companies', 'deals', 'owners', 'outbound'], cx.object)
$$;
comment on function crm.sync_status() is
  'Per connection and object: last success/failure, error, records, pending outbound, dead letters, 24 h error rate, stale flag.';
revoke all on function crm.sync_status() from public;
grant execute on function crm.sync_status() to authenticated, service_role;

-- Pauses a connection: cron runs and outbound claims skip it; app changes keep queueing and go
-- out after resume. Returns the new status. CRM02 unknown, CRM06 disconnected.
create or replace function crm.pause_connection(p_connection_id uuid)
  returns text
  language plpgsql
  set search_path = ''
as $$
declare
  v_status text;
begin
  select c.status into v_status from crm.connections c where c.id = p_connection_id for update;
  if not found then
    raise exception using errcode = 'CRM02', message = format('connection %s not found', p_connection_id);
  end if;
  if v_status = 'disconnected' then
    raise exception using errcode = 'CRM06',
      message = format('connection %s is disconnected; reconnect it instead', p_connection_id);
  end if;
  update crm.connections c
  set status = 'paused', status_changed_at = now(), updated_at = now()
  where c.id = p_connection_id and c.status <> 'paused';
  return 'paused';
end
$$;
comment on function crm.pause_connection(uuid) is 'Pauses a connection (active|error -> paused). CRM02, CRM06.';

-- Resumes a paused (or errored) connection. CRM02 unknown, CRM06 disconnected.
create or replace function crm.resume_connection(p_connection_id uuid)
  returns text
  language plpgsql
  set search_path = ''
as $$
declare
  v_status text;
begin
  select c.status into v_status from crm.connections c where c.id = p_connection_id for update;
  if not found then
    raise exception using errcode = 'CRM02', message = format('connection %s not found', p_connection_id);
  end if;
  if v_status = 'disconnected' then
    raise exception using errcode = 'CRM06',
      message = format('connection %s is disconnected; reconnect it instead', p_connection_id);
  end if;
  update crm.connections c
  set status = 'active', status_changed_at = now(), updated_at = now()
  where c.id = p_connection_id and c.status <> 'active';
  return 'active';
end
$$;
comment on function crm.resume_connection(uuid) is 'Resumes a connection (paused|error -> active). CRM02, CRM06.';

-- Requeues dead letters of both queues (all connections, or one).
create or replace function crm.requeue_dead_letters(p_connection_id uuid default null)
  returns table (outbox integer, inbox integer)
  language sql
  volatile
  set search_path = ''
as $$
  select crm.replay_outbox(null, p_connection_id), crm.replay_inbox(null, p_connection_id)
$$;
comment on function crm.requeue_dead_letters(uuid) is
  'Requeues dead-lettered outbox entries and webhook events; returns how many of each.';

-- Settles an open conflict (policy manual). 'remote': the CRM value is written to the row as
-- an engine write and becomes the agreed value. 'local': the app value is queued for the CRM.
create or replace function crm.resolve_conflict(p_conflict_id bigint, p_winner text)
  returns void
  language plpgsql
  set search_path = ''
  set timezone = 'UTC'
  set crm.engine = 'on'
as $$
declare
  k crm.conflicts;
  v_row jsonb;
  v_patch jsonb;
begin
  if p_winner is null or p_winner not in ('local', 'remote') then
    raise exception using errcode = 'CRM01', message = format('unknown winner %L', p_winner),
      hint = 'Use local or remote.';
  end if;
  select * into k from crm.conflicts c where c.id = p_conflict_id for update;
  if not found or k.resolution is not null then
    raise exception using errcode = 'CRM08',
      message = format('conflict %s is not open', p_conflict_id);
  end if;
  execute format('select to_jsonb(t) from crm.%I t where t.id = $1 for update', k.object)
    into v_row using k.record_id;
  if v_row is not null then
    if p_winner = 'remote' then
      v_patch := case when starts_with(k.field, 'custom.')
        then jsonb_build_object('custom', coalesce(v_row -> 'custom', '{}'::jsonb)
                                          || jsonb_build_object(substr(k.field, 8), k.remote_value))
        else jsonb_build_object(k.field, k.remote_value) end;
      execute format(
        'update crm.%1$I t set %2$I = (jsonb_populate_record(t, $2)).%2$I, updated_at = now() where t.id = $1',
        k.object, case when starts_with(k.field, 'custom.') then 'custom' else k.field end)
        using k.record_id, v_patch;
      insert into crm.sync_state as s (connection_id, object, record_id, field, agreed_hash, agreed_at)
      values (k.connection_id, k.object, k.record_id, k.field, crm._hash(k.remote_value), now())
      on conflict (object, record_id, field) do update
        set agreed_hash = excluded.agreed_hash, agreed_at = excluded.agreed_at, updated_at = now();
    else
      perform crm._enqueue_outbox(k.object, jsonb_build_array(jsonb_build_object(
        'record_id', k.record_id, 'connection_id', k.connection_id, 'remote_id', v_row ->> 'remote_id',
        'op', case when v_row ->> 'remote_id' is null then 'insert' else 'update' end,
        'columns', array[k.field])));
      execute format('update crm.%I t set needs_sync = true where t.id = $1', k.object)
        using k.record_id;
    end if;
  end if;
  update crm.conflicts c
  set resolution = p_winner,
      resolved_by = coalesce(auth.uid()::text, current_user),
      resolved_at = now(), updated_at = now()
  where c.id = p_conflict_id;
end
$$;
comment on function crm.resolve_conflict(bigint, text) is
  'Settles an open conflict with the local or remote value. CRM01 bad winner, CRM08 not open.';

revoke all on function crm.pause_connection(uuid), crm.resume_connection(uuid),
  crm.requeue_dead_letters(uuid), crm.resolve_conflict(bigint, text) from public;
grant execute on function crm.pause_connection(uuid), crm.resume_connection(uuid),
  crm.requeue_dead_letters(uuid), crm.resolve_conflict(bigint, text) to service_role;
