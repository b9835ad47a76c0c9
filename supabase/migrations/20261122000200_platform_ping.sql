-- Why: the smallest proof that the platform path works end to end before any sync code
-- depends on it: pg_cron -> net.http_post (URL and key from Vault) -> functions gateway ->
-- edge function -> a row written back through SUPABASE_DB_URL. Later migrations add the real
-- jobs; this one stays as a cheap health probe.
create table if not exists public.platform_pings (
  id bigint generated always as identity primary key,
  source text not null,
  request_id text,
  received_at timestamptz not null default now()
);
comment on table public.platform_pings is
  'Written by the platform-ping edge function; proves cron -> pg_net -> function -> db.';
alter table public.platform_pings enable row level security;
revoke all on public.platform_pings from anon, authenticated;

-- Queues one call of the platform-ping function; returns the pg_net request id.
create or replace function public.platform_ping(source text default 'manual')
  returns bigint
  language sql
  security definer
  set search_path = ''
as $$
  select net.http_post(
    url := (select decrypted_secret from vault.decrypted_secrets where name = 'project_url')
           || '/functions/v1/platform-ping',
    headers := pg_catalog.jsonb_build_object(
      'Content-Type', 'application/json',
      'Authorization', 'Bearer ' || (select decrypted_secret from vault.decrypted_secrets
                                     where name = 'service_role_key')),
    body := pg_catalog.jsonb_build_object('source', source)
  )
$$;
revoke all on function public.platform_ping(text) from public, anon, authenticated;

-- cron.schedule with an existing job name updates that job, so re-running is harmless.
select cron.schedule('crm-platform-ping', '17 * * * *', $$select public.platform_ping('cron')$$);
