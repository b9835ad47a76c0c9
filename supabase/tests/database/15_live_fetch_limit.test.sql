-- crm.take_live_fetch_grant: the per-account token buckets behind crm-fetch-live (kind read for
-- every user call, kind sync for sync: true).
-- now() is fixed inside this transaction, so refills are simulated by moving refilled_at back.
begin;
select plan(26);

create function pg_temp.take(p_account uuid, p_burst integer default 3, p_per_hour integer default 60)
  returns text language sql as $$
  select granted::text || '/' || retry_after_s from crm.take_live_fetch_grant(p_account, p_burst, p_per_hour)
$$;

-- A burst of 3, then a refusal with the wait for the next grant (60/h: one a minute).
select is(pg_temp.take('00000000-0000-4000-8000-000000000001'), 'true/0', 'first call granted');
select is(pg_temp.take('00000000-0000-4000-8000-000000000001'), 'true/0', 'second call granted');
select is(pg_temp.take('00000000-0000-4000-8000-000000000001'), 'true/0', 'third call granted (burst 3)');
select is(pg_temp.take('00000000-0000-4000-8000-000000000001'), 'false/60', 'fourth refused: retry in 60 s');
select is(pg_temp.take('00000000-0000-4000-8000-000000000001'), 'false/60', 'a refused call takes nothing');
select is((select tokens from crm.live_fetch_buckets where account_id = '00000000-0000-4000-8000-000000000001'),
  0::double precision, 'the bucket is empty, not negative');
select is(pg_temp.take('00000000-0000-4000-8000-000000000002'), 'true/0', 'another account has its own bucket');

-- Refill: 90 s at 60/h is 1.5 grants.
update crm.live_fetch_buckets set refilled_at = now() - interval '90 seconds'
where account_id = '00000000-0000-4000-8000-000000000001';
select is(pg_temp.take('00000000-0000-4000-8000-000000000001'), 'true/0', 'refilled after 90 s');
select is(pg_temp.take('00000000-0000-4000-8000-000000000001'), 'false/30', 'half a grant left: retry in 30 s');

-- The bucket never holds more than the burst, however long it rested.
update crm.live_fetch_buckets set refilled_at = now() - interval '30 days'
where account_id = '00000000-0000-4000-8000-000000000001';
select is((select string_agg(pg_temp.take('00000000-0000-4000-8000-000000000001'), ',') from generate_series(1, 4)),
  'true/0,true/0,true/0,false/60', 'a long rest refills to the burst only');

-- A refill stamped after this transaction's now() (a concurrent caller) is not undone.
update crm.live_fetch_buckets set tokens = 0, refilled_at = now() + interval '1 minute'
where account_id = '00000000-0000-4000-8000-000000000001';
select is(pg_temp.take('00000000-0000-4000-8000-000000000001'), 'false/60', 'no refill from a later stamp');
select is((select refilled_at from crm.live_fetch_buckets where account_id = '00000000-0000-4000-8000-000000000001'),
  now() + interval '1 minute', 'refilled_at never moves back');

-- Defaults (NULL limits): a burst of 5 and 30 an hour.
select results_eq($$select granted, retry_after_s, burst, per_hour
                    from crm.take_live_fetch_grant('00000000-0000-4000-8000-000000000003')$$,
  $$values (true, 0, 5, 30)$$, 'NULL limits mean burst 5, 30 an hour');
select is((select string_agg(pg_temp.take('00000000-0000-4000-8000-000000000003', null, null), ',')
           from generate_series(1, 5)),
  'true/0,true/0,true/0,true/0,false/120', 'four more, then a wait of 120 s at 30 an hour');

-- Reads have a bucket of their own per account, with their own defaults (20, 360 an hour).
select results_eq($$select granted, retry_after_s, burst, per_hour
                    from crm.take_live_fetch_grant('00000000-0000-4000-8000-000000000003', null, null, 'read')$$,
  $$values (true, 0, 20, 360)$$, 'a read takes from the read bucket: burst 20, 360 an hour');
select is((select tokens from crm.live_fetch_buckets
           where account_id = '00000000-0000-4000-8000-000000000003' and kind = 'read'),
  19::double precision, 'the read bucket lost one grant');
select is((select tokens from crm.live_fetch_buckets
           where account_id = '00000000-0000-4000-8000-000000000003' and kind = 'sync'),
  0::double precision, 'the empty sync bucket is untouched by reads');

-- Bad arguments.
select throws_ok($$select * from crm.take_live_fetch_grant('00000000-0000-4000-8000-000000000004', 1, 1, 'write')$$,
  '22023', null, 'the kind is sync or read');
select throws_ok($$select * from crm.take_live_fetch_grant(null)$$, '22023', null, 'an account is required');
select throws_ok($$select * from crm.take_live_fetch_grant('00000000-0000-4000-8000-000000000004', 0, 10)$$,
  '22023', null, 'burst must be positive');
select throws_ok($$select * from crm.take_live_fetch_grant('00000000-0000-4000-8000-000000000004', 1, 0)$$,
  '22023', null, 'per_hour must be positive');

-- Privileges: only the engine (service_role) takes grants or sees buckets.
select ok((select relrowsecurity from pg_class where oid = 'crm.live_fetch_buckets'::regclass), 'RLS is enabled');
set local role authenticated;
select throws_ok($$select * from crm.take_live_fetch_grant('00000000-0000-4000-8000-000000000005')$$,
  '42501', null, 'authenticated cannot take grants');
select throws_ok($$select count(*) from crm.live_fetch_buckets$$, '42501', null, 'authenticated cannot read buckets');
reset role;
set local role anon;
select throws_ok($$select * from crm.take_live_fetch_grant('00000000-0000-4000-8000-000000000005')$$,
  '42501', null, 'anon cannot take grants');
reset role;
set local role service_role;
select is((select granted from crm.take_live_fetch_grant('00000000-0000-4000-8000-000000000005')), true,
  'service_role takes grants');
reset role;

select * from finish();
rollback;
