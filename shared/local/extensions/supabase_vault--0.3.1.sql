-- Local stand-in for supabase_vault 0.3 (https://github.com/supabase/vault).
-- Same table, functions and view names as the hosted extension, so migrations and Supabase's
-- scheduling guide (`select decrypted_secret from vault.decrypted_secrets where name = ...`)
-- work unchanged. Secrets are stored as pgcrypto PGP ciphertext (AES-256); the key is read from
-- the server-only file `vault.key` in the data directory (written by the local stack at initdb),
-- so it never lives in a table, a setting or a dump. Limit: the hosted Vault uses libsodium AEAD
-- with a key held outside Postgres entirely; this stand-in trusts the superuser, as any local
-- cluster must.

\echo Use "CREATE EXTENSION supabase_vault" to load this file. \quit

create schema if not exists vault;

create table vault.secrets (
  id uuid primary key default gen_random_uuid(),
  name text,
  description text not null default '',
  secret text not null,
  key_id uuid,
  nonce bytea,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create unique index secrets_name_idx on vault.secrets (name) where name is not null;

-- Reads the cluster's vault key. Security definer (owned by the superuser that created the
-- extension) because pg_read_file is superuser-only; callers never see the key itself.
create function vault._key() returns text
  language sql
  stable
  security definer
  set search_path = ''
as $$ select pg_catalog.btrim(pg_catalog.pg_read_file('vault.key'), E' \n') $$;
revoke all on function vault._key() from public;

create function vault._encrypt(plain text) returns text
  language plpgsql
  volatile
  security definer
  set search_path = ''
as $$
declare
  s name := (select e.extnamespace::regnamespace::name from pg_catalog.pg_extension e
             where e.extname = 'pgcrypto');
  ciphertext bytea;
begin
  execute pg_catalog.format('select %I.pgp_sym_encrypt($1, $2, %L)', s,
                            'cipher-algo=aes256, compress-algo=0')
    into ciphertext using plain, vault._key();
  return pg_catalog.encode(ciphertext, 'base64');
end
$$;
revoke all on function vault._encrypt(text) from public;

create function vault._decrypt(ciphertext text) returns text
  language plpgsql
  stable
  security definer
  set search_path = ''
as $$
declare
  s name := (select e.extnamespace::regnamespace::name from pg_catalog.pg_extension e
             where e.extname = 'pgcrypto');
  plain text;
begin
  execute pg_catalog.format('select %I.pgp_sym_decrypt($1, $2)', s)
    into plain using pg_catalog.decode(ciphertext, 'base64'), vault._key();
  return plain;
end
$$;
revoke all on function vault._decrypt(text) from public;

create function vault.create_secret(
  new_secret text,
  new_name text default null,
  new_description text default '',
  new_key_id uuid default null
) returns uuid
  language plpgsql
  volatile
  security definer
  set search_path = ''
as $$
declare
  rec_id uuid;
begin
  insert into vault.secrets (secret, name, description, key_id)
  values (vault._encrypt(new_secret), new_name, coalesce(new_description, ''), new_key_id)
  returning id into rec_id;
  return rec_id;
end
$$;

create function vault.update_secret(
  secret_id uuid,
  new_secret text default null,
  new_name text default null,
  new_description text default null,
  new_key_id uuid default null
) returns void
  language plpgsql
  volatile
  security definer
  set search_path = ''
as $$
begin
  update vault.secrets s
  set secret = coalesce(vault._encrypt(new_secret), s.secret),
      name = coalesce(new_name, s.name),
      description = coalesce(new_description, s.description),
      key_id = coalesce(new_key_id, s.key_id),
      updated_at = now()
  where s.id = secret_id;
end
$$;

create view vault.decrypted_secrets with (security_barrier) as
  select s.id, s.name, s.description, s.secret,
         vault._decrypt(s.secret) as decrypted_secret,
         s.key_id, s.nonce, s.created_at, s.updated_at
  from vault.secrets s;

revoke all on schema vault from public;
revoke all on all tables in schema vault from public;
revoke all on all functions in schema vault from public;
grant usage on schema vault to postgres, service_role;
grant select, delete on vault.secrets, vault.decrypted_secrets to postgres, service_role;
-- Functions inside a view run with the caller's EXECUTE rights, so readers of
-- decrypted_secrets need _decrypt; reading the view is the access barrier.
grant execute on function vault.create_secret(text, text, text, uuid),
  vault.update_secret(uuid, text, text, text, uuid), vault._decrypt(text)
  to postgres, service_role;
