-- Why: the sync runs on a schedule without anyone calling it. pg_cron calls the
-- crm-sync-bidirectional edge function through net.http_post with the project URL and the
-- service-role key read from Vault at run time, exactly as Supabase's scheduling guide does
-- (https://supabase.com/docs/guides/functions/schedule-functions); no key is stored in a table
-- or in the job text. Health check and cleanup are pure SQL.
--
--   job                          schedule      what
--   crm-inbound-contacts         */5 * * * *   contacts delta
--   crm-inbound-companies-deals  */15 * * * *  companies and deals delta
--   crm-outbound                 */10 * * * *  push pending local changes
--   crm-inbound-owners           0 6 * * *     owners, full (small, no modified filter everywhere)
--   crm-drift-check              7 * * * *     full walk of contacts, companies, deals: drift,
--                                              vanished records
--   crm-retry-failures           37 * * * *    mode retry: for now an inbound delta (the
--                                              function does not drain the inbox yet)
--   crm-health-check             */5 * * * *   SQL: crm.check_health()
--   crm-cleanup                  23 3 * * *    SQL: crm.cleanup() (30 days of history)
--
-- pg_cron 1.4 (local) takes 5-field schedules only. cron.schedule(name, ...) updates the job
-- of that name, so re-running this file re-registers the same eight jobs without duplicates.
-- The HTTP timeout (150 s) matches the edge functions' wall-clock limit on the free plan, so
-- net._http_response records the function's real answer.

with template as (
  select $t$select net.http_post(
  url := rtrim((select decrypted_secret from vault.decrypted_secrets where name = 'project_url'), '/')
         || '/functions/v1/crm-sync-bidirectional',
  headers := jsonb_build_object(
    'Content-Type', 'application/json',
    'Authorization', 'Bearer ' || (select decrypted_secret from vault.decrypted_secrets
                                   where name = 'service_role_key')),
  body := %L::jsonb,
  timeout_milliseconds := 150000
) as request_id$t$ as text
)
select j.name, cron.schedule(j.name, j.schedule, coalesce(j.command, format(t.text, j.body)))
from template t
cross join (values
  ('crm-inbound-contacts', '*/5 * * * *',
   '{"direction": "inbound", "objects": ["contacts"], "mode": "delta", "trigger": "cron"}', null),
  ('crm-inbound-companies-deals', '*/15 * * * *',
   '{"direction": "inbound", "objects": ["companies", "deals"], "mode": "delta", "trigger": "cron"}', null),
  ('crm-outbound', '*/10 * * * *',
   '{"direction": "outbound", "trigger": "cron"}', null),
  ('crm-inbound-owners', '0 6 * * *',
   '{"direction": "inbound", "objects": ["owners"], "mode": "full", "trigger": "cron"}', null),
  ('crm-drift-check', '7 * * * *',
   '{"direction": "inbound", "objects": ["contacts", "companies", "deals"], "mode": "full", "trigger": "cron"}', null),
  ('crm-retry-failures', '37 * * * *',
   '{"direction": "both", "mode": "retry", "trigger": "cron"}', null),
  ('crm-health-check', '*/5 * * * *', null, 'select count(*) from crm.check_health()'),
  ('crm-cleanup', '23 3 * * *', null, 'select crm.cleanup()')
) as j(name, schedule, body, command);
