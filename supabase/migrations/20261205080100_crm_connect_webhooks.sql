-- Why: a disconnect dropped the credentials but left the webhook routes in place: the lookup
-- hashes (webhook_token_hash, webhook_user_hash) still named the connection, and
-- webhook_setup still said "registered". Issue 14 asks that a disconnect removes the webhook
-- subscriptions. crm-connect now deletes what the provider's API lets it delete (Pipedrive's
-- webhooks, before the credentials go); this migration makes the database side match:
--   * crm.disconnect_connection also clears both lookup hashes, so the old Salesforce listener
--     URL and the old Pipedrive basic-auth user route to nothing (crm-webhook answers 401 and
--     stores nothing), and records webhook_setup {state: 'removed', ...}.
--   * webhook_setup admits the state 'removed'.
-- Events of a connection that is not active were already never handed to the inbox
-- (crm.claim_webhook_events, 20261205020200); nothing changes there.

alter table crm.connections drop constraint connections_webhook_setup_check;
alter table crm.connections add constraint connections_webhook_setup_check
  check (webhook_setup is null or (jsonb_typeof(webhook_setup) = 'object'
                                   and webhook_setup ->> 'state' in
                                     ('queued', 'registered', 'manual_step', 'failed', 'removed')));
comment on column crm.connections.webhook_setup is
  'Last outcome of the webhook registration (crm.register_webhooks): state queued|registered|manual_step|failed, or removed by a disconnect; at, provider, endpoint (secrets masked), error.';

-- Same contract as 20261205060100 (NULL: not the account's connection), plus the routes.
create or replace function crm.disconnect_connection(
  p_account_id uuid,
  p_connection_id uuid,
  p_purge boolean default false
)
  returns text
  language plpgsql
  set search_path = ''
as $$
declare
  v_id uuid;
begin
  -- Credentials lock first (see crm.connect_connection): a refresh in flight finishes before
  -- the credentials are dropped, and cannot write them back afterwards.
  perform crm.lock_credentials(c.id) from crm.connections c
  where c.id = p_connection_id and c.account_id = p_account_id;
  select c.id into v_id from crm.connections c
  where c.id = p_connection_id and c.account_id = p_account_id
  for update;
  if not found then
    return null;
  end if;
  perform crm.cancel_jobs(v_id);
  if coalesce(p_purge, false) then
    delete from crm.connections c where c.id = v_id;
    return 'purged';
  end if;
  update crm.connections c
  set status = 'disconnected', status_changed_at = now(), credentials = null,
      credentials_updated_at = now(), updated_at = now(),
      webhook_token_hash = null, webhook_user_hash = null,
      webhook_setup = jsonb_build_object('state', 'removed', 'at', now(),
                                         'provider', c.provider, 'reason', 'disconnected')
  where c.id = v_id;
  return 'disconnected';
end
$$;
revoke all on function crm.disconnect_connection(uuid, uuid, boolean) from public;
grant execute on function crm.disconnect_connection(uuid, uuid, boolean) to service_role;
