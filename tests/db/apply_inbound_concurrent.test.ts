// crm.apply_inbound inserts the records nobody has seen with a plain INSERT (no ON CONFLICT: a
// speculative insertion per row costs about a tenth of a backfill page). A record another session
// inserts between the page's load and that INSERT makes it fail with unique_violation; the page
// must then still apply whole: the new records inserted, the concurrent one updated. Two real
// sessions; runs against the shared stack database with a connection of its own.
import assert from "node:assert/strict";
import { twoSessions } from "../_support/db.ts";

Deno.test("apply_inbound: a record inserted concurrently does not fail the page", async () => {
  await twoSessions("hubspot", null, async (a, b, connectionId) => {
    const [{ pid }] = await b`select pg_backend_pid() as pid`;
    const page = [
      { remote_id: "cc-1", remote_updated_at: "2026-01-02T00:00:00Z", first_name: "Remote" },
      { remote_id: "cc-2", remote_updated_at: "2026-01-02T00:00:00Z", first_name: "Two" },
    ];
    let applied: Promise<{ created: number; updated: number }[]> | undefined;
    await a.begin(async (tx) => {
      await tx`select set_config('crm.engine', 'on', true)`;
      await tx`insert into crm.contacts (connection_id, remote_id, remote_updated_at, first_name)
               values (${connectionId}::uuid, 'cc-1', '2026-01-01T00:00:00Z', 'Local')`;
      // B loads the page (cc-1 has no committed row), then its INSERT waits for this transaction.
      // (execute(): postgres.js queries are lazy, and this one is awaited only after the commit.)
      applied = b<{ created: number; updated: number }[]>`select created, updated
                  from crm.apply_inbound(${connectionId}::uuid, 'contacts', ${b.json(page)})`
        .execute();
      for (let i = 0;; i++) {
        const [{ waiting }] = await tx`select exists (
            select 1 from pg_stat_activity where pid = ${pid} and wait_event_type = 'Lock') as waiting`;
        if (waiting) break;
        assert.ok(i < 200, "the apply never waited for the concurrent insert");
        await new Promise((r) => setTimeout(r, 25));
      }
    });
    const [counts] = await applied!;
    assert.deepEqual([counts.created, counts.updated], [1, 1], "created, updated");
    const rows = await a`select remote_id, first_name from crm.contacts
                         where connection_id = ${connectionId}::uuid order by remote_id`;
    assert.deepEqual(rows.map((r) => [r.remote_id, r.first_name]), [["cc-1", "Remote"], [
      "cc-2",
      "Two",
    ]]);
  });
});
