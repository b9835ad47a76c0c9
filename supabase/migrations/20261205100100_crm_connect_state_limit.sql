-- /start is throttled per user: at most 20 live (unexpired) connect nonces per user. Without it,
-- a signed-in user could fill crm.connect_states with one call after another (each nonce lives
-- up to its TTL, 10 minutes by default). Twenty leaves room for several tabs and retries; a
-- user over it gets CRM23 (crm-connect answers 429) until some nonces are used or expire.
-- The count and the insert run under a per-user transaction lock, so concurrent /start calls
-- of one user cannot both pass at the limit.
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
declare
  v_live int;
begin
  if p_nonce is null or p_account_id is null or p_user_id is null then
    raise exception using errcode = 'CRM01', message = 'a connect state needs a user and an account';
  end if;
  if p_provider is null or p_provider not in ('hubspot', 'salesforce', 'pipedrive') then
    raise exception using errcode = 'CRM22', message = format('unknown provider %L', p_provider);
  end if;
  perform pg_advisory_xact_lock(hashtext('crm.connect_states'), hashtext(p_user_id::text));
  select count(*) into v_live from crm.connect_states s
  where s.user_id = p_user_id and s.expires_at > now();
  if v_live >= 20 then
    raise exception using errcode = 'CRM23',
      message = 'too many connects in progress for this user; finish one or wait for it to expire';
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

create index if not exists connect_states_user_idx on crm.connect_states (user_id, expires_at);
