-- Why: every caller of a CRM account (inbound walks, live reads, and the outbound pushes and
-- webhook re-reads to come) ran its own in-process rate limiter, so a cron walk, a live read and
-- a second worker of the same HubSpot portal each believed they owned its 100 requests / 10 s and
-- together made 429 storms (issue 11, item 4). The budget now lives here, one per connection and
-- limit class, shared by every function instance; edge functions take grants in small batches
-- (crm.take_rate_grant) and report what the provider's headers and 429s say
-- (crm.observe_rate_limits).
--
-- Limit classes (provider docs, 2025):
--   hubspot    burst   100 requests per rolling 10 s per app and portal (Free/Starter private
--                      apps; 190 Pro/Enterprise, 110 OAuth apps) - X-HubSpot-RateLimit-Max and
--                      -Interval-Milliseconds say which; 429 policyName TEN_SECONDLY_ROLLING.
--              search  5 requests/s, counted apart from the burst (no rate-limit headers);
--                      429 policyName SECONDLY.
--              daily   250,000 requests a day (up to 1M+), X-HubSpot-RateLimit-Daily[-Remaining];
--                      resets at midnight in the portal's time zone; 429 policyName DAILY.
--   salesforce daily   the org's API request allocation over a rolling 24 h (15,000 for a
--                      Developer Edition, 100,000+ for Enterprise), reported on every response as
--                      Sforce-Limit-Info: api-usage=USED/LIMIT; past it 403 REQUEST_LIMIT_EXCEEDED.
--                      It is shared with the customer's other integrations, so a reserve
--                      (settings.rate_reserve, default 10 %) is never spent.
--   pipedrive  burst   requests per rolling 2 s per token (20-120 api_token, 80-480 OAuth by
--                      plan), x-ratelimit-limit/-remaining/-reset, 429 past it.
--              daily   the company's daily token budget (30,000 x plan multiplier x seats); each
--                      call costs tokens by endpoint (v2 list 10, v1 list 20, v2 get 1, v2 write
--                      5, v2 delete 3); 429 when spent, until the next UTC day.
--
-- How the bucket is sized (the guarantee is strict: no rolling window of the provider ever
-- holds more than its limit, whatever the number of callers):
-- * Each class keeps a log of its grants (time, units) over window + margin. A grant is taken
--   at t and its request reaches the provider at some s in [t, t + ttl + jitter]: the gate
--   drops unused grants after a short ttl (50 ms) and margin_ms covers ttl plus latency jitter.
--   Requests arriving in any provider window [a, a + W) were granted in (a - margin, a + W), an
--   interval of W + margin, so "at most L grants in any W + margin" keeps every provider window
--   at L or below. The ceiling is then L / (W + margin): 96 % for HubSpot's burst (10 s, 400 ms
--   margin), 95 % for Pipedrive's (2 s, 100 ms), 87 % for HubSpot search (1 s, 150 ms).
-- * Log entries of one short moment (1/200 of the span) are merged into one, stamped with the
--   later time (they leave the window later: never an undercount), so a log holds about 200
--   entries however high the limit; daily classes use the same log over 24 h.
-- * Paced classes (the short windows) also meter grants through a token bucket refilling at
--   L / (W + margin) with a small burst, so a saturating backfill spreads its grants over the
--   window instead of spending it in the first second: slots then free continuously and a
--   waiting live read gets the next one within ~1/rate (0.1 s on HubSpot).
-- * Lanes, by precedence: interactive (live reads), realtime (webhooks, outbound), delta,
--   backfill (full walks and drift checks). A refused caller marks its lane as waiting on the
--   classes that refused it until its retry is due; while a higher lane waits, lower lanes get
--   nothing from those classes. Interactive grants skip the pacing bucket (they still debit it,
--   so the other lanes slow down by as much) but never the log.
-- * Calibration: a provider limit seen in headers replaces the default (lower or higher)
--   unless settings.rate_limits sets the class; usage the provider reports above our own log
--   (another app or process on the same bucket) is added to the log; a daily usage report is
--   trusted for 15 minutes (our own grants since are added to it), then our own log counts
--   again until the next report. A 429 (or Salesforce's 403) pauses the class for the wait the
--   provider names (1 s when it names none, as HubSpot's burst 429s) and fills its window: it
--   then gets grants only as fast as its earlier ones leave the window, so it never bursts into
--   the same wall again; a daily 429 pauses it until the provider's day ends.
--
-- Settings (crm.connections.settings):
--   rate_limits: {"<class>": {"limit": n, "window_ms": ms, "margin_ms": ms, "burst": n}} -
--     "default" is read as the provider's burst class (the format before this migration, which
--     keeps working); an override wins over the defaults and over what headers say.
--   rate_reserve: the daily allocation never spent: a number of calls (2000) or a percentage
--     ("10%"); default 10% for Salesforce, 0 elsewhere.

create table crm.rate_budgets (
  connection_id uuid not null references crm.connections (id) on delete cascade,
  class text not null,
  -- Effective limit and window at the last grant (status only: recomputed on every take).
  ceiling integer not null,
  window_ms integer not null,
  -- Grants (in units: requests, or Pipedrive tokens) over the last window + margin, oldest first.
  log_at timestamptz[] not null default '{}',
  log_n integer[] not null default '{}',
  -- Pacing bucket of paced classes (null: full).
  tokens double precision,
  refilled_at timestamptz,
  -- Per lane (1 interactive, 2 realtime, 3 delta, 4 backfill): a refused caller of that lane
  -- waits until this time.
  waiting timestamptz[] not null default '{null,null,null,null}',
  -- What the provider said (headers): its limit and window, and for daily classes its usage.
  observed_limit integer,
  observed_window_ms integer,
  observed_used integer,
  observed_at timestamptz,
  -- After a 429 (or Salesforce 403): nothing is granted before this time.
  throttled_until timestamptz,
  throttled integer not null default 0,
  last_throttled_at timestamptz,
  -- The last long pause a caller was given (throttled, daily, reserve), for status.
  paused_until timestamptz,
  pause_reason text,
  granted bigint not null default 0,
  updated_at timestamptz not null default now(),
  primary key (connection_id, class),
  constraint rate_budgets_class_check check (class in ('burst', 'search', 'daily')),
  constraint rate_budgets_log_check check (cardinality(log_at) = cardinality(log_n))
);
comment on table crm.rate_budgets is
  'One rate budget per CRM connection and limit class (burst, search, daily), shared by every caller through crm.take_rate_grant and calibrated by crm.observe_rate_limits.';

alter table crm.rate_budgets enable row level security;
create policy rate_budgets_select_own on crm.rate_budgets
  for select to authenticated
  using (exists (select 1 from crm.connections c
                 where c.id = connection_id and c.account_id = (select crm.current_account_id())));
revoke all on crm.rate_budgets from public, anon, authenticated;
grant select on crm.rate_budgets to authenticated;
grant select, insert, update, delete on crm.rate_budgets to service_role;

-- The limit classes of a provider with the connection's settings applied. margin_ms: see the
-- header; pace_burst: the pacing bucket's size (null: not paced); reserve: daily units never
-- granted. The ceiling and window here are the defaults or the override; observed values are
-- applied by crm._rate_limits.
create or replace function crm._rate_classes(p_provider text, p_settings jsonb)
  returns table (class text, ceiling integer, window_ms integer, margin_ms integer,
                 pace_burst integer, overridden boolean, reserve_calls integer,
                 reserve_pct numeric)
  language plpgsql
  immutable
  set search_path = ''
as $$
begin
  -- plpgsql, not sql: its plan is cached per session (a take calls it on every grant).
  return query
  with defaults (provider, class, ceiling, window_ms, margin_ms, pace_burst) as (
    values ('hubspot', 'burst', 100, 10000, 400, 5),
           ('hubspot', 'search', 5, 1000, 150, 2),
           ('hubspot', 'daily', 250000, 86400000, 0, null),
           ('salesforce', 'daily', 15000, 86400000, 0, null),
           ('pipedrive', 'burst', 80, 2000, 100, 4),
           ('pipedrive', 'daily', 30000, 86400000, 0, null)
  ),
  withover as (
    select d.*,
           case when d.class = 'burst'
                then coalesce(p_settings -> 'rate_limits' -> 'burst', p_settings -> 'rate_limits' -> 'default')
                else p_settings -> 'rate_limits' -> d.class end as o
    from defaults d
    where d.provider = p_provider
  ),
  valid as (
    select w.*,
           pg_catalog.jsonb_typeof(w.o -> 'limit') = 'number'
             and (w.o ->> 'limit')::numeric between 1 and 100000000
             and pg_catalog.jsonb_typeof(w.o -> 'window_ms') = 'number'
             and (w.o ->> 'window_ms')::numeric between 1 and 86400000 as ok,
           pg_catalog.jsonb_typeof(w.o -> 'margin_ms') = 'number'
             and (w.o ->> 'margin_ms')::numeric between 0 and 60000 as margin_ok,
           pg_catalog.jsonb_typeof(w.o -> 'burst') = 'number'
             and (w.o ->> 'burst')::numeric between 1 and 100000000 as burst_ok
    from withover w
  ),
  reserve as (
    select case when pg_catalog.jsonb_typeof(p_settings -> 'rate_reserve') = 'number'
                 and (p_settings ->> 'rate_reserve')::numeric >= 0
                then floor((p_settings ->> 'rate_reserve')::numeric)::integer end as calls,
           case when pg_catalog.jsonb_typeof(p_settings -> 'rate_reserve') = 'string'
                 and p_settings ->> 'rate_reserve' ~ '^\s*\d+(\.\d+)?\s*%\s*$'
                then least(100, pg_catalog.rtrim(pg_catalog.btrim(p_settings ->> 'rate_reserve'), '%')::numeric)
                when pg_catalog.jsonb_typeof(p_settings -> 'rate_reserve') is null
                 and p_provider = 'salesforce' then 10
                else 0 end as pct
  )
  select v.class,
         case when v.ok then floor((v.o ->> 'limit')::numeric)::integer else v.ceiling end,
         case when v.ok then floor((v.o ->> 'window_ms')::numeric)::integer else v.window_ms end,
         case when v.margin_ok then floor((v.o ->> 'margin_ms')::numeric)::integer else v.margin_ms end,
         case when v.pace_burst is null then null
              when v.burst_ok then floor((v.o ->> 'burst')::numeric)::integer
              else v.pace_burst end,
         coalesce(v.ok, false),
         case when v.class = 'daily' then r.calls end,
         case when v.class = 'daily' then r.pct else 0::numeric end
  from valid v cross join reserve r;
end
$$;
revoke all on function crm._rate_classes(text, jsonb) from public, anon, authenticated;
grant execute on function crm._rate_classes(text, jsonb) to service_role;

-- The classes one API call of `kind` draws from, and its cost in each (units). Kinds are the
-- strings the adapters pass to beforeRequest (see each adapter's header); unknown kinds draw
-- from the provider's usual classes at the highest cost, never less.
create or replace function crm._rate_costs(p_provider text, p_kind text)
  returns table (class text, cost integer)
  language sql
  immutable
  set search_path = ''
as $$
  select c.class, c.cost
  from (values
    -- HubSpot: search has a limit of its own and spends no burst; every call counts a day.
    ('hubspot', 'search', p_kind = 'search', 1),
    ('hubspot', 'burst', p_kind <> 'search', 1),
    ('hubspot', 'daily', true, 1),
    ('salesforce', 'daily', true, 1),
    ('pipedrive', 'burst', true, 1),
    -- Pipedrive's token costs (its rate-limiting page): v2 list 10, v1 list 20, v2 get 1,
    -- v2 create/update 5, v2 delete 3.
    ('pipedrive', 'daily', true, case
      when p_kind in ('list', 'list-ids') then 10
      when p_kind in ('get', 'read') then 1
      when p_kind in ('create', 'update') then 5
      when p_kind = 'delete' then 3
      else 20 end)
  ) as c (provider, class, applies, cost)
  where c.provider = p_provider and c.applies
$$;
revoke all on function crm._rate_costs(text, text) from public, anon, authenticated;
grant execute on function crm._rate_costs(text, text) to service_role;

-- Effective limits of a connection's classes: settings override, else the limit the provider
-- reported, else the default. span_ms = window + margin (the grant log's horizon); reserve in
-- units; daily: a class whose usage reports are trusted (see the header).
create or replace function crm._rate_limits(p_connection_id uuid)
  returns table (class text, ceiling integer, window_ms integer, span_ms integer,
                 pace_burst integer, reserve integer, daily boolean)
  language plpgsql
  stable
  set search_path = ''
as $$
begin
  return query
  select k.class, e.ceiling, e.window_ms, e.window_ms + k.margin_ms, k.pace_burst,
         least(e.ceiling, coalesce(k.reserve_calls, ceil(e.ceiling * k.reserve_pct / 100)::integer)),
         e.window_ms >= 3600000
  from crm.connections c
  cross join lateral crm._rate_classes(c.provider, c.settings) k
  left join crm.rate_budgets b on b.connection_id = c.id and b.class = k.class
  cross join lateral (
    select case when k.overridden then k.ceiling else coalesce(b.observed_limit, k.ceiling) end as ceiling,
           case when k.overridden then k.window_ms else coalesce(b.observed_window_ms, k.window_ms) end as window_ms
  ) e
  where c.id = p_connection_id;
end
$$;
revoke all on function crm._rate_limits(uuid) from public, anon, authenticated;
grant execute on function crm._rate_limits(uuid) to service_role;

-- Units in a grant log after a time.
create or replace function crm._rate_used(p_at timestamptz[], p_n integer[], p_after timestamptz)
  returns bigint
  language sql
  immutable
  set search_path = ''
as $$
  select coalesce(sum(l.n), 0)::bigint from unnest(p_at, p_n) as l (at, n) where l.at > p_after
$$;
revoke all on function crm._rate_used(timestamptz[], integer[], timestamptz) from public, anon, authenticated;
grant execute on function crm._rate_used(timestamptz[], integer[], timestamptz) to service_role;

-- When `p_units` units of the log (entries after p_after, oldest first) will have left it:
-- the entry completing them plus the span; null when the log holds fewer.
create or replace function crm._rate_frees_at(p_at timestamptz[], p_n integer[], p_after timestamptz,
                                              p_units bigint, p_span_ms integer)
  returns timestamptz
  language sql
  immutable
  set search_path = ''
as $$
  select min(r.at) + make_interval(secs => p_span_ms / 1000.0)
  from (select l.at, sum(l.n) over (order by l.ord) as upto
        from unnest(p_at, p_n) with ordinality as l (at, n, ord)
        where l.at > p_after) r
  where r.upto >= p_units
$$;
revoke all on function crm._rate_frees_at(timestamptz[], integer[], timestamptz, bigint, integer) from public, anon, authenticated;
grant execute on function crm._rate_frees_at(timestamptz[], integer[], timestamptz, bigint, integer) to service_role;

-- Units of a class in use at p_now: the provider's fresh daily report plus our grants since, or
-- our own log over the span.
create or replace function crm._rate_in_use(b crm.rate_budgets, p_span_ms integer, p_daily boolean,
                                            p_now timestamptz)
  returns bigint
  language sql
  immutable
  set search_path = ''
as $$
  select case
    when p_daily and b.observed_at > p_now - interval '15 minutes' and b.observed_used is not null
      then b.observed_used + crm._rate_used(b.log_at, b.log_n, b.observed_at)
    else crm._rate_used(b.log_at, b.log_n, p_now - make_interval(secs => p_span_ms / 1000.0))
  end
$$;
revoke all on function crm._rate_in_use(crm.rate_budgets, integer, boolean, timestamptz) from public, anon, authenticated;
grant execute on function crm._rate_in_use(crm.rate_budgets, integer, boolean, timestamptz) to service_role;

-- A class's log with `p_units` more at p_now: entries older than the span dropped, an entry of
-- the last 1/200 of the span merged (restamped later, never earlier).
create or replace function crm._rate_log_append(b crm.rate_budgets, p_units integer, p_span_ms integer,
                                                p_now timestamptz, out log_at timestamptz[], out log_n integer[])
  language plpgsql
  immutable
  set search_path = ''
as $$
declare
  v_merge interval := make_interval(secs => greatest(1, p_span_ms / 200) / 1000.0);
  v_last integer;
begin
  select coalesce(array_agg(l.at order by l.ord), '{}'), coalesce(array_agg(l.n order by l.ord), '{}')
    into log_at, log_n
  from unnest(b.log_at, b.log_n) with ordinality as l (at, n, ord)
  where l.at > p_now - make_interval(secs => p_span_ms / 1000.0)
     or (b.observed_at is not null and l.at > b.observed_at);
  if p_units <= 0 then
    return;
  end if;
  v_last := cardinality(log_at);
  if v_last > 0 and log_at[v_last] >= p_now - v_merge then
    log_at[v_last] := greatest(log_at[v_last], p_now);
    log_n[v_last] := log_n[v_last] + p_units;
  else
    log_at := log_at || greatest(p_now, log_at[v_last]);
    log_n := log_n || p_units;
  end if;
end
$$;
revoke all on function crm._rate_log_append(crm.rate_budgets, integer, integer, timestamptz) from public, anon, authenticated;
grant execute on function crm._rate_log_append(crm.rate_budgets, integer, integer, timestamptz) to service_role;

create or replace function crm._rate_lane_rank(p_lane text)
  returns integer
  language sql
  immutable
  set search_path = ''
as $$ select array_position(array['interactive', 'realtime', 'delta', 'backfill'], p_lane) $$;
revoke all on function crm._rate_lane_rank(text) from public, anon, authenticated;
grant execute on function crm._rate_lane_rank(text) to service_role;

-- crm.take_rate_grant with the time as an argument (tests simulate a clock; null = the clock
-- after the budget rows are locked, so a caller that queued for the lock is stamped when it got
-- them).
create or replace function crm._take_rate_grant(p_connection_id uuid, p_kind text, p_count integer,
                                                p_lane text, p_now timestamptz)
  returns table (granted integer, wait_ms integer, paused_until timestamptz, reason text)
  language plpgsql
  set search_path = ''
as $$
declare
  v_rank integer := crm._rate_lane_rank(p_lane);
  v_provider text;
  v_now timestamptz;
  v_grant integer := p_count;
  v_wait double precision := 0;
  v_reason text;
  v_pause boolean := false;
  v_blocked text[] := '{}';
  c record;
  v_used bigint;
  v_room bigint;
  v_level double precision;
  v_rate double precision;
  v_can integer;
  v_cwait double precision;
  v_creason text;
  v_cpause boolean;
  v_free timestamptz;
  v_hold timestamptz;
  v_log record;
begin
  if p_connection_id is null or p_kind is null or p_kind = '' or v_rank is null
     or p_count is null or p_count < 1 or p_count > 1000 then
    raise exception using errcode = 'CRM01',
      message = format('take_rate_grant needs a connection, a kind, a count of 1-1000 and a lane (interactive, realtime, delta, backfill); got %s, %s, %s, %s',
                       p_connection_id, p_kind, p_count, p_lane);
  end if;
  select co.provider into v_provider from crm.connections co where co.id = p_connection_id;
  if not found then
    raise exception using errcode = 'CRM02', message = format('connection %s not found', p_connection_id);
  end if;

  insert into crm.rate_budgets as rb (connection_id, class, ceiling, window_ms)
  select p_connection_id, l.class, l.ceiling, l.window_ms
  from crm._rate_costs(v_provider, p_kind) k
  join crm._rate_limits(p_connection_id) l on l.class = k.class
  on conflict on constraint rate_budgets_pkey do nothing;
  -- Rows locked in class order: concurrent takes of overlapping classes cannot deadlock.
  perform 1 from crm.rate_budgets rb
  where rb.connection_id = p_connection_id
    and rb.class in (select k.class from crm._rate_costs(v_provider, p_kind) k)
  order by rb.class
  for update;
  v_now := coalesce(p_now, clock_timestamp());

  for c in
    select k.class, k.cost, l.ceiling, l.window_ms, l.span_ms, l.pace_burst, l.reserve, l.daily, rb as bud
    from crm._rate_costs(v_provider, p_kind) k
    join crm._rate_limits(p_connection_id) l on l.class = k.class
    join crm.rate_budgets rb on rb.connection_id = p_connection_id and rb.class = k.class
    order by k.class
  loop
    v_cwait := 0;
    v_creason := null;
    v_cpause := false;
    if (c.bud).throttled_until > v_now then
      v_can := 0;
      v_cwait := extract(epoch from (c.bud).throttled_until - v_now) * 1000;
      v_creason := 'throttled';
      v_cpause := true;
    else
      v_used := crm._rate_in_use(c.bud, c.span_ms, c.daily, v_now);
      v_room := c.ceiling - c.reserve - v_used;
      v_can := least(p_count, greatest(0, floor(v_room::numeric / c.cost)))::integer;
      if v_can = 0 then
        if c.daily and (c.bud).observed_at > v_now - interval '15 minutes' then
          -- The provider's own count (other integrations included) said so: ask it again later.
          v_free := (c.bud).observed_at + interval '15 minutes';
        else
          v_free := crm._rate_frees_at((c.bud).log_at, (c.bud).log_n,
                                       v_now - make_interval(secs => c.span_ms / 1000.0),
                                       v_used - (c.ceiling - c.reserve - c.cost), c.span_ms);
        end if;
        v_cwait := extract(epoch from coalesce(v_free, v_now + interval '15 minutes') - v_now) * 1000;
        if c.daily then
          v_creason := case when c.reserve > 0 and v_used < c.ceiling then 'reserve' else 'daily' end;
          v_cpause := true;
        else
          v_creason := 'window';
        end if;
      end if;
      -- A waiting higher lane holds this one back.
      if v_can > 0 and v_rank > 1 then
        select min(w) into v_hold from unnest((c.bud).waiting[1:v_rank - 1]) w where w > v_now;
        if v_hold is not null then
          v_can := 0;
          v_cwait := least(200, extract(epoch from v_hold - v_now) * 1000);
          v_creason := 'lane';
        end if;
      end if;
      -- Pacing: interactive grants skip it (and debit it below).
      if v_can > 0 and c.pace_burst is not null and v_rank > 1 then
        v_rate := c.ceiling::double precision / c.span_ms;
        v_level := least(c.pace_burst, coalesce((c.bud).tokens, c.pace_burst)
                   + greatest(0, extract(epoch from v_now - coalesce((c.bud).refilled_at, v_now)) * 1000) * v_rate);
        v_can := least(v_can, greatest(0, floor(v_level / c.cost)))::integer;
        if v_can = 0 then
          v_cwait := (c.cost - v_level) / v_rate;
          v_creason := 'pacing';
        end if;
      end if;
    end if;
    if v_can < v_grant then
      v_grant := v_can;
    end if;
    if v_can = 0 then
      v_blocked := v_blocked || c.class::text;
      if v_cwait >= v_wait then
        v_wait := v_cwait;
        v_reason := v_creason;
        v_pause := v_cpause;
      end if;
    end if;
  end loop;

  if v_grant > 0 then
    v_wait := 0;
    v_pause := false;
    v_reason := null;
  end if;

  for c in
    select k.class, k.cost, l.ceiling, l.window_ms, l.span_ms, l.pace_burst, rb as bud
    from crm._rate_costs(v_provider, p_kind) k
    join crm._rate_limits(p_connection_id) l on l.class = k.class
    join crm.rate_budgets rb on rb.connection_id = p_connection_id and rb.class = k.class
  loop
    v_log := crm._rate_log_append(c.bud, v_grant * c.cost, c.span_ms, v_now);
    if c.pace_burst is not null then
      v_rate := c.ceiling::double precision / c.span_ms;
      v_level := least(c.pace_burst, coalesce((c.bud).tokens, c.pace_burst)
                 + greatest(0, extract(epoch from v_now - coalesce((c.bud).refilled_at, v_now)) * 1000) * v_rate);
    end if;
    update crm.rate_budgets rb
    set log_at = v_log.log_at,
        log_n = v_log.log_n,
        tokens = case when c.pace_burst is null then null
                      else greatest(-c.ceiling, v_level - v_grant * c.cost) end,
        refilled_at = case when c.pace_burst is null then null
                           else greatest(coalesce(rb.refilled_at, v_now), v_now) end,
        -- Granted: this lane no longer waits here. Refused: it waits on the classes that
        -- refused it until its retry (plus 100 ms to come back).
        waiting[v_rank] = case
          when v_grant > 0 then null
          when c.class = any (v_blocked) then v_now + make_interval(secs => (v_wait + 100) / 1000.0)
          else rb.waiting[v_rank] end,
        granted = rb.granted + v_grant,
        ceiling = c.ceiling,
        window_ms = c.window_ms,
        paused_until = case when v_grant > 0 then null
                            when v_pause and c.class = any (v_blocked)
                              then v_now + make_interval(secs => v_wait / 1000.0)
                            else rb.paused_until end,
        pause_reason = case when v_grant > 0 then null
                            when v_pause and c.class = any (v_blocked) then v_reason
                            else rb.pause_reason end,
        updated_at = v_now
    where rb.connection_id = p_connection_id and rb.class = c.class;
  end loop;

  return query select v_grant,
                      ceil(v_wait)::integer,
                      case when v_pause then v_now + make_interval(secs => v_wait / 1000.0) end,
                      v_reason;
end
$$;
revoke all on function crm._take_rate_grant(uuid, text, integer, text, timestamptz) from public, anon, authenticated;
grant execute on function crm._take_rate_grant(uuid, text, integer, text, timestamptz) to service_role;

-- Takes up to p_count grants for one API call kind from every class it draws from, atomically
-- (all classes or none). granted: how many calls may start now (0..p_count); wait_ms: when
-- nothing was granted, when to ask again; paused_until and reason when the budget is paused
-- (reason throttled: a 429 until the provider's window clears; daily: the daily limit is spent;
-- reserve: only the reserve is left) - a caller defers its job rather than sleep through those.
-- Other reasons: window (the rolling window is full), pacing, lane (a higher lane waits).
create or replace function crm.take_rate_grant(p_connection_id uuid, p_kind text, p_count integer default 1,
                                               p_lane text default 'delta')
  returns table (granted integer, wait_ms integer, paused_until timestamptz, reason text)
  language sql
  set search_path = ''
as $$
  select * from crm._take_rate_grant(p_connection_id, p_kind, p_count, p_lane, null)
$$;
revoke all on function crm.take_rate_grant(uuid, text, integer, text) from public, anon, authenticated;
grant execute on function crm.take_rate_grant(uuid, text, integer, text) to service_role;

-- crm.observe_rate_limits with the time as an argument (tests).
create or replace function crm._observe_rate_limits(p_connection_id uuid, p_observations jsonb, p_now timestamptz)
  returns integer
  language plpgsql
  set search_path = ''
as $$
declare
  v_provider text;
  v_now timestamptz;
  o jsonb;
  v_class text;
  v_at timestamptz;
  v_used bigint;
  v_own bigint;
  v_pause_ms double precision;
  v_applied integer := 0;
  b crm.rate_budgets;
  l record;
  v_log record;
begin
  if p_connection_id is null or pg_catalog.jsonb_typeof(p_observations) is distinct from 'array' then
    raise exception using errcode = 'CRM01',
      message = 'observe_rate_limits needs a connection and a JSON array of observations';
  end if;
  select co.provider into v_provider from crm.connections co where co.id = p_connection_id;
  if not found then
    raise exception using errcode = 'CRM02', message = format('connection %s not found', p_connection_id);
  end if;
  for o in select e from jsonb_array_elements(p_observations) e order by e ->> 'class' loop
    v_class := o ->> 'class';
    if not exists (select 1 from crm._rate_classes(v_provider, '{}') k where k.class = v_class) then
      continue;
    end if;
    insert into crm.rate_budgets as rb (connection_id, class, ceiling, window_ms)
    select p_connection_id, li.class, li.ceiling, li.window_ms
    from crm._rate_limits(p_connection_id) li where li.class = v_class
    on conflict on constraint rate_budgets_pkey do nothing;
    select * into b from crm.rate_budgets rb
    where rb.connection_id = p_connection_id and rb.class = v_class for update;
    v_now := coalesce(p_now, clock_timestamp());
    v_at := least(v_now, coalesce((o ->> 'at')::timestamptz, v_now));

    if pg_catalog.jsonb_typeof(o -> 'limit') = 'number' and (o ->> 'limit')::numeric >= 1 then
      b.observed_limit := least(2000000000, (o ->> 'limit')::numeric)::integer;
    end if;
    if pg_catalog.jsonb_typeof(o -> 'window_ms') = 'number' and (o ->> 'window_ms')::numeric >= 1 then
      b.observed_window_ms := least(86400000, (o ->> 'window_ms')::numeric)::integer;
    end if;
    -- Usage as the provider counts it: "used", or limit - remaining.
    v_used := case
      when pg_catalog.jsonb_typeof(o -> 'used') = 'number' then (o ->> 'used')::numeric
      when pg_catalog.jsonb_typeof(o -> 'remaining') = 'number' and b.observed_limit is not null
        then b.observed_limit - (o ->> 'remaining')::numeric
    end;
    select * into l from crm._rate_limits(p_connection_id) li where li.class = v_class;
    if v_used is not null and v_used >= 0 then
      if l.daily then
        if b.observed_at is null or v_at >= b.observed_at then
          b.observed_used := least(2000000000, v_used)::integer;
          b.observed_at := v_at;
          -- An empty entry closes the merged one: grants after this report go to an entry of
          -- their own, so only they are added to the provider's count.
          if cardinality(b.log_n) > 0 and b.log_n[cardinality(b.log_n)] = 0 then
            b.log_at[cardinality(b.log_at)] := greatest(b.log_at[cardinality(b.log_at)], v_now);
          else
            b.log_at := b.log_at || greatest(v_now, b.log_at[cardinality(b.log_at)]);
            b.log_n := b.log_n || 0;
          end if;
        end if;
      else
        -- More in the provider's window than in our log: someone else spends this bucket.
        v_own := crm._rate_used(b.log_at, b.log_n, v_at - make_interval(secs => l.span_ms / 1000.0));
        if v_used > v_own then
          v_log := crm._rate_log_append(b, (v_used - v_own)::integer, l.span_ms, v_now);
          b.log_at := v_log.log_at;
          b.log_n := v_log.log_n;
        end if;
      end if;
    end if;
    if (o ->> 'throttled')::boolean is true then
      -- Nothing for the wait the provider names (else 1 s, at most the window; a daily limit:
      -- 15 minutes, then a probe), and the window counts as full from now on: the class gets
      -- back only what leaves it, never a burst into the same wall.
      v_pause_ms := case when pg_catalog.jsonb_typeof(o -> 'retry_ms') = 'number'
                         then greatest(0, (o ->> 'retry_ms')::numeric)
                         when l.daily then 15 * 60000
                         else least(1000, l.window_ms) end;
      if not l.daily then
        v_own := crm._rate_used(b.log_at, b.log_n, v_now - make_interval(secs => l.span_ms / 1000.0));
        if v_own < l.ceiling then
          v_log := crm._rate_log_append(b, (l.ceiling - v_own)::integer, l.span_ms, v_now);
          b.log_at := v_log.log_at;
          b.log_n := v_log.log_n;
        end if;
      end if;
      b.throttled := b.throttled + 1;
      b.last_throttled_at := v_at;
      b.throttled_until := greatest(b.throttled_until, v_at + make_interval(secs => v_pause_ms / 1000.0));
      b.paused_until := b.throttled_until;
      b.pause_reason := 'throttled';
    end if;
    update crm.rate_budgets rb
    set observed_limit = b.observed_limit,
        observed_window_ms = b.observed_window_ms,
        observed_used = b.observed_used,
        observed_at = b.observed_at,
        log_at = b.log_at,
        log_n = b.log_n,
        throttled = b.throttled,
        last_throttled_at = b.last_throttled_at,
        throttled_until = b.throttled_until,
        paused_until = b.paused_until,
        pause_reason = b.pause_reason,
        updated_at = v_now
    where rb.connection_id = p_connection_id and rb.class = v_class;
    v_applied := v_applied + 1;
  end loop;
  return v_applied;
end
$$;
revoke all on function crm._observe_rate_limits(uuid, jsonb, timestamptz) from public, anon, authenticated;
grant execute on function crm._observe_rate_limits(uuid, jsonb, timestamptz) to service_role;

-- Calibrates a connection's budget from what its provider said. p_observations: a JSON array of
-- {"class": "burst"|"search"|"daily", "limit": n, "window_ms": ms, "remaining": n | "used": n,
--  "throttled": true, "retry_ms": ms, "at": iso}, every field but class optional (the edge
-- functions parse X-HubSpot-RateLimit-*, Sforce-Limit-Info, x-ratelimit-* and 429 bodies into
-- it: supabase/functions/_shared/sync/budget.ts). Returns the number applied; classes the
-- provider does not have are skipped.
create or replace function crm.observe_rate_limits(p_connection_id uuid, p_observations jsonb)
  returns integer
  language sql
  set search_path = ''
as $$ select crm._observe_rate_limits(p_connection_id, p_observations, null) $$;
revoke all on function crm.observe_rate_limits(uuid, jsonb) from public, anon, authenticated;
grant execute on function crm.observe_rate_limits(uuid, jsonb) to service_role;

-- One row per connection and class with a budget: the effective ceiling and window, the units
-- in use (in the last window; daily classes: the provider's fresh count plus ours since, else
-- ours over 24 h), what is left above the reserve, the pause if any, 429s seen, and the lanes
-- waiting now.
create or replace function crm.budget_status(p_connection_id uuid default null)
  returns table (connection_id uuid, provider text, class text, ceiling integer, window_ms integer,
                 reserve integer, used bigint, available bigint, paused_until timestamptz,
                 pause_reason text, throttled integer, last_throttled_at timestamptz,
                 granted bigint, waiting_lanes text[], updated_at timestamptz)
  language sql
  stable
  set search_path = ''
as $$
  select b.connection_id, co.provider, b.class, l.ceiling, l.window_ms, l.reserve, u.used,
         greatest(0, l.ceiling - l.reserve - u.used),
         case when greatest(b.throttled_until, b.paused_until) > clock_timestamp()
              then greatest(b.throttled_until, b.paused_until) end,
         case when greatest(b.throttled_until, b.paused_until) > clock_timestamp()
              then coalesce(case when b.throttled_until > clock_timestamp() then 'throttled' end, b.pause_reason) end,
         b.throttled, b.last_throttled_at, b.granted,
         array(select lane from unnest(array['interactive', 'realtime', 'delta', 'backfill'], b.waiting) w (lane, w_until)
               where w.w_until > clock_timestamp()),
         b.updated_at
  from crm.rate_budgets b
  join crm.connections co on co.id = b.connection_id
  cross join lateral crm._rate_limits(b.connection_id) l
  cross join lateral (
    select case when l.daily then crm._rate_in_use(b, l.span_ms, true, clock_timestamp())
                else crm._rate_used(b.log_at, b.log_n, clock_timestamp() - make_interval(secs => l.window_ms / 1000.0))
           end as used
  ) u
  where l.class = b.class
    and (p_connection_id is null or b.connection_id = p_connection_id)
  order by b.connection_id, b.class
$$;
revoke all on function crm.budget_status(uuid) from public, anon, authenticated;
grant execute on function crm.budget_status(uuid) to service_role;
