-- Why: with the job queue (20261204020100) a cron tick or an admin no longer calls one function
-- that syncs every connection; it enqueues one inbound job per connection and object
-- (crm.enqueue_inbound, idempotent) and wakes workers through pg_net. The scheduled inbound jobs
-- become plain SQL, a minute job wakes workers for what became due meanwhile (continuations,
-- backoffs, deferrals, expired leases), and public.trigger_crm_sync enqueues. Outbound pushes
-- are not jobs yet (issue 12): crm-outbound and trigger_crm_sync('outbound') still call the
-- function as before.
--
--   job                          schedule      what (changed here unless marked "as before")
--   crm-inbound-contacts         */5 * * * *   enqueue contacts delta
--   crm-inbound-companies-deals  */15 * * * *  enqueue companies and deals delta
--   crm-inbound-owners           0 6 * * *     enqueue owners full
--   crm-drift-check              7 * * * *     enqueue contacts, companies, deals drift
--   crm-retry-failures           37 * * * *    enqueue a delta of every object (the deltas
--                                              re-read due crm.inbound_failures)
--   crm-workers                  * * * * *     crm.wake_workers('cron') (new)
--   crm-cleanup                  23 3 * * *    crm.cleanup() and crm.purge_jobs()
--   crm-outbound                 */10 * * * *  as before: POST crm-sync-bidirectional outbound
--   crm-health-check             */5 * * * *   as before
--
-- The objects a connection syncs are its settings.objects, as before. cron.schedule(name, ...)
-- replaces the job of that name.

select j.name, cron.schedule(j.name, j.schedule, j.command)
from (values
  ('crm-inbound-contacts', '*/5 * * * *',
   $$select crm.enqueue_inbound(array['contacts'], 'delta')$$),
  ('crm-inbound-companies-deals', '*/15 * * * *',
   $$select crm.enqueue_inbound(array['companies', 'deals'], 'delta')$$),
  ('crm-inbound-owners', '0 6 * * *',
   $$select crm.enqueue_inbound(array['owners'], 'full')$$),
  ('crm-drift-check', '7 * * * *',
   $$select crm.enqueue_inbound(array['contacts', 'companies', 'deals'], 'drift')$$),
  ('crm-retry-failures', '37 * * * *',
   $$select crm.enqueue_inbound(array['owners', 'companies', 'contacts', 'deals'], 'delta')$$),
  ('crm-workers', '* * * * *',
   $$select crm.wake_workers('cron')$$),
  ('crm-cleanup', '23 3 * * *',
   $$select crm.cleanup() || crm.purge_jobs()$$)
) as j(name, schedule, command);

-- Runs one sync now.
--   kind: contacts | companies | deals (inbound delta), owners (inbound full), all (a delta of
--         every object, and the outbound push), outbound (push pending local changes)
--   connection_id: only this connection (default: every active connection)
-- Returns, for the inbound kinds, how many jobs were queued or merged (crm.job_status() shows
-- them); for 'outbound' the pg_net request id of the function call (net._http_response has its
-- answer), until outbound runs as jobs.
create or replace function public.trigger_crm_sync(kind text, connection_id uuid default null)
  returns bigint
  language plpgsql
  security definer
  set search_path = ''
as $$
declare
  v_objects text[];
  v_jobs integer;
  v_body jsonb;
  v_status text;
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
  if v_objects is not null then
    -- CRM02 / CRM06 for an unknown or inactive connection.
    v_jobs := crm.enqueue_inbound(v_objects, case trigger_crm_sync.kind when 'owners' then 'full' else 'delta' end,
                                  trigger_crm_sync.connection_id, 'manual');
    if trigger_crm_sync.kind <> 'all' then
      return v_jobs;
    end if;
  end if;
  v_body := '{"direction": "outbound", "trigger": "manual"}'::jsonb;
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
  if trigger_crm_sync.kind = 'outbound' then
    return crm._invoke_edge_function('crm-sync-bidirectional', v_body);
  end if;
  perform crm._invoke_edge_function('crm-sync-bidirectional', v_body);
  return v_jobs;
end
$$;
comment on function public.trigger_crm_sync(text, uuid) is
  'Runs one sync now: enqueues inbound jobs (contacts|companies|deals|owners|all; returns how many) or calls the function for outbound (returns the pg_net request id). CRM01, CRM02, CRM06.';
revoke all on function public.trigger_crm_sync(text, uuid) from public, anon, authenticated;
grant execute on function public.trigger_crm_sync(text, uuid) to service_role;
