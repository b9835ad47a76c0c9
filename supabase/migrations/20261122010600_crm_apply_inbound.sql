-- Why: inbound pages (CRM -> Postgres) must be written set-based, one statement per page, not
-- one statement per row, and must be safe against the ways CRMs deliver data: out of order,
-- repeated, partially (webhooks carry only changed properties), and racing with app edits that
-- are still waiting to go out. crm.apply_inbound does that for one connection and object.
--
-- Input: p_records is a jsonb array of canonical records:
--   {"remote_id": "123", "remote_updated_at": "2026-01-01T00:00:00.123Z",
--    <canonical column>: value, ..., "custom": {"key": value, ...},
--    "deleted": true|false (optional), "merged_into": "<survivor remote id>" (optional),
--    "merged_ids": ["<loser remote id>", ...] (optional, on the survivor)}
-- Keys present are applied; absent keys are left alone (patch semantics), so a webhook with
-- only changed properties is fine. Unknown keys, a missing remote_id / remote_updated_at, or a
-- value the column type rejects fail the whole page with SQLSTATE CRM03 and write nothing.
-- Duplicates of a remote_id within a page: the newest remote_updated_at wins, then the last one.
--
-- Ordering rule (never let an older remote version overwrite a newer one):
-- * Per field, sync_state.remote_changed_at remembers the remote_updated_at of the newest
--   version seen for that field. A field is applied when the record's remote_updated_at is
--   >= that (or, for a field never seen, >= the row's remote_updated_at); older is stale.
-- * Tie rule: EQUAL remote_updated_at is applied. Equal-time duplicates are no-ops (values
--   compare equal), and a genuinely newer event in the same second/millisecond is not dropped.
--   The residual risk: two different versions with the same timestamp delivered newest-first;
--   the next delta run (which re-reads with an overlap, >= the watermark) or the hourly full
--   drift check re-applies the current version and converges.
-- * Merges arrive either way round: a loser with merged_into, or a survivor listing
--   merged_ids (HubSpot's mergedObjectIds / hs_merged_object_ids). Either way the loser's row
--   becomes a tombstone pointing at the survivor and an alias is recorded.
-- * A delete (deleted: true) older than the row is ignored; a newer non-deleted version of a
--   record the CRM had deleted restores it (not for merged records, not when the app deleted it).
--
-- Three-way merge per field against sync_state.agreed_hash and the pending outbox entry:
--   field not changed locally             -> take the remote value
--   changed locally, remote value equal   -> agreed, dropped from the outbox entry
--   changed locally, remote unchanged     -> keep local (the outbox pushes it)
--   changed on both sides                 -> connection policy: newest_wins (remote wins when
--     remote_updated_at >= local_changed_at), crm_wins, app_wins, or manual (local value
--     kept, field withheld from the push, an open row in crm.conflicts until
--     crm.resolve_conflict). Every conflict is recorded in crm.conflicts.
-- Linking: a new remote record is linked to an unlinked local row of the same connection
-- (remote_id NULL, not deleted) with the same email (case-insensitive), then the same phone;
-- companies by domain. The local row's pending insert becomes an update of what it still owns.
-- Relations: *_remote_id values resolve the local *_id columns, and rows of other tables that
-- reference the records written here by remote id get their local ids filled.
-- All writes are engine writes (crm.engine = on): nothing is queued outbound.

-- One linking stage: pairs each unlinked local row with at most one incoming record and each
-- incoming record with at most one local row (earliest record / oldest row first). p_after
-- names an earlier stage whose pairs are excluded.
create or replace function crm._link_stage(p_table text, p_match text, p_after text)
  returns text
  language sql
  immutable
  set search_path = ''
as $$
  select format($q$
    select distinct on (m.remote_id) m.remote_id, m.target_id
    from (
      select distinct on (t.id) u.remote_id, t.id as target_id, t.created_at
      from typed u
      join crm.%1$I t on t.connection_id = $1 and t.remote_id is null and t.deleted_at is null
                     and %2$s
      where not u.is_deleted
        and not exists (select 1 from by_remote b where b.remote_id = u.remote_id)
        %3$s
      order by t.id, u.ord
    ) m
    order by m.remote_id, m.created_at, m.target_id$q$,
    p_table, p_match,
    case when p_after is null then ''
      else format('and not exists (select 1 from %1$I l where l.remote_id = u.remote_id)
                   and t.id not in (select l.target_id from %1$I l)', p_after)
    end)
$$;
revoke all on function crm._link_stage(text, text, text) from public;
grant execute on function crm._link_stage(text, text, text) to service_role;

create or replace function crm.apply_inbound(p_connection_id uuid, p_object text, p_records jsonb)
  returns table (created integer, updated integer, unchanged integer, deleted integer,
                 stale integer, conflicts integer)
  language plpgsql
  set search_path = ''
  set timezone = 'UTC'
  set crm.engine = 'on'
  -- The one big statement looks expensive to the planner, so JIT would compile ~400 functions
  -- for every page (≈ 0.5 s, more than the work itself).
  set jit = off
  -- Every table is read here by key, per record of the page. The page's rows come from jsonb
  -- and CTEs the planner guesses at a row or two, and with that guess it picked scans of the
  -- connection's (or the table's) rows, per page or per record: backfills slowed as the table
  -- grew. Index probes are what every statement here means.
  set enable_seqscan = off
as $fn$
declare
  v_policy text;
  v_allowed text[];
  v_cols text[];
  v_problem text;
  v_link1 text := 'select null::text as remote_id, null::uuid as target_id where false';
  v_link2 text := 'select null::text as remote_id, null::uuid as target_id where false';
  v_lock_link text := '';
  v_fresh_link text := '';
  v_match text[];
  v_unlinked boolean;
  -- The connection's local rows a new remote record may link to.
  v_unlinked_rows constant text := 't.connection_id = $1 and t.remote_id is null and t.deleted_at is null';
  v_cond text;
  v_i integer;
  v_recs text;
  v_bulk text;
  v_inserted text[];
  v_born_deleted integer;
  v_rest jsonb;
  v_created integer;
  v_updated integer;
  v_unchanged integer;
  v_deleted integer;
  v_stale integer;
  v_conflicts integer;
  v_refs text := '';
  v_backfill text := '';
  v_set_cols text;
  v_sel_cols text;
  v_ins_cols text;
  v_bulk_cols text;
  v_bulk_types text;
  v_lock text;
  v_conflict_set text;
  v_sql text;
  ref record;
begin
  if p_object is null or p_object not in ('contacts', 'companies', 'deals', 'owners') then
    raise exception using errcode = 'CRM01',
      message = format('unknown object %L', p_object),
      hint = 'Use one of contacts, companies, deals, owners.';
  end if;
  select crm._conflict_policy(c.settings) into v_policy
  from crm.connections c where c.id = p_connection_id;
  if not found then
    raise exception using errcode = 'CRM02', message = format('connection %s not found', p_connection_id);
  end if;
  if p_records is null or jsonb_typeof(p_records) <> 'array' then
    raise exception using errcode = 'CRM03', message = 'p_records must be a jsonb array of records';
  end if;
  if jsonb_array_length(p_records) = 0 then
    return query select 0, 0, 0, 0, 0, 0;
    return;
  end if;

  v_cols := crm._syncable_columns(p_object);
  v_allowed := v_cols || array['remote_id', 'remote_updated_at', 'deleted', 'merged_into', 'merged_ids'];

  -- Validation of the shape; the column types judge the values in the statement below.
  select format('record %s: %s', e.ord, p.problem) into v_problem
  from jsonb_array_elements(p_records) with ordinality as e(r, ord)
  cross join lateral (
    select case
      when jsonb_typeof(e.r) <> 'object' then 'not an object'
      when coalesce(jsonb_typeof(e.r -> 'remote_id'), 'missing') not in ('string', 'number')
        or e.r ->> 'remote_id' = '' then 'remote_id missing'
      when jsonb_typeof(e.r -> 'remote_updated_at') is distinct from 'string' then 'remote_updated_at missing'
      when e.r ? 'custom' and jsonb_typeof(e.r -> 'custom') <> 'object' then 'custom must be an object'
      when e.r ? 'deleted' and jsonb_typeof(e.r -> 'deleted') <> 'boolean' then 'deleted must be a boolean'
      when e.r ? 'merged_into' and jsonb_typeof(e.r -> 'merged_into') not in ('string', 'number', 'null')
        then 'merged_into must be a remote id'
      when e.r ? 'merged_ids' and (jsonb_typeof(e.r -> 'merged_ids') <> 'array'
        or exists (select 1 from jsonb_array_elements(e.r -> 'merged_ids') m
                   where jsonb_typeof(m) not in ('string', 'number')))
        then 'merged_ids must be an array of remote ids'
      when (e.r - v_allowed) <> '{}'::jsonb then
        (select 'unknown field(s) ' || string_agg(k, ', ' order by k)
         from jsonb_object_keys(e.r - v_allowed) k)
    end as problem
  ) p
  where p.problem is not null
  order by e.ord
  limit 1;
  if v_problem is not null then
    raise exception using errcode = 'CRM03', message = 'invalid inbound record: ' || v_problem;
  end if;

  -- Linking rules by object, in order (%s is the record's jsonb): each gives a link stage of the
  -- full statement, an exclusion from the bulk path and a set of rows to lock.
  v_match := case p_object
    when 'contacts' then array['lower(t.email) = lower(%s ->> ''email'')', 't.phone = %s ->> ''phone''']
    when 'companies' then array['lower(t.domain) = lower(%s ->> ''domain'')']
    else '{}'::text[] end;
  -- A connection whose local rows are all linked (every backfill, most days) has nothing to link
  -- to: its records skip the per-record link probes. (A local row inserted concurrently is no
  -- more visible to those probes, which read the statement's snapshot, than to this check.)
  if cardinality(v_match) > 0 then
    execute format('select exists (select 1 from crm.%I t where %s)', p_object, v_unlinked_rows)
      into v_unlinked using p_connection_id;
    if not v_unlinked then
      v_match := '{}'::text[];
    end if;
  end if;
  for v_i in 1 .. cardinality(v_match) loop
    v_cond := v_unlinked_rows || ' and ' || v_match[v_i];
    if v_i = 1 then
      v_link1 := crm._link_stage(p_object, format(v_match[v_i], 'u.body'), null);
    else
      v_link2 := crm._link_stage(p_object, format(v_match[v_i], 'u.body'), 'link1');
    end if;
    v_fresh_link := v_fresh_link || format(
      ' and not exists (select 1 from crm.%I t where %s offset 0)',
      p_object, format(v_cond, 'r.body'));
    v_lock_link := v_lock_link || format(
      ' union all select t0.id from jsonb_array_elements($2) e(r)
        cross join lateral (select t.id from crm.%I t where %s offset 0) t0',
      p_object, format(v_cond, 'e.r'));
  end loop;

  -- Local ids for relations present in the patch, and back-fill of rows referencing us.
  for ref in select r.tbl, r.local_col, r.remote_col, r.target from crm._mirror_refs() r loop
    if ref.tbl = p_object then
      v_refs := v_refs || format(
        ' || case when b.patch ? %1$L then jsonb_build_object(%2$L,
             (select x.id from crm.%3$I x where x.connection_id = $1 and x.remote_id = b.patch ->> %1$L))
           else ''{}''::jsonb end',
        ref.remote_col, ref.local_col, ref.target);
    end if;
    if ref.target = p_object then
      v_backfill := v_backfill || format(
        -- One probe per written record (offset 0: CTE row estimates would otherwise plan a
        -- scan of the connection's rows matched against every written record).
        ', backfill_%1$s_%2$s as (
             update crm.%1$I x set %2$I = m.target
             from (select y.id, w.id as target
                   from written w
                   cross join lateral (select y0.id from crm.%1$I y0
                                       where y0.%3$I = w.remote_id and y0.connection_id = $1
                                         and y0.%2$I is distinct from w.id offset 0) y) m
             where x.id = m.id
             returning x.id)',
        ref.tbl, ref.local_col, ref.remote_col);
    end if;
  end loop;

  -- Column lists; inserts fall back to a NOT NULL column's default (kind, custom) when absent.
  -- The bulk insert reads the body with jsonb_to_record over the syncable columns only and looks
  -- relations up by the typed remote id: jsonb_populate_record over the whole row type, fed a
  -- body with the local ids concatenated in, cost twice as much per record.
  select string_agg(format('%I', u.c), ', ' order by u.o),
         string_agg(format('x.%I', u.c), ', ' order by u.o),
         string_agg(v.ins, ', ' order by u.o),
         string_agg(case when u.c = 'custom' then 'custom = t.custom || excluded.custom'
                         else format('%1$I = coalesce(excluded.%1$I, t.%1$I)', u.c) end, ', ' order by u.o),
         string_agg(case when r.local_col is not null
                      then format('(select y.id from crm.%I y where y.connection_id = $1 and y.remote_id = x.%I)',
                                  r.target, r.remote_col)
                      else v.ins end, ', ' order by u.o),
         string_agg(format('%I %s', u.c, format_type(a.atttypid, a.atttypmod)), ', ' order by u.o)
           filter (where r.local_col is null)
    into v_set_cols, v_sel_cols, v_ins_cols, v_conflict_set, v_bulk_cols, v_bulk_types
  from unnest(v_cols || array(select r.local_col from crm._mirror_refs() r where r.tbl = p_object))
    with ordinality as u(c, o)
  join pg_attribute a on a.attrelid = format('crm.%I', p_object)::regclass and a.attname = u.c
  left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
  left join crm._mirror_refs() r on r.tbl = p_object and r.local_col = u.c
  cross join lateral (
    select case when a.attnotnull and d.adbin is not null
             then format('coalesce(x.%I, %s)', u.c, pg_get_expr(d.adbin, d.adrelid))
             else format('x.%I', u.c) end as ins
  ) v;


  -- One version per remote id: the newest, then the last in the page.
  v_recs := $q$
    recs as (
      select distinct on (e.r ->> 'remote_id')
             e.r ->> 'remote_id' as remote_id,
             (e.r ->> 'remote_updated_at')::timestamptz as ts,
             (coalesce((e.r ->> 'deleted')::boolean, false) or nullif(e.r ->> 'merged_into', '') is not null)
               as is_deleted,
             nullif(e.r ->> 'merged_into', '') as merged_into,
             coalesce(e.r -> 'merged_ids', '[]'::jsonb) as merged_ids,
             e.r - '{remote_id,remote_updated_at,deleted,merged_into,merged_ids}'::text[] as body,
             e.ord
      from jsonb_array_elements($2) with ordinality as e(r, ord)
      order by e.r ->> 'remote_id', (e.r ->> 'remote_updated_at')::timestamptz desc, e.ord desc
    )$q$;

  -- Bulk path: records the mirror has never seen (no row, no unlinked local row to link, not
  -- part of a merge in this page) are inserted as they came, in one plain INSERT, deleted ones
  -- as tombstones; nothing local can disagree with them, so there is nothing to decide per
  -- field. Whatever it did not insert (a concurrent writer got there first included) goes
  -- through the full statement below. Backfills are pages of nothing else (Salesforce's
  -- queryAll pages carry the recycle bin too).
  v_bulk := format($q$
    with
    %1$s,
    fresh as (
      select r.* from recs r
      where r.merged_into is null and r.merged_ids = '[]'::jsonb
        and r.remote_id <> all (array(select m #>> '{}' from recs x, jsonb_array_elements(x.merged_ids) m
                                      where x.merged_ids <> '[]'::jsonb))
        -- offset 0 keeps each probe a correlated index lookup: recs is estimated at a row or
        -- two, and an anti join planned on that rescans the connection's rows for every record.
        and not exists (select 1 from crm.%2$I t where t.connection_id = $1 and t.remote_id = r.remote_id
                        offset 0)
        %3$s
    ),
    written as (
      insert into crm.%2$I as t (connection_id, remote_id, remote_updated_at, last_synced_at, deleted_at,
                                 needs_sync, %4$s)
      select $1, f.remote_id, f.ts, now(), case when f.is_deleted then now() end, false, %5$s
      from fresh f
      cross join lateral jsonb_to_record(f.body) as x(%6$s)
      on conflict (connection_id, remote_id) do nothing
      returning t.id, t.remote_id, t.deleted_at is not null as born_deleted
    )
    %7$s
    select coalesce(array_agg(w.remote_id), '{}'::text[]), count(*) filter (where w.born_deleted)::integer
    from written w
  $q$, v_recs, p_object, v_fresh_link, v_set_cols, v_bulk_cols, v_bulk_types, v_backfill);

  -- Lock the rows the full statement can touch (by remote id, and link candidates) in id order,
  -- so it runs on a snapshot taken after every concurrent writer of them committed. Only the
  -- records the bulk path left are probed: it writes new rows alone, and a concurrent insert of
  -- the same remote id makes its ON CONFLICT wait, skip, and leave the record to the rest.
  -- Each candidate is found by its own index probe (offset 0): one condition ORed over all of
  -- them was planned as a scan of the connection's rows, per page.
  v_lock := format(
    'select count(*) from (
       select t.id from crm.%1$I t
       where t.id in (
         select t0.id from jsonb_array_elements($2) e(r)
         cross join lateral (select t.id from crm.%1$I t where t.connection_id = $1
                               and t.remote_id = e.r ->> ''remote_id'' offset 0) t0
         union all
         select t0.id from jsonb_array_elements($2) e(r),
                           jsonb_array_elements(coalesce(e.r -> ''merged_ids'', ''[]'')) m
         cross join lateral (select t.id from crm.%1$I t where t.connection_id = $1
                               and t.remote_id = m #>> ''{}'' offset 0) t0
         %2$s)
       order by t.id
       for update of t) locked',
    p_object, v_lock_link);

  v_sql := format($q$
    with
    %10$s,
    -- Typed here, so a value the column rejects fails the page (data_exception -> CRM03).
    typed as (
      select r.*, jsonb_populate_record(null::crm.%1$I, r.body) as rec
      from recs r
    ),
    -- Losers named by a survivor's merged_ids (unless the page carries them itself).
    losers as (
      select distinct on (m #>> '{}') m #>> '{}' as alias, r.remote_id as survivor
      from recs r, jsonb_array_elements(r.merged_ids) as m
      where m #>> '{}' <> r.remote_id
        and not exists (select 1 from recs x where x.remote_id = m #>> '{}')
      order by m #>> '{}', r.ts desc
    ),
    by_remote as (
      select u.remote_id, t.id as target_id
      from typed u
      join crm.%1$I t on t.connection_id = $1 and t.remote_id = u.remote_id
    ),
    link1 as (%2$s),
    link2 as (%3$s),
    targets as (
      select u.*, coalesce(b.target_id, l1.target_id, l2.target_id) as target_id,
             (b.target_id is null and coalesce(l1.target_id, l2.target_id) is not null) as linked
      from typed u
      left join by_remote b on b.remote_id = u.remote_id
      left join link1 l1 on l1.remote_id = u.remote_id
      left join link2 l2 on l2.remote_id = u.remote_id
    ),
    cur as (
      select tg.*, case when tg.target_id is not null then to_jsonb(tg.rec) end as j, to_jsonb(t) as row, t.remote_updated_at as row_ts, t.deleted_at as row_deleted_at,
             t.merged_into_remote_id as row_merged_into,
             o.state as ob_state, o.op as ob_op, coalesce(o.changed_columns, '{}'::text[]) as pending_cols
      from targets tg
      left join crm.%1$I t on t.id = tg.target_id
      left join crm.outbox o on o.object = $4 and o.record_id = tg.target_id
    ),
    -- Per-field decisions only for records that already have a row; a new record is inserted
    -- from its body as it came (every field is 'take' and nothing local can disagree).
    fv as (
      select c.remote_id, k.key as field, c.j -> k.key as val
      from cur c, jsonb_object_keys(c.body) as k(key)
      where k.key <> 'custom' and c.target_id is not null
      union all
      select c.remote_id, 'custom.' || x.key, x.value
      from cur c, jsonb_each(coalesce(c.body -> 'custom', '{}'::jsonb)) as x
      where c.target_id is not null
    ),
    dec as (
      select f.remote_id, c.target_id, f.field, f.val, c.ts,
             crm._field_value(c.row, f.field) as local_val,
             s.agreed_hash, s.local_changed_at, s.remote_changed_at, coalesce(s.present, false) as has_state,
             k.id as open_conflict_id,
             case
               when c.ts < coalesce(s.remote_changed_at, c.row_ts) then 'stale'
               when k.id is not null then
                 case when f.val = crm._field_value(c.row, f.field) then 'agree' else 'manual' end
               when f.field <> all (c.pending_cols) then 'take'
               when f.val = crm._field_value(c.row, f.field) then 'agree'
               when s.agreed_hash is not null and crm._hash(f.val) = s.agreed_hash then 'keep'
               when $3 = 'crm_wins' then 'take_conflict'
               when $3 = 'app_wins' then 'keep_conflict'
               when $3 = 'manual' then 'manual'
               when c.ts >= coalesce(s.local_changed_at, '-infinity'::timestamptz) then 'take_conflict'
               else 'keep_conflict'
             end as decision
      from fv f
      join cur c on c.remote_id = f.remote_id
      -- Lateral primary-key probes, none for new records: a plain join was planned as a hash
      -- join over the whole of sync_state, one full scan per page (backfills went quadratic).
      left join lateral (
        select s0.agreed_hash, s0.local_changed_at, s0.remote_changed_at, true as present
        from crm.sync_state s0
        where c.target_id is not null
          and s0.object = $4 and s0.record_id = c.target_id and s0.field = f.field
        offset 0 -- keeps the subquery parameterized (an index probe), not pulled up into a join
      ) s on true
      left join lateral (
        select k0.id
        from crm.conflicts k0
        where c.target_id is not null and k0.object = $4 and k0.record_id = c.target_id
          and k0.field = f.field and k0.resolution is null
        offset 0
      ) k on true
    ),
    dagg as (
      select d.remote_id,
             jsonb_object_agg(d.field, d.val) filter (
               where d.decision in ('take', 'take_conflict') and not starts_with(d.field, 'custom.')
                 and d.val is distinct from d.local_val) as cols,
             jsonb_object_agg(substr(d.field, 8), d.val) filter (
               where d.decision in ('take', 'take_conflict') and starts_with(d.field, 'custom.')
                 and d.val is distinct from d.local_val) as custom_patch,
             array_agg(d.field) filter (where d.decision in ('take', 'take_conflict', 'agree', 'manual')) as settled
      from dec d
      group by d.remote_id
    ),
    agg as (
      select c.*,
             coalesce(d.cols, '{}'::jsonb) as cols,
             coalesce(d.custom_patch, '{}'::jsonb) as custom_patch,
             coalesce(d.settled, '{}'::text[]) as settled
      from cur c
      left join dagg d on d.remote_id = c.remote_id
    ),
    acts as (
      select a.*, p.full_patch, act.action,
             array(select x from unnest(a.pending_cols) x where x <> all (a.settled)) as remaining
      from agg a
      cross join lateral (
        select b.patch %4$s as full_patch
        from (select case when a.target_id is null then a.body
                     else a.cols
                       || case when a.custom_patch <> '{}'::jsonb
                            then jsonb_build_object('custom', coalesce(a.row -> 'custom', '{}'::jsonb) || a.custom_patch)
                            else '{}'::jsonb end
                     end as patch) b
      ) p
      cross join lateral (
        select case
          when a.target_id is null then case when a.is_deleted then 'insert_deleted' else 'insert' end
          when a.is_deleted and a.row_deleted_at is null and a.ts >= coalesce(a.row_ts, '-infinity'::timestamptz)
            then 'tombstone'
          when not a.is_deleted and a.row_deleted_at is not null and a.row_merged_into is null
               and a.ts > coalesce(a.row_ts, 'infinity'::timestamptz) and a.ob_op is distinct from 'delete'
            then 'restore'
          when p.full_patch <> '{}'::jsonb or a.linked then 'update'
          when a.ts > a.row_ts then 'touch'
          when a.ts < a.row_ts then 'stale'
          else 'unchanged'
        end as action
      ) act
    ),
    fin as (
      select r.*,
             case
               when r.ob_state is null then false
               when r.ob_state = 'processing' then true
               when r.action = 'tombstone' then false
               when r.ob_op = 'delete' then true
               else cardinality(r.remaining) > 0
             end as still_pending
      from acts r
    ),
    upd as (
      update crm.%1$I t set
        (%5$s) = (select %6$s from jsonb_populate_record(t, f.full_patch) x),
        remote_id = f.remote_id,
        remote_updated_at = greatest(t.remote_updated_at, f.ts),
        deleted_at = case f.action when 'tombstone' then coalesce(t.deleted_at, now())
                                   when 'restore' then null else t.deleted_at end,
        merged_into_remote_id = case when f.action = 'tombstone' then f.merged_into
                                     else t.merged_into_remote_id end,
        needs_sync = f.still_pending,
        sync_error = case when f.still_pending then t.sync_error end,
        last_synced_at = now(),
        updated_at = case when f.action = 'touch' then t.updated_at else now() end
      from fin f
      where t.id = f.target_id and f.action in ('update', 'tombstone', 'restore', 'touch')
      returning t.id, f.remote_id, f.action, f.linked
    ),
    ins as (
      insert into crm.%1$I as t (connection_id, remote_id, remote_updated_at, last_synced_at, deleted_at,
                                 merged_into_remote_id, needs_sync, %5$s)
      select $1, f.remote_id, f.ts, now(), case when f.action = 'insert_deleted' then now() end,
             f.merged_into, false, %9$s
      from fin f
      cross join lateral jsonb_populate_record(null::crm.%1$I, f.full_patch) x
      where f.action in ('insert', 'insert_deleted')
      on conflict (connection_id, remote_id) do update set
        %7$s,
        remote_updated_at = excluded.remote_updated_at,
        last_synced_at = now(),
        updated_at = now()
      where t.remote_updated_at is null or t.remote_updated_at <= excluded.remote_updated_at
      returning t.id, t.remote_id, (t.xmax = 0) as inserted, (t.deleted_at is not null) as born_deleted
    ),
    -- A field without its own sync_state row was last changed remotely at the row's
    -- remote_updated_at (crm.sync_state stays empty for records nobody edited). When a patch
    -- that leaves some fields out moves that time forward, those fields keep the old time in a
    -- row of their own, so an older out-of-order change to one of them is still applied.
    held as (
      insert into crm.sync_state as s (connection_id, object, record_id, field, remote_changed_at)
      select $1, $4, f.target_id, h.field, f.row_ts
      from fin f
      cross join lateral unnest(crm._changed_columns(null, f.row)) as h(field)
      where f.action in ('update', 'touch') and f.ts > f.row_ts
        and not f.body ? h.field
        and not (starts_with(h.field, 'custom.') and coalesce(f.body -> 'custom', '{}'::jsonb) ? substr(h.field, 8))
      on conflict (object, record_id, field) do update
        set remote_changed_at = excluded.remote_changed_at, updated_at = now()
        where s.remote_changed_at is null
      returning s.record_id
    ),
    written as (
      select i.id, i.remote_id from ins i
      union all
      select u.id, u.remote_id from upd u where u.linked or u.action = 'restore'
    ),
    st as (
      insert into crm.sync_state as s (connection_id, object, record_id, field, agreed_hash, agreed_at,
                                       remote_changed_at, conflict)
      select $1, $4, d.target_id, d.field,
             case when d.decision in ('take', 'take_conflict', 'agree') then crm._hash(d.val) end,
             case when d.decision in ('take', 'take_conflict', 'agree') then now() end,
             d.ts,
             case when d.decision in ('take_conflict', 'keep_conflict', 'manual') then
               jsonb_build_object('policy', $3, 'local', d.local_val, 'remote', d.val, 'at', now(),
                 'winner', case d.decision when 'take_conflict' then 'remote'
                                           when 'keep_conflict' then 'local' end)
             end
      from dec d
      where d.decision <> 'stale'
        and (d.decision not in ('take', 'agree')
             or (d.has_state and (d.agreed_hash is distinct from crm._hash(d.val)
                                  or d.remote_changed_at is null or d.remote_changed_at < d.ts)))
      on conflict (object, record_id, field) do update set
        agreed_hash = case when excluded.agreed_at is not null then excluded.agreed_hash else s.agreed_hash end,
        agreed_at = coalesce(excluded.agreed_at, s.agreed_at),
        remote_changed_at = greatest(s.remote_changed_at, excluded.remote_changed_at),
        conflict = coalesce(excluded.conflict, s.conflict),
        updated_at = now()
      returning s.record_id
    ),
    ob_keep as (
      update crm.outbox o set
        changed_columns = f.remaining,
        op = case when o.op = 'insert' and f.linked then 'update' else o.op end,
        remote_id = coalesce(o.remote_id, f.remote_id),
        updated_at = now()
      from fin f
      where o.object = $4 and o.record_id = f.target_id and o.state <> 'processing'
        and f.action <> 'tombstone' and o.op <> 'delete'
        and cardinality(f.remaining) > 0
        and (f.remaining <> o.changed_columns or (o.op = 'insert' and f.linked))
      returning o.id
    ),
    ob_drop as (
      delete from crm.outbox o
      using fin f
      where o.object = $4 and o.record_id = f.target_id and o.state <> 'processing'
        and ((f.action = 'tombstone')
             or (o.op <> 'delete' and cardinality(f.remaining) = 0))
      returning o.id
    ),
    cf as (
      insert into crm.conflicts as k (connection_id, object, record_id, remote_id, field, local_value,
                                      remote_value, local_changed_at, remote_changed_at, policy,
                                      resolution, resolved_by, resolved_at)
      select $1, $4, d.target_id, d.remote_id, d.field, d.local_val, d.val, d.local_changed_at, d.ts, $3,
             case d.decision when 'take_conflict' then 'remote' when 'keep_conflict' then 'local' end,
             case when d.decision <> 'manual' then 'policy' end,
             case when d.decision <> 'manual' then now() end
      from dec d
      where d.decision in ('take_conflict', 'keep_conflict', 'manual') and d.target_id is not null
      on conflict (object, record_id, field) where resolution is null do update set
        remote_value = excluded.remote_value,
        remote_changed_at = excluded.remote_changed_at,
        local_value = excluded.local_value,
        updated_at = now()
      returning k.id
    ),
    cf_converged as (
      update crm.conflicts k set resolution = 'remote', resolved_by = 'converged', resolved_at = now(),
                                 updated_at = now()
      from dec d
      where k.id = d.open_conflict_id and d.decision = 'agree'
      returning k.id
    ),
    loser_cur as (
      select t.id, t.deleted_at is null as was_live, l.survivor
      from losers l
      join crm.%1$I t on t.connection_id = $1 and t.remote_id = l.alias
      where t.deleted_at is null or t.merged_into_remote_id is distinct from l.survivor
    ),
    loser_upd as (
      update crm.%1$I t
      set deleted_at = coalesce(t.deleted_at, now()), merged_into_remote_id = lc.survivor,
          needs_sync = false, last_synced_at = now(), updated_at = now()
      from loser_cur lc
      where t.id = lc.id
      returning t.id
    ),
    loser_ob as (
      delete from crm.outbox o
      using loser_cur lc
      where o.object = $4 and o.record_id = lc.id and o.state <> 'processing'
      returning o.id
    ),
    al as (
      insert into crm.record_aliases as a (connection_id, object, alias_remote_id, remote_id, merged_at)
      select $1, $4, f.remote_id, f.merged_into, now()
      from fin f
      where f.merged_into is not null and f.merged_into <> f.remote_id
        and f.action in ('tombstone', 'insert_deleted', 'unchanged', 'touch', 'update')
      union all
      select $1, $4, l.alias, l.survivor, now() from losers l
      on conflict (connection_id, object, alias_remote_id) do update
        set remote_id = excluded.remote_id, merged_at = excluded.merged_at
      returning a.alias_remote_id
    )
    %8$s
    -- Counts without joining CTEs to each other: CTE scans are estimated at a row or two, so a
    -- join between them is planned as a nested loop, quadratic in the page size. remote_id is
    -- unique within fin, and each insert-action row yields at most one ins row.
    select
      (select count(*) from ins i where i.inserted and not i.born_deleted)::integer,
      ((select count(*) from upd u where u.action in ('update', 'restore'))
        + (select count(*) from ins i where not i.inserted))::integer,
      ((select count(*) from fin f where f.action in ('touch', 'unchanged'))
        + (select count(*) from fin f where f.action in ('insert', 'insert_deleted'))
        - (select count(*) from ins i))::integer,
      ((select count(*) from ins i where i.inserted and i.born_deleted)
        + (select count(*) from upd u where u.action = 'tombstone')
        + (select count(*) from loser_cur lc where lc.was_live))::integer,
      (select count(*) from fin f where f.action = 'stale')::integer,
      (select count(*) from dec d where d.decision in ('take_conflict', 'keep_conflict', 'manual')
         and d.target_id is not null)::integer
  $q$, p_object, v_link1, v_link2, v_refs, v_set_cols, v_sel_cols, v_conflict_set, v_backfill,
     v_ins_cols, v_recs);

  begin
    execute v_bulk into v_inserted, v_born_deleted using p_connection_id, p_records;
    if cardinality(v_inserted) = jsonb_array_length(p_records) then
      v_rest := '[]'::jsonb;
    elsif cardinality(v_inserted) > 0 then
      select coalesce(jsonb_agg(e.r order by e.ord), '[]'::jsonb) into v_rest
      from jsonb_array_elements(p_records) with ordinality as e(r, ord)
      where not exists (select 1 from unnest(v_inserted) i(remote_id) where i.remote_id = e.r ->> 'remote_id');
    else
      v_rest := p_records;
    end if;
    if jsonb_array_length(v_rest) = 0 then
      return query select cardinality(v_inserted) - v_born_deleted, 0, 0, v_born_deleted, 0, 0;
    else
      execute v_lock using p_connection_id, v_rest;
      execute v_sql into v_created, v_updated, v_unchanged, v_deleted, v_stale, v_conflicts
        using p_connection_id, v_rest, v_policy, p_object;
      return query select v_created + cardinality(v_inserted) - v_born_deleted, v_updated, v_unchanged,
                          v_deleted + v_born_deleted, v_stale, v_conflicts;
    end if;
  exception when check_violation or not_null_violation or data_exception then
    raise exception using errcode = 'CRM03', message = 'invalid inbound record: ' || sqlerrm;
  end;
end
$fn$;
comment on function crm.apply_inbound(uuid, text, jsonb) is
  'Applies one page of canonical inbound records for a connection/object in one statement: ordered, linked, three-way merged. Returns counts. Errors: CRM01 object, CRM02 connection, CRM03 record.';
revoke all on function crm.apply_inbound(uuid, text, jsonb) from public;
grant execute on function crm.apply_inbound(uuid, text, jsonb) to service_role;
