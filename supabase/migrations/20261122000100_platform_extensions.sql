-- Why: the engine schedules its runs with pg_cron and calls its edge functions with pg_net,
-- exactly as Supabase's scheduling guide does. On the hosted platform a project enables both
-- itself; locally the same statements load Debian's pg_cron and the pg_net stand-in.
create extension if not exists pg_cron with schema pg_catalog;
grant usage on schema cron to postgres;
grant all privileges on all tables in schema cron to postgres;

create extension if not exists pg_net with schema extensions;
