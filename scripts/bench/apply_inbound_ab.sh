#!/usr/bin/env bash
# Steering A/B for crm.apply_inbound on one database, old and new one after the other:
#   old = the single-statement version (supabase/migrations/20261122010600_crm_apply_inbound.sql
#         at af2277d), new = the working tree's 20261204010100_crm_apply_inbound_steps.sql.
# Per round and version: a fresh connection gets <pages> backfill pages of 2,000 new contacts
# (pages x 2,000 rows), then <delta> pages of 2,000 of those contacts with three fields changed.
# Prints µs per record for each phase: wall clock, and the backend's CPU time (utime + stime
# from /proc/self/stat, read by the backend itself; far less sensitive than wall time to other
# load on the machine). Needs a superuser URL (pg_read_file) on a local database whose schema
# is at the new migration. It leaves the new function installed.
# Usage: scripts/bench/apply_inbound_ab.sh <db url> [rounds=2] [pages=50] [delta=10]
set -euo pipefail
DB=$1
ROUNDS=${2:-2}
PAGES=${3:-50}
DELTA=${4:-10}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OLD_REV=af2277d
NEW_FILE=$ROOT/supabase/migrations/20261204010100_crm_apply_inbound_steps.sql

run_phases() {
  local conn
  conn=$(psql "$DB" -qtAc "insert into crm.connections (account_id, provider, remote_account_id)
    values (gen_random_uuid(), 'hubspot', 'apply-ab-' || gen_random_uuid()) returning id")
  {
    cat <<'SQL'
\set ON_ERROR_STOP 1
create function pg_temp.page(p_from int, p_n int, p_ts text, p_tag text) returns jsonb language sql as $$
  select jsonb_agg(jsonb_build_object('remote_id', 'ab' || i, 'remote_updated_at', p_ts,
    'first_name', 'First' || i, 'last_name', 'Last' || p_tag, 'email', 'u' || i || '@ab.test',
    'phone', '+1415555' || lpad((i % 10000)::text, 4, '0'), 'company_name', 'Co ' || (i % 500),
    'job_title', 'Title ' || p_tag, 'lifecycle_stage', 'lead', 'owner_remote_id', 'o' || (i % 20),
    'custom', jsonb_build_object('score', i % 100, 'tag', p_tag)))
  from generate_series(p_from, p_from + p_n - 1) i
$$;
create function pg_temp.cpu_ticks() returns bigint language sql as $$
  select f[12]::bigint + f[13]::bigint
  from (select regexp_split_to_array(split_part(pg_read_file('/proc/self/stat'), ') ', 2), ' ') as f) s
$$;
create temp table acc (phase text primary key, n bigint not null default 0,
                       wall double precision not null default 0, ticks bigint not null default 0);
insert into acc (phase) values ('backfill'), ('delta');
create function pg_temp.run(p_phase text, p_conn uuid, p_recs jsonb) returns void language plpgsql as $$
declare t0 timestamptz := clock_timestamp(); c0 bigint := pg_temp.cpu_ticks();
begin
  perform crm.apply_inbound(p_conn, 'contacts', p_recs);
  update acc set n = n + jsonb_array_length(p_recs), wall = wall + extract(epoch from clock_timestamp() - t0),
                 ticks = ticks + pg_temp.cpu_ticks() - c0
  where phase = p_phase;
end $$;
SQL
    for ((p = 0; p < PAGES; p++)); do
      echo "select pg_temp.run('backfill', '$conn', pg_temp.page($((p * 2000 + 1)), 2000, '2026-01-01T00:00:00Z', 'a'));"
    done
    echo "analyze crm.contacts;"
    for ((p = 0; p < DELTA; p++)); do
      echo "select pg_temp.run('delta', '$conn', pg_temp.page($(((p * 7919 % PAGES) * 2000 + 1)), 2000, '2026-02-0$((p % 9 + 1))T00:00:00Z', 'd$p'));"
    done
    echo "select phase || ': ' || round((wall * 1e6 / n)::numeric, 1) || ' us/record wall, '
                || round((ticks * (1e6 / $(getconf CLK_TCK)) / n)::numeric, 1)
                || ' us/record CPU' from acc where n > 0 order by phase;"
  } | psql "$DB" -qtA | grep -v '^$'
  psql "$DB" -qc "delete from crm.connections where id = '$conn'" >/dev/null
}

for ((round = 1; round <= ROUNDS; round++)); do
  git -C "$ROOT" show "$OLD_REV:supabase/migrations/20261122010600_crm_apply_inbound.sql" | psql "$DB" -q
  echo "round $round, old ($OLD_REV):"
  run_phases
  psql "$DB" -q -f "$NEW_FILE" 2>&1 | grep -v NOTICE || true
  echo "round $round, new:"
  run_phases
done
