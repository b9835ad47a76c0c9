-- Why: crm-webhook receives the CRMs' webhooks, but nothing told the CRMs to send them. The
-- engine now registers a connection's subscriptions itself (supabase/functions/_shared/webhooks/
-- subscribe*.ts): Pipedrive webhooks v2 through its API with generated basic-auth credentials,
-- HubSpot app subscriptions through the webhooks settings API, and for Salesforce the listener
-- URL token the admin pastes into an Outbound Message. It runs as a job of kind 'setup'
-- (crm.jobs, 20261204020100; lane 20), so it is retried with the queue's backoff, and its
-- outcome is recorded on the connection:
--   crm.register_webhooks(connection)   the admin verb (service role): queue (or merge into) the
--                                       connection's setup job with {webhooks: true}, wake a
--                                       worker, mark webhook_setup queued; returns the job id
--   crm.connections.webhook_setup       the last outcome: {state: queued|registered|manual_step|
--                                       failed, at, provider, endpoint, error, ...}. Never a
--                                       secret: the Salesforce endpoint is shown with its token
--                                       masked (the token is in the encrypted credentials).

alter table crm.connections
  add column webhook_setup jsonb,
  add constraint connections_webhook_setup_check
    check (webhook_setup is null or (jsonb_typeof(webhook_setup) = 'object'
                                     and webhook_setup ->> 'state' in
                                       ('queued', 'registered', 'manual_step', 'failed')));
comment on column crm.connections.webhook_setup is
  'Last outcome of the webhook registration (crm.register_webhooks): state queued|registered|manual_step|failed, at, provider, endpoint (secrets masked), error.';
-- The account's users may read how their connection's webhooks are set up (no secret in it).
grant select (webhook_setup) on crm.connections to authenticated;

create or replace function crm.register_webhooks(p_connection_id uuid)
  returns bigint
  language plpgsql
  set search_path = ''
as $$
declare
  v_id bigint;
begin
  if p_connection_id is null then
    raise exception using errcode = 'CRM01', message = 'register_webhooks needs a connection id';
  end if;
  -- CRM02 (unknown connection) and CRM06 (not active) come from enqueue_job.
  v_id := crm.enqueue_job('setup', p_connection_id, null, null,
                          jsonb_build_object('webhooks', true, 'trigger', 'manual'), now(), true);
  update crm.connections c
  set webhook_setup = jsonb_build_object(
        'state', 'queued', 'queued_at', now(), 'job_id', v_id,
        -- The outcome before this request, kept while the job waits.
        'last', case when c.webhook_setup ->> 'state' = 'queued' then c.webhook_setup -> 'last'
                     else c.webhook_setup end)
  where c.id = p_connection_id;
  return v_id;
end
$$;
comment on function crm.register_webhooks(uuid) is
  'Queues the connection''s webhook registration (a setup job with {webhooks: true}) and wakes a worker; the outcome lands in crm.connections.webhook_setup. Returns the job id. CRM01, CRM02, CRM06.';

revoke all on function crm.register_webhooks(uuid) from public, anon, authenticated;
grant execute on function crm.register_webhooks(uuid) to service_role;
