-- Index use on the hot paths: the triggers' outbox probe and sync_state cleanup, and the partial
-- relation indexes under the foreign keys' ON DELETE SET NULL and apply_inbound's back-fill.
-- Asserted with this transaction's own per-relation counters, never with timings:
-- pg_stat_get_xact_numscans / _blocks_fetched / _tuples_returned read the backend's pending
-- statistics, which count as each statement runs and are flushed only after the transaction.
-- Tables are filled with thousands of rows so that a walk and a probe by key differ tenfold.
begin;
select plan(14);

insert into crm.connections (id, account_id, provider, remote_account_id) values
  ('09000000-0000-4000-8000-0000000000c1', '09000000-0000-4000-8000-0000000000a1', 'hubspot', 'index-test-1');

-- pg_temp.mark(rels) notes the counters of some relations; pg_temp.counted() gives, per relation,
-- what was counted since: scans (sequential for a table, index scans for an index), blocks read
-- (hits included), and tuples returned (by sequential scans of a table, by an index's scans).
create temporary table mark (rel regclass primary key, scans bigint, blocks bigint, tuples bigint);
create function pg_temp.mark(variadic p_rels regclass[]) returns void language sql as $$
  delete from pg_temp.mark;
  insert into pg_temp.mark
  select r, pg_stat_get_xact_numscans(r), pg_stat_get_xact_blocks_fetched(r), pg_stat_get_xact_tuples_returned(r)
  from unnest(p_rels) r;
$$;
create function pg_temp.counted()
  returns table (rel text, scans bigint, blocks bigint, tuples bigint) language sql as $$
  select m.rel::text, pg_stat_get_xact_numscans(m.rel) - m.scans,
         pg_stat_get_xact_blocks_fetched(m.rel) - m.blocks, pg_stat_get_xact_tuples_returned(m.rel) - m.tuples
  from pg_temp.mark m
  order by 1;
$$;

-- Triggers: outbox probe and sync_state cleanup -----------------------------------------------
-- An outbox of 5,000 entries of other records (a bulk app write not yet pushed), 100 synced
-- contacts with two fields of sync state each, and 5,000 sync_state rows of other records.
insert into crm.outbox (connection_id, object, record_id, op)
select '09000000-0000-4000-8000-0000000000c1', 'contacts', md5('09-outbox-' || i)::uuid, 'update'
from generate_series(1, 5000) i;
set local crm.engine = 'on';
insert into crm.contacts (id, connection_id, remote_id, email)
select md5('09-contact-' || i)::uuid, '09000000-0000-4000-8000-0000000000c1', 'del-' || i, 'c' || i || '@x.test'
from generate_series(1, 100) i;
reset crm.engine;
insert into crm.sync_state (connection_id, object, record_id, field)
select '09000000-0000-4000-8000-0000000000c1'::uuid, 'contacts', md5('09-contact-' || i)::uuid, f
from generate_series(1, 100) i, unnest(array['email', 'first_name']) f
union all
select '09000000-0000-4000-8000-0000000000c1'::uuid, 'contacts', md5('09-state-' || i)::uuid, 'email'
from generate_series(1, 5000) i;
-- Statistics as autovacuum keeps them. Without any (rows loaded since the last analyze), one
-- object's rows are guessed at a dozen, and even the fixed cleanup can be planned as a hash join
-- over a bitmap scan of all of them (seen with 5 deleted rows); with them, it must probe by key.
analyze crm.sync_state;

-- One app delete statement of the 100: the delete trigger passes tg_table_name (a name, of
-- collation "C") to the sync_state cleanup and to crm._enqueue_outbox.
select pg_temp.mark('crm.outbox_record_unique', 'crm.sync_state', 'crm.sync_state_pkey');
delete from crm.contacts where connection_id = '09000000-0000-4000-8000-0000000000c1';
select is((select count(*)::integer from crm.outbox
           where object = 'contacts' and op = 'delete' and remote_id like 'del-%'
             and connection_id = '09000000-0000-4000-8000-0000000000c1'),
  100, 'an app delete of 100 synced contacts queues 100 deletes');
-- Per deleted row: the probe, the ON CONFLICT check and the insert, each a descent of a
-- two-level index (6 blocks). With the name's collation the probe could only use record_id,
-- the index's second column, and walked the whole index each time (37 more blocks per row).
select cmp_ok((select blocks from pg_temp.counted() where rel = 'crm.outbox_record_unique'), '<=', 1000::bigint,
  'the outbox is probed by (object, record_id): at most 10 blocks of its unique index per deleted row');
select cmp_ok(pg_relation_size('crm.outbox_record_unique') / current_setting('block_size')::bigint, '>', 20::bigint,
  'a walk of that index reads over twice as many');
-- The cleanup was a hash join over a sequential scan of all of sync_state per statement (the
-- part enable_seqscan = off fixes: 100 probes by key cost more than one scan, for the planner).
-- With the name's collation, and no scan allowed, the key could only be probed by record_id,
-- its second column: a walk of the whole index per deleted row (the part the cast fixes).
select results_eq(
  $$select s.scans, k.tuples, k.blocks <= 500
    from pg_temp.counted() s, pg_temp.counted() k
    where s.rel = 'crm.sync_state' and k.rel = 'crm.sync_state_pkey'$$,
  $$values (0::bigint, 200::bigint, true)$$,
  'the sync_state cleanup probes its key by (object, record_id): no scan of the table, only the 200 rows of '
  || 'the deleted records read, at most 5 blocks of the key per deleted row');
select is((select count(*)::integer from crm.sync_state where object = 'contacts'
           and record_id in (select md5('09-contact-' || i)::uuid from generate_series(1, 100) i)),
  0, 'and deletes them');

-- Relation indexes ------------------------------------------------------------------------------
-- Every lookup through them is an equality (which implies NOT NULL), so they hold only the rows
-- that have the relation.
select results_eq(
  $$select c.relname::text collate "default", pg_get_expr(i.indpred, i.indrelid) collate "default"
    from pg_index i join pg_class c on c.oid = i.indexrelid
    where i.indrelid in ('crm.contacts'::regclass, 'crm.companies'::regclass, 'crm.deals'::regclass)
      and c.relname ~ '_(company|owner|contact)(_remote)?_idx$'
    order by 1$$,
  $$values ('companies_owner_idx', '(owner_id IS NOT NULL)'),
           ('companies_owner_remote_idx', '(owner_remote_id IS NOT NULL)'),
           ('contacts_company_idx', '(company_id IS NOT NULL)'),
           ('contacts_company_remote_idx', '(company_remote_id IS NOT NULL)'),
           ('contacts_owner_idx', '(owner_id IS NOT NULL)'),
           ('contacts_owner_remote_idx', '(owner_remote_id IS NOT NULL)'),
           ('deals_company_idx', '(company_id IS NOT NULL)'),
           ('deals_company_remote_idx', '(company_remote_id IS NOT NULL)'),
           ('deals_contact_idx', '(primary_contact_id IS NOT NULL)'),
           ('deals_contact_remote_idx', '(primary_contact_remote_id IS NOT NULL)'),
           ('deals_owner_idx', '(owner_id IS NOT NULL)'),
           ('deals_owner_remote_idx', '(owner_remote_id IS NOT NULL)')$$,
  'the twelve relation indexes hold only rows that have the relation');

select pg_temp.mark('crm.companies_owner_idx', 'crm.companies_owner_remote_idx', 'crm.contacts_company_idx',
  'crm.contacts_company_remote_idx', 'crm.contacts_owner_idx', 'crm.contacts_owner_remote_idx',
  'crm.deals_company_idx', 'crm.deals_company_remote_idx', 'crm.deals_contact_idx',
  'crm.deals_contact_remote_idx', 'crm.deals_owner_idx', 'crm.deals_owner_remote_idx');
set local crm.engine = 'on';
insert into crm.companies (connection_id, remote_id, name)
select '09000000-0000-4000-8000-0000000000c1', 'nco-' || i, 'Company ' || i from generate_series(1, 1000) i;
insert into crm.contacts (connection_id, remote_id, email)
select '09000000-0000-4000-8000-0000000000c1', 'nct-' || i, 'n' || i || '@x.test' from generate_series(1, 3000) i;
insert into crm.deals (connection_id, remote_id, name)
select '09000000-0000-4000-8000-0000000000c1', 'nd-' || i, 'Deal ' || i from generate_series(1, 1000) i;
select is((select sum(blocks)::integer from pg_temp.counted()), 0,
  'rows without relations are not written to any relation index (none of their blocks is read)');

-- Rows with relations. By local id: owner ow-1, company co-1, contact ct-1, referenced by 2 to 7
-- rows (a different count per index). By remote id only (the targets not synced yet): ow-2,
-- co-2, ct-2, likewise.
insert into crm.owners (id, connection_id, remote_id) values
  ('09000000-0000-4000-8000-0000000000f1', '09000000-0000-4000-8000-0000000000c1', 'ow-1');
insert into crm.companies (id, connection_id, remote_id) values
  ('09000000-0000-4000-8000-0000000000e1', '09000000-0000-4000-8000-0000000000c1', 'co-1');
insert into crm.contacts (id, connection_id, remote_id) values
  ('09000000-0000-4000-8000-0000000000d1', '09000000-0000-4000-8000-0000000000c1', 'ct-1');
insert into crm.companies (connection_id, remote_id, owner_remote_id, owner_id)
select '09000000-0000-4000-8000-0000000000c1', 'rco-' || i, 'ow-' || (i + 1) / 2,
       case when i <= 2 then '09000000-0000-4000-8000-0000000000f1'::uuid end
from generate_series(1, 4) i;
insert into crm.contacts (connection_id, remote_id, owner_remote_id, owner_id, company_remote_id, company_id)
select '09000000-0000-4000-8000-0000000000c1', 'rct-' || i,
       case when i <= 3 then 'ow-1' when i <= 6 then 'ow-2' end,
       case when i <= 3 then '09000000-0000-4000-8000-0000000000f1'::uuid end,
       case when i > 6 and i <= 11 then 'co-1' when i > 11 then 'co-2' end,
       case when i > 6 and i <= 11 then '09000000-0000-4000-8000-0000000000e1'::uuid end
from generate_series(1, 16) i;
insert into crm.deals (connection_id, remote_id, owner_remote_id, owner_id, company_remote_id, company_id,
                       primary_contact_remote_id, primary_contact_id)
select '09000000-0000-4000-8000-0000000000c1', 'rd-' || i,
       case when i <= 4 then 'ow-1' when i <= 8 then 'ow-2' end,
       case when i <= 4 then '09000000-0000-4000-8000-0000000000f1'::uuid end,
       case when i > 8 and i <= 14 then 'co-1' when i > 14 and i <= 20 then 'co-2' end,
       case when i > 8 and i <= 14 then '09000000-0000-4000-8000-0000000000e1'::uuid end,
       case when i > 20 and i <= 27 then 'ct-1' when i > 27 then 'ct-2' end,
       case when i > 20 and i <= 27 then '09000000-0000-4000-8000-0000000000d1'::uuid end
from generate_series(1, 34) i;
analyze crm.companies, crm.contacts, crm.deals;

-- ON DELETE SET NULL: one query per deleted row and foreign key, "where $1 = <local id>".
select pg_temp.mark('crm.companies_owner_idx', 'crm.contacts_company_idx', 'crm.contacts_owner_idx',
  'crm.deals_company_idx', 'crm.deals_contact_idx', 'crm.deals_owner_idx');
delete from crm.owners where id = '09000000-0000-4000-8000-0000000000f1';
delete from crm.companies where id = '09000000-0000-4000-8000-0000000000e1';
delete from crm.contacts where id = '09000000-0000-4000-8000-0000000000d1';
select results_eq($$select rel, scans, tuples from pg_temp.counted()$$,
  $$values ('crm.companies_owner_idx', 1::bigint, 2::bigint), ('crm.contacts_company_idx', 1, 5),
           ('crm.contacts_owner_idx', 1, 3), ('crm.deals_company_idx', 1, 6), ('crm.deals_contact_idx', 1, 7),
           ('crm.deals_owner_idx', 1, 4)$$,
  'ON DELETE SET NULL finds the referencing rows with one scan of each partial local-id index');
select is((select count(*)::integer from crm.companies c where c.owner_remote_id = 'ow-1' and c.owner_id is null)
          + (select count(*)::integer from crm.contacts c
             where (c.owner_remote_id = 'ow-1' and c.owner_id is null)
                or (c.company_remote_id = 'co-1' and c.company_id is null))
          + (select count(*)::integer from crm.deals d
             where (d.owner_remote_id = 'ow-1' and d.owner_id is null)
                or (d.company_remote_id = 'co-1' and d.company_id is null)
                or (d.primary_contact_remote_id = 'ct-1' and d.primary_contact_id is null)),
  27, 'and clears their local ids');
reset crm.engine;

-- apply_inbound back-fill: writing ow-2, co-2, ct-2 fills the local ids of the rows naming them,
-- one probe per written record by "<remote id> = w.remote_id and connection_id = $1".
select pg_temp.mark('crm.companies_owner_remote_idx', 'crm.contacts_company_remote_idx',
  'crm.contacts_owner_remote_idx', 'crm.deals_company_remote_idx', 'crm.deals_contact_remote_idx',
  'crm.deals_owner_remote_idx');
create temporary table applied as
  select 'owners' as object, a.* from crm.apply_inbound('09000000-0000-4000-8000-0000000000c1', 'owners',
    '[{"remote_id": "ow-2", "remote_updated_at": "2026-01-01T00:00:00Z"}]') a
  union all
  select 'companies', a.* from crm.apply_inbound('09000000-0000-4000-8000-0000000000c1', 'companies',
    '[{"remote_id": "co-2", "remote_updated_at": "2026-01-01T00:00:00Z"}]') a
  union all
  select 'contacts', a.* from crm.apply_inbound('09000000-0000-4000-8000-0000000000c1', 'contacts',
    '[{"remote_id": "ct-2", "remote_updated_at": "2026-01-01T00:00:00Z"}]') a;
select results_eq($$select object, created, updated from applied$$,
  $$values ('owners', 1, 0), ('companies', 1, 0), ('contacts', 1, 0)$$,
  'each page creates its record');
select results_eq($$select rel, scans, tuples from pg_temp.counted()$$,
  $$values ('crm.companies_owner_remote_idx', 1::bigint, 2::bigint), ('crm.contacts_company_remote_idx', 1, 5),
           ('crm.contacts_owner_remote_idx', 1, 3), ('crm.deals_company_remote_idx', 1, 6),
           ('crm.deals_contact_remote_idx', 1, 7), ('crm.deals_owner_remote_idx', 1, 4)$$,
  'the back-fill finds the referencing rows with one scan of each partial remote-id index');
select is((select count(*)::integer from crm.companies c
           where c.owner_id = (select o.id from crm.owners o where o.remote_id = 'ow-2'))
          + (select count(*)::integer from crm.contacts c
             where c.owner_id = (select o.id from crm.owners o where o.remote_id = 'ow-2')
                or c.company_id = (select o.id from crm.companies o where o.remote_id = 'co-2'))
          + (select count(*)::integer from crm.deals d
             where d.owner_id = (select o.id from crm.owners o where o.remote_id = 'ow-2')
                or d.company_id = (select o.id from crm.companies o where o.remote_id = 'co-2')
                or d.primary_contact_id = (select o.id from crm.contacts o where o.remote_id = 'ct-2')),
  27, 'and fills their local ids');

-- apply_inbound, a delta page: 50 contacts the mirror has, one field changed remotely; five of
-- them edited locally first (outbox entries and sync_state rows take part). The mirror rows,
-- their outbox entries, sync_state and open conflicts are read by key whatever the tables hold
-- (here contacts 3,000+, outbox 5,000+, sync_state 5,000+, conflicts 5,000 rows, of other
-- records): no sequential scan of them.
update crm.contacts set job_title = 'Local ' || remote_id
where connection_id = '09000000-0000-4000-8000-0000000000c1' and remote_id in ('nct-1', 'nct-2', 'nct-3', 'nct-4', 'nct-5');
insert into crm.conflicts (connection_id, object, record_id, field, policy, resolution, resolved_by, resolved_at)
select '09000000-0000-4000-8000-0000000000c1', 'contacts', md5('09-conflict-' || i)::uuid, 'email', 'newest_wins',
       case when i > 100 then 'remote' end, case when i > 100 then 'policy' end, case when i > 100 then now() end
from generate_series(1, 5000) i;
analyze crm.contacts, crm.outbox, crm.sync_state, crm.conflicts;
select pg_temp.mark('crm.contacts', 'crm.outbox', 'crm.sync_state', 'crm.conflicts');
select is((select row(a.created, a.updated, a.unchanged, a.deleted, a.stale, a.conflicts)::text
           from crm.apply_inbound('09000000-0000-4000-8000-0000000000c1', 'contacts',
             (select jsonb_agg(jsonb_build_object('remote_id', 'nct-' || i, 'remote_updated_at', '2026-01-02T00:00:00Z',
                                                  'email', 'n' || i || '@x.test', 'last_name', 'Remote ' || i))
              from generate_series(1, 50) i)) a),
  '(0,50,0,0,0,0)', 'a delta page of 50 existing contacts updates them');
select results_eq($$select rel, scans from pg_temp.counted()$$,
  $$values ('crm.conflicts', 0::bigint), ('crm.contacts', 0), ('crm.outbox', 0), ('crm.sync_state', 0)$$,
  'and reads contacts, the outbox, sync_state and conflicts by key only: no sequential scan');

select * from finish();
rollback;
