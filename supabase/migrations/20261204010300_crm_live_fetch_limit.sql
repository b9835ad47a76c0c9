-- Why: crm-fetch-live let any signed-in user of an account spend that account's CRM API quota
-- without limit (issue 10, item 8): with "sync": true, and with plain reads, which call the CRM
-- just the same. Each user call now takes a grant from a token bucket per account and kind
-- ('read' for every call, 'sync' in addition for sync: true), kept here so every function
-- instance shares it: the bucket holds at most p_burst grants and refills at p_per_hour grants
-- an hour. One INSERT ... ON CONFLICT DO UPDATE takes the grant, so concurrent callers
-- serialise on the bucket's row and two of them can never spend the same token.
--
-- The limits are arguments, so crm-fetch-live passes its configuration (CRM_LIVE_SYNC_BURST,
-- CRM_LIVE_SYNC_PER_HOUR, CRM_LIVE_READ_BURST, CRM_LIVE_READ_PER_HOUR); NULL means the
-- defaults below: sync a burst of 5 and 30 an hour; read a burst of 20 and 360 an hour (a
-- dashboard refreshing every 10 s).

create table crm.live_fetch_buckets (
  account_id uuid not null,
  kind text not null default 'sync',
  -- Grants left at refilled_at (fractional: refilling is continuous).
  tokens double precision not null,
  refilled_at timestamptz not null,
  -- Whether the last call took a grant (RETURNING sees only the new row).
  last_granted boolean not null,
  primary key (account_id, kind),
  constraint live_fetch_buckets_kind_check check (kind in ('sync', 'read'))
);
comment on table crm.live_fetch_buckets is
  'Token buckets per account and kind (read: every user call of crm-fetch-live; sync: those with sync: true), taken by crm.take_live_fetch_grant.';

alter table crm.live_fetch_buckets enable row level security;
revoke all on crm.live_fetch_buckets from public, anon, authenticated;
grant select, insert, update, delete on crm.live_fetch_buckets to service_role;

-- Grants in a bucket at now(): the stored level plus the refill since, at most the burst. A
-- transaction that started before another one refilled sees now() < refilled_at: no refill,
-- never a negative one.
create or replace function crm._live_fetch_level(
  p_tokens double precision,
  p_refilled_at timestamptz,
  p_burst integer,
  p_per_hour integer
)
  returns double precision
  language sql
  stable
  set search_path = ''
as $$
  select least(p_burst::double precision,
               p_tokens + greatest(0, extract(epoch from now() - p_refilled_at)) * p_per_hour / 3600.0)
$$;
revoke all on function crm._live_fetch_level(double precision, timestamptz, integer, integer) from public, anon, authenticated;
grant execute on function crm._live_fetch_level(double precision, timestamptz, integer, integer) to service_role;

-- Takes one grant from the account's bucket of the kind if it has one. retry_after_s: whole seconds until the
-- next grant (0 when granted); burst and per_hour: the limits applied, for the caller's message.
create or replace function crm.take_live_fetch_grant(
  p_account_id uuid,
  p_burst integer default null,
  p_per_hour integer default null,
  p_kind text default 'sync'
)
  returns table (granted boolean, retry_after_s integer, burst integer, per_hour integer)
  language plpgsql
  set search_path = ''
as $$
declare
  v_burst integer := coalesce(p_burst, case p_kind when 'read' then 20 else 5 end);
  v_per_hour integer := coalesce(p_per_hour, case p_kind when 'read' then 360 else 30 end);
begin
  if p_account_id is null or p_kind is null or p_kind not in ('sync', 'read')
     or v_burst < 1 or v_per_hour < 1 then
    raise exception using errcode = '22023',
      message = format('take_live_fetch_grant needs an account, a kind (sync, read) and positive limits (kind %s, burst %s, per_hour %s)',
                       p_kind, v_burst, v_per_hour);
  end if;
  return query
  insert into crm.live_fetch_buckets as b (account_id, kind, tokens, refilled_at, last_granted)
  values (p_account_id, p_kind, v_burst - 1, now(), true)
  on conflict (account_id, kind) do update
  set last_granted = crm._live_fetch_level(b.tokens, b.refilled_at, v_burst, v_per_hour) >= 1,
      tokens = crm._live_fetch_level(b.tokens, b.refilled_at, v_burst, v_per_hour)
               - case when crm._live_fetch_level(b.tokens, b.refilled_at, v_burst, v_per_hour) >= 1
                      then 1 else 0 end,
      refilled_at = greatest(b.refilled_at, now())
  returning b.last_granted,
            case when b.last_granted then 0
                 else ceil((1 - b.tokens) * 3600.0 / v_per_hour)::integer end,
            v_burst,
            v_per_hour;
end
$$;
revoke all on function crm.take_live_fetch_grant(uuid, integer, integer, text) from public, anon, authenticated;
grant execute on function crm.take_live_fetch_grant(uuid, integer, integer, text) to service_role;
