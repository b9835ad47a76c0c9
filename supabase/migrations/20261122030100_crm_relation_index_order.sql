-- Why: the relation indexes led with connection_id, so for "connection_id = $1 and remote_id = x"
-- the planner could take one of them instead of <table>_remote_unique whenever it believed the
-- connection held a row or two (a new connection, statistics from before a backfill). Each probe
-- then read every row of the connection written so far: during the first backfill of a
-- connection, a page of 2,000 took seconds instead of milliseconds. Led by the remote id, they
-- serve what they exist for (filling local ids of rows that reference a record just written)
-- and cannot be mistaken for the remote id lookup.
drop index crm.contacts_company_remote_idx;
drop index crm.contacts_owner_remote_idx;
drop index crm.companies_owner_remote_idx;
drop index crm.deals_owner_remote_idx;
drop index crm.deals_company_remote_idx;
drop index crm.deals_contact_remote_idx;
create index contacts_company_remote_idx on crm.contacts (company_remote_id, connection_id);
create index contacts_owner_remote_idx on crm.contacts (owner_remote_id, connection_id);
create index companies_owner_remote_idx on crm.companies (owner_remote_id, connection_id);
create index deals_owner_remote_idx on crm.deals (owner_remote_id, connection_id);
create index deals_company_remote_idx on crm.deals (company_remote_id, connection_id);
create index deals_contact_remote_idx on crm.deals (primary_contact_remote_id, connection_id);
