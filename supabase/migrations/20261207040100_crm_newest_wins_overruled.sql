-- newest_wins re-judged an overruled CRM value by a newer record time (issue 15, chaos HubSpot
-- seed 1 newest_wins: "job_title = CJ88s1, model expects AJ110s1"; regression
-- hubspot-newest-wins-overruled.json, pgTAP 59).
--
-- The case: a CRM user changed a contact's job title (CJ88) that the engine had not seen; the
-- push of the app's last-name edit was claimed; the app then edited the job title (AJ110, after
-- every CRM user's change). The push's read before write met the CRM's job title at the record's
-- version V (older than the app's edit): newest_wins kept the app's value and recorded the
-- conflict (winner local, remote CJ88). The last-name write then landed and moved the record's
-- modification time to the write's version P, after the app's edit. The next read of the record
-- (the read before the job title's own push, or the webhook of the engine's write) carried the
-- same CJ88 at version P: crm.recheck_outbox released the entry (the version was newer than the
-- one the conflict saw) and step 8 judged the field again by the record's time P, the engine's
-- own write time: the CRM's older value won and the app's newer edit was lost on both sides.
-- CRMs give one modification time per record (HubSpot lastmodifieddate, Salesforce
-- SystemModstamp, Pipedrive update_time), so a write of one field makes every other field look
-- as new as that write. Found with a hand-written list: the old step 8 lost the app's edit in 8
-- of 9 replays.
--
-- Now step 8 decides 'keep' (the app's pending value stays, no new conflict) for a field whose
-- CRM value is the remote side of the field's last conflict that the app won under newest_wins
-- (sync_state.conflict, winner 'local'): the CRM has not changed the field since, so there is
-- nothing newer to weigh. The push's recheck already treats that value so at a version it has
-- seen; this makes the inbound path agree at any version. Other policies decide before this rule
-- and are unchanged (app_wins keeps the app's value anyway; crm_wins and manual never record a
-- 'local' winner by policy).
-- Limit: a CRM user who types the overruled value again after the app's edit is not seen as a
-- change (nothing in the record tells the two apart); their edit is overwritten by the push.
-- A first read of a CRM value made before the app's edit but met only at a version the engine's
-- own later write produced (no read before write in between: the push's MAX_RELEASES reached) is
-- still timed by that version.
--
-- Redefined: crm.apply_inbound (as in 20261207010100_crm_restore_same_second.sql; step 8, the
-- rule marked "Overruled").

create or replace function crm.apply_inbound(p_connection_id uuid, p_object text, p_records jsonb)
  returns table (created integer, updated integer, unchanged integer, deleted integer,
                 stale integer, conflicts integer)
  language plpgsql
  set search_path = ''
  set timezone = 'UTC'
  set crm.engine = 'on'
  -- Each statement is small, but JIT would still compile its expressions on a 2,000-row page.
  set jit = off
as $fn$
declare
  v_typed constant text := 'crm_inbound_' || p_object;
  v_policy text;
  v_n integer;
  v_allowed text[];
  v_cols text[];
  v_problem text;
  v_lo integer;
  v_hi integer;
  v_mid integer;
  v_load text;
  v_link_rules text[][];
  v_unlinked boolean := false;
  v_candidate text := 'false';
  v_lock_ids uuid[];
  v_more_ids uuid[];
  v_typed_list text;
  v_typed_cols text;
  v_typed_sel text;
  v_set_cols text;
  v_sel_cols text;
  v_ins_cols text;
  v_bulk text;
  v_bulk_cols text;
  v_conflict_set text;
  v_full_inserts integer;
  v_full_written integer;
  v_bulk_written integer;
  v_bulk_deleted integer;
  v_losers integer;
  v_merges boolean;
  v_refs text;
  v_delete_conflicts integer := 0;
  v_moves jsonb;
  v_merge_conflicts integer := 0;
  -- Same second: the records were read after this time (crm.save_inbound_page); null: unknown.
  v_read_since constant timestamptz :=
    nullif(pg_catalog.current_setting('crm.inbound_read_since', true), '')::timestamptz;
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
  v_n := jsonb_array_length(p_records);
  if v_n = 0 then
    return query select 0, 0, 0, 0, 0, 0;
    return;
  end if;
  v_cols := crm._syncable_columns(p_object);
  v_allowed := v_cols || array['remote_id', 'remote_updated_at', 'deleted', 'merged_into', 'merged_ids'];

  -- 1. Shape.
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

  perform crm._inbound_staging(p_object);
  -- For plpgsql_check (supabase db lint), which cannot see tables created at run time: the
  -- staging tables as crm._inbound_staging creates them (one line each: the pragma parser takes
  -- no line breaks). A constant, nothing at run time.
  perform 'PRAGMA:TABLE: pg_temp.crm_inbound_page (ord bigint, remote_id text, ts timestamptz, is_deleted boolean, merged_into text, merged_ids jsonb, named_loser boolean, body jsonb, target_id uuid, link_candidate boolean, linked boolean, row_ts timestamptz, row_deleted_at timestamptz, row_merged_into text, row_swept boolean, ob_state text, ob_op text, pending_cols text[], settled text[], full_patch jsonb, action text, remaining text[], still_pending boolean)';
  perform 'PRAGMA:TABLE: pg_temp.crm_inbound_field (remote_id text, target_id uuid, field text, val jsonb, local_val jsonb, ts timestamptz, agreed_hash uuid, local_changed_at timestamptz, remote_changed_at timestamptz, has_state boolean, open_conflict_id bigint, decision text)';
  perform 'PRAGMA:TABLE: pg_temp.crm_inbound_written (id uuid, remote_id text, action text, backfill boolean)';
  perform 'PRAGMA:TABLE: pg_temp.crm_inbound_loser (alias text, survivor text, id uuid, was_live boolean)';
  perform 'PRAGMA:TABLE: pg_temp.crm_inbound_row (id uuid, remote_id text, remote_updated_at timestamptz, deleted_at timestamptz, merged_into_remote_id text, swept boolean, custom jsonb, image jsonb, ob_state text, ob_op text, ob_columns text[])';
  delete from pg_temp.crm_inbound_page;
  delete from pg_temp.crm_inbound_field;
  delete from pg_temp.crm_inbound_written;
  delete from pg_temp.crm_inbound_loser;
  delete from pg_temp.crm_inbound_row;
  execute format('delete from pg_temp.%I', v_typed);

  -- 2. Load the page into crm_inbound_<object>: one version per remote id (the newest, then the
  -- last in the page), typed by the mirror table's column types and judged by its CHECK
  -- constraints, before anything is written. With it, each record's row by remote id, and
  -- whether an unlinked local row (remote_id null, not deleted) of the connection could be
  -- linked to it. A connection whose local rows are all linked (every backfill, most days)
  -- skips the link probes. The probes are correlated subqueries in the select list: one index
  -- probe per record, whatever the estimates. jsonb_to_record reads the synced columns only
  -- (jsonb_populate_record over the whole row type costs about twice as much per record).
  v_link_rules := case p_object
    when 'contacts' then array[array['email', 'lower'], array['phone', 'exact']]
    when 'companies' then array[array['domain', 'lower']]
  end;
  if v_link_rules is not null then
    execute format('select exists (select 1 from crm.%I t
                                   where t.connection_id = $1 and t.remote_id is null and t.deleted_at is null)',
                   p_object)
      into v_unlinked using p_connection_id;
  end if;
  for v_rule in 1 .. case when v_unlinked then array_length(v_link_rules, 1) else 0 end loop
    v_candidate := v_candidate || format(
      ' or exists (select 1 from crm.%1$I t where t.connection_id = $1 and t.remote_id is null
                     and t.deleted_at is null and %2$s)',
      p_object, crm._inbound_link_match(v_link_rules[v_rule][1], v_link_rules[v_rule][2], 'y'));
  end loop;
  select string_agg(format('%I %s', u.c, format_type(a.atttypid, a.atttypmod)), ', ' order by u.o),
         string_agg(format('%I', u.c), ', ' order by u.o),
         string_agg(format('x.%I', u.c), ', ' order by u.o)
    into v_typed_list, v_typed_cols, v_typed_sel
  from unnest(array['remote_id', 'remote_updated_at'] || v_cols) with ordinality as u(c, o)
  join pg_attribute a on a.attrelid = format('crm.%I', p_object)::regclass and a.attname = u.c;
  v_load := format(
    $q$insert into pg_temp.%1$I (ord, is_deleted, merged_into, merged_ids, %2$s, target_id, link_candidate)
       select y.*,
              (select t.id from crm.%5$I t where t.connection_id = $1 and t.remote_id = y.remote_id),
              not y.is_deleted and (%6$s)
       from (
         select distinct on (x.remote_id)
                e.ord,
                coalesce((e.r ->> 'deleted')::boolean, false) or nullif(e.r ->> 'merged_into', '') is not null,
                nullif(e.r ->> 'merged_into', ''),
                coalesce(e.r -> 'merged_ids', '[]'::jsonb),
                %3$s
         from jsonb_array_elements($2) with ordinality as e(r, ord)
         cross join lateral jsonb_to_record(e.r) as x(%4$s)
         where e.ord between $3 and $4
         order by x.remote_id, x.remote_updated_at desc, e.ord desc
       ) as y (ord, is_deleted, merged_into, merged_ids, %2$s)$q$,
    v_typed, v_typed_cols, v_typed_sel, v_typed_list, p_object, v_candidate);
  begin
    execute v_load using p_connection_id, p_records, 1, v_n;
  exception when data_exception or integrity_constraint_violation then
    -- Some record is invalid: find the first by halving (each try is rolled back on failure).
    v_lo := 1;
    v_hi := v_n;
    while v_lo < v_hi loop
      v_mid := (v_lo + v_hi) / 2;
      begin
        execute v_load using p_connection_id, p_records, v_lo, v_mid;
        v_lo := v_mid + 1;
      exception when data_exception or integrity_constraint_violation then
        v_hi := v_mid;
      end;
    end loop;
    begin
      execute v_load using p_connection_id, p_records, v_lo, v_lo;
    exception when data_exception or integrity_constraint_violation then
      v_problem := sqlerrm;
    end;
    raise exception using errcode = 'CRM03',
      message = format('invalid inbound record: record %s (remote_id %s): %s',
                       v_lo, p_records -> (v_lo - 1) ->> 'remote_id', coalesce(v_problem, sqlerrm));
  end;

  -- 3. Merges named by a survivor (merged_ids): losers the page does not carry itself, and
  -- records of the page a survivor names.
  v_losers := 0;
  execute format($q$select exists (select 1 from pg_temp.%I y where y.merged_ids <> '[]'::jsonb)$q$, v_typed)
    into v_merges;
  if v_merges then
    execute format(
      $q$insert into pg_temp.crm_inbound_loser (alias, survivor)
         select distinct on (m.alias) m.alias, y.remote_id
         from pg_temp.%1$I y
         cross join lateral jsonb_array_elements_text(y.merged_ids) as m(alias)
         where y.merged_ids <> '[]'::jsonb and m.alias <> y.remote_id
           and not exists (select 1 from pg_temp.%1$I x where x.remote_id = m.alias)
         order by m.alias, y.remote_updated_at desc$q$,
      v_typed);
    get diagnostics v_losers = row_count;
    execute format(
      $q$update pg_temp.%1$I y set named_loser = true
         where exists (select 1 from pg_temp.%1$I s, jsonb_array_elements_text(s.merged_ids) m
                       where s.merged_ids <> '[]'::jsonb and m = y.remote_id)$q$,
      v_typed);
  end if;

  -- 4. Records nobody has seen (no row, nothing to link, no part in a merge) are inserted as they
  -- came, deleted ones as tombstones: nothing local can disagree with them. A plain INSERT: ON
  -- CONFLICT makes every row a speculative insertion (one more probe of the unique index and a
  -- WAL record to confirm it), about a tenth of the CPU time of a backfill page. A record
  -- inserted concurrently since step 2 raises unique_violation instead; the statement then runs
  -- again with ON CONFLICT DO NOTHING, and the steps below take the records it skipped.
  select string_agg(
           case
             when r.local_col is not null then
               format('case when y.%2$I is not null
                         then (select o.id from crm.%1$I o where o.connection_id = $1 and o.remote_id = y.%2$I) end',
                      r.target, r.remote_col)
             when a.attnotnull and d.adbin is not null then
               format('coalesce(y.%I, %s)', u.c, pg_get_expr(d.adbin, d.adrelid))
             else format('y.%I', u.c)
           end, ', ' order by u.o),
         string_agg(format('%I', u.c), ', ' order by u.o),
         string_agg(case
                      when r.local_col is not null then format('x.%I', u.c)
                      when a.attnotnull and d.adbin is not null
                        then format('coalesce(x.%I, %s)', u.c, pg_get_expr(d.adbin, d.adrelid))
                      else format('x.%I', u.c)
                    end, ', ' order by u.o),
         string_agg(format('x.%I', u.c), ', ' order by u.o),
         string_agg(case when u.c = 'custom' then 'custom = t.custom || excluded.custom'
                         else format('%1$I = coalesce(excluded.%1$I, t.%1$I)', u.c) end, ', ' order by u.o)
    into v_bulk_cols, v_set_cols, v_ins_cols, v_sel_cols, v_conflict_set
  from unnest(v_cols || array(select r.local_col from crm._mirror_refs() r where r.tbl = p_object))
    with ordinality as u(c, o)
  join pg_attribute a on a.attrelid = format('crm.%I', p_object)::regclass and a.attname = u.c
  left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
  left join crm._mirror_refs() r on r.tbl = p_object and r.local_col = u.c;
  v_bulk := $q$with ins as (
         insert into crm.%1$I as t (connection_id, remote_id, remote_updated_at, last_synced_at, deleted_at,
                                    needs_sync, %3$s)
         select $1, y.remote_id, y.remote_updated_at, now(), case when y.is_deleted then now() end, false, %4$s
         from pg_temp.%2$I y
         where y.target_id is null and not y.link_candidate and not y.named_loser
           and y.merged_into is null and y.merged_ids = '[]'::jsonb
         %5$s
         returning t.id, t.remote_id, t.deleted_at is not null as born_deleted
       ),
       w as (
         insert into pg_temp.crm_inbound_written (id, remote_id, action, backfill)
         select i.id, i.remote_id, case when i.born_deleted then 'insert_deleted' else 'insert' end, true
         from ins i
         returning action
       )
       select count(*)::integer, (count(*) filter (where w.action = 'insert_deleted'))::integer from w$q$;
  begin
    execute format(v_bulk, p_object, v_typed, v_set_cols, v_bulk_cols, '')
      into v_bulk_written, v_bulk_deleted
      using p_connection_id;
  exception when unique_violation then
    execute format(v_bulk, p_object, v_typed, v_set_cols, v_bulk_cols,
                   'on conflict (connection_id, remote_id) do nothing')
      into v_bulk_written, v_bulk_deleted
      using p_connection_id;
  end;

  -- 5. The records left (already seen, to link, in a merge, or inserted concurrently) go on to
  -- crm_inbound_page, with their bodies as they came.
  if v_bulk_written < v_n or v_losers > 0 then
    execute format(
      $q$insert into pg_temp.crm_inbound_page (ord, remote_id, ts, is_deleted, merged_into, merged_ids,
                                               named_loser, body, target_id, link_candidate)
         select y.ord, y.remote_id, y.remote_updated_at, y.is_deleted, y.merged_into, y.merged_ids,
                y.named_loser, ($1 -> (y.ord - 1)::integer) - '{remote_id,remote_updated_at,deleted,merged_into,merged_ids}'::text[],
                y.target_id, y.link_candidate
         from pg_temp.%1$I y
         where not exists (select 1 from pg_temp.crm_inbound_written w where w.remote_id = y.remote_id)$q$,
      v_typed)
      using p_records;
    -- Row count and the join keys' statistics for the planner (pg_statistic rows of this
    -- session's table are rewritten, no relation is created): the steps below join the records
    -- to mirror rows, sync_state and the outbox, and it must see a page of a few records as such.
    analyze pg_temp.crm_inbound_page (remote_id, ord, target_id);
  end if;

  if exists (select 1 from pg_temp.crm_inbound_page) or v_losers > 0 then
    -- 6. Lock the rows the steps below can touch (the records' own, merge losers', link
    -- candidates'), in id order; then, in a statement of its own, keep each as it is, with its
    -- outbox entry, in crm_inbound_row: every later step reads them as their last writer left
    -- them. Lock first, read after: a locking statement that waited for an app write returns
    -- the row's newest version but reads every other table (the outbox) as it was when the
    -- statement began, so the app's edit looked unqueued (see the header). The read's new
    -- snapshot sees every write committed before the locks were granted, and an app write
    -- queues its entry in the transaction that holds the row's lock. Every row is
    -- found and locked by its own index probe (a correlated subquery; a locking subquery is
    -- never flattened into a join), so a page never scans a table. Measured with 100k contacts:
    -- "remote_id = any (page ids) for update" and a join of the page to contacts by id were both
    -- planned as sequential scans of all 100k rows for a page of 2,000 (about 20 ms a page).
    v_lock_ids := array(
      select p.target_id from pg_temp.crm_inbound_page p where p.target_id is not null);
    execute format(
      $q$select array(
           select t.id
           from (select p.remote_id from pg_temp.crm_inbound_page p where p.target_id is null
                 union all
                 select l.alias from pg_temp.crm_inbound_loser l) r
           cross join lateral (select t.id from crm.%1$I t
                               where t.connection_id = $1 and t.remote_id = r.remote_id) t)$q$,
      p_object)
      into v_more_ids using p_connection_id;
    v_lock_ids := v_lock_ids || v_more_ids;
    for v_rule in 1 .. case when v_unlinked then array_length(v_link_rules, 1) else 0 end loop
      execute format(
        $q$select array(
             select t.id
             from pg_temp.crm_inbound_page p
             join pg_temp.%2$I y on y.ord = p.ord
             join crm.%1$I t on t.connection_id = $1 and t.remote_id is null and t.deleted_at is null
                            and %3$s
             where p.link_candidate and p.target_id is null)$q$,
        p_object, v_typed, crm._inbound_link_match(v_link_rules[v_rule][1], v_link_rules[v_rule][2], 'y'))
        into v_more_ids using p_connection_id;
      v_lock_ids := v_lock_ids || v_more_ids;
    end loop;
    execute format(
      $q$select array(
           select l.id
           from (select distinct i.id from unnest($1::uuid[]) as i(id) order by i.id) i
           cross join lateral (select t.id from crm.%1$I t where t.id = i.id for update of t) l)$q$,
      p_object)
      into v_lock_ids using v_lock_ids;
    execute format(
      $q$insert into pg_temp.crm_inbound_row (id, remote_id, remote_updated_at, deleted_at, merged_into_remote_id,
                                              swept, custom, image, ob_state, ob_op, ob_columns)
         select l.id, l.remote_id, l.remote_updated_at, l.deleted_at, l.merged_into_remote_id, l.swept, l.custom,
                l.image, (l.ob).state, (l.ob).op, coalesce((l.ob).changed_columns, '{}'::text[])
         from unnest($1::uuid[]) as i(id)
         cross join lateral (
           select t.id, t.remote_id, t.remote_updated_at, t.deleted_at, t.merged_into_remote_id,
                  t.swept_at is not null as swept, t.custom, to_jsonb(t) as image,
                  (select o from crm.outbox o where o.object = $2 and o.record_id = t.id) as ob
           from crm.%1$I t
           where t.id = i.id
           -- Kept a correlated probe: flattened, the page was joined to the table by a scan.
           offset 0
         ) l$q$,
      p_object)
      using v_lock_ids, p_object;
    analyze pg_temp.crm_inbound_row (id, remote_id);
    -- A record inserted concurrently since step 2 has its row now.
    if exists (select 1 from pg_temp.crm_inbound_page p where p.target_id is null) then
      update pg_temp.crm_inbound_page p set target_id = r.id
      from pg_temp.crm_inbound_row r
      where p.target_id is null and r.remote_id = p.remote_id;
    end if;

    -- 7. Link: each rule pairs each unlinked local row with at most one record and each record
    -- with at most one row (earliest record, then oldest row, first); later rules take what the
    -- earlier ones left.
    for v_rule in 1 .. case when v_unlinked then array_length(v_link_rules, 1) else 0 end loop
      execute format(
        'update pg_temp.crm_inbound_page p set target_id = m.target_id, linked = true
         from (
           select distinct on (c.remote_id) c.remote_id, c.target_id
           from (
             select distinct on (t.id) u.remote_id, t.id as target_id, t.created_at
             from pg_temp.crm_inbound_page u
             join pg_temp.%3$I y on y.ord = u.ord
             join crm.%1$I t on t.connection_id = $1 and t.remote_id is null and t.deleted_at is null
                            and %2$s
             where u.link_candidate and u.target_id is null
               and not exists (select 1 from pg_temp.crm_inbound_page l where l.linked and l.target_id = t.id)
             order by t.id, u.ord
           ) c
           order by c.remote_id, c.created_at, c.target_id
         ) m
         where p.remote_id = m.remote_id',
        p_object,
        crm._inbound_link_match(v_link_rules[v_rule][1], v_link_rules[v_rule][2], 'y'), v_typed)
        using p_connection_id;
    end loop;

    -- 8. Per field of records that have a row (a new record is inserted from its body as it
    -- came). Stale: older than the field's newest remote version (or, for a field never seen,
    -- the row's). Otherwise: not changed locally -> take; changed locally and equal -> agree;
    -- remote unchanged since the last agreement -> keep local; changed on both sides -> policy.
    -- An open conflict is settled only by agreement (manual policy semantics). A field whose
    -- value equals the row's, with no sync_state row, no open conflict and nothing pending, has
    -- nothing to decide and is left out.
    -- 'held': a field the record leaves out but the row has (non-null), when the record is newer
    -- than the row. Such a field without its own sync_state row was last changed remotely at the
    -- row's remote_updated_at (sync_state stays empty for records nobody edited); step 11 keeps
    -- that time in a row of its own when the record moves the row's time forward, so that an
    -- older out-of-order change to the field is still applied. These are the fields
    -- crm._changed_columns(null, row) lists, less the record's.
    -- sync_state and the open conflicts are probed by key: once per record (has it any), then per
    -- field of the records that have some. A join, or an EXISTS (which the planner may turn into
    -- a hashed subplan), let the planner read whole tables for a page.
    -- Both CTEs are materialized so that row images and probes are computed once, not once per
    -- reference.
    -- Echo (issue 12): a value whose hash equals a crm.write_ledger row of the record and field
    -- (pushed in the last 7 days, with remote_version NULL or not older than the record) is the
    -- engine's own write coming back: 'echo', decided after 'stale' and before everything else.
    -- It writes no field and raises no conflict; its field becomes agreed (the CRM has what was
    -- sent) and a pending local edit made since (L2 after the push of L1) stays pending. The ledger
    -- is probed like sync_state: once per record, per field only for records that have rows. A
    -- value pushed but outside that version window (a later CRM change to another field of the
    -- record) counts as agreed for the three-way merge: 'keep' for a pending field.
    execute format(
      $q$with rec as materialized (
           select p.remote_id, p.target_id, p.ts, p.body, t.remote_updated_at as row_ts,
                  t.ob_columns as pending_cols, t.image as row_image, to_jsonb(y) as typed,
                  coalesce((select true from crm.sync_state s
                            where s.object = $1 and s.record_id = p.target_id limit 1), false) as any_state,
                  coalesce((select true from crm.conflicts k
                            where k.object = $1 and k.record_id = p.target_id and k.resolution is null limit 1),
                           false) as any_conflict,
                  coalesce((select true from crm.write_ledger l
                            where l.object = $1 and l.record_id = p.target_id limit 1), false) as any_ledger
           from pg_temp.crm_inbound_page p
           join pg_temp.crm_inbound_row t on t.id = p.target_id
           join pg_temp.%1$I y on y.ord = p.ord
         ),
         fv as materialized (
           select r.remote_id, r.target_id, r.ts, r.row_ts, r.pending_cols, v.field, v.val,
                  coalesce(v.local_val, 'null'::jsonb) as local_val, v.held,
                  case when r.any_state then
                    (select s from crm.sync_state s
                     where s.object = $1 and s.record_id = r.target_id and s.field = v.field)
                  end as st,
                  case when r.any_conflict then
                    (select k.id from crm.conflicts k
                     where k.object = $1 and k.record_id = r.target_id and k.field = v.field
                       and k.resolution is null)
                  end as open_conflict_id,
                  case when r.any_ledger and not v.held then
                    (select bool_or(l.remote_version is null or r.ts <= l.remote_version)
                     from crm.write_ledger l
                     where l.object = $1 and l.record_id = r.target_id and l.field = v.field
                       and l.value_hash = crm._hash(v.val) and l.pushed_at > now() - interval '7 days')
                  end as ledger_echo,
                  case when r.any_ledger and not v.held then
                    (select l.value_hash = crm._hash(coalesce(v.local_val, 'null'::jsonb))
                     from crm.write_ledger l
                     where l.object = $1 and l.record_id = r.target_id and l.field = v.field
                       and l.pushed_at > now() - interval '7 days'
                     order by l.id desc limit 1)
                  end as row_pushed
           from rec r
           cross join lateral (
             select k.key, r.typed -> k.key, r.row_image -> k.key, false
             from jsonb_object_keys(r.body) as k(key)
             where k.key <> 'custom'
             union all
             select 'custom.' || c.key, c.value, r.row_image -> 'custom' -> c.key, false
             from jsonb_each(coalesce(r.body -> 'custom', '{}'::jsonb)) as c
             union all
             select n.key, null, null, true
             from jsonb_each(r.row_image - $3) as n
             where r.ts > r.row_ts and n.value <> 'null'::jsonb and not r.body ? n.key
             union all
             select 'custom.' || c.key, null, null, true
             from jsonb_each(r.row_image -> 'custom') as c
             where r.ts > r.row_ts and c.value <> 'null'::jsonb
               and not coalesce(r.body -> 'custom', '{}'::jsonb) ? c.key
           ) as v(field, val, local_val, held)
         )
       insert into pg_temp.crm_inbound_field (remote_id, target_id, field, val, local_val, ts, agreed_hash,
                                              local_changed_at, remote_changed_at, has_state, open_conflict_id,
                                              decision)
       select f.remote_id, f.target_id, f.field, f.val, f.local_val, f.ts, (f.st).agreed_hash,
              (f.st).local_changed_at, (f.st).remote_changed_at, (f.st).record_id is not null, f.open_conflict_id,
              case
                when f.held then 'held'
                when f.ts < coalesce((f.st).remote_changed_at, f.row_ts) then 'stale'
                when f.ledger_echo and (f.val = f.local_val or f.field = any (f.pending_cols)
                                       or coalesce(f.row_pushed, false)) then 'echo'
                when f.open_conflict_id is not null then
                  case when f.val = f.local_val then 'agree' else 'manual' end
                when f.field <> all (f.pending_cols) then 'take'
                when f.val = f.local_val then 'agree'
                when (f.st).agreed_hash is not null and crm._hash(f.val) = (f.st).agreed_hash then 'keep'
                -- A value the engine pushed whose completion (the new agreed value) is not in yet.
                when f.ledger_echo is not null then 'keep'
                when $2 = 'crm_wins' then 'take_conflict'
                when $2 = 'app_wins' then 'keep_conflict'
                when $2 = 'manual' then 'manual'
                -- Overruled: the CRM still holds the value the app's edit already won over
                -- (newest_wins decided this field's last conflict for the app). Not a new CRM
                -- change, whatever the record's time now (see the header).
                when (f.st).conflict ->> 'winner' = 'local'
                     and crm._hash((f.st).conflict -> 'remote') = crm._hash(f.val) then 'keep'
                when f.ts >= coalesce((f.st).local_changed_at, '-infinity'::timestamptz) then 'take_conflict'
                else 'keep_conflict'
              end
       from fv f
       where f.held or f.val <> f.local_val or (f.st).record_id is not null or f.open_conflict_id is not null
          or f.field = any (f.pending_cols) or f.ledger_echo is not null$q$,
      v_typed)
      using p_object, v_policy, crm._bookkeeping_columns() || array['custom', 'kind'];

    -- 9. Per record: the row's state, the patch (taken fields, custom keys merged into the row's;
    -- the whole body for a new record; local ids of the relations it sets), the action, and what
    -- the outbox entry still has to push.
    v_refs := '';
    for ref in select r.local_col, r.remote_col, r.target from crm._mirror_refs() r where r.tbl = p_object loop
      v_refs := v_refs || format(
        ' || case when b.patch ? %1$L then jsonb_build_object(%2$L,
               (select x.id from crm.%3$I x where x.connection_id = $2 and x.remote_id = b.patch ->> %1$L))
             else ''{}''::jsonb end',
        ref.remote_col, ref.local_col, ref.target);
    end loop;
    execute format(
      $q$with r as materialized (
           select p0.remote_id, p0.target_id, p0.ts, p0.is_deleted, p0.linked,
                  t.remote_updated_at as row_ts, t.deleted_at as row_deleted_at,
                  t.merged_into_remote_id as row_merged_into, coalesce(t.swept, false) as row_swept,
                  -- Same second: the row's last write (its tombstone, the app's delete, or the
                  -- delete push's completion, which sets last_synced_at only).
                  greatest((t.image ->> 'updated_at')::timestamptz, (t.image ->> 'last_synced_at')::timestamptz,
                           t.deleted_at) as row_written_at,
                  t.ob_state, t.ob_op, coalesce(t.ob_columns, '{}'::text[]) as pending_cols,
                  coalesce(d.settled, '{}'::text[]) as settled, x.full_patch, p0.merged_into,
                  coalesce(d.has_echo, false) as has_echo, coalesce(d.has_conflict, false) as has_conflict
           from pg_temp.crm_inbound_page p0
           left join pg_temp.crm_inbound_row t on t.id = p0.target_id
           left join (
             select f.remote_id,
                    jsonb_object_agg(f.field, f.val) filter (
                      where f.decision in ('take', 'take_conflict') and not starts_with(f.field, 'custom.')
                        and f.val is distinct from f.local_val) as cols,
                    jsonb_object_agg(substr(f.field, 8), f.val) filter (
                      where f.decision in ('take', 'take_conflict') and starts_with(f.field, 'custom.')
                        and f.val is distinct from f.local_val) as custom_patch,
                    array_agg(f.field) filter (where f.decision in ('take', 'take_conflict', 'agree', 'manual')
                                                  or (f.decision = 'echo' and f.val = f.local_val))
                      as settled,
                    bool_or(f.decision = 'echo') as has_echo,
                    bool_or(f.decision in ('take_conflict', 'keep_conflict', 'manual')) as has_conflict
             from pg_temp.crm_inbound_field f
             group by f.remote_id
           ) d on d.remote_id = p0.remote_id
           cross join lateral (
             select b.patch %2$s
             from (select case
                            when p0.target_id is null then p0.body
                            when d.custom_patch is not null
                              then coalesce(d.cols, '{}'::jsonb) || jsonb_build_object('custom', t.custom || d.custom_patch)
                            else coalesce(d.cols, '{}'::jsonb)
                          end as patch) b
           ) as x(full_patch)
         )
         update pg_temp.crm_inbound_page p set
           row_ts = r.row_ts, row_deleted_at = r.row_deleted_at, row_merged_into = r.row_merged_into,
           row_swept = r.row_swept, ob_state = r.ob_state, ob_op = r.ob_op, pending_cols = r.pending_cols,
           settled = r.settled, full_patch = r.full_patch, action = a.action, remaining = a.remaining,
           still_pending = case
             when r.ob_state is null then false
             when r.ob_state = 'processing' then true
             when a.action = 'tombstone' then false
             when r.ob_op = 'delete' then true
             else cardinality(a.remaining) > 0
           end
         from r
         cross join lateral (
           select array(select c from unnest(r.pending_cols) c where c <> all (r.settled)) as remaining,
             case
               when r.target_id is null then case when r.is_deleted then 'insert_deleted' else 'insert' end
               -- A CRM delete of a record with a pending local edit: under app_wins and manual a
               -- conflict settled in step 11 (the delete wins under the other policies). A dead
               -- letter is parked, not pending: the delete wins over it under every policy.
               when r.is_deleted and r.row_deleted_at is null and r.ts >= coalesce(r.row_ts, '-infinity'::timestamptz)
                 then case when r.merged_into is null and r.ob_op in ('insert', 'update')
                                and r.ob_state is distinct from 'dead'
                                and $3 in ('app_wins', 'manual')
                           then 'delete_conflict' else 'tombstone' end
               -- A newer version restores a record the CRM had deleted (not a merged one, not one
               -- whose app delete is still queued); a sweep tombstone is restored by any version
               -- not older than it. Same second: so is any tombstone by its own version when the
               -- record was read after the row's last write (an undelete within the delete's
               -- second; see the header).
               when not r.is_deleted and r.row_deleted_at is not null and r.row_merged_into is null
                    and r.ob_op is distinct from 'delete'
                    and (r.ts > coalesce(r.row_ts, 'infinity'::timestamptz)
                         or (r.row_swept and r.ts >= coalesce(r.row_ts, '-infinity'::timestamptz))
                         or (r.ts = r.row_ts and $4 > r.row_written_at))
                 then 'restore'
               when r.full_patch <> '{}'::jsonb or r.linked then 'update'
               -- The engine's own echo and nothing else: no row write (see step 8).
               when r.has_echo and not r.has_conflict and not (r.pending_cols && r.settled) then 'echo'
               when r.ts > r.row_ts then 'touch'
               when r.ts < r.row_ts then 'stale'
               else 'unchanged'
             end as action
         ) a
         where p.remote_id = r.remote_id$q$,
      p_object, v_refs)
      using p_object, p_connection_id, v_policy, v_read_since;

    -- 10. Apply. Existing rows: the patch, times, tombstone or restore, what stays pending.
    execute format(
      'with upd as (
         update crm.%1$I t set
           (%2$s) = (select %3$s from jsonb_populate_record(t, p.full_patch) x),
           remote_id = p.remote_id,
           remote_updated_at = greatest(t.remote_updated_at, p.ts),
           deleted_at = case p.action when ''tombstone'' then coalesce(t.deleted_at, now())
                                      when ''restore'' then null else t.deleted_at end,
           merged_into_remote_id = case when p.action = ''tombstone'' then p.merged_into
                                        else t.merged_into_remote_id end,
           swept_at = case when p.action in (''tombstone'', ''restore'') then null else t.swept_at end,
           needs_sync = p.still_pending,
           sync_error = case when p.still_pending then t.sync_error end,
           last_synced_at = now(),
           updated_at = case when p.action = ''touch'' then t.updated_at else now() end
         from pg_temp.crm_inbound_page p
         where t.id = p.target_id and p.action in (''update'', ''tombstone'', ''restore'', ''touch'')
         returning t.id, p.remote_id, p.action, p.linked
       )
       insert into pg_temp.crm_inbound_written (id, remote_id, action, backfill)
       select u.id, u.remote_id, u.action, u.linked or u.action = ''restore'' from upd u',
      p_object, v_set_cols, v_sel_cols);
    -- New records the bulk insert left (merges, unmatched link candidates, concurrent inserts).
    select count(*)::integer into v_full_inserts
    from pg_temp.crm_inbound_page p where p.action in ('insert', 'insert_deleted');
    execute format(
      'with ins as (
         insert into crm.%1$I as t (connection_id, remote_id, remote_updated_at, last_synced_at, deleted_at,
                                    merged_into_remote_id, needs_sync, %2$s)
         select $1, p.remote_id, p.ts, now(), case when p.action = ''insert_deleted'' then now() end,
                p.merged_into, false, %3$s
         from pg_temp.crm_inbound_page p
         cross join lateral jsonb_populate_record(null::crm.%1$I, p.full_patch) x
         where p.action in (''insert'', ''insert_deleted'')
         on conflict (connection_id, remote_id) do update set
           %4$s,
           remote_updated_at = excluded.remote_updated_at,
           last_synced_at = now(),
           updated_at = now()
         where t.remote_updated_at is null or t.remote_updated_at <= excluded.remote_updated_at
         returning t.id, t.remote_id, (t.xmax = 0) as inserted, (t.deleted_at is not null) as born_deleted
       )
       insert into pg_temp.crm_inbound_written (id, remote_id, action, backfill)
       select i.id, i.remote_id,
              case when not i.inserted then ''upsert'' when i.born_deleted then ''insert_deleted'' else ''insert'' end,
              true
       from ins i',
      p_object, v_set_cols, v_ins_cols, v_conflict_set)
      using p_connection_id;
    get diagnostics v_full_written = row_count;

    -- 11. Bookkeeping: held remote change times (see step 8) of records that moved the row's time.
    insert into crm.sync_state as s (connection_id, object, record_id, field, remote_changed_at)
    select p_connection_id, p_object, f.target_id, f.field, p.row_ts
    from pg_temp.crm_inbound_field f
    join pg_temp.crm_inbound_page p on p.remote_id = f.remote_id
    where f.decision = 'held' and p.action in ('update', 'touch') and p.ts > p.row_ts
    on conflict (object, record_id, field) do update
      set remote_changed_at = excluded.remote_changed_at, updated_at = now()
      where s.remote_changed_at is null;
    -- Agreed hashes, remote change times and the last conflict of the decided fields. Fields
    -- taken or agreed need a row only when it changes something (sync_state stays empty for
    -- records nobody edited).
    insert into crm.sync_state as s (connection_id, object, record_id, field, agreed_hash, agreed_at,
                                     remote_changed_at, conflict)
    select p_connection_id, p_object, f.target_id, f.field,
           case when f.decision in ('take', 'take_conflict', 'agree', 'echo') then crm._hash(f.val) end,
           case when f.decision in ('take', 'take_conflict', 'agree', 'echo') then now() end,
           f.ts,
           case when f.decision in ('take_conflict', 'keep_conflict', 'manual') then
             jsonb_build_object('policy', v_policy, 'local', f.local_val, 'remote', f.val, 'at', now(),
               'winner', case f.decision when 'take_conflict' then 'remote'
                                         when 'keep_conflict' then 'local' end)
           end
    from pg_temp.crm_inbound_field f
    where f.decision not in ('stale', 'held')
      and (f.decision not in ('take', 'agree')
           or (f.has_state and (f.agreed_hash is distinct from crm._hash(f.val)
                                or f.remote_changed_at is null or f.remote_changed_at < f.ts)))
    on conflict (object, record_id, field) do update set
      agreed_hash = case when excluded.agreed_at is not null then excluded.agreed_hash else s.agreed_hash end,
      agreed_at = coalesce(excluded.agreed_at, s.agreed_at),
      remote_changed_at = greatest(s.remote_changed_at, excluded.remote_changed_at),
      conflict = coalesce(excluded.conflict, s.conflict),
      updated_at = now();
    -- Conflicts: every field changed on both sides (open for manual); an open one whose sides
    -- now agree is closed as converged.
    insert into crm.conflicts as k (connection_id, object, record_id, remote_id, field, local_value,
                                    remote_value, local_changed_at, remote_changed_at, policy,
                                    resolution, resolved_by, resolved_at)
    select p_connection_id, p_object, f.target_id, f.remote_id, f.field, f.local_val, f.val,
           f.local_changed_at, f.ts, v_policy,
           case f.decision when 'take_conflict' then 'remote' when 'keep_conflict' then 'local' end,
           case when f.decision <> 'manual' then 'policy' end,
           case when f.decision <> 'manual' then now() end
    from pg_temp.crm_inbound_field f
    where f.decision in ('take_conflict', 'keep_conflict', 'manual')
    on conflict (object, record_id, field) where resolution is null do update set
      remote_value = excluded.remote_value,
      remote_changed_at = excluded.remote_changed_at,
      local_value = excluded.local_value,
      updated_at = now();
    update crm.conflicts k
    set resolution = 'remote', resolved_by = 'converged', resolved_at = now(), updated_at = now()
    where k.id = any (array(select f.open_conflict_id from pg_temp.crm_inbound_field f
                            where (f.decision = 'agree' or (f.decision = 'echo' and f.val = f.local_val))
                              and f.open_conflict_id is not null));
    -- Echoes bind the ledger rows that had no remote version yet to the record's time.
    if exists (select 1 from pg_temp.crm_inbound_field f where f.decision = 'echo') then
      update crm.write_ledger l set remote_version = f.ts
      from pg_temp.crm_inbound_field f
      where f.decision = 'echo' and l.object = p_object and l.record_id = f.target_id and l.field = f.field
        and l.value_hash = crm._hash(f.val) and l.remote_version is null;
    end if;
    -- The outbox: an entry keeps the fields still to push (a linked insert becomes an update);
    -- an entry with nothing left, or of a record now tombstoned, goes. A leased entry is left to
    -- its worker. A dead letter of a record now tombstoned stays, with the delete added to its
    -- reason (crm.replay_outbox refuses it). Most pages have no record with an entry.
    if exists (select 1 from pg_temp.crm_inbound_page p where p.ob_state is not null) then
      update crm.outbox o set
        last_error = crm._dead_letter_deleted_note(o.last_error), updated_at = now()
      from pg_temp.crm_inbound_page p
      where o.object = p_object and o.record_id = p.target_id and o.state = 'dead'
        and p.action = 'tombstone' and o.op <> 'delete';
      update crm.outbox o set
        changed_columns = p.remaining,
        op = case when o.op = 'insert' and p.linked then 'update' else o.op end,
        remote_id = coalesce(o.remote_id, p.remote_id),
        updated_at = now()
      from pg_temp.crm_inbound_page p
      where o.object = p_object and o.record_id = p.target_id and o.state <> 'processing'
        and p.action <> 'tombstone' and o.op <> 'delete'
        and cardinality(p.remaining) > 0
        and (p.remaining <> o.changed_columns or (o.op = 'insert' and p.linked));
      delete from crm.outbox o
      using pg_temp.crm_inbound_page p
      where o.object = p_object and o.record_id = p.target_id and o.state <> 'processing'
        and ((p.action = 'tombstone' and not (o.state = 'dead' and o.op <> 'delete'))
             or (o.op <> 'delete' and cardinality(p.remaining) = 0 and p.action <> 'tombstone'));
      -- CRM deletes of records with a pending local edit: recorded conflicts (field deleted_at,
      -- local_value the pending values). The delete won above (tombstone) unless the policy is
      -- app_wins (the record is created again; a leased entry is left to its worker, whose push
      -- meets the delete and fail_outbox settles it) or manual (open; the row stays, claims hold
      -- its entry).
      insert into crm.conflicts as k (connection_id, object, record_id, remote_id, field, local_value,
                                      remote_value, local_changed_at, remote_changed_at, policy,
                                      resolution, resolved_by, resolved_at)
      select p_connection_id, p_object, p.target_id, p.remote_id, 'deleted_at',
             (select coalesce(jsonb_object_agg(c.col, crm._field_value(t.image, c.col)), '{}'::jsonb)
              from unnest(t.ob_columns) as c(col)),
             '{"deleted": true}'::jsonb,
             (select max(s.local_changed_at) from crm.sync_state s
              where s.object = p_object and s.record_id = p.target_id),
             p.ts, v_policy,
             case when p.action = 'tombstone' then 'remote' when v_policy = 'app_wins' then 'local' end,
             case when p.action = 'tombstone' or v_policy = 'app_wins' then 'policy' end,
             case when p.action = 'tombstone' or v_policy = 'app_wins' then now() end
      from pg_temp.crm_inbound_page p
      join pg_temp.crm_inbound_row t on t.id = p.target_id
      where t.ob_op in ('insert', 'update') and t.ob_state <> 'dead' and p.merged_into is null
        and (p.action = 'tombstone'
             or (p.action = 'delete_conflict' and (v_policy = 'manual' or t.ob_state <> 'processing')))
      on conflict (object, record_id, field) where resolution is null do update set
        local_value = excluded.local_value, remote_changed_at = excluded.remote_changed_at, updated_at = now();
      get diagnostics v_delete_conflicts = row_count;
      if v_policy = 'app_wins' then
        perform crm._recreate_rows(p_object, array(
          select p.target_id from pg_temp.crm_inbound_page p
          join pg_temp.crm_inbound_row t on t.id = p.target_id
          where p.action = 'delete_conflict' and t.ob_state <> 'processing'));
      end if;
    end if;

    -- 12. Merges: losers named by a survivor become tombstones pointing at it; every merge
    -- leaves an alias.
    execute format(
      'update pg_temp.crm_inbound_loser l set id = t.id, was_live = t.deleted_at is null
       from crm.%I t
       where t.connection_id = $1 and t.remote_id = l.alias
         and (t.deleted_at is null or t.merged_into_remote_id is distinct from l.survivor)',
      p_object)
      using p_connection_id;
    execute format(
      'update crm.%I t
       set deleted_at = coalesce(t.deleted_at, now()), merged_into_remote_id = l.survivor, swept_at = null,
           needs_sync = false, last_synced_at = now(), updated_at = now()
       from pg_temp.crm_inbound_loser l
       where t.id = l.id',
      p_object);
    -- Pending app edits of the losers (named by a survivor, or tombstoned by their own record's
    -- merged_into) go to their survivors, settled by the policy (crm._retarget_merged_edits);
    -- the losers' entries go. The entries as step 6 read them under the row locks; one claimed
    -- since is left to its worker (the merged id resolves to the survivor).
    select coalesce(jsonb_agg(jsonb_build_object(
             'loser', t.id, 'loser_remote_id', t.remote_id, 'survivor', m.survivor,
             'columns', to_jsonb(t.ob_columns), 'image', t.image) order by t.id), '[]'::jsonb)
      into v_moves
    from (select l.id, l.survivor from pg_temp.crm_inbound_loser l where l.id is not null
          union
          select p.target_id, p.merged_into from pg_temp.crm_inbound_page p
          where p.action = 'tombstone' and p.merged_into is not null and p.merged_into <> p.remote_id) m
    join pg_temp.crm_inbound_row t on t.id = m.id
    where t.ob_op in ('insert', 'update') and t.ob_state <> 'processing' and cardinality(t.ob_columns) > 0
      and t.deleted_at is null;
    if v_moves <> '[]'::jsonb then
      v_merge_conflicts := crm._retarget_merged_edits(p_connection_id, p_object, v_policy, v_moves);
    end if;
    delete from crm.outbox o
    using pg_temp.crm_inbound_loser l
    where o.object = p_object and o.record_id = l.id and o.state <> 'processing';
    insert into crm.record_aliases as a (connection_id, object, alias_remote_id, remote_id, merged_at)
    select p_connection_id, p_object, p.remote_id, p.merged_into, now()
    from pg_temp.crm_inbound_page p
    where p.merged_into is not null and p.merged_into <> p.remote_id
      and p.action in ('tombstone', 'insert_deleted', 'unchanged', 'touch', 'update')
    union all
    select p_connection_id, p_object, l.alias, l.survivor, now() from pg_temp.crm_inbound_loser l
    on conflict (connection_id, object, alias_remote_id) do update
      set remote_id = excluded.remote_id, merged_at = excluded.merged_at;
  end if;

  -- 13. Rows of the mirror tables that reference a record written here (inserted, linked or
  -- restored) by remote id get its local id. The rows are found by one scan of the partial
  -- remote-id index for the written remote ids (= any): joined to the written records, an
  -- unanalyzed page of one record was guessed at hundreds and the back-fill became a hash join
  -- over every row of the connection with the relation.
  for ref in select r.tbl, r.local_col, r.remote_col from crm._mirror_refs() r where r.target = p_object loop
    execute format(
      'update crm.%1$I x set %2$I = w.id
       from pg_temp.crm_inbound_written w
       where x.%3$I = any (array(select b.remote_id from pg_temp.crm_inbound_written b where b.backfill))
         and x.connection_id = $1 and w.backfill and w.remote_id = x.%3$I and x.%2$I is distinct from w.id',
      ref.tbl, ref.local_col, ref.remote_col)
      using p_connection_id;
  end loop;

  -- 14. Counts. A new record the full insert skipped (a newer row already there) is unchanged.
  if v_full_inserts is null and v_losers = 0 then
    -- Only the bulk insert ran (a backfill page).
    return query select v_bulk_written - v_bulk_deleted, 0, 0, v_bulk_deleted, 0, 0;
    return;
  end if;
  return query
    select
      (select count(*) from pg_temp.crm_inbound_written w where w.action = 'insert')::integer,
      (select count(*) from pg_temp.crm_inbound_written w where w.action in ('update', 'restore', 'upsert'))::integer,
      ((select count(*) from pg_temp.crm_inbound_page p where p.action in ('touch', 'unchanged', 'echo', 'delete_conflict'))
        + coalesce(v_full_inserts, 0) - coalesce(v_full_written, 0))::integer,
      ((select count(*) from pg_temp.crm_inbound_written w where w.action in ('insert_deleted', 'tombstone'))
        + (select count(*) from pg_temp.crm_inbound_loser l where l.was_live))::integer,
      (select count(*) from pg_temp.crm_inbound_page p where p.action = 'stale')::integer,
      ((select count(*) from pg_temp.crm_inbound_field f
        where f.decision in ('take_conflict', 'keep_conflict', 'manual')) + v_delete_conflicts
        + v_merge_conflicts)::integer;
exception when check_violation or not_null_violation or data_exception then
  -- Validated in step 2; what remains is a value valid alone but not in the row it patches.
  raise exception using errcode = 'CRM03', message = 'invalid inbound record: ' || sqlerrm;
end
$fn$;
comment on function crm.apply_inbound(uuid, text, jsonb) is
  'Applies one page of canonical inbound records for a connection/object in fixed steps: validated, ordered, linked, three-way merged. Returns counts. Errors: CRM01 object, CRM02 connection, CRM03 record.';
revoke all on function crm.apply_inbound(uuid, text, jsonb) from public;
grant execute on function crm.apply_inbound(uuid, text, jsonb) to service_role;
