-- crm.apply_inbound and sweep tombstones (issue 10, item 1). A completed full walk tombstones the
-- rows it did not see and marks them with swept_at (crm.finish_full_sync_sweep); here the sweep
-- is written as it writes it. A record seen again restores a sweep tombstone even when unchanged
-- (equal remote_updated_at), never when older; a tombstone the CRM reported (deleted: true, a
-- merge) still needs a strictly newer version. Counts are (created,updated,unchanged,deleted,
-- stale,conflicts).
begin;
select plan(12);

insert into crm.connections (id, account_id, provider, remote_account_id) values
  ('04a00000-0000-4000-8000-0000000000c1', '04a00000-0000-4000-8000-0000000000a1', 'hubspot', 'sweep-test-1');

create function pg_temp.apply(p_records jsonb) returns text language sql as $$
  select row(a.created, a.updated, a.unchanged, a.deleted, a.stale, a.conflicts)::text
  from crm.apply_inbound('04a00000-0000-4000-8000-0000000000c1', 'contacts', p_records) a
$$;
create function pg_temp.state(p_remote_id text) returns text language sql as $$
  select row(c.first_name, c.deleted_at is not null, c.swept_at is not null, c.merged_into_remote_id)::text
  from crm.contacts c
  where c.connection_id = '04a00000-0000-4000-8000-0000000000c1' and c.remote_id = p_remote_id
$$;
create function pg_temp.sweep(p_remote_id text) returns void language sql as $$
  set local crm.engine = 'on';
  update crm.contacts set deleted_at = now(), swept_at = now()
  where connection_id = '04a00000-0000-4000-8000-0000000000c1' and remote_id = p_remote_id;
  reset crm.engine;
$$;

select is(pg_temp.apply('[
  {"remote_id": "s1", "remote_updated_at": "2026-01-01T10:00:00Z", "first_name": "Swept"},
  {"remote_id": "s2", "remote_updated_at": "2026-01-01T10:00:00Z", "first_name": "Older"},
  {"remote_id": "d1", "remote_updated_at": "2026-01-01T10:00:00Z", "first_name": "Deleted"},
  {"remote_id": "m1", "remote_updated_at": "2026-01-01T10:00:00Z", "first_name": "Merged"}
]'), '(4,0,0,0,0,0)', 'four records');
select pg_temp.sweep('s1');
select pg_temp.sweep('s2');

-- The unchanged record seen again after a sweep tombstone.
select is(pg_temp.apply('[{"remote_id": "s1", "remote_updated_at": "2026-01-01T10:00:00Z", "first_name": "Swept"}]'),
  '(0,1,0,0,0,0)', 'an unchanged record seen again restores its sweep tombstone');
select is(pg_temp.state('s1'), '(Swept,f,f,)', 'restored: not deleted, no longer marked swept');
select is(pg_temp.apply('[{"remote_id": "s1", "remote_updated_at": "2026-01-01T10:00:00Z", "first_name": "Swept"}]'),
  '(0,0,1,0,0,0)', 'seen once more, it is unchanged');

-- Older than the row: stale, the tombstone stays.
select is(pg_temp.apply('[{"remote_id": "s2", "remote_updated_at": "2026-01-01T09:00:00Z", "first_name": "Old"}]'),
  '(0,0,0,0,1,0)', 'an older copy does not restore a sweep tombstone');
select is(pg_temp.state('s2'), '(Older,t,t,)', 'still swept');

-- A tombstone the CRM reported keeps today's rule: an equal-time live copy does not restore it.
select is(pg_temp.apply('[{"remote_id": "d1", "remote_updated_at": "2026-01-01T10:00:00Z", "deleted": true}]'),
  '(0,0,0,1,0,0)', 'deleted by the CRM');
select is(pg_temp.apply('[{"remote_id": "d1", "remote_updated_at": "2026-01-01T10:00:00Z", "first_name": "Deleted"}]'),
  '(0,0,1,0,0,0)', 'an equal-time live copy of a record the CRM deleted does not restore it');
select is(pg_temp.state('d1'), '(Deleted,t,f,)', 'still deleted, not marked swept');
select is(pg_temp.apply('[{"remote_id": "d1", "remote_updated_at": "2026-01-01T11:00:00Z", "first_name": "Back"}]'),
  '(0,1,0,0,0,0)', 'a newer live copy restores it');

-- A merge of a swept record: the loser's tombstone is a merge, not a sweep.
select pg_temp.sweep('m1');
select is(pg_temp.apply('[{"remote_id": "s1", "remote_updated_at": "2026-01-01T12:00:00Z", "merged_ids": ["m1"]}]'),
  '(0,0,1,0,0,0)', 'a survivor names the swept record as merged into it (nothing else changed: unchanged)');
select is(pg_temp.state('m1'), '(Merged,t,f,s1)', 'the loser is a merge tombstone, no longer marked swept');

select * from finish();
rollback;
