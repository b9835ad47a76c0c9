-- Why: one call of crm-sync-bidirectional walked every connection at once, so memory, wall
-- clock and the database pool grew with the number of tenants and one slow CRM delayed all of
-- them (issue 11). Every unit of engine work is now a row of one job table; cron, triggers and
-- admins only enqueue, and function workers ({"worker": true}, woken through pg_net) claim one
-- job at a time. This is the pattern of Supabase's guide for large jobs (pg_cron + a queue table
-- + pg_net + Edge Function workers), with the claim rules of crm.claim_outbox (DESIGN.md §6-§7).
--
--   crm.jobs           kind inbound (connection x object x mode delta|full|drift), outbound
--                      (connection [x object]), inbox and setup (connection). At most one live
--                      (queued or running) job per kind x connection x object: enqueue is
--                      idempotent and merges into it.
--   crm.job_accounts   when each app account was last served: claims go by priority, then the
--                      least recently served account, so one tenant's backfill cannot starve
--                      another's delta.
--   crm.job_workers    one row per woken (or manually started) worker: the wake count, what it
--                      did, and which workers are alive.
--   crm.engine_settings  the single row of engine settings (max_workers, worker CPU budget,
--                      job lease).
--
-- Lifecycle: queued --claim--> running --finish done--> done (or queued again: rerun)
--                                      --finish more--> queued (continuation, due now)
--                                      --fail--> queued (backoff) | dead
--                                      --defer--> queued at a given time, no attempt counted
--            running with an expired lease is claimable (takeover, one failed attempt); a job
--            whose lease expires on its last attempt becomes dead. queued|running --cancel-->
--            cancelled. dead --replay--> queued.
-- Every verb a worker calls with a job checks the job's fencing token (lease_token, from a
-- sequence, never reused) and raises CRM11 when another claim took the job or it was
-- cancelled: a worker whose lease was taken over can no longer change the job. Inbound jobs
-- are fenced at the stream as well: a takeover frees the stream's crm.inbound_leases row and
-- closes its run, so the old worker's late page writes fail with CRM10.
--
-- Times use now() (the transaction's start), as crm.claim_outbox does: a worker calls each
-- verb in its own short transaction.
--
-- SQLSTATEs: CRM01 bad argument, CRM02 connection not found, CRM04 Vault secret missing (a wake,
-- from crm._invoke_edge_function), CRM06 connection not active, CRM11 job lease lost, CRM12
-- job not dead.

-- Settings ------------------------------------------------------------------------------------

create table if not exists crm.engine_settings (
  id boolean primary key default true,
  -- Supabase recommends at most 8 concurrent jobs driven by pg_cron
  -- (https://supabase.com/docs/guides/cron: "no more than 8 jobs concurrently"); raise it on
  -- a larger compute size. 0 stops waking workers (jobs stay queued).
  max_workers integer not null default 8,
  -- A worker stops claiming once it has used this much CPU. The hosted runtime terminates an
  -- isolate at 2 s of CPU (https://supabase.com/docs/guides/functions/limits) counted over the
  -- isolate's life, and retires it after a request that took it past 1 s, so a request that
  -- lands on a reused isolate is sure of about 1 s only (supabase/edge-runtime,
  -- strategy_per_worker.rs): 800 ms leaves room for the page in flight when it stops.
  worker_cpu_budget_ms integer not null default 800,
  -- How long a claim holds a job without a heartbeat.
  job_lease interval not null default '2 minutes',
  updated_at timestamptz not null default now(),
  constraint engine_settings_single_row check (id),
  constraint engine_settings_max_workers_check check (max_workers between 0 and 1000),
  constraint engine_settings_cpu_budget_check check (worker_cpu_budget_ms between 1 and 1999),
  constraint engine_settings_job_lease_check check (job_lease > interval '0')
);
comment on table crm.engine_settings is
  'Engine settings (one row): max_workers woken at once, worker_cpu_budget_ms (under the 2 s hosted CPU limit), job_lease.';
insert into crm.engine_settings (id) values (true) on conflict (id) do nothing;
alter table crm.engine_settings enable row level security;
revoke all on crm.engine_settings from public, anon, authenticated;
grant select, update on crm.engine_settings to service_role;

-- Workers -------------------------------------------------------------------------------------

create table if not exists crm.job_workers (
  id bigint generated always as identity primary key,
  -- NULL for a worker nobody woke (an admin or test started it: crm.worker_started(null)).
  woken_at timestamptz,
  started_at timestamptz,
  last_seen_at timestamptz,
  finished_at timestamptz,
  -- The pg_net request that woke it (net._http_response has the function's answer).
  request_id bigint,
  reason text not null,
  stats jsonb
);
create index if not exists job_workers_unfinished_idx on crm.job_workers (id) where finished_at is null;
create index if not exists job_workers_finished_idx on crm.job_workers (finished_at) where finished_at is not null;
comment on table crm.job_workers is
  'One row per woken or started job worker: when it was woken, started, last seen (claims, heartbeats) and finished, why, and its stats.';
alter table crm.job_workers enable row level security;
revoke all on crm.job_workers from public, anon, authenticated;
grant select, insert, update, delete on crm.job_workers to service_role;

-- Jobs ----------------------------------------------------------------------------------------

create sequence if not exists crm.job_lease_token_seq;
revoke all on sequence crm.job_lease_token_seq from public, anon, authenticated;
grant usage on sequence crm.job_lease_token_seq to service_role;

create table if not exists crm.jobs (
  id bigint generated always as identity primary key,
  kind text not null,
  connection_id uuid not null references crm.connections (id) on delete cascade,
  object text,
  mode text,
  -- Lane, lower first: 10 real time (outbound, inbox), 20 setup, 30 delta, 40 full, 50 drift.
  priority smallint not null,
  state text not null default 'queued',
  run_after timestamptz not null default now(),
  -- Failed attempts since the last success or continuation (a takeover counts as one).
  attempts integer not null default 0,
  max_attempts integer not null default 8,
  claims integer not null default 0,
  lease_token bigint,
  lease_expires_at timestamptz,
  -- The last worker that claimed it (crm.job_workers.id; no foreign key: workers are purged
  -- on their own schedule and the id stays a record).
  worker_id bigint,
  claimed_at timestamptz,
  heartbeat_at timestamptz,
  -- trigger (the sync_log trigger of its runs), page_size, ...
  payload jsonb not null default '{}'::jsonb,
  -- Set while running when an enqueue hit the job: it is queued again when it finishes.
  -- The mode of that rerun, 'again' for kinds without modes.
  rerun_mode text,
  progress jsonb,
  last_error text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  finished_at timestamptz,
  constraint jobs_kind_check check (kind in ('inbound', 'outbound', 'inbox', 'setup')),
  constraint jobs_state_check check (state in ('queued', 'running', 'done', 'dead', 'cancelled')),
  constraint jobs_object_check check (
    case kind
      when 'inbound' then object in ('contacts', 'companies', 'deals', 'owners')
      when 'outbound' then object is null or object in ('contacts', 'companies', 'deals')
      else object is null
    end),
  constraint jobs_mode_check check (
    case kind when 'inbound' then mode in ('delta', 'full', 'drift') else mode is null end),
  constraint jobs_rerun_check check (
    rerun_mode is null
    or (state = 'running' and rerun_mode in ('delta', 'full', 'drift', 'again'))),
  constraint jobs_running_check check (
    state <> 'running' or (lease_token is not null and lease_expires_at is not null)),
  constraint jobs_attempts_check check (attempts >= 0 and max_attempts >= 1),
  constraint jobs_payload_check check (jsonb_typeof(payload) = 'object')
);
-- One live job per kind x connection x object: what enqueue merges into.
create unique index if not exists jobs_live_key
  on crm.jobs (kind, connection_id, (coalesce(object, ''))) where state in ('queued', 'running');
-- Claims: the live rows in claim order.
create index if not exists jobs_claim_idx
  on crm.jobs (priority, run_after, id) where state in ('queued', 'running');
create index if not exists jobs_connection_idx on crm.jobs (connection_id, state);
create index if not exists jobs_finished_idx on crm.jobs (finished_at) where state in ('done', 'cancelled');
comment on table crm.jobs is
  'Engine work queue: one row per inbound stream run (delta|full|drift), outbound push, inbox drain or set-up; leased with fencing tokens, backoff, dead letters.';
alter table crm.jobs enable row level security;
drop policy if exists jobs_select_own on crm.jobs;
create policy jobs_select_own on crm.jobs for select to authenticated
  using (connection_id in (select c.id from crm.connections c
                           where c.account_id = (select crm.current_account_id())));
revoke all on crm.jobs from public, anon, authenticated;
grant select on crm.jobs to authenticated;
grant select, insert, update, delete on crm.jobs to service_role;

-- Rows are created by enqueue (never served: NULL), so a claim only updates one, skipping it
-- when a concurrent claim of the same account holds it (that claim marks it served just as
-- well): claimers never wait for each other here.
create table if not exists crm.job_accounts (
  account_id uuid primary key,
  last_served_at timestamptz
);
comment on table crm.job_accounts is
  'When each app account last had a job claimed (NULL: never): claims prefer the least recently served account within a priority.';
alter table crm.job_accounts enable row level security;
drop policy if exists job_accounts_select_own on crm.job_accounts;
create policy job_accounts_select_own on crm.job_accounts for select to authenticated
  using (account_id = (select crm.current_account_id()));
revoke all on crm.job_accounts from public, anon, authenticated;
grant select on crm.job_accounts to authenticated;
grant select, insert, update, delete on crm.job_accounts to service_role;

-- Helpers -------------------------------------------------------------------------------------

-- Default lane of a job.
create or replace function crm._job_priority(p_kind text, p_mode text)
  returns smallint
  language sql
  immutable
  set search_path = ''
as $$
  select (case p_kind
    when 'outbound' then 10
    when 'inbox' then 10
    when 'setup' then 20
    when 'inbound' then case p_mode when 'delta' then 30 when 'full' then 40 when 'drift' then 50 end
  end)::smallint
$$;

-- The mode that covers both: a full walk covers a drift check, which covers a delta. NULL and
-- 'again' (a rerun of a kind without modes) are the weakest.
create or replace function crm._stronger_mode(p_a text, p_b text)
  returns text
  language sql
  immutable
  set search_path = ''
as $$
  select case
    when array_position(array['again', 'delta', 'drift', 'full'], p_b)
         > coalesce(array_position(array['again', 'delta', 'drift', 'full'], p_a), 0)
      then p_b
    else coalesce(p_a, p_b)
  end
$$;

-- Inserts one job per connection, or merges into the live one: a queued job takes the
-- stronger mode, the lower priority and the earlier run_after; a running job is marked to run
-- again when it finishes (rerun_mode). Payloads merge, the newer keys winning. Returns the job
-- ids. Callers validate; connections are locked in id order (callers pass them sorted).
create or replace function crm._enqueue_jobs(
  p_kind text,
  p_connection_ids uuid[],
  p_object text,
  p_mode text,
  p_payload jsonb,
  p_run_after timestamptz
)
  returns setof bigint
  language sql
  volatile
  set search_path = ''
as $$
  with accounts as (
    insert into crm.job_accounts as n (account_id)
    select distinct c.account_id from crm.connections c where c.id = any (p_connection_ids)
    on conflict on constraint job_accounts_pkey do nothing
    returning n.account_id
  )
  insert into crm.jobs as j (kind, connection_id, object, mode, priority, payload, run_after)
  select p_kind, c.id, p_object, p_mode, crm._job_priority(p_kind, p_mode),
         coalesce(p_payload, '{}'::jsonb), coalesce(p_run_after, now())
  from unnest(p_connection_ids) as c(id)
  on conflict (kind, connection_id, (coalesce(object, ''))) where state in ('queued', 'running')
  do update set
    mode = case when j.state = 'queued' then crm._stronger_mode(j.mode, excluded.mode) else j.mode end,
    priority = case when j.state = 'queued' then least(j.priority, excluded.priority) else j.priority end,
    run_after = case when j.state = 'queued' then least(j.run_after, excluded.run_after) else j.run_after end,
    rerun_mode = case when j.state = 'running'
                      then crm._stronger_mode(j.rerun_mode, coalesce(excluded.mode, 'again')) end,
    payload = j.payload || excluded.payload,
    updated_at = now()
  returning j.id
$$;

-- Live workers: not finished, and holding an unexpired running job, or seen (start, claim) in
-- the last 30 seconds without a job whose lease expired (between jobs a worker claims at
-- once), or woken less than a minute ago and not started yet (a wake whose request failed stops
-- counting after a minute). A worker killed mid-job stops counting when its job's lease
-- expires, so it never holds a slot of max_workers longer than that. idle: live workers
-- holding no unexpired running job.
create or replace function crm._worker_counts()
  returns table (live integer, idle integer)
  language sql
  stable
  set search_path = ''
as $$
  with live as (
    select w.id
    from crm.job_workers w
    where w.finished_at is null
      and (exists (select 1 from crm.jobs j
                   where j.worker_id = w.id and j.state = 'running'
                     and j.lease_expires_at >= now())
           or (greatest(w.started_at, w.last_seen_at) > now() - interval '30 seconds'
               and not exists (select 1 from crm.jobs j
                               where j.worker_id = w.id and j.state = 'running'
                                 and j.lease_expires_at < now()))
           or (w.started_at is null and w.woken_at > now() - interval '1 minute'))
  )
  select (select count(*) from live)::integer,
         (select count(*) from live
          where not exists (select 1 from crm.jobs j
                            where j.worker_id = live.id and j.state = 'running'
                              and j.lease_expires_at >= now()))::integer
$$;

-- Jobs a worker could claim now: queued and due, or running with an expired lease, of active
-- connections.
create or replace function crm._due_jobs()
  returns integer
  language sql
  stable
  set search_path = ''
as $$
  select count(*)::integer
  from crm.jobs j
  join crm.connections c on c.id = j.connection_id and c.status = 'active'
  where (j.state = 'queued' and j.run_after <= now())
     or (j.state = 'running' and j.lease_expires_at < now())
$$;

-- The job, locked, if it is still running under this token; CRM11 otherwise.
create or replace function crm._held_job(p_job_id bigint, p_token bigint)
  returns crm.jobs
  language plpgsql
  set search_path = ''
as $$
declare
  j crm.jobs;
begin
  select * into j from crm.jobs x
  where x.id = p_job_id and x.lease_token = p_token and x.state = 'running'
  for update;
  if not found then
    raise exception using errcode = 'CRM11',
      message = format('job lease lost: job %s is not running under lease token %s', p_job_id, p_token),
      hint = 'Another worker took the job over after its lease expired, or it was cancelled; stop without writing.';
  end if;
  return j;
end
$$;

-- Puts a held job back in the queue at p_run_after; a rerun asked for meanwhile folds into it
-- (stronger mode, lower priority).
create or replace function crm._requeue_held_job(
  p_job crm.jobs,
  p_run_after timestamptz,
  p_attempts integer,
  p_progress jsonb,
  p_last_error text
)
  returns text
  language sql
  volatile
  set search_path = ''
as $$
  update crm.jobs j
  set state = 'queued', run_after = p_run_after, attempts = p_attempts,
      mode = case when p_job.rerun_mode in ('delta', 'full', 'drift')
                  then crm._stronger_mode(j.mode, p_job.rerun_mode) else j.mode end,
      priority = case when p_job.rerun_mode in ('delta', 'full', 'drift')
                      then least(j.priority, crm._job_priority(j.kind, p_job.rerun_mode)) else j.priority end,
      rerun_mode = null, lease_expires_at = null,
      progress = p_progress, last_error = p_last_error, updated_at = now()
  where j.id = p_job.id
  returning j.state
$$;

-- Enqueue -------------------------------------------------------------------------------------

-- Wakes workers after an enqueue. The job is stored whatever happens: without the Vault
-- secrets (CRM04) the wake is skipped with a warning, and the crm-workers cron job (which
-- does fail loudly) wakes them once the secrets are set.
create or replace function crm._wake_after_enqueue(p_reason text)
  returns integer
  language plpgsql
  set search_path = ''
as $$
begin
  return crm.wake_workers(p_reason);
exception when sqlstate 'CRM04' then
  raise warning 'crm: jobs queued, but no worker was woken: %', sqlerrm
    using hint = 'Set the Vault secrets project_url and service_role_key.';
  return 0;
end
$$;

create or replace function crm.enqueue_job(
  p_kind text,
  p_connection_id uuid,
  p_object text default null,
  p_mode text default null,
  p_payload jsonb default '{}'::jsonb,
  p_run_after timestamptz default now(),
  p_wake boolean default true
)
  returns bigint
  language plpgsql
  set search_path = ''
as $$
declare
  v_status text;
  v_id bigint;
begin
  if p_kind is null or p_kind not in ('inbound', 'outbound', 'inbox', 'setup') then
    raise exception using errcode = 'CRM01', message = format('unknown job kind %L', p_kind),
      hint = 'Use inbound, outbound, inbox or setup.';
  end if;
  if p_kind = 'inbound' and (p_object is null or p_object not in ('contacts', 'companies', 'deals', 'owners')) then
    raise exception using errcode = 'CRM01', message = format('unknown object %L for an inbound job', p_object);
  end if;
  if p_kind = 'outbound' and p_object is not null and p_object not in ('contacts', 'companies', 'deals') then
    raise exception using errcode = 'CRM01', message = format('unknown object %L for an outbound job', p_object);
  end if;
  if p_kind in ('inbox', 'setup') and p_object is not null then
    raise exception using errcode = 'CRM01', message = format('%s jobs are connection-wide: no object', p_kind);
  end if;
  if p_kind = 'inbound' and (p_mode is null or p_mode not in ('delta', 'full', 'drift')) then
    raise exception using errcode = 'CRM01', message = format('unknown inbound mode %L', p_mode),
      hint = 'Use delta, full or drift.';
  end if;
  if p_kind <> 'inbound' and p_mode is not null then
    raise exception using errcode = 'CRM01', message = format('%s jobs have no mode', p_kind);
  end if;
  if p_payload is null or jsonb_typeof(p_payload) <> 'object' then
    raise exception using errcode = 'CRM01', message = 'the payload must be a JSON object';
  end if;
  select c.status into v_status from crm.connections c where c.id = p_connection_id;
  if not found then
    raise exception using errcode = 'CRM02', message = format('connection %s not found', p_connection_id);
  end if;
  if v_status <> 'active' then
    raise exception using errcode = 'CRM06', message = format('connection %s is %s', p_connection_id, v_status),
      hint = 'Resume it first: select crm.resume_connection(''<id>'');';
  end if;
  select e.id into v_id
  from crm._enqueue_jobs(p_kind, array[p_connection_id], p_object, p_mode, p_payload, p_run_after) e(id);
  if p_wake then
    perform crm._wake_after_enqueue('enqueue');
  end if;
  return v_id;
end
$$;
comment on function crm.enqueue_job(text, uuid, text, text, jsonb, timestamptz, boolean) is
  'Queues a job, or merges into the live one (queued: stronger mode, lower priority, earlier run_after, payload merged; running: runs again when it finishes); wakes workers. Returns the job id. CRM01, CRM02, CRM06.';

-- One inbound job per active connection (or the one given) and enabled object (the
-- connection's settings.objects; all when absent), then one wake. Returns how many jobs were
-- queued or merged.
create or replace function crm.enqueue_inbound(
  p_objects text[],
  p_mode text,
  p_connection_id uuid default null,
  p_trigger text default 'cron'
)
  returns integer
  language plpgsql
  set search_path = ''
as $$
declare
  v_status text;
  v_object text;
  v_ids uuid[];
  v_count integer := 0;
  v_n integer;
begin
  if p_objects is null or cardinality(p_objects) = 0
     or not p_objects <@ array['contacts', 'companies', 'deals', 'owners'] then
    raise exception using errcode = 'CRM01', message = format('unknown objects %L', p_objects),
      hint = 'Use contacts, companies, deals, owners.';
  end if;
  if p_mode is null or p_mode not in ('delta', 'full', 'drift') then
    raise exception using errcode = 'CRM01', message = format('unknown inbound mode %L', p_mode);
  end if;
  if p_trigger is null or p_trigger not in ('cron', 'webhook', 'manual', 'backfill') then
    raise exception using errcode = 'CRM01', message = format('unknown trigger %L', p_trigger);
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
  -- Dependency order (owners before what points at them, companies before contacts and deals),
  -- so that jobs of one connection queued together are also claimed in that order.
  foreach v_object in array array['owners', 'companies', 'contacts', 'deals'] loop
    continue when not v_object = any (p_objects);
    select array_agg(c.id order by c.id) into v_ids
    from crm.connections c
    where c.status = 'active' and (p_connection_id is null or c.id = p_connection_id)
      and (c.settings -> 'objects' is null or c.settings -> 'objects' ? v_object);
    continue when v_ids is null;
    select count(*)::integer into v_n
    from crm._enqueue_jobs('inbound', v_ids, v_object, p_mode,
                           jsonb_build_object('trigger', p_trigger), now());
    v_count := v_count + v_n;
  end loop;
  if v_count > 0 then
    perform crm._wake_after_enqueue(p_trigger);
  end if;
  return v_count;
end
$$;
comment on function crm.enqueue_inbound(text[], text, uuid, text) is
  'Queues (or merges) one inbound job per active connection and enabled object, then wakes workers once. Returns the number of jobs. CRM01, CRM02, CRM06.';

-- Claim ---------------------------------------------------------------------------------------

-- One statement: the first eligible job by priority, then the account served least recently,
-- then run_after and id, locked with FOR UPDATE SKIP LOCKED (a claimer never waits for another
-- claimer's row). Eligible: queued and due, or running with an expired lease (a takeover: the
-- dead holder's attempt counts as failed); only jobs of active connections; p_connection_id
-- narrows it to one connection (admin and test runs). Expired jobs on their last attempt
-- become dead letters instead. A taken-over or dead-lettered inbound job's stream is freed
-- (crm.inbound_leases: no holder, so its old run's writes fail with CRM10) and its run closed.
-- The claim also marks the account served and the worker seen. p_lease NULL: the engine
-- setting job_lease. A claim waits for nothing another claimer holds, with one exception: a
-- takeover of an inbound job waits for the old holder's page write in flight (it holds the
-- stream's lease row), then frees the stream.
create or replace function crm.claim_job(
  p_worker_id bigint,
  p_lease interval default null,
  p_connection_id uuid default null
)
  returns table (job_id bigint, kind text, connection_id uuid, account_id uuid, object text,
                 mode text, payload jsonb, lease_token bigint, lease_expires_at timestamptz,
                 attempts integer, claims integer)
  language plpgsql
  set search_path = ''
as $$
declare
  v_lease interval;
begin
  select coalesce(p_lease, e.job_lease) into v_lease from crm.engine_settings e where e.id;
  if v_lease is null or v_lease <= interval '0' then
    raise exception using errcode = 'CRM01', message = 'the lease must be a positive interval';
  end if;
  if p_worker_id is null or not exists (select 1 from crm.job_workers w where w.id = p_worker_id) then
    raise exception using errcode = 'CRM01', message = format('unknown worker %s', p_worker_id),
      hint = 'Workers register with crm.worker_started().';
  end if;
  return query
  with expired as (
    update crm.jobs j
    set state = 'dead', attempts = j.attempts + 1, finished_at = now(), rerun_mode = null,
        lease_expires_at = null, updated_at = now(),
        last_error = format('lease expired on the last attempt (%s of %s): worker %s stopped heartbeating',
                            j.attempts + 1, j.max_attempts, j.worker_id)
    where j.id in (
      select x.id from crm.jobs x
      where x.state = 'running' and x.lease_expires_at < now() and x.attempts + 1 >= x.max_attempts
        and (p_connection_id is null or x.connection_id = p_connection_id)
      for update skip locked)
    returning j.id, j.kind, j.connection_id, j.object
  ),
  picked as (
    select j.id, j.state as prev_state, j.worker_id as prev_worker, c.account_id
    from crm.jobs j
    join crm.connections c on c.id = j.connection_id and c.status = 'active'
    left join crm.job_accounts a on a.account_id = c.account_id
    where ((j.state = 'queued' and j.run_after <= now())
        or (j.state = 'running' and j.lease_expires_at < now() and j.attempts + 1 < j.max_attempts))
      and (p_connection_id is null or j.connection_id = p_connection_id)
      -- Inbound streams of one connection run in dependency order (owners, companies,
      -- contacts, deals) so references resolve, as one request walking them in turn did: a
      -- stream waits while an earlier one of its connection is running or due (not while that
      -- one waits out a backoff).
      and not (j.kind = 'inbound' and exists (
        select 1 from crm.jobs d
        where d.connection_id = j.connection_id and d.kind = 'inbound' and d.id <> j.id
          and d.state in ('queued', 'running') and d.run_after <= now()
          and array_position(array['owners', 'companies', 'contacts', 'deals'], d.object)
            < array_position(array['owners', 'companies', 'contacts', 'deals'], j.object)))
    order by j.priority, a.last_served_at nulls first, j.run_after, j.id
    limit 1
    for update of j skip locked
  ),
  claimed as (
    update crm.jobs j
    set state = 'running',
        attempts = j.attempts + case when p.prev_state = 'running' then 1 else 0 end,
        last_error = case when p.prev_state = 'running'
          then format('lease expired: worker %s stopped heartbeating; taken over by worker %s',
                      p.prev_worker, p_worker_id)
          else j.last_error end,
        claims = j.claims + 1, lease_token = nextval('crm.job_lease_token_seq'),
        lease_expires_at = now() + v_lease, worker_id = p_worker_id, claimed_at = now(),
        heartbeat_at = now(), updated_at = now()
    from picked p
    where j.id = p.id
    returning j.id, j.kind, j.connection_id, p.account_id, j.object, j.mode, j.payload,
              j.lease_token, j.lease_expires_at, j.attempts, j.claims, p.prev_state,
              p.prev_worker
  ),
  -- The worker whose lease expired is gone (killed, or stuck past its lease): it no longer
  -- counts as live, so it does not hold a slot of max_workers. Were it still running, its next
  -- verb gets CRM11 and it finishes as usual.
  gone as (
    update crm.job_workers w
    set finished_at = now(),
        stats = coalesce(w.stats, '{}'::jsonb) || jsonb_build_object('lost_job', t.id)
    from claimed t
    where t.prev_state = 'running' and w.id = t.prev_worker and w.id <> p_worker_id
      and w.finished_at is null
    returning w.id
  ),
  lost_streams as (
    select t.connection_id, t.object from claimed t where t.prev_state = 'running' and t.kind = 'inbound'
    union all
    select e.connection_id, e.object from expired e where e.kind = 'inbound'
  ),
  old_runs as (
    select l.run_id from crm.inbound_leases l
    join lost_streams s on s.connection_id = l.connection_id and s.object = l.object
    where l.run_id is not null
  ),
  freed as (
    update crm.inbound_leases l
    set run_id = null, token = null, expires_at = '-infinity'
    from lost_streams s
    where l.connection_id = s.connection_id and l.object = s.object
    returning l.connection_id
  ),
  closed as (
    update crm.sync_log s
    set status = 'failed', finished_at = now(),
        duration_ms = (extract(epoch from now() - s.started_at) * 1000)::bigint,
        error = jsonb_build_object('message',
          'lease lost: the job''s lease expired and the job was taken over')
    from old_runs o
    where s.id = o.run_id and s.status = 'running'
    returning s.id
  ),
  served as (
    update crm.job_accounts a set last_served_at = now()
    where a.account_id in (select x.account_id from crm.job_accounts x
                           join claimed t on t.account_id = x.account_id
                           for update of x skip locked)
    returning a.account_id
  ),
  -- Jobs not queued through enqueue (inserted by hand) may have no account row yet.
  first_served as (
    insert into crm.job_accounts as n (account_id, last_served_at)
    select t.account_id, now() from claimed t
    where not exists (select 1 from crm.job_accounts x where x.account_id = t.account_id)
    on conflict on constraint job_accounts_pkey do nothing
    returning n.account_id
  ),
  seen as (
    update crm.job_workers w set last_seen_at = now()
    where w.id = p_worker_id
    returning w.id
  )
  select t.id, t.kind, t.connection_id, t.account_id, t.object, t.mode, t.payload, t.lease_token,
         t.lease_expires_at, t.attempts, t.claims
  from claimed t;
end
$$;
comment on function crm.claim_job(bigint, interval, uuid) is
  'Claims the next job (0 or 1 row; FOR UPDATE SKIP LOCKED): priority, then least recently served account, run_after, id. Takes over expired leases (freeing an inbound stream''s lease). CRM01.';

-- Held-job verbs --------------------------------------------------------------------------------

create or replace function crm.heartbeat_job(
  p_job_id bigint,
  p_token bigint,
  p_lease interval default null,
  p_progress jsonb default null
)
  returns timestamptz
  language plpgsql
  set search_path = ''
as $$
declare
  j crm.jobs;
  v_lease interval;
  v_expires timestamptz;
begin
  select coalesce(p_lease, e.job_lease) into v_lease from crm.engine_settings e where e.id;
  if v_lease is null or v_lease <= interval '0' then
    raise exception using errcode = 'CRM01', message = 'the lease must be a positive interval';
  end if;
  j := crm._held_job(p_job_id, p_token);
  update crm.jobs x
  set lease_expires_at = now() + v_lease, heartbeat_at = now(),
      progress = coalesce(p_progress, x.progress), updated_at = now()
  where x.id = j.id
  returning x.lease_expires_at into v_expires;
  update crm.job_workers w set last_seen_at = now() where w.id = j.worker_id;
  return v_expires;
end
$$;
comment on function crm.heartbeat_job(bigint, bigint, interval, jsonb) is
  'Extends a held job''s lease (and records progress); returns the new expiry. CRM11 when not held with this token.';

-- 'done': finished (queued again when a rerun was asked for meanwhile). 'more': a continuation,
-- queued and due now with its attempts reset (the worker's budget ended, not the job).
-- p_details merges into progress. Returns the new state.
create or replace function crm.finish_job(
  p_job_id bigint,
  p_token bigint,
  p_outcome text,
  p_details jsonb default null
)
  returns text
  language plpgsql
  set search_path = ''
as $$
declare
  j crm.jobs;
  v_mode text;
  v_state text;
begin
  if p_outcome is null or p_outcome not in ('done', 'more') then
    raise exception using errcode = 'CRM01', message = format('unknown job outcome %L', p_outcome),
      hint = 'Use done or more.';
  end if;
  j := crm._held_job(p_job_id, p_token);
  if p_outcome = 'more' then
    return crm._requeue_held_job(j, now(), 0, coalesce(j.progress, '{}'::jsonb) || coalesce(p_details, '{}'::jsonb),
                                 null);
  end if;
  if j.rerun_mode is not null then
    v_mode := case when j.rerun_mode = 'again' then j.mode else j.rerun_mode end;
    update crm.jobs x
    set state = 'queued', mode = v_mode, priority = crm._job_priority(x.kind, v_mode),
        run_after = now(), attempts = 0, rerun_mode = null, lease_expires_at = null,
        progress = p_details, last_error = null, updated_at = now()
    where x.id = j.id
    returning x.state into v_state;
    return v_state;
  end if;
  update crm.jobs x
  set state = 'done', finished_at = now(), lease_expires_at = null,
      progress = coalesce(x.progress, '{}'::jsonb) || coalesce(p_details, '{}'::jsonb), updated_at = now()
  where x.id = j.id
  returning x.state into v_state;
  return v_state;
end
$$;
comment on function crm.finish_job(bigint, bigint, text, jsonb) is
  'Ends a held job: done (or queued again for a rerun) | more (continuation, due now, attempts reset). Returns the new state. CRM01, CRM11.';

-- One failed attempt: dead when permanent or out of attempts, else queued after p_retry_after
-- or the backoff 30 s * 2^(attempts-1) (at most an hour, up to 10 % jitter: crm._backoff).
create or replace function crm.fail_job(
  p_job_id bigint,
  p_token bigint,
  p_error text,
  p_retry_after interval default null,
  p_permanent boolean default false
)
  returns text
  language plpgsql
  set search_path = ''
as $$
declare
  j crm.jobs;
  v_attempts integer;
  v_error text := coalesce(nullif(p_error, ''), 'unknown error');
  v_state text;
begin
  if p_retry_after is not null and p_retry_after < interval '0' then
    raise exception using errcode = 'CRM01', message = 'retry_after must not be negative';
  end if;
  j := crm._held_job(p_job_id, p_token);
  v_attempts := j.attempts + 1;
  if coalesce(p_permanent, false) or v_attempts >= j.max_attempts then
    update crm.jobs x
    set state = 'dead', attempts = v_attempts, finished_at = now(), rerun_mode = null,
        lease_expires_at = null, last_error = v_error, updated_at = now()
    where x.id = j.id
    returning x.state into v_state;
    return v_state;
  end if;
  return crm._requeue_held_job(j,
    now() + coalesce(p_retry_after, crm._backoff(v_attempts, interval '30 seconds', interval '1 hour')),
    v_attempts, j.progress, v_error);
end
$$;
comment on function crm.fail_job(bigint, bigint, text, interval, boolean) is
  'Records a failed attempt: dead when permanent or at max_attempts, else queued after retry_after or exponential backoff (30 s doubling, 1 h cap). Returns the new state. CRM01, CRM11.';

-- Not a failure (the account's rate budget is paused, the stream is held by another run):
-- queued again at p_until without counting an attempt; the reason goes to progress.deferred.
create or replace function crm.defer_job(
  p_job_id bigint,
  p_token bigint,
  p_until timestamptz,
  p_reason text
)
  returns text
  language plpgsql
  set search_path = ''
as $$
declare
  j crm.jobs;
begin
  if p_until is null then
    raise exception using errcode = 'CRM01', message = 'defer_job needs a time to run again';
  end if;
  j := crm._held_job(p_job_id, p_token);
  return crm._requeue_held_job(j, p_until, j.attempts,
    coalesce(j.progress, '{}'::jsonb)
      || jsonb_build_object('deferred', jsonb_build_object('reason', p_reason, 'until', p_until)),
    j.last_error);
end
$$;
comment on function crm.defer_job(bigint, bigint, timestamptz, text) is
  'Puts a held job back in the queue until p_until without counting an attempt (budget paused, stream busy). Returns the new state. CRM01, CRM11.';

-- Admin verbs -----------------------------------------------------------------------------------

-- Queues a dead job again (attempts reset). When its stream has a live job by now, the dead one
-- merges into that (its mode and payload) and is marked cancelled with a pointer. Returns the
-- id of the job that will run it. No wake.
create or replace function crm._replay_job(p_job_id bigint)
  returns bigint
  language plpgsql
  set search_path = ''
as $$
declare
  j crm.jobs;
  v_live bigint;
begin
  select * into j from crm.jobs x where x.id = p_job_id for update;
  if not found or j.state <> 'dead' then
    raise exception using errcode = 'CRM12',
      message = format('job %s is not dead (%s)', p_job_id, coalesce(j.state, 'not found'));
  end if;
  begin
    update crm.jobs x
    set state = 'queued', attempts = 0, run_after = now(), finished_at = null, updated_at = now()
    where x.id = j.id;
    return j.id;
  exception when unique_violation then
    select e.id into v_live
    from crm._enqueue_jobs(j.kind, array[j.connection_id], j.object, j.mode, j.payload, now()) e(id);
    update crm.jobs x
    set state = 'cancelled', finished_at = now(), updated_at = now(),
        last_error = coalesce(x.last_error || ' ', '') || format('(replayed into live job %s)', v_live)
    where x.id = j.id;
    return v_live;
  end;
end
$$;

create or replace function crm.replay_job(p_job_id bigint)
  returns bigint
  language plpgsql
  set search_path = ''
as $$
declare
  v_id bigint;
begin
  v_id := crm._replay_job(p_job_id);
  perform crm._wake_after_enqueue('replay');
  return v_id;
end
$$;
comment on function crm.replay_job(bigint) is
  'Queues a dead job again (attempts reset; merged into its stream''s live job if there is one) and wakes workers. Returns the id of the job that runs it. CRM12 when not dead.';

create or replace function crm.replay_dead_jobs(p_connection_id uuid default null)
  returns integer
  language plpgsql
  set search_path = ''
as $$
declare
  v_id bigint;
  v_count integer := 0;
begin
  for v_id in
    select j.id from crm.jobs j
    where j.state = 'dead' and (p_connection_id is null or j.connection_id = p_connection_id)
    order by j.id
  loop
    perform crm._replay_job(v_id);
    v_count := v_count + 1;
  end loop;
  if v_count > 0 then
    perform crm._wake_after_enqueue('replay');
  end if;
  return v_count;
end
$$;
comment on function crm.replay_dead_jobs(uuid) is
  'Queues every dead job again (optionally of one connection), then wakes workers; returns how many.';

-- Queued and running jobs of a connection (optionally one kind) become cancelled; a worker
-- running one gets CRM11 at its next heartbeat or finish (it closes its own run first). Returns
-- how many.
create or replace function crm.cancel_jobs(p_connection_id uuid, p_kind text default null)
  returns integer
  language plpgsql
  set search_path = ''
as $$
declare
  v_count integer;
begin
  if p_connection_id is null then
    raise exception using errcode = 'CRM01', message = 'cancel_jobs needs a connection id';
  end if;
  if p_kind is not null and p_kind not in ('inbound', 'outbound', 'inbox', 'setup') then
    raise exception using errcode = 'CRM01', message = format('unknown job kind %L', p_kind);
  end if;
  if not exists (select 1 from crm.connections c where c.id = p_connection_id) then
    raise exception using errcode = 'CRM02', message = format('connection %s not found', p_connection_id);
  end if;
  update crm.jobs j
  set state = 'cancelled', finished_at = now(), rerun_mode = null, lease_expires_at = null,
      updated_at = now()
  where j.connection_id = p_connection_id and j.state in ('queued', 'running')
    and (p_kind is null or j.kind = p_kind);
  get diagnostics v_count = row_count;
  return v_count;
end
$$;
comment on function crm.cancel_jobs(uuid, text) is
  'Cancels the queued and running jobs of a connection (optionally one kind); running workers get CRM11. Returns how many. CRM01, CRM02.';

-- Workers ---------------------------------------------------------------------------------------

-- Wakes as many workers as the due backlog needs beyond the idle live ones, within
-- max_workers live workers: n = max(0, min(max_workers - live, due - idle)). Serialised by a
-- transaction-level advisory lock, so concurrent enqueues do not each wake a full set: the
-- next waker counts the rows of the previous one once it has committed. Each wake is a
-- job_workers row and a pg_net POST to crm-sync-bidirectional {"worker": true, "worker_id": id}
-- (sent when the transaction commits). Returns how many were woken. CRM04 without the Vault
-- secrets. Security definer: crm._invoke_edge_function (Vault) is not granted to callers.
create or replace function crm.wake_workers(p_reason text default 'enqueue')
  returns integer
  language plpgsql
  security definer
  set search_path = ''
as $$
declare
  v_max integer;
  v_due integer;
  w record;
  v_n integer;
  v_id bigint;
begin
  -- 'crm.wake_workers' as a lock key: hashtext is stable across sessions.
  perform pg_advisory_xact_lock(hashtext('crm.wake_workers'));
  select e.max_workers into v_max from crm.engine_settings e where e.id;
  select * into w from crm._worker_counts();
  v_due := crm._due_jobs();
  v_n := greatest(0, least(v_max - w.live, v_due - w.idle));
  for i in 1 .. v_n loop
    insert into crm.job_workers (woken_at, reason) values (now(), coalesce(p_reason, 'enqueue'))
    returning id into v_id;
    update crm.job_workers x
    set request_id = crm._invoke_edge_function('crm-sync-bidirectional',
                                               jsonb_build_object('worker', true, 'worker_id', v_id))
    where x.id = v_id;
  end loop;
  return v_n;
end
$$;
comment on function crm.wake_workers(text) is
  'Wakes min(max_workers - live, due - idle) workers through pg_net (crm-sync-bidirectional {"worker": true, "worker_id"}); returns how many. CRM04.';

-- A worker starts: its woken row, or a new one for a worker nobody woke (NULL). Returns its id.
create or replace function crm.worker_started(p_worker_id bigint default null)
  returns bigint
  language plpgsql
  set search_path = ''
as $$
declare
  v_id bigint;
begin
  if p_worker_id is null then
    insert into crm.job_workers (started_at, last_seen_at, reason) values (now(), now(), 'manual')
    returning id into v_id;
    return v_id;
  end if;
  update crm.job_workers w
  set started_at = coalesce(w.started_at, now()), last_seen_at = now()
  where w.id = p_worker_id
  returning w.id into v_id;
  if v_id is null then
    raise exception using errcode = 'CRM01', message = format('unknown worker %s', p_worker_id);
  end if;
  return v_id;
end
$$;
comment on function crm.worker_started(bigint) is
  'Marks a woken worker started (or registers one nobody woke when NULL); returns its id. CRM01.';

create or replace function crm.worker_finished(p_worker_id bigint, p_stats jsonb default null)
  returns void
  language plpgsql
  set search_path = ''
as $$
begin
  update crm.job_workers w
  set finished_at = now(), last_seen_at = now(), stats = p_stats
  where w.id = p_worker_id;
  if not found then
    raise exception using errcode = 'CRM01', message = format('unknown worker %s', p_worker_id);
  end if;
end
$$;
comment on function crm.worker_finished(bigint, jsonb) is
  'Marks a worker finished with its stats (it no longer counts as live). CRM01.';

-- Observability ---------------------------------------------------------------------------------

-- queued: due now; waiting: queued for later (backoff, deferred, continuation of a paused
-- budget); held: queued for a connection that is not active (paused, errored).
create or replace function crm.engine_status()
  returns table (max_workers integer, live_workers integer, queued integer, waiting integer,
                 running integer, dead integer, held integer, oldest_due_age interval)
  language sql
  stable
  set search_path = ''
as $$
  select e.max_workers, (select w.live from crm._worker_counts() w),
         count(*) filter (where j.state = 'queued' and c.status = 'active' and j.run_after <= now())::integer,
         count(*) filter (where j.state = 'queued' and c.status = 'active' and j.run_after > now())::integer,
         count(*) filter (where j.state = 'running')::integer,
         count(*) filter (where j.state = 'dead')::integer,
         count(*) filter (where j.state = 'queued' and c.status <> 'active')::integer,
         now() - min(j.run_after) filter (where j.state = 'queued' and c.status = 'active' and j.run_after <= now())
  from crm.engine_settings e
  left join crm.jobs j on j.state in ('queued', 'running', 'dead')
  left join crm.connections c on c.id = j.connection_id
  where e.id
  group by e.max_workers
$$;
comment on function crm.engine_status() is
  'Engine totals: max_workers, live workers, jobs due, waiting, running, dead, held (inactive connection), oldest due job''s age.';

-- Per connection, kind and object with live or dead jobs. Security invoker: an authenticated
-- user sees its own account's jobs only (RLS).
create or replace function crm.job_status()
  returns table (connection_id uuid, account_id uuid, kind text, object text, queued integer,
                 waiting integer, running integer, dead integer, oldest_due_age interval,
                 last_error text, deferred_reason text)
  language sql
  stable
  set search_path = ''
as $$
  select j.connection_id, c.account_id, j.kind, j.object,
         count(*) filter (where j.state = 'queued' and j.run_after <= now())::integer,
         count(*) filter (where j.state = 'queued' and j.run_after > now())::integer,
         count(*) filter (where j.state = 'running')::integer,
         count(*) filter (where j.state = 'dead')::integer,
         now() - min(j.run_after) filter (where j.state = 'queued' and j.run_after <= now()),
         (array_agg(j.last_error order by j.updated_at desc) filter (where j.last_error is not null))[1],
         (array_agg(j.progress -> 'deferred' ->> 'reason' order by j.updated_at desc)
            filter (where j.state = 'queued' and j.run_after > now() and j.progress ? 'deferred'))[1]
  from crm.jobs j
  join crm.connections c on c.id = j.connection_id
  where j.state in ('queued', 'running', 'dead')
  group by j.connection_id, c.account_id, j.kind, j.object
  order by c.account_id, j.connection_id, j.kind,
           array_position(array['owners', 'companies', 'contacts', 'deals'], j.object)
$$;
comment on function crm.job_status() is
  'Per connection, kind and object: jobs due, waiting, running, dead, oldest due age, latest error and deferral reason.';

-- Keeps p_keep of finished jobs (done, cancelled) and finished workers; dead jobs stay until
-- replayed. Fairness rows of accounts without connections go. Called by the crm-cleanup job.
create or replace function crm.purge_jobs(p_keep interval default '1 day')
  returns jsonb
  language plpgsql
  set search_path = ''
as $$
declare
  v_jobs bigint;
  v_workers bigint;
  v_accounts bigint;
begin
  delete from crm.jobs j where j.state in ('done', 'cancelled') and j.finished_at < now() - p_keep;
  get diagnostics v_jobs = row_count;
  delete from crm.job_workers w
  where coalesce(w.finished_at, w.last_seen_at, w.woken_at) < now() - p_keep
    and (w.finished_at is not null or coalesce(w.last_seen_at, w.woken_at) < now() - interval '1 day');
  get diagnostics v_workers = row_count;
  delete from crm.job_accounts a
  where not exists (select 1 from crm.connections c where c.account_id = a.account_id);
  get diagnostics v_accounts = row_count;
  return jsonb_build_object('jobs', v_jobs, 'job_workers', v_workers, 'job_accounts', v_accounts);
end
$$;
comment on function crm.purge_jobs(interval) is
  'Deletes done and cancelled jobs and finished workers older than p_keep (dead jobs stay), and fairness rows of accounts without connections.';

-- Grants ----------------------------------------------------------------------------------------

revoke all on function crm._job_priority(text, text), crm._stronger_mode(text, text),
  crm._enqueue_jobs(text, uuid[], text, text, jsonb, timestamptz), crm._worker_counts(),
  crm._due_jobs(), crm._held_job(bigint, bigint),
  crm._requeue_held_job(crm.jobs, timestamptz, integer, jsonb, text),
  crm._wake_after_enqueue(text),
  crm.enqueue_job(text, uuid, text, text, jsonb, timestamptz, boolean),
  crm.enqueue_inbound(text[], text, uuid, text), crm.claim_job(bigint, interval, uuid),
  crm.heartbeat_job(bigint, bigint, interval, jsonb), crm.finish_job(bigint, bigint, text, jsonb),
  crm.fail_job(bigint, bigint, text, interval, boolean),
  crm.defer_job(bigint, bigint, timestamptz, text), crm._replay_job(bigint), crm.replay_job(bigint),
  crm.replay_dead_jobs(uuid), crm.cancel_jobs(uuid, text), crm.wake_workers(text),
  crm.worker_started(bigint), crm.worker_finished(bigint, jsonb), crm.engine_status(),
  crm.job_status(), crm.purge_jobs(interval) from public;
grant execute on function crm._job_priority(text, text), crm._stronger_mode(text, text),
  crm._enqueue_jobs(text, uuid[], text, text, jsonb, timestamptz), crm._worker_counts(),
  crm._due_jobs(), crm._held_job(bigint, bigint),
  crm._requeue_held_job(crm.jobs, timestamptz, integer, jsonb, text),
  crm._wake_after_enqueue(text),
  crm.enqueue_job(text, uuid, text, text, jsonb, timestamptz, boolean),
  crm.enqueue_inbound(text[], text, uuid, text), crm.claim_job(bigint, interval, uuid),
  crm.heartbeat_job(bigint, bigint, interval, jsonb), crm.finish_job(bigint, bigint, text, jsonb),
  crm.fail_job(bigint, bigint, text, interval, boolean),
  crm.defer_job(bigint, bigint, timestamptz, text), crm._replay_job(bigint), crm.replay_job(bigint),
  crm.replay_dead_jobs(uuid), crm.cancel_jobs(uuid, text), crm.wake_workers(text),
  crm.worker_started(bigint), crm.worker_finished(bigint, jsonb), crm.engine_status(),
  crm.purge_jobs(interval) to service_role;
grant execute on function crm.job_status() to authenticated, service_role;
