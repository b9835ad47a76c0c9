-- Local stand-in for supabase/pg_net 0.19.x (https://github.com/supabase/pg_net).
-- Same objects, signatures and defaults as the hosted extension; the HTTP work is done by
-- shared/local/pg_net_worker.ts, which LISTENs on channel 'pg_net' and claims queue rows.
-- Decision: NOTIFY is delivered only when the enqueuing transaction commits, which gives the
-- pg_net guarantee "requests are not started until the transaction is committed" for free.
-- Limit: like pg_net, a request is removed from the queue when the worker claims it; a worker
-- crash in flight loses that request (pg_net behaves the same way).

\echo Use "CREATE EXTENSION pg_net" to load this file. \quit

create schema if not exists net;

create domain net.http_method as text
  check (value ilike 'get' or value ilike 'post' or value ilike 'delete');

create unlogged table net.http_request_queue (
  id bigserial,
  method net.http_method not null,
  url text not null,
  headers jsonb not null,
  body bytea,
  timeout_milliseconds int not null
);
create index on net.http_request_queue (id);

create unlogged table net._http_response (
  id bigint,
  status_code integer,
  content_type text,
  headers jsonb,
  content text,
  timed_out bool,
  error_msg text,
  created timestamptz not null default now()
);
create index on net._http_response (created);

create type net.request_status as enum ('PENDING', 'SUCCESS', 'ERROR');
create type net.http_response as (status_code integer, headers jsonb, body text);
create type net.http_response_result as (
  status net.request_status,
  message text,
  response net.http_response
);

-- Wakes the worker. Called per statement, so a bulk insert costs one notification.
create function net._tg_wake() returns trigger
  language plpgsql
as $$
begin
  perform pg_catalog.pg_notify('pg_net', '');
  return null;
end
$$;

create trigger wake_worker after insert on net.http_request_queue
  for each statement execute function net._tg_wake();

create function net.wake() returns void
  language sql
as $$ select pg_catalog.pg_notify('pg_net', '') $$;

-- pg_net asks its worker to restart; the local worker re-reads settings on 'restart'.
create function net.worker_restart() returns bool
  language sql
  security definer
as $$ select pg_catalog.pg_notify('pg_net', 'restart'); select true $$;

create function net._urlencode_string(string varchar) returns text
  language plpgsql
  immutable
  strict
as $$
declare
  b bytea := pg_catalog.convert_to(string, 'UTF8');
  out text := '';
  c int;
begin
  for i in 0 .. pg_catalog.length(b) - 1 loop
    c := pg_catalog.get_byte(b, i);
    if (c between 48 and 57) or (c between 65 and 90) or (c between 97 and 122)
       or c in (45, 46, 95, 126) then
      out := out || pg_catalog.chr(c);
    else
      out := out || '%' || pg_catalog.upper(pg_catalog.lpad(pg_catalog.to_hex(c), 2, '0'));
    end if;
  end loop;
  return out;
end
$$;

create function net._encode_url_with_params_array(url text, params_array text[]) returns text
  language sql
  immutable
  strict
as $$
  select case
    when pg_catalog.cardinality(params_array) = 0 then url
    when pg_catalog.strpos(url, '?') > 0 then url || '&' || pg_catalog.array_to_string(params_array, '&')
    else url || '?' || pg_catalog.array_to_string(params_array, '&')
  end
$$;

create function net._params_array(params jsonb) returns text[]
  language sql
  immutable
as $$
  select coalesce(
    pg_catalog.array_agg(net._urlencode_string(key) || '=' || net._urlencode_string(value)),
    '{}'
  )
  from pg_catalog.jsonb_each_text(coalesce(params, '{}'::jsonb))
$$;

create function net.http_get(
  url text,
  params jsonb default '{}'::jsonb,
  headers jsonb default '{}'::jsonb,
  timeout_milliseconds int default 5000
) returns bigint
  language plpgsql
  volatile
  strict
  security definer
  set search_path = ''
as $$
declare
  request_id bigint;
begin
  insert into net.http_request_queue (method, url, headers, timeout_milliseconds)
  values ('GET', net._encode_url_with_params_array(url, net._params_array(params)), headers,
          timeout_milliseconds)
  returning id into request_id;
  return request_id;
end
$$;

create function net.http_post(
  url text,
  body jsonb default '{}'::jsonb,
  params jsonb default '{}'::jsonb,
  headers jsonb default '{"Content-Type": "application/json"}'::jsonb,
  timeout_milliseconds int default 5000
) returns bigint
  language plpgsql
  volatile
  security definer
  set search_path = ''
as $$
declare
  request_id bigint;
  content_type text;
begin
  select h.value into content_type
  from pg_catalog.jsonb_each_text(coalesce(headers, '{}'::jsonb)) h
  where pg_catalog.lower(h.key) = 'content-type'
  limit 1;

  if content_type is null then
    headers := coalesce(headers, '{}'::jsonb) || '{"Content-Type": "application/json"}'::jsonb;
  elsif content_type <> 'application/json' then
    raise exception 'Content-Type header must be "application/json"';
  end if;

  if body is null then
    raise exception 'body must not be null';
  end if;

  insert into net.http_request_queue (method, url, headers, body, timeout_milliseconds)
  values ('POST', net._encode_url_with_params_array(url, net._params_array(params)), headers,
          pg_catalog.convert_to(body::text, 'UTF8'), timeout_milliseconds)
  returning id into request_id;
  return request_id;
end
$$;

create function net.http_delete(
  url text,
  params jsonb default '{}'::jsonb,
  headers jsonb default '{}'::jsonb,
  timeout_milliseconds int default 5000,
  body jsonb default null
) returns bigint
  language plpgsql
  volatile
  security definer
  set search_path = ''
as $$
declare
  request_id bigint;
begin
  insert into net.http_request_queue (method, url, headers, body, timeout_milliseconds)
  values ('DELETE', net._encode_url_with_params_array(url, net._params_array(params)),
          coalesce(headers, '{}'::jsonb),
          case when body is null then null else pg_catalog.convert_to(body::text, 'UTF8') end,
          timeout_milliseconds)
  returning id into request_id;
  return request_id;
end
$$;

create function net._http_collect_response(request_id bigint, async bool default true)
  returns net.http_response_result
  language plpgsql
  volatile
  strict
as $$
declare
  rec net._http_response;
begin
  if not async then
    loop
      select * into rec from net._http_response r where r.id = request_id;
      exit when found;
      perform pg_catalog.pg_sleep(0.05);
    end loop;
  else
    select * into rec from net._http_response r where r.id = request_id;
  end if;

  if rec is null then
    return ('PENDING', 'request not found or still in flight', null)::net.http_response_result;
  end if;
  if rec.error_msg is not null or rec.timed_out then
    return ('ERROR', coalesce(rec.error_msg, 'timed out'), null)::net.http_response_result;
  end if;
  return ('SUCCESS', 'ok', (rec.status_code, rec.headers, rec.content)::net.http_response)
    ::net.http_response_result;
end
$$;

create function net.http_collect_response(request_id bigint, async bool default true)
  returns net.http_response_result
  language sql
  volatile
  strict
as $$ select net._http_collect_response(request_id, async) $$;

-- Supabase grants the API roles use of net; the http_* functions are security definer so
-- callers need no table privileges.
revoke all on schema net from public;
revoke all on all functions in schema net from public;
grant usage on schema net to postgres, service_role;
grant execute on function net.http_get(text, jsonb, jsonb, int),
  net.http_post(text, jsonb, jsonb, jsonb, int),
  net.http_delete(text, jsonb, jsonb, int, jsonb),
  net.http_collect_response(bigint, bool),
  net._http_collect_response(bigint, bool),
  net.wake(), net._urlencode_string(varchar), net._encode_url_with_params_array(text, text[]),
  net._params_array(jsonb)
  to postgres, service_role;
grant select on net._http_response to postgres, service_role;
grant select on net.http_request_queue to postgres, service_role;
