-- crm.take_rate_grant, crm.observe_rate_limits, crm.budget_status: one rate budget per
-- connection and limit class. The clock is simulated through crm._take_rate_grant and
-- crm._observe_rate_limits (p_now), so windows, pacing and pauses are checked exactly.
begin;
select plan(54);

insert into crm.connections (id, account_id, provider, remote_account_id, settings) values
  ('00000000-0000-4000-8000-00000000b001', '00000000-0000-4000-8000-00000000a001', 'hubspot', 'rb-hs', '{}'),
  ('00000000-0000-4000-8000-00000000b002', '00000000-0000-4000-8000-00000000a001', 'salesforce', 'rb-sf',
   '{"rate_limits": {"daily": {"limit": 100, "window_ms": 86400000}}}'),
  ('00000000-0000-4000-8000-00000000b003', '00000000-0000-4000-8000-00000000a001', 'pipedrive', 'rb-pd',
   '{"rate_limits": {"daily": {"limit": 100, "window_ms": 86400000}}}'),
  ('00000000-0000-4000-8000-00000000b004', '00000000-0000-4000-8000-00000000a001', 'pipedrive', 'rb-pd2', '{}'),
  ('00000000-0000-4000-8000-00000000b005', '00000000-0000-4000-8000-00000000a001', 'hubspot', 'rb-hs2',
   '{"rate_limits": {"default": {"limit": 50, "window_ms": 5000}}}'),
  ('00000000-0000-4000-8000-00000000b006', '00000000-0000-4000-8000-00000000a001', 'hubspot', 'rb-hs3', '{}'),
  ('00000000-0000-4000-8000-00000000b007', '00000000-0000-4000-8000-00000000a001', 'hubspot', 'rb-hs4', '{}');

create function pg_temp.t(p_ms double precision) returns timestamptz language sql as $$
  select '2030-01-01 00:00:00+00'::timestamptz + make_interval(secs => p_ms / 1000.0)
$$;
create function pg_temp.take(p_conn text, p_kind text, p_count integer, p_lane text, p_ms double precision)
  returns text language sql as $$
  select g.granted || '/' || g.wait_ms || '/' || coalesce(g.reason, '-')
  from crm._take_rate_grant(('00000000-0000-4000-8000-00000000' || p_conn)::uuid, p_kind, p_count, p_lane, pg_temp.t(p_ms)) g
$$;

-- ---- Classes, costs and settings ---------------------------------------------------------
select results_eq($$select class, ceiling, window_ms, margin_ms, pace_burst from crm._rate_classes('hubspot', '{}') order by class$$,
  $$values ('burst', 100, 10000, 400, 5), ('daily', 250000, 86400000, 0, null::integer), ('search', 5, 1000, 150, 2)$$,
  'hubspot: burst 100 / 10 s, search 5 / s, daily 250k');
select results_eq($$select class, cost from crm._rate_costs('hubspot', 'search') order by class$$,
  $$values ('daily', 1), ('search', 1)$$, 'hubspot search spends search and daily, not burst');
select results_eq($$select class, cost from crm._rate_costs('pipedrive', 'users') order by class$$,
  $$values ('burst', 1), ('daily', 20)$$, 'pipedrive v1 users list: 20 tokens');
select results_eq($$select class, cost from crm._rate_costs('pipedrive', 'list') order by class$$,
  $$values ('burst', 1), ('daily', 10)$$, 'pipedrive v2 list: 10 tokens');
select results_eq($$select class from crm._rate_costs('salesforce', 'query')$$, $$values ('daily')$$,
  'salesforce: the daily allocation only');
select results_eq($$select ceiling, window_ms, overridden from crm._rate_classes('hubspot', '{"rate_limits": {"default": {"limit": 180, "window_ms": 10000}}}') where class = 'burst'$$,
  $$values (180, 10000, true)$$, 'settings.rate_limits.default (the old format) sets the burst class');
select results_eq($$select ceiling, overridden from crm._rate_classes('hubspot', '{"rate_limits": {"burst": {"limit": "lots", "window_ms": 10000}}}') where class = 'burst'$$,
  $$values (100, false)$$, 'an invalid override is ignored');
select results_eq($$select reserve from crm._rate_limits('00000000-0000-4000-8000-00000000b002') where class = 'daily'$$,
  $$values (10)$$, 'salesforce keeps 10 % in reserve by default');
update crm.connections set settings = settings || '{"rate_reserve": "25%"}' where id = '00000000-0000-4000-8000-00000000b002';
select results_eq($$select reserve from crm._rate_limits('00000000-0000-4000-8000-00000000b002') where class = 'daily'$$,
  $$values (25)$$, 'rate_reserve as a percentage');
update crm.connections set settings = settings || '{"rate_reserve": 5}' where id = '00000000-0000-4000-8000-00000000b002';
select results_eq($$select reserve from crm._rate_limits('00000000-0000-4000-8000-00000000b002') where class = 'daily'$$,
  $$values (5)$$, 'rate_reserve as a number of calls');

-- ---- Pacing and the window ---------------------------------------------------------------
-- A cold backfill gets the pacing burst (5), then one grant per span / limit = 104 ms.
select is(pg_temp.take('b001', 'list', 10, 'backfill', 0), '5/0/-', 'cold start: the pacing burst of 5');
select is(pg_temp.take('b001', 'list', 10, 'backfill', 1), '0/103/pacing', 'then the pacing rate: next in 103 ms');
select is(pg_temp.take('b001', 'list', 10, 'backfill', 105), '1/0/-', 'one grant per 104 ms');
-- Interactive grants skip pacing (but never the window).
select is(pg_temp.take('b001', 'list', 94, 'interactive', 106), '94/0/-', 'interactive skips pacing');
select is(pg_temp.take('b001', 'list', 1, 'interactive', 107), '0/10293/window', 'the window (10 s + 400 ms margin) is full: 100 grants');
-- The first grants leave the log 10.4 s after they were taken.
select is(pg_temp.take('b001', 'list', 10, 'interactive', 10399), '0/1/window', 'not one instant early');
select is(pg_temp.take('b001', 'list', 10, 'interactive', 10401), '5/0/-', 'the first five free at 10.4 s');

-- ---- Lanes -------------------------------------------------------------------------------
-- A refused interactive call holds lower lanes back until its retry (plus 100 ms).
select is(pg_temp.take('b001', 'list', 1, 'interactive', 10402), '0/104/window', 'interactive waits for the next slot');
select is(pg_temp.take('b001', 'list', 1, 'backfill', 10510), '0/96/lane', 'a slot freed, but interactive waits: backfill is held');
select is(pg_temp.take('b001', 'list', 1, 'interactive', 10511), '1/0/-', 'interactive takes the slot');
select is((select waiting[1] from crm.rate_budgets where connection_id = '00000000-0000-4000-8000-00000000b001' and class = 'burst'),
  null, 'a granted lane no longer waits');

-- ---- Simulation: three callers share one HubSpot portal for 60 s --------------------------
-- A backfill (batches of 2, a request every 20 ms), a delta (a request every 50 ms) and a live
-- read every 1.5 s (interactive). Every grant is logged; then no 10-second window (the
-- provider's) may hold more than 100, throughput must reach 95 % of 10/s, and live reads wait
-- under 2 s.
create temp table sim_grants (at timestamptz, lane text, n integer);
create temp table sim_waits (lane text, wait_ms double precision);
create function pg_temp.simulate(p_conn uuid, p_kind text, p_until_ms double precision)
  returns void language plpgsql as $$
declare
  v_lanes text[] := array['backfill', 'delta', 'interactive'];
  v_count integer[] := array[2, 1, 1];
  v_period double precision[] := array[20, 50, 1500];
  v_next double precision[] := array[0, 3, 700];
  v_since double precision[] := array[0, 3, 700];
  i integer;
  g record;
  v_t double precision;
begin
  loop
    i := case when v_next[1] <= v_next[2] and v_next[1] <= v_next[3] then 1
              when v_next[2] <= v_next[3] then 2 else 3 end;
    v_t := v_next[i];
    exit when v_t > p_until_ms;
    select * into g from crm._take_rate_grant(p_conn, p_kind, v_count[i], v_lanes[i], pg_temp.t(v_t));
    if g.granted > 0 then
      insert into sim_grants values (pg_temp.t(v_t), v_lanes[i], g.granted);
      insert into sim_waits values (v_lanes[i], v_t - v_since[i]);
      v_next[i] := v_t + v_period[i];
      v_since[i] := v_next[i];
    else
      v_next[i] := v_t + greatest(1, g.wait_ms);
    end if;
  end loop;
end $$;
select pg_temp.simulate('00000000-0000-4000-8000-00000000b006', 'list', 60000);

select cmp_ok((select max(w) from (select (select sum(b.n) from sim_grants b where b.at >= a.at and b.at < a.at + interval '10 seconds') w
                                   from sim_grants a) x)::numeric, '<=', 100::numeric,
  'no 10-second window holds more than 100 grants');
select cmp_ok((select max(w) from (select (select sum(b.n) from sim_grants b where b.at >= a.at and b.at < a.at + interval '10.4 seconds') w
                                   from sim_grants a) x)::numeric, '<=', 100::numeric,
  'nor any window of 10 s + the 400 ms margin');
select cmp_ok((select sum(n) from sim_grants)::numeric / 600, '>=', 0.95::numeric,
  'the three callers together get >= 95 % of 100 / 10 s');
select cmp_ok((select max(wait_ms) from sim_waits where lane = 'interactive')::numeric, '<', 2000::numeric,
  'live reads wait under 2 s while the backfill saturates the budget');
select cmp_ok((select count(*) from sim_waits where lane = 'interactive'), '>=', 39::bigint, 'every live read was served');
select cmp_ok((select sum(n) from sim_grants where lane = 'delta'), '>', (select sum(n) from sim_grants where lane = 'backfill'),
  'delta goes before backfill');

-- The same on Pipedrive's 2-second burst (80 / 2 s, 100 ms margin).
truncate sim_grants, sim_waits;
select pg_temp.simulate('00000000-0000-4000-8000-00000000b004', 'get', 20000);
select cmp_ok((select max(w) from (select (select sum(b.n) from sim_grants b where b.at >= a.at and b.at < a.at + interval '2 seconds') w
                                   from sim_grants a) x)::numeric, '<=', 80::numeric,
  'pipedrive: no 2-second window holds more than 80 grants');
-- 80 / 2.1 s is 95.2 %; callers polling 0-1 ms after a slot frees (wait_ms is rounded up) lose
-- about 1.5 % of 26 ms slots.
select cmp_ok((select sum(n) from sim_grants)::numeric / 800, '>=', 0.93::numeric,
  'pipedrive: >= 93 % of 80 / 2 s');

-- ---- Calibration ---------------------------------------------------------------------------
-- A lower limit in the headers lowers the ceiling; usage above our log is added to it.
select is(crm._observe_rate_limits('00000000-0000-4000-8000-00000000b001',
  '[{"class": "burst", "limit": 90, "window_ms": 10000}]', pg_temp.t(20000)), 1, 'one observation applied');
select results_eq($$select ceiling from crm._rate_limits('00000000-0000-4000-8000-00000000b001') where class = 'burst'$$,
  $$values (90)$$, 'the observed limit replaces the default');
select is(crm._observe_rate_limits('00000000-0000-4000-8000-00000000b005',
  '[{"class": "burst", "limit": 90, "window_ms": 10000}, {"class": "nope"}]', pg_temp.t(0)), 1, 'unknown classes are skipped');
select results_eq($$select ceiling, window_ms from crm._rate_limits('00000000-0000-4000-8000-00000000b005') where class = 'burst'$$,
  $$values (50, 5000)$$, 'settings.rate_limits wins over the headers');
select is(crm._observe_rate_limits('00000000-0000-4000-8000-00000000b005',
  '[{"class": "burst", "remaining": 80}]', pg_temp.t(1)), 1, 'a usage report');
select is(pg_temp.take('b005', 'list', 50, 'interactive', 2), '40/0/-', 'the provider counted 10 calls we never made: 40 of our 50 left');

-- A 429 pauses the class until the provider's window clears.
select is(crm._observe_rate_limits('00000000-0000-4000-8000-00000000b001',
  '[{"class": "search", "throttled": true, "retry_ms": 1000}]', pg_temp.t(30000)), 1, 'a 429 on search');
select is(pg_temp.take('b001', 'search', 1, 'interactive', 30500), '0/500/throttled', 'search paused after the 429');
select is(pg_temp.take('b001', 'list', 1, 'interactive', 30500), '1/0/-', 'the burst class is not');
select is(pg_temp.take('b001', 'search', 1, 'interactive', 31000), '0/150/window', 'after the pause the full window (1 s + 150 ms) still holds it');
select is(pg_temp.take('b001', 'search', 1, 'interactive', 31150), '1/0/-', 'granted once the window cleared');
-- A burst 429 (HubSpot names no wait): 1 s of pause, and the window counts as full, so the class
-- gets back only what leaves it.
select is(pg_temp.take('b007', 'list', 10, 'interactive', 0), '10/0/-', 'ten calls');
select is(crm._observe_rate_limits('00000000-0000-4000-8000-00000000b007',
  '[{"class": "burst", "throttled": true}]', pg_temp.t(100)), 1, 'then a 429');
select is(pg_temp.take('b007', 'list', 1, 'interactive', 600), '0/500/throttled', 'paused for 1 s');
select is(pg_temp.take('b007', 'list', 10, 'interactive', 1100), '0/9300/window', 'then nothing until our first calls leave the window');

-- ---- Salesforce: the reserve and the paused state -----------------------------------------
-- Ceiling 100 (settings), reserve 5: 95 calls, then paused until the first grants age out.
select is(pg_temp.take('b002', 'query', 1000, 'backfill', 0), '95/0/-', 'salesforce: the allocation minus the reserve');
select results_eq($$select g.granted, g.reason, g.paused_until
                    from crm._take_rate_grant('00000000-0000-4000-8000-00000000b002', 'query', 1, 'interactive', pg_temp.t(60000)) g$$,
  $$values (0, 'reserve', pg_temp.t(86400000))$$, 'only the reserve left: paused until the rolling 24 h frees a call');
-- The provider's own count (other integrations included) rules while fresh.
select is(crm._observe_rate_limits('00000000-0000-4000-8000-00000000b003',
  '[{"class": "daily", "used": 90}]', pg_temp.t(0)), 1, 'pipedrive: 90 of 100 tokens used, says the provider');
select is(pg_temp.take('b003', 'list', 5, 'delta', 10), '1/0/-', 'one list call (10 tokens) fits');
select results_eq($$select g.granted, g.reason, g.paused_until
                    from crm._take_rate_grant('00000000-0000-4000-8000-00000000b003', 'list', 1, 'delta', pg_temp.t(20)) g$$,
  $$values (0, 'daily', pg_temp.t(900000))$$, 'the daily budget is spent: paused until the report is 15 minutes old');
select is(pg_temp.take('b003', 'get', 1, 'delta', 900001), '1/0/-', 'then our own log counts again (10 tokens in it)');

-- ---- Status, errors, privileges -----------------------------------------------------------
select results_eq($$select class, ceiling, throttled from crm.budget_status('00000000-0000-4000-8000-00000000b001') order by class$$,
  $$values ('burst', 90, 0), ('daily', 250000, 0), ('search', 5, 1)$$, 'budget_status: one row per class');
select throws_ok($$select * from crm.take_rate_grant('00000000-0000-4000-8000-00000000b001', 'list', 1, 'urgent')$$,
  'CRM01', null, 'an unknown lane is refused');
select throws_ok($$select * from crm.take_rate_grant('00000000-0000-4000-8000-0000000000ff', 'list', 1, 'delta')$$,
  'CRM02', null, 'an unknown connection is refused');
set local role authenticated;
select throws_ok($$select * from crm.take_rate_grant('00000000-0000-4000-8000-00000000b001', 'list', 1, 'delta')$$,
  '42501', null, 'authenticated cannot take grants');
reset role;

select * from finish();
rollback;
