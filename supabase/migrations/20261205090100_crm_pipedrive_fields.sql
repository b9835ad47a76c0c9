-- Why: Pipedrive's defaults (20261122010400) left out standard API v2 fields that a user
-- expects to see synced, and that the other two providers already map (issue 16, point 7):
-- a person's job title and notes, an organization's website and annual revenue. An edit of
-- a Pipedrive job title never reached crm.contacts, and nothing said why.
-- Sources: Pipedrive API v2 AddPersonRequest/UpdatePersonRequest (job_title, notes) and
-- AddOrganizationRequest/UpdateOrganizationRequest (website, annual_revenue); the mirror
-- columns exist already (crm.contacts.job_title/description, crm.companies.domain/
-- annual_revenue), so no column is added.
-- Not mapped, on purpose: organizations.industry is an option id (a number) in v2, not the
-- label the canonical `industry` column holds for the other providers; organizations have no
-- standard phone field in v2; address parts are read only (v2 writes `address` as one object).
-- Like Salesforce's Website, `website` feeds `domain` as written in the CRM (a URL is kept as
-- it is, not cut down to a host name).
insert into crm.field_mappings
  (provider, object, remote_object, column_name, remote_property, direction, transform, options)
values
  ('pipedrive', 'contacts', 'persons', 'job_title', 'job_title', 'both', 'text', '{}'),
  ('pipedrive', 'contacts', 'persons', 'description', 'notes', 'both', 'text', '{}'),
  ('pipedrive', 'companies', 'organizations', 'domain', 'website', 'both', 'text', '{}'),
  ('pipedrive', 'companies', 'organizations', 'annual_revenue', 'annual_revenue', 'both', 'currency', '{}')
on conflict on constraint field_mappings_unique do nothing;
