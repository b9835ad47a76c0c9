-- The local platform's Supabase surface: roles, auth.* claim helpers, the pg_net stand-in's
-- SQL API and the Vault stand-in. Migrations rely on exactly these, so they are pinned here.
begin;
select plan(41);

-- Roles as on a Supabase project.
select has_role('anon');
select has_role('authenticated');
select has_role('service_role');
select has_role('authenticator');
select ok((select rolbypassrls from pg_roles where rolname = 'service_role'), 'service_role bypasses RLS');
select ok(not (select rolbypassrls from pg_roles where rolname = 'authenticated'), 'authenticated does not bypass RLS');
select ok(not (select rolcanlogin from pg_roles where rolname = 'anon'), 'anon cannot log in');
select ok(pg_has_role('authenticator', 'authenticated', 'member'), 'authenticator can switch to authenticated');
select has_schema('extensions');
select has_schema('auth');

-- auth.* read request.jwt.claims the way PostgREST sets it.
select is(auth.uid(), null, 'auth.uid() is null without claims');
set local request.jwt.claims = '{"sub":"9f2b3c3e-1d7a-4a43-9d0a-5a5f2b6f7f10","role":"authenticated","email":"a@example.com","app_metadata":{"account_id":"acc"}}';
select is(auth.uid(), '9f2b3c3e-1d7a-4a43-9d0a-5a5f2b6f7f10'::uuid, 'auth.uid() reads sub');
select is(auth.role(), 'authenticated', 'auth.role() reads role');
select is(auth.email(), 'a@example.com', 'auth.email() reads email');
select is(auth.jwt() -> 'app_metadata' ->> 'account_id', 'acc', 'auth.jwt() returns all claims');
set local request.jwt.claims = '';

-- pg_net: same functions, parameter lists and defaults as supabase/pg_net 0.19.
select has_extension('pg_net');
select has_function('net', 'http_get', array['text', 'jsonb', 'jsonb', 'integer']);
select has_function('net', 'http_post', array['text', 'jsonb', 'jsonb', 'jsonb', 'integer']);
select has_function('net', 'http_delete', array['text', 'jsonb', 'jsonb', 'integer', 'jsonb']);
select function_returns('net', 'http_post', array['text', 'jsonb', 'jsonb', 'jsonb', 'integer'], 'bigint');
select columns_are('net', 'http_request_queue',
  array['id', 'method', 'url', 'headers', 'body', 'timeout_milliseconds']);
select columns_are('net', '_http_response',
  array['id', 'status_code', 'content_type', 'headers', 'content', 'timed_out', 'error_msg', 'created']);
select col_type_is('net', '_http_response', 'id', 'bigint', 'response ids are bigint request ids');

select lives_ok($$select net.http_post('http://127.0.0.1:9/x')$$, 'http_post with defaults');
select is((select timeout_milliseconds from net.http_request_queue order by id desc limit 1), 5000,
  'default timeout is 5000 ms');
select is((select headers from net.http_request_queue order by id desc limit 1),
  '{"Content-Type": "application/json"}'::jsonb, 'default JSON content type');
select is((select convert_from(body, 'UTF8') from net.http_request_queue order by id desc limit 1),
  '{}', 'default body {}');
select lives_ok($$select net.http_post('http://127.0.0.1:9/x', headers => '{"Authorization":"Bearer t"}')$$,
  'custom headers keep a JSON content type');
select is((select headers from net.http_request_queue order by id desc limit 1),
  '{"Authorization": "Bearer t", "Content-Type": "application/json"}'::jsonb, 'content type added');
select throws_ok($$select net.http_post('http://127.0.0.1:9/x', headers => '{"Content-Type":"text/plain"}')$$,
  'Content-Type header must be "application/json"');
select throws_ok($$select net.http_post('http://127.0.0.1:9/x', body => null)$$, 'body must not be null');
select lives_ok($$select net.http_get('http://127.0.0.1:9/q?a=1', params => '{"b":"x y&z"}')$$, 'http_get with params');
select is((select url from net.http_request_queue order by id desc limit 1),
  'http://127.0.0.1:9/q?a=1&b=x%20y%26z', 'params are url-encoded and appended');
select is((select method::text from net.http_request_queue order by id desc limit 1), 'GET', 'GET queued');
select ok((select net.http_delete('http://127.0.0.1:9/d')) > 0, 'http_delete returns a bigint id');

-- Vault: encrypted at rest, readable through decrypted_secrets.
select has_view('vault', 'decrypted_secrets', 'vault.decrypted_secrets exists');
select lives_ok($$select vault.create_secret('top-secret-value', 'pgtap_secret', 'test')$$, 'create_secret');
select is((select decrypted_secret from vault.decrypted_secrets where name = 'pgtap_secret'),
  'top-secret-value', 'decrypted_secrets returns the plaintext');
select ok((select secret not like '%top-secret%' from vault.secrets where name = 'pgtap_secret'),
  'the stored secret is ciphertext');
select lives_ok($$select vault.update_secret((select id from vault.secrets where name = 'pgtap_secret'), 'rotated')$$,
  'update_secret');
set local role anon;
select throws_ok($$select * from vault.decrypted_secrets$$, '42501', null, 'anon cannot read Vault');
reset role;

select * from finish();
rollback;
