-- Why: run logs, processed webhook events, resolved alerts and pg_net responses grow without
-- bound (contacts alone log 288 runs a day per connection). A daily pure-SQL job keeps 30 days
-- of history, which covers the 24 h error rates and any reasonable investigation. Dead letters,
-- open conflicts and running runs are never deleted: they wait for a human.

create or replace function crm.cleanup(p_keep interval default '30 days')
  returns jsonb
  language plpgsql
  set search_path = ''
as $$
declare
  v_log bigint;
  v_inbox bigint;
  v_alerts bigint;
  v_conflicts bigint;
  v_responses bigint := 0;
begin
  delete from crm.sync_log l where l.started_at < now() - p_keep and l.status <> 'running';
  get diagnostics v_log = row_count;
  delete from crm.webhook_events w
  where w.state in ('done', 'ignored') and w.processed_at < now() - p_keep;
  get diagnostics v_inbox = row_count;
  delete from crm.health_alerts h where h.resolved_at < now() - p_keep;
  get diagnostics v_alerts = row_count;
  -- Conflicts are an audit trail: resolved ones are kept three times as long.
  delete from crm.conflicts k where k.resolved_at < now() - 3 * p_keep;
  get diagnostics v_conflicts = row_count;
  -- pg_net keeps responses for 6 hours itself; this catches anything older (e.g. while its
  -- worker was down). Skipped where the role may not delete them.
  begin
    delete from net._http_response r where r.created < now() - interval '1 day';
    get diagnostics v_responses = row_count;
  exception when insufficient_privilege then
    raise notice 'crm.cleanup: no privilege to delete from net._http_response; skipped';
  end;
  return jsonb_build_object('sync_log', v_log, 'webhook_events', v_inbox, 'health_alerts', v_alerts,
                            'conflicts', v_conflicts, 'http_responses', v_responses);
end
$$;
comment on function crm.cleanup(interval) is
  'Deletes sync_log runs, processed webhook events and resolved alerts older than p_keep (conflicts 3x), and pg_net responses older than a day.';
revoke all on function crm.cleanup(interval) from public;
grant execute on function crm.cleanup(interval) to service_role;
