-- Why: crm-webhook must find the connection a Salesforce or Pipedrive delivery belongs to from
-- the secret the request carries (Salesforce: the token in the listener URL; Pipedrive: the
-- basic-auth user name), without decrypting every connection's credentials. The secrets stay
-- in the encrypted credentials (webhook_token; webhook_user / webhook_password); these columns
-- hold only the hex SHA-256 of the token and of the user name (both generated, high-entropy,
-- so an unsalted hash reveals nothing), which the receiver looks up and then confirms against
-- the decrypted secret of that one connection.

alter table crm.connections
  add column webhook_token_hash text,
  add column webhook_user_hash text,
  add constraint connections_webhook_token_hash_check
    check (webhook_token_hash is null or webhook_token_hash ~ '^[0-9a-f]{64}$'),
  add constraint connections_webhook_user_hash_check
    check (webhook_user_hash is null or webhook_user_hash ~ '^[0-9a-f]{64}$');

-- One connection per secret: a request can only ever name one connection.
create unique index connections_webhook_token_hash_key
  on crm.connections (webhook_token_hash) where webhook_token_hash is not null;
create unique index connections_webhook_user_hash_key
  on crm.connections (webhook_user_hash) where webhook_user_hash is not null;
-- HubSpot events are routed by portal through connections_remote_account_unique
-- (provider, remote_account_id), which already indexes that lookup.

comment on column crm.connections.webhook_token_hash is
  'Hex SHA-256 of the Salesforce Outbound Message URL token (the token itself is in the encrypted credentials as webhook_token).';
comment on column crm.connections.webhook_user_hash is
  'Hex SHA-256 of the Pipedrive webhook basic-auth user (user and password are in the encrypted credentials as webhook_user / webhook_password).';
