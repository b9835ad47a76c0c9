#!/usr/bin/env bash
# A page with one bad record against a clean one, through crm._apply_in_halves (which drops the
# record crm.apply_inbound names and applies the rest again): 2,000-record pages of contacts,
# clean ones and ones whose record 1,000 has an invalid phone (the E.164 CHECK), first of new
# records, then of existing ones (fields changed). Prints the backend's CPU time per page (from
# /proc/self/schedstat, read by the backend: needs a superuser URL on a local database), the
# apply_inbound calls and the failed records. Issue 10 asks for bad/clean <= 2.
# Usage: scripts/bench/apply_inbound_bad_page.sh <db url> [pages of each kind=8]
set -euo pipefail
DB=$1; REPS=${2:-8}
conn=$(psql "$DB" -qtAc "insert into crm.connections (account_id, provider, remote_account_id)
    values (gen_random_uuid(), 'hubspot', 'bad-ab-' || gen_random_uuid()) returning id")
{
cat <<'SQL'
\set ON_ERROR_STOP 1
create function pg_temp.page(p_from int, p_n int, p_ts text, p_tag text, p_bad int) returns jsonb language sql as $$
  select jsonb_agg(jsonb_build_object('remote_id', 'bp' || i, 'remote_updated_at', p_ts,
    'first_name', 'First' || i, 'last_name', 'Last' || p_tag, 'email', 'u' || i || '@ab.test',
    'phone', case when i - p_from + 1 = p_bad then 'not-a-phone' else '+1415555' || lpad((i % 10000)::text, 4, '0') end,
    'company_name', 'Co ' || (i % 500),
    'job_title', 'Title ' || p_tag, 'lifecycle_stage', 'lead', 'owner_remote_id', 'o' || (i % 20),
    'custom', jsonb_build_object('score', i % 100, 'tag', p_tag)) order by i)
  from generate_series(p_from, p_from + p_n - 1) i
$$;
create function pg_temp.ns() returns bigint language sql as $$
  select split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint $$;
create temp table acc (phase text primary key, pages int not null default 0, ns bigint not null default 0, calls int not null default 0, failed int not null default 0);
create function pg_temp.run(p_phase text, p_conn uuid, p_recs jsonb) returns void language plpgsql as $$
declare c0 bigint; r record;
begin
  c0 := pg_temp.ns();
  select * into r from crm._apply_in_halves(p_conn, 'contacts', p_recs);
  insert into acc values (p_phase, 1, pg_temp.ns() - c0, r.apply_calls, jsonb_array_length(r.failed))
  on conflict (phase) do update set pages = acc.pages + 1, ns = acc.ns + excluded.ns,
    calls = acc.calls + excluded.calls, failed = acc.failed + excluded.failed;
end $$;
SQL
for ((p = 0; p < REPS; p++)); do
  echo "select pg_temp.run('new clean', '$conn', pg_temp.page($((p * 4000 + 1)), 2000, '2026-01-01T00:00:00Z', 'a', 0));"
  echo "select pg_temp.run('new bad', '$conn', pg_temp.page($((p * 4000 + 2001)), 2000, '2026-01-01T00:00:00Z', 'a', 1000));"
done
echo "analyze crm.contacts;"
for ((p = 0; p < REPS; p++)); do
  echo "select pg_temp.run('existing clean', '$conn', pg_temp.page($((p * 4000 + 1)), 2000, '2026-02-0$((p % 9 + 1))T00:00:00Z', 'd$p', 0));"
  echo "select pg_temp.run('existing bad', '$conn', pg_temp.page($((p * 4000 + 2001)), 2000, '2026-02-0$((p % 9 + 1))T00:00:00Z', 'd$p', 1000));"
done
echo "select phase, round(ns / 1e3 / pages / 2000, 1) as us_per_record, round(ns / 1e6 / pages, 1) as ms_per_page, calls, failed, pages from acc order by phase;"
} | psql "$DB" -qA -F ' ' | grep -v '^$'
psql "$DB" -qc "delete from crm.connections where id = '$conn'" >/dev/null
