-- Why: outbound pushes become jobs of the queue (issue 12, DESIGN.md §7 "Outbound"): kind
-- 'outbound', object NULL, one live job per connection, lane 10. Three things enqueue them:
--   - an app write (or an engine follow-up: complete_outbox re-queuing a relation or a change
--     made while in flight): a statement-level trigger on crm.outbox, so a write reaches the
--     CRM in seconds while pushes stay batched;
--   - the */10 cron job crm-outbound (the safety net: entries whose backoff ended, leases that
--     expired, wakes that were skipped);
--   - public.trigger_crm_sync('outbound' | 'all').
-- It also records whether a connection's external-id property could be set up
-- (crm.outbound_setup: while one failed, creates are held by the engine and sync_status,
-- health and the connection's last_error say why), and gives crm.sync_status() its outbound
-- columns.
--
-- The trigger, per statement, for the connections of entries that are now pending and due:
--   1. takes a per-connection gate, pg_try_advisory_xact_lock (never waits): a connection whose
--      gate another open transaction holds is skipped, that transaction's own job run comes
--      after its commit. The gate is what makes the debounce below atomic without the row lock
--      an INSERT ... ON CONFLICT DO UPDATE takes even when its WHERE is false: that lock,
--      held to the end of the app's transaction, would queue every other writer of the
--      connection behind it and deadlock two transactions that touch records in opposite
--      orders.
--   2. enqueues (merges into) the connection's outbound job on every firing: a queued job
--      cannot be claimed, and a running one cannot finish, before this transaction commits
--      (it holds the job row), so a run always follows the commit; a running job is marked to
--      run again (rerun), which its worker picks up next.
--   3. wakes workers at most once a second per connection (crm.outbound_wakes), except when
--      no outbound job was live before: then the job is a new one that no worker is on its way
--      to, and waiting a second would leave it to the minute's crm-workers cron job. Wakes are
--      therefore bounded by one per second plus one per job run. A wake here starts at most
--      one worker (crm._wake_one_worker), and only when no live worker is idle: it does not take
--      crm.wake_workers' lock, which a waker holds to its commit and which would make every
--      other waker (cron, enqueues, workers) wait for the end of the app's transaction. Two
--      concurrent writers may each start one worker; one finds nothing and stops.
-- Limits (a later write, or the crm-workers job within a minute, picks the entry up):
--   - a write skipped at the gate (another open transaction of the connection holds it) whose
--     transaction commits after that one's job run ended;
--   - a worker whose claim_job runs while a writer holds the queued job's row skips it (SKIP
--     LOCKED) and, finding nothing else, stops; when that writer's wake was debounced, nobody
--     is woken for the job. The worker could close this by claiming again shortly when
--     claim_job returns nothing while crm._due_jobs() is not 0.
--
-- SQLSTATEs: CRM01 bad argument, CRM02 connection not found, CRM06 connection not active.

-- Runs an app write woke --------------------------------------------------------------------------

alter table crm.sync_log drop constraint sync_log_trigger_check;
alter table crm.sync_log add constraint sync_log_trigger_check
  check (trigger in ('cron', 'webhook', 'manual', 'backfill', 'live', 'app'));

create or replace function crm.open_sync_run(
  p_connection_id uuid,
  p_object text,
  p_direction text,
  p_trigger text,
  p_mode text default null,
  p_details jsonb default null
)
  returns bigint
  language plpgsql
  set search_path = ''
as $$
declare
  v_id bigint;
begin
  if p_object is not null and p_object not in ('contacts', 'companies', 'deals', 'owners') then
    raise exception using errcode = 'CRM01', message = format('unknown object %L', p_object);
  end if;
  if p_direction is null or p_direction not in ('inbound', 'outbound') then
    raise exception using errcode = 'CRM01', message = format('unknown direction %L', p_direction);
  end if;
  if p_trigger is null or p_trigger not in ('cron', 'webhook', 'manual', 'backfill', 'live', 'app') then
    raise exception using errcode = 'CRM01', message = format('unknown trigger %L', p_trigger);
  end if;
  if p_mode is not null and p_mode not in ('delta', 'full', 'retry') then
    raise exception using errcode = 'CRM01', message = format('unknown mode %L', p_mode);
  end if;
  if not exists (select 1 from crm.connections c where c.id = p_connection_id) then
    raise exception using errcode = 'CRM02', message = format('connection %s not found', p_connection_id);
  end if;
  insert into crm.sync_log (connection_id, object, direction, trigger, mode, details)
  values (p_connection_id, p_object, p_direction, p_trigger, p_mode, p_details)
  returning id into v_id;
  return v_id;
end
$$;
comment on function crm.open_sync_run(uuid, text, text, text, text, jsonb) is
  'Opens a sync_log run (status running); returns its id. Triggers: cron, webhook, manual, backfill, live, app (an app write woke the push).';

-- Outbound set-up -----------------------------------------------------------------------------------

-- One row per connection and remote type (HubSpot contacts|companies|deals, Salesforce
-- Contact|Lead|Account|Opportunity, Pipedrive persons|organizations|deals): whether the
-- external-id property the engine upserts by exists, as the engine last found it.
create table if not exists crm.outbound_setup (
  connection_id uuid not null references crm.connections (id) on delete cascade,
  remote_type text not null,
  -- crm_sync_id (HubSpot), Crm_Sync_Id__c (Salesforce), the field key (Pipedrive).
  property text not null,
  ok boolean not null,
  error text,
  checked_at timestamptz not null default now(),
  primary key (connection_id, remote_type),
  constraint outbound_setup_error_check check (ok = (error is null))
);
comment on table crm.outbound_setup is
  'Per connection and remote type: whether the external-id property used for idempotent creates is set up (ok) or why not (error), and when it was checked. While one failed, the engine holds creates of that type.';
alter table crm.outbound_setup enable row level security;
drop policy if exists outbound_setup_select_own on crm.outbound_setup;
create policy outbound_setup_select_own on crm.outbound_setup for select to authenticated
  using (connection_id in (select c.id from crm.connections c
                           where c.account_id = (select crm.current_account_id())));
revoke all on crm.outbound_setup from public, anon, authenticated;
grant select on crm.outbound_setup to authenticated;
grant select, insert, update, delete on crm.outbound_setup to service_role;

-- The object a remote type belongs to (NULL when unknown).
create or replace function crm._outbound_setup_object(p_remote_type text)
  returns text
  language sql
  immutable
  set search_path = ''
as $$
  select case lower(p_remote_type)
    when 'contacts' then 'contacts' when 'contact' then 'contacts' when 'lead' then 'contacts'
    when 'persons' then 'contacts'
    when 'companies' then 'companies' when 'account' then 'companies'
    when 'organizations' then 'companies'
    when 'deals' then 'deals' when 'opportunity' then 'deals'
  end
$$;

-- The failed set-ups of a connection (optionally of one object's remote types) in one line;
-- NULL when none failed.
create or replace function crm._outbound_setup_error(p_connection_id uuid, p_object text default null)
  returns text
  language sql
  stable
  set search_path = ''
as $$
  select string_agg(format('%s.%s: %s', s.remote_type, s.property, s.error), '; ' order by s.remote_type)
  from crm.outbound_setup s
  where s.connection_id = p_connection_id and not s.ok
    and (p_object is null or crm._outbound_setup_object(s.remote_type) = p_object)
$$;

-- What connections.last_error says while a set-up failed.
create or replace function crm._outbound_setup_message(p_connection_id uuid)
  returns text
  language sql
  stable
  set search_path = ''
as $$
  select 'outbound setup failed, creates are held: ' || crm._outbound_setup_error(p_connection_id)
$$;

-- Records a set-up check. A failure becomes the connection's last_error (kept over later
-- successful runs, see close_sync_run, until the set-up succeeds); a success of the last failed
-- type clears it. Returns the stored row. CRM01, CRM02.
create or replace function crm.record_outbound_setup(
  p_connection_id uuid,
  p_remote_type text,
  p_property text,
  p_ok boolean,
  p_error text default null
)
  returns crm.outbound_setup
  language plpgsql
  set search_path = ''
as $$
declare
  v_row crm.outbound_setup;
  v_message text;
begin
  if p_remote_type is null or p_remote_type = '' or p_property is null or p_property = '' or p_ok is null then
    raise exception using errcode = 'CRM01',
      message = 'record_outbound_setup needs a remote type, a property and ok';
  end if;
  if not exists (select 1 from crm.connections c where c.id = p_connection_id) then
    raise exception using errcode = 'CRM02', message = format('connection %s not found', p_connection_id);
  end if;
  insert into crm.outbound_setup as s (connection_id, remote_type, property, ok, error, checked_at)
  values (p_connection_id, p_remote_type, p_property, p_ok,
          case when not p_ok then coalesce(nullif(p_error, ''), 'the external id property could not be set up') end,
          now())
  on conflict (connection_id, remote_type) do update
    set property = excluded.property, ok = excluded.ok, error = excluded.error, checked_at = excluded.checked_at
  returning s.* into v_row;
  v_message := crm._outbound_setup_message(p_connection_id);
  update crm.connections c
  set last_error = coalesce(v_message,
                            case when c.last_error like 'outbound setup failed%' then null else c.last_error end),
      last_error_at = case when not p_ok then now() else c.last_error_at end,
      updated_at = now()
  where c.id = p_connection_id
    and c.last_error is distinct from coalesce(v_message,
                            case when c.last_error like 'outbound setup failed%' then null else c.last_error end);
  return v_row;
end
$$;
comment on function crm.record_outbound_setup(uuid, text, text, boolean, text) is
  'Records whether the external-id property of a remote type is set up (ok) or why not (error); a failure is the connection''s last_error until it succeeds. Returns the row. CRM01, CRM02.';

-- NULL when never checked.
create or replace function crm.outbound_ready(p_connection_id uuid, p_remote_type text)
  returns boolean
  language sql
  stable
  set search_path = ''
as $$
  select s.ok from crm.outbound_setup s
  where s.connection_id = p_connection_id and s.remote_type = p_remote_type
$$;
comment on function crm.outbound_ready(uuid, text) is
  'Whether creates of a remote type may go out: the external-id property is set up (true), failed (false), never checked (NULL).';

-- As in 20261122010900, except that a successful run leaves a failed outbound set-up in
-- last_error (it is not fixed by a run that succeeded around it).
create or replace function crm.close_sync_run(
  p_run_id bigint,
  p_status text,
  p_counts jsonb default '{}'::jsonb,
  p_error jsonb default null
)
  returns crm.sync_log
  language plpgsql
  set search_path = ''
as $$
declare
  v_run crm.sync_log;
begin
  if p_status is null or p_status not in ('success', 'partial', 'failed') then
    raise exception using errcode = 'CRM01',
      message = format('unknown final status %L', p_status),
      hint = 'Use success, partial or failed.';
  end if;
  perform crm.record_sync_progress(p_run_id, coalesce(p_counts, '{}'::jsonb));
  update crm.sync_log l
  set status = p_status,
      finished_at = clock_timestamp(),
      duration_ms = (extract(epoch from clock_timestamp() - l.started_at) * 1000)::bigint,
      error = p_error
  where l.id = p_run_id and l.status = 'running'
  returning * into v_run;
  if not found then
    select * into v_run from crm.sync_log l where l.id = p_run_id;
    return v_run;
  end if;
  update crm.connections c
  set last_synced_at = case when p_status in ('success', 'partial') and v_run.direction = 'inbound'
                            then v_run.finished_at else c.last_synced_at end,
      last_error = case when p_status = 'success' then crm._outbound_setup_message(c.id)
                        when p_status = 'failed' then coalesce(p_error ->> 'message', p_error::text, 'failed')
                        else c.last_error end,
      last_error_at = case when p_status = 'failed' then v_run.finished_at else c.last_error_at end,
      updated_at = now()
  where c.id = v_run.connection_id;
  return v_run;
end
$$;
comment on function crm.close_sync_run(bigint, text, jsonb, jsonb) is
  'Closes a running run with success|partial|failed, count increments and error details; returns the row. Success clears last_error unless an outbound set-up failed.';

-- Enqueue -----------------------------------------------------------------------------------------

-- When each connection's workers were last woken for outbound work (the trigger's debounce)
-- and how many wakes it sent.
create table if not exists crm.outbound_wakes (
  connection_id uuid primary key references crm.connections (id) on delete cascade,
  woken_at timestamptz not null,
  wakes bigint not null default 0
);
comment on table crm.outbound_wakes is
  'Per connection: when the outbox trigger last woke workers (at most once a second, or for a new job) and how many wakes it sent.';
alter table crm.outbound_wakes enable row level security;
revoke all on crm.outbound_wakes from public, anon, authenticated;
grant select on crm.outbound_wakes to service_role;

-- Due: pending with next_attempt_at passed, or processing with an expired lease (claim_outbox
-- takes those over, or dead-letters them on their last attempt).
create or replace function crm.enqueue_outbound(
  p_connection_id uuid default null,
  p_trigger text default 'manual',
  p_wake boolean default true
)
  returns integer
  language plpgsql
  set search_path = ''
as $$
declare
  v_status text;
  v_ids uuid[];
  v_count integer;
begin
  if p_trigger is null or p_trigger not in ('cron', 'manual', 'app') then
    raise exception using errcode = 'CRM01', message = format('unknown trigger %L', p_trigger),
      hint = 'Use cron, manual or app.';
  end if;
  if p_connection_id is not null then
    select c.status into v_status from crm.connections c where c.id = p_connection_id;
    if not found then
      raise exception using errcode = 'CRM02', message = format('connection %s not found', p_connection_id);
    end if;
    if v_status <> 'active' then
      raise exception using errcode = 'CRM06', message = format('connection %s is %s', p_connection_id, v_status),
        hint = 'Resume it first: select crm.resume_connection(''<id>'');';
    end if;
  end if;
  select array_agg(c.id order by c.id) into v_ids
  from crm.connections c
  where c.status = 'active' and (p_connection_id is null or c.id = p_connection_id)
    and exists (select 1 from crm.outbox o
                where o.connection_id = c.id
                  and ((o.state = 'pending' and o.next_attempt_at <= now())
                    or (o.state = 'processing' and o.locked_until < now())));
  if v_ids is null then
    return 0;
  end if;
  select count(*)::integer into v_count
  from crm._enqueue_jobs('outbound', v_ids, null, null, jsonb_build_object('trigger', p_trigger), now());
  if p_wake then
    perform crm._wake_after_enqueue(p_trigger);
  end if;
  return v_count;
end
$$;
comment on function crm.enqueue_outbound(uuid, text, boolean) is
  'Queues (or merges) the outbound job of each active connection (or the one given) with due outbox entries, then wakes workers once. Returns the number of jobs. CRM01, CRM02, CRM06.';

-- Starts one worker unless max_workers are live (without crm.wake_workers' lock; see the top).
-- Returns 1 or 0. Without the Vault secrets the wake is skipped with a warning (the job
-- stays queued for crm-workers), as in crm._wake_after_enqueue.
create or replace function crm._wake_one_worker(p_reason text)
  returns integer
  language plpgsql
  set search_path = ''
as $$
declare
  v_max integer;
  w record;
  v_id bigint;
begin
  select e.max_workers into v_max from crm.engine_settings e where e.id;
  select * into w from crm._worker_counts();
  -- Idle workers are not counted as takers: the job this wake is for is not committed yet, so
  -- a worker idle now sees nothing to claim and exits before the app's transaction commits.
  if w.live >= v_max then
    return 0;
  end if;
  insert into crm.job_workers (woken_at, reason) values (clock_timestamp(), p_reason)
  returning id into v_id;
  update crm.job_workers x
  set request_id = crm._invoke_edge_function('crm-sync-bidirectional',
                                             jsonb_build_object('worker', true, 'worker_id', v_id))
  where x.id = v_id;
  return 1;
exception when sqlstate 'CRM04' then
  raise warning 'crm: outbound job queued, but no worker was woken: %', sqlerrm
    using hint = 'Set the Vault secrets project_url and service_role_key.';
  return 0;
end
$$;

-- The outbox trigger (see the top). Security definer: the writer may be an app user
-- (authenticated), whose role has no rights on the job tables or the wake.
create or replace function crm.tg_outbox__wake()
  returns trigger
  language plpgsql
  security definer
  set search_path = ''
as $$
declare
  v_conns uuid[];
  v_new uuid[];
  v_woken integer;
begin
  select array_agg(d.connection_id order by d.connection_id) into v_conns
  from (select distinct n.connection_id from new_entries n
        where n.state = 'pending' and n.next_attempt_at <= now()) d
  join crm.connections c on c.id = d.connection_id and c.status = 'active'
  where pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext('crm.outbound_wakes'),
                                             pg_catalog.hashtext(d.connection_id::text));
  if v_conns is null then
    return null;
  end if;
  select array_agg(x.id) into v_new
  from unnest(v_conns) x(id)
  where not exists (select 1 from crm.jobs j
                    where j.kind = 'outbound' and j.connection_id = x.id and j.object is null
                      and j.state in ('queued', 'running'));
  perform from crm._enqueue_jobs('outbound', v_conns, null, null, '{"trigger": "app"}'::jsonb, now());
  with woken as (
    insert into crm.outbound_wakes as w (connection_id, woken_at, wakes)
    select x.id, clock_timestamp(), 1 from unnest(v_conns) x(id)
    on conflict (connection_id) do update
      set woken_at = excluded.woken_at, wakes = w.wakes + 1
      where w.woken_at < excluded.woken_at - interval '1 second'
         or w.connection_id = any (v_new)
    returning w.connection_id
  )
  select count(*)::integer into v_woken from woken;
  if v_woken > 0 then
    perform crm._wake_one_worker('outbox');
  end if;
  return null;
end
$$;

drop trigger if exists tg_outbox__wake_insert on crm.outbox;
create trigger tg_outbox__wake_insert
  after insert on crm.outbox
  referencing new table as new_entries
  for each statement execute function crm.tg_outbox__wake();
drop trigger if exists tg_outbox__wake_update on crm.outbox;
create trigger tg_outbox__wake_update
  after update on crm.outbox
  referencing new table as new_entries
  for each statement execute function crm.tg_outbox__wake();

-- Cron and the manual trigger -----------------------------------------------------------------------

select cron.schedule('crm-outbound', '*/10 * * * *', $$select crm.enqueue_outbound(p_trigger => 'cron')$$);

-- Runs one sync now.
--   kind: contacts | companies | deals (inbound delta), owners (inbound full), outbound (the
--         push of due outbox entries), all (a delta of every object and the push)
--   connection_id: only this connection (default: every active connection)
-- Returns how many jobs were queued or merged (crm.job_status() shows them). 'outbound' queues
-- a job only for connections with due entries (0 when nothing is due).
create or replace function public.trigger_crm_sync(kind text, connection_id uuid default null)
  returns bigint
  language plpgsql
  security definer
  set search_path = ''
as $$
declare
  v_objects text[];
  v_jobs integer := 0;
begin
  v_objects := case trigger_crm_sync.kind
    when 'contacts' then array['contacts']
    when 'companies' then array['companies']
    when 'deals' then array['deals']
    when 'owners' then array['owners']
    when 'all' then array['owners', 'companies', 'contacts', 'deals']
  end;
  if v_objects is null and trigger_crm_sync.kind is distinct from 'outbound' then
    raise exception using errcode = 'CRM01',
      message = format('unknown sync kind %L', trigger_crm_sync.kind),
      hint = 'Use one of contacts, companies, deals, owners, outbound, all.';
  end if;
  -- CRM02 / CRM06 for an unknown or inactive connection.
  if v_objects is not null then
    v_jobs := crm.enqueue_inbound(v_objects, case trigger_crm_sync.kind when 'owners' then 'full' else 'delta' end,
                                  trigger_crm_sync.connection_id, 'manual');
  end if;
  if trigger_crm_sync.kind in ('outbound', 'all') then
    v_jobs := v_jobs + crm.enqueue_outbound(trigger_crm_sync.connection_id, 'manual');
  end if;
  return v_jobs;
end
$$;
comment on function public.trigger_crm_sync(text, uuid) is
  'Runs one sync now: enqueues inbound jobs (contacts|companies|deals|owners), the outbound push of due entries (outbound), or both (all), and wakes workers. Returns the number of jobs. CRM01, CRM02, CRM06.';
revoke all on function public.trigger_crm_sync(text, uuid) from public, anon, authenticated;
grant execute on function public.trigger_crm_sync(text, uuid) to service_role;

-- sync_status -------------------------------------------------------------------------------------

-- The columns of 20261204020400 stay as they were (renamed crm._sync_status_jobs); the outbound
-- ones go at the end. On the rows of contacts, companies and deals they are that object's; on
-- the 'outbound' row the connection's; on owners (never pushed) zero or NULL.
--   outbox_pending             entries waiting to go out: due now or after a backoff
--                              (processing ones are in pending_outbound too)
--   outbox_dead                outbox dead letters (dead_letters adds inbound ones)
--   outbox_oldest_pending_age  since the oldest unsent entry (pending or processing) was queued
--   last_outbound_at/_status   the latest outbound run (sync_log direction 'outbound'; a run
--                              over several objects has object NULL and shows on each)
--   outbound_setup_error       the failed external-id set-ups (creates held)
alter function crm.sync_status() rename to _sync_status_jobs;
revoke all on function crm._sync_status_jobs() from public, anon;
grant execute on function crm._sync_status_jobs() to authenticated, service_role;

create or replace function crm.sync_status()
  returns table (
    connection_id uuid, account_id uuid, provider text, connection_status text, object text,
    enabled boolean, last_success_at timestamptz, last_failure_at timestamptz, last_error text,
    records bigint, pending_outbound bigint, dead_letters bigint, runs_24h bigint,
    failed_24h bigint, error_rate_24h numeric, expected_every interval, stale boolean,
    open_failures bigint, job_state text, job_mode text, job_progress jsonb, jobs_dead bigint,
    oldest_due_age interval, budget text, budget_paused_until timestamptz,
    budget_pause_reason text, live_workers integer,
    outbox_pending bigint, outbox_dead bigint, outbox_oldest_pending_age interval,
    last_outbound_at timestamptz, last_outbound_status text, outbound_setup_error text
  )
  language sql
  stable
  set search_path = ''
as $$
  select s.*, ob.pending, ob.dead, ob.oldest_age, lo.at, lo.status,
         case when s.object <> 'owners'
              then crm._outbound_setup_error(s.connection_id, nullif(s.object, 'outbound')) end
  from crm._sync_status_jobs() s
  cross join lateral (
    select count(*) filter (where o.state = 'pending') as pending,
           count(*) filter (where o.state = 'dead') as dead,
           now() - min(o.created_at) filter (where o.state in ('pending', 'processing')) as oldest_age
    from crm.outbox o
    where o.connection_id = s.connection_id and (s.object = 'outbound' or o.object = s.object)
  ) ob
  left join lateral (
    select coalesce(l.finished_at, l.started_at) as at, l.status
    from crm.sync_log l
    where l.connection_id = s.connection_id and l.direction = 'outbound' and s.object <> 'owners'
      and (s.object = 'outbound' or l.object is null or l.object = s.object)
    order by l.started_at desc, l.id desc
    limit 1
  ) lo on true
  order by s.account_id, s.connection_id,
           array_position(array['contacts', 'companies', 'deals', 'owners', 'outbound'], s.object)
$$;
comment on function crm.sync_status() is
  'Per connection and object: last success/failure, error, records, pending outbound, dead letters, 24 h error rate, stale flag, open inbound failures; the stream''s job, the rate budget and live workers; outbox pending, dead and oldest age, the last outbound run and a failed outbound set-up.';
revoke all on function crm.sync_status() from public, anon;
grant execute on function crm.sync_status() to authenticated, service_role;

-- Health ------------------------------------------------------------------------------------------

alter table crm.health_alerts drop constraint health_alerts_kind_check;
alter table crm.health_alerts add constraint health_alerts_kind_check
  check (kind in ('stale', 'error_rate', 'dead_letters', 'connection_error', 'dead_jobs',
                  'budget_paused', 'outbound_setup'));

-- As in 20261204020500, plus one 'outbound_setup' alert (object 'outbound') per connection
-- with a failed set-up, open until every remote type is set up.
create or replace function crm.check_health(p_abandon_after interval default '1 hour')
  returns setof crm.health_alerts
  language plpgsql
  set search_path = ''
as $$
begin
  update crm.sync_log l
  set status = 'failed', finished_at = now(),
      duration_ms = (extract(epoch from now() - l.started_at) * 1000)::bigint,
      error = jsonb_build_object('message', format('abandoned: still running after %s', p_abandon_after))
  where l.status = 'running' and l.started_at < now() - p_abandon_after;

  return query
  with problems as (
    select s.connection_id, s.object, a.kind, a.message, a.details
    from crm.sync_status() s
    cross join lateral (
      select 'stale' as kind,
             case when s.object = 'outbound'
               then 'outbound changes have been due for more than ' || (2 * s.expected_every)::text
               else format('no successful %s sync since %s (schedule: every %s)',
                           s.object, coalesce(s.last_success_at::text, 'ever'), s.expected_every)
             end as message,
             jsonb_build_object('last_success_at', s.last_success_at) as details
      where s.stale
      union all
      select 'error_rate', format('%s of %s runs failed in 24 h', s.failed_24h, s.runs_24h),
             jsonb_build_object('error_rate_24h', s.error_rate_24h, 'last_error', s.last_error)
      where s.error_rate_24h > 0.1
      union all
      select 'dead_letters', format('%s dead letters', s.dead_letters),
             jsonb_build_object('dead_letters', s.dead_letters)
      where s.dead_letters > 0
      union all
      select 'dead_jobs',
             format('%s dead job(s); replay with select crm.replay_dead_jobs(%L)', s.jobs_dead,
                    s.connection_id),
             jsonb_build_object('jobs_dead', s.jobs_dead,
               'last_error', (select j.last_error from crm.jobs j
                              where j.connection_id = s.connection_id and j.state = 'dead'
                                and case when s.object = 'outbound' then j.kind = 'outbound'
                                         else j.kind = 'inbound' and j.object = s.object end
                              order by j.finished_at desc limit 1))
      where s.jobs_dead > 0
      union all
      select 'outbound_setup',
             'outbound setup failed, creates are held: ' || s.outbound_setup_error,
             (select jsonb_agg(jsonb_build_object('remote_type', u.remote_type, 'property', u.property,
                                                  'error', u.error, 'checked_at', u.checked_at)
                               order by u.remote_type)
              from crm.outbound_setup u where u.connection_id = s.connection_id and not u.ok)
      where s.object = 'outbound' and s.outbound_setup_error is not null
    ) a
    union all
    select c.id, 'connection', 'connection_error', coalesce(c.last_error, 'connection in error state'),
           jsonb_build_object('since', c.status_changed_at)
    from crm.connections c
    where c.status = 'error'
    union all
    -- One alert per connection: the longest pause of its classes.
    select * from (
      select distinct on (b.connection_id) b.connection_id, 'connection'::text, 'budget_paused'::text,
             format('%s budget %s paused until %s (%s)', b.provider, b.class, b.paused_until,
                    b.pause_reason),
             jsonb_build_object('class', b.class, 'paused_until', b.paused_until,
                                'reason', b.pause_reason, 'used', b.used, 'ceiling', b.ceiling,
                                'reserve', b.reserve)
      from crm.budget_status() b
      where b.paused_until > now() + interval '1 minute' and b.pause_reason <> 'throttled'
      order by b.connection_id, b.paused_until desc
    ) paused
  ),
  resolved as (
    update crm.health_alerts h
    set resolved_at = now()
    where h.resolved_at is null
      and not exists (select 1 from problems f
                      where f.connection_id = h.connection_id and f.object = h.object and f.kind = h.kind)
    returning h.id
  ),
  opened as (
    insert into crm.health_alerts as h (connection_id, object, kind, message, details)
    select f.connection_id, f.object, f.kind, f.message, f.details from problems f
    on conflict (connection_id, object, kind) where resolved_at is null do update
      set message = excluded.message, details = excluded.details, last_seen_at = now()
    returning h.*
  )
  select o.* from opened o order by o.connection_id, o.object, o.kind;
end
$$;
comment on function crm.check_health(interval) is
  'Closes abandoned runs and refreshes crm.health_alerts (stale streams, > 10 % failed runs, dead letters, errored connections, dead jobs, budgets paused for long, failed outbound set-ups); returns the open alerts.';
revoke all on function crm.check_health(interval) from public;
grant execute on function crm.check_health(interval) to service_role;

-- Grants --------------------------------------------------------------------------------------------

revoke all on function crm._outbound_setup_object(text), crm._outbound_setup_error(uuid, text),
  crm._outbound_setup_message(uuid),
  crm.record_outbound_setup(uuid, text, text, boolean, text), crm.outbound_ready(uuid, text),
  crm.enqueue_outbound(uuid, text, boolean), crm._wake_one_worker(text), crm.tg_outbox__wake()
  from public;
-- sync_status (security invoker) calls _outbound_setup_error as the user: RLS on
-- crm.outbound_setup keeps it to the user's account.
grant execute on function crm._outbound_setup_object(text), crm._outbound_setup_error(uuid, text)
  to authenticated, service_role;
grant execute on function crm._outbound_setup_message(uuid),
  crm.record_outbound_setup(uuid, text, text, boolean, text), crm.outbound_ready(uuid, text),
  crm.enqueue_outbound(uuid, text, boolean), crm._wake_one_worker(text) to service_role;
