-- Why: a Salesforce walk describes each sObject once to learn which mapped fields the org has.
-- That result lived in the function instance's memory, but workers now hand over every 800 ms
-- of CPU and the platform retires an isolate after 1 s, so a 100k backfill re-described its
-- objects in every request (60 API calls where 52 pages were needed). The describe result is
-- kept here per connection for the same 10 minutes, shared by every worker.

create table if not exists crm.provider_describes (
  connection_id uuid not null references crm.connections (id) on delete cascade,
  -- The adapter's key: the object and the field selection it asked about.
  key text not null,
  -- The selected fields the CRM has.
  fields text[] not null,
  described_at timestamptz not null default now(),
  primary key (connection_id, key)
);
comment on table crm.provider_describes is
  'Which mapped fields a CRM object has (Salesforce describe), per connection, reused for 10 minutes by every worker.';
alter table crm.provider_describes enable row level security;
revoke all on crm.provider_describes from public, anon, authenticated;
grant select, insert, update, delete on crm.provider_describes to service_role;
