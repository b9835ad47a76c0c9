-- Why: users connect, check and disconnect their CRM accounts themselves through the
-- crm-connect edge function (issue 14). The database does the parts that must be atomic:
-- the OAuth state nonce consumed once, the create-or-reactivate of a connection, the status an
-- account sees, and the disconnect (stop jobs, drop credentials, keep or purge the mirror).
--
-- Decisions recorded here:
-- * The state a browser carries is a signed token (HS256, crm-connect); its nonce is a row
--   here, bound to the user, the account and the provider, expiring after minutes, and deleted
--   by the one statement that consumes it: a replayed, expired or mismatched state finds no row.
-- * The PKCE verifier stays server-side in the nonce row, as ciphertext written by the
--   function (CRM_ENCRYPTION_KEY, bound to the nonce), never in the state or the URL.
-- * One connection per app account and provider. Reconnecting the same remote account
--   re-activates the row in place (same id: the mirror and its remote ids stay). Another
--   remote account while that row exists is refused (CRM20): the mirror would mix two CRMs.
--   A remote account linked to another app account is refused too (CRM21): the table's
--   unique (provider, remote_account_id) routes webhooks by it.
-- * The account always comes from the caller's verified JWT (the function passes it); these
--   functions are service_role only and never trust an account id from a request body.
-- * Credentials of one connection change under one lock (crm.lock_credentials: a transaction
--   advisory lock, so it works through a transaction-mode pooler): a token refresh re-reads
--   the stored tokens under it and skips the provider call when another worker already
--   refreshed; a reconnect writes its new grant under it. A rotated refresh token is thus never
--   overwritten by a stale copy held in some worker's memory.
-- * SQLSTATEs: CRM20 other remote account, CRM21 remote account taken, CRM22 unknown provider.

create table crm.connect_states (
  nonce uuid primary key default gen_random_uuid(),
  account_id uuid not null,
  user_id uuid not null,
  provider text not null,
  redirect_to text,
  -- Ciphertext of the PKCE code_verifier (crm-connect encrypts it bound to the nonce).
  verifier text,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  constraint connect_states_provider_check check (provider in ('hubspot', 'salesforce', 'pipedrive')),
  constraint connect_states_expiry_check check (expires_at > created_at
    and expires_at <= created_at + interval '30 minutes')
);
create index connect_states_expires_idx on crm.connect_states (expires_at);
comment on table crm.connect_states is
  'Single-use OAuth state nonces of crm-connect (bound to user, account, provider; minutes long).';

alter table crm.connect_states enable row level security;
-- No policies: only the service role (crm-connect) reads or writes nonces.
revoke all on crm.connect_states from public, anon, authenticated;
grant select, insert, delete on crm.connect_states to service_role;

-- A new nonce (chosen by the caller: the verifier ciphertext is bound to it); nonces expired
-- over an hour ago are removed on the way, so the table stays small.
create or replace function crm.create_connect_state(
  p_nonce uuid,
  p_account_id uuid,
  p_user_id uuid,
  p_provider text,
  p_redirect_to text,
  p_verifier text,
  p_ttl interval default interval '10 minutes'
)
  returns table (nonce uuid, expires_at timestamptz)
  language plpgsql
  set search_path = ''
as $$
begin
  if p_nonce is null or p_account_id is null or p_user_id is null then
    raise exception using errcode = 'CRM01', message = 'a connect state needs a user and an account';
  end if;
  if p_provider is null or p_provider not in ('hubspot', 'salesforce', 'pipedrive') then
    raise exception using errcode = 'CRM22', message = format('unknown provider %L', p_provider);
  end if;
  delete from crm.connect_states s where s.expires_at < now() - interval '1 hour';
  return query
  insert into crm.connect_states as s (nonce, account_id, user_id, provider, redirect_to, verifier, expires_at)
  values (p_nonce, p_account_id, p_user_id, p_provider, p_redirect_to, p_verifier, now() + p_ttl)
  returning s.nonce, s.expires_at;
end
$$;
revoke all on function crm.create_connect_state(uuid, uuid, uuid, text, text, text, interval) from public;
grant execute on function crm.create_connect_state(uuid, uuid, uuid, text, text, text, interval) to service_role;

-- Consumes a nonce in one statement: it matches only unexpired, with the same user, account
-- and provider, and is gone afterwards whatever the caller does next. No row = refused.
create or replace function crm.consume_connect_state(
  p_nonce uuid,
  p_account_id uuid,
  p_user_id uuid,
  p_provider text
)
  returns table (redirect_to text, verifier text)
  language sql
  set search_path = ''
as $$
  delete from crm.connect_states s
  where s.nonce = p_nonce and s.account_id = p_account_id and s.user_id = p_user_id
    and s.provider = p_provider and s.expires_at > now()
  returning s.redirect_to, s.verifier
$$;
revoke all on function crm.consume_connect_state(uuid, uuid, uuid, text) from public;
grant execute on function crm.consume_connect_state(uuid, uuid, uuid, text) to service_role;

-- Takes the connection's credentials lock for the rest of the transaction and returns the
-- stored ciphertext (NULL: none stored, e.g. disconnected). Waits while another transaction
-- holds it (a refresh in flight: at most its HTTP timeout).
create or replace function crm.lock_credentials(p_connection_id uuid)
  returns text
  language plpgsql
  set search_path = ''
as $$
declare
  v_text text;
begin
  perform pg_advisory_xact_lock(hashtext('crm.credentials'), hashtext(p_connection_id::text));
  select convert_from(c.credentials, 'UTF8') into v_text from crm.connections c where c.id = p_connection_id;
  return v_text;
end
$$;
revoke all on function crm.lock_credentials(uuid) from public;
grant execute on function crm.lock_credentials(uuid) to service_role;

-- Creates the account's connection to a remote account, or re-activates it (same remote
-- account: same row, mirror kept). Returns the id and whether it is new. Credentials are
-- written by the caller in the same transaction (they are bound to the id).
create or replace function crm.connect_connection(
  p_account_id uuid,
  p_provider text,
  p_remote_account_id text,
  p_name text,
  p_settings jsonb default '{}'::jsonb
)
  returns table (connection_id uuid, created boolean)
  language plpgsql
  set search_path = ''
as $$
declare
  v_row crm.connections;
begin
  if p_provider is null or p_provider not in ('hubspot', 'salesforce', 'pipedrive') then
    raise exception using errcode = 'CRM22', message = format('unknown provider %L', p_provider);
  end if;
  if p_account_id is null or coalesce(p_remote_account_id, '') = '' then
    raise exception using errcode = 'CRM01', message = 'a connection needs an account and a remote account id';
  end if;
  -- Serialises connects of one remote account (and of one account and provider).
  perform pg_advisory_xact_lock(hashtext('crm.connect:' || p_provider || ':' || p_remote_account_id));
  perform pg_advisory_xact_lock(hashtext('crm.connect:' || p_account_id::text || ':' || p_provider));

  -- Lock order, as everywhere: the credentials lock, then the row (a refresh in flight holds
  -- the first and then updates the row; the other order would deadlock with it).
  perform crm.lock_credentials(c.id) from crm.connections c
  where c.provider = p_provider and c.remote_account_id = p_remote_account_id;
  select * into v_row from crm.connections c
  where c.provider = p_provider and c.remote_account_id = p_remote_account_id
  for update;
  if found and v_row.account_id <> p_account_id then
    raise exception using errcode = 'CRM21',
      message = format('this %s account (%s) is already connected to another account', p_provider, p_remote_account_id),
      hint = 'Disconnect it there first.';
  end if;
  if not found then
    select * into v_row from crm.connections c
    where c.account_id = p_account_id and c.provider = p_provider
    order by c.created_at limit 1
    for update;
    if found then
      raise exception using errcode = 'CRM20',
        message = format('this account is connected to another %s account (%s), not %s',
                         p_provider, v_row.remote_account_id, p_remote_account_id),
        hint = 'Disconnect it with purge first to connect a different one; reconnecting the same one keeps its data.';
    end if;
    insert into crm.connections (account_id, provider, remote_account_id, name, settings)
    values (p_account_id, p_provider, p_remote_account_id, p_name,
            '{"conflict_policy": "newest_wins", "default_phone_region": "US", "objects": ["contacts", "companies", "deals", "owners"]}'::jsonb
              || coalesce(p_settings, '{}'::jsonb))
    returning * into v_row;
    return query select v_row.id, true;
    return;
  end if;
  -- The caller writes the new grant next, in this transaction, under the credentials lock taken
  -- above: after any refresh in flight.
  update crm.connections c
  set status = 'active',
      status_changed_at = case when c.status <> 'active' then now() else c.status_changed_at end,
      last_error = null, last_error_at = null,
      name = coalesce(p_name, c.name),
      settings = c.settings || coalesce(p_settings, '{}'::jsonb),
      updated_at = now()
  where c.id = v_row.id;
  return query select v_row.id, false;
end
$$;
revoke all on function crm.connect_connection(uuid, text, text, text, jsonb) from public;
grant execute on function crm.connect_connection(uuid, text, text, text, jsonb) to service_role;

-- What /status shows: the account's connections from the database only, with their backlog.
create or replace function crm.connect_status(p_account_id uuid)
  returns table (id uuid, provider text, remote_account_id text, name text, status text,
                 status_changed_at timestamptz, last_synced_at timestamptz, last_error text,
                 last_error_at timestamptz, backlog jsonb)
  language sql
  stable
  set search_path = ''
as $$
  select c.id, c.provider, c.remote_account_id, c.name, c.status, c.status_changed_at,
         c.last_synced_at, c.last_error, c.last_error_at,
         jsonb_build_object(
           'outbox_pending', (select count(*) from crm.outbox o
                              where o.connection_id = c.id and o.state = 'pending'),
           'webhook_events_pending', (select count(*) from crm.webhook_events w
                                      where w.connection_id = c.id and w.state = 'pending'),
           'jobs_queued', (select count(*) from crm.jobs j
                           where j.connection_id = c.id and j.state = 'queued'),
           'jobs_running', (select count(*) from crm.jobs j
                            where j.connection_id = c.id and j.state = 'running'),
           'jobs_dead', (select count(*) from crm.jobs j
                         where j.connection_id = c.id and j.state = 'dead'))
  from crm.connections c
  where c.account_id = p_account_id
  order by c.created_at, c.id
$$;
revoke all on function crm.connect_status(uuid) from public;
grant execute on function crm.connect_status(uuid) to service_role;

-- Disconnect one of the account's connections: its jobs are cancelled, its credentials
-- dropped and it becomes `disconnected` (mirror kept), or with p_purge the row and everything
-- hanging off it (mirror, queues, logs) is deleted. NULL when the account has no such
-- connection (the function answers 404 for another account's id as for an unknown one).
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
  -- Credentials lock first (see connect_connection): a refresh in flight finishes before the
  -- credentials are dropped, and cannot write them back afterwards.
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
      credentials_updated_at = now(), updated_at = now()
  where c.id = v_id;
  return 'disconnected';
end
$$;
revoke all on function crm.disconnect_connection(uuid, uuid, boolean) from public;
grant execute on function crm.disconnect_connection(uuid, uuid, boolean) to service_role;
