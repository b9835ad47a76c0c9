-- Why: the relation indexes led with connection_id, so for "connection_id = $1 and remote_id = x"
-- the planner could take one of them instead of <table>_remote_unique whenever it believed the
-- connection held a row or two (a new connection, statistics from before a backfill). Each probe
-- then read every row of the connection written so far: during the first backfill of a
-- connection, a page of 2,000 took seconds instead of milliseconds. Led by the remote id, they
-- serve what they exist for (filling local ids of rows that reference a record just written)
-- and cannot be mistaken for the remote id lookup.
-- All relation indexes, by remote id and by local id, hold only rows that have the relation:
-- every lookup through them is an equality (the back-fill by remote id, the foreign keys' ON
-- DELETE SET NULL by local id), which implies NOT NULL, and records without an owner, company or
-- contact (most leads, many contacts) no longer cost an index entry each on insert.
drop index crm.contacts_company_remote_idx;
drop index crm.contacts_owner_remote_idx;
drop index crm.companies_owner_remote_idx;
drop index crm.deals_owner_remote_idx;
drop index crm.deals_company_remote_idx;
drop index crm.deals_contact_remote_idx;
drop index crm.contacts_company_idx;
drop index crm.contacts_owner_idx;
drop index crm.companies_owner_idx;
drop index crm.deals_owner_idx;
drop index crm.deals_company_idx;
drop index crm.deals_contact_idx;
create index contacts_company_remote_idx on crm.contacts (company_remote_id, connection_id)
  where company_remote_id is not null;
create index contacts_owner_remote_idx on crm.contacts (owner_remote_id, connection_id)
  where owner_remote_id is not null;
create index companies_owner_remote_idx on crm.companies (owner_remote_id, connection_id)
  where owner_remote_id is not null;
create index deals_owner_remote_idx on crm.deals (owner_remote_id, connection_id)
  where owner_remote_id is not null;
create index deals_company_remote_idx on crm.deals (company_remote_id, connection_id)
  where company_remote_id is not null;
create index deals_contact_remote_idx on crm.deals (primary_contact_remote_id, connection_id)
  where primary_contact_remote_id is not null;
create index contacts_company_idx on crm.contacts (company_id) where company_id is not null;
create index contacts_owner_idx on crm.contacts (owner_id) where owner_id is not null;
create index companies_owner_idx on crm.companies (owner_id) where owner_id is not null;
create index deals_owner_idx on crm.deals (owner_id) where owner_id is not null;
create index deals_company_idx on crm.deals (company_id) where company_id is not null;
create index deals_contact_idx on crm.deals (primary_contact_id) where primary_contact_id is not null;
