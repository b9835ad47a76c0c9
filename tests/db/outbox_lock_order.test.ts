// The engine's outbox verbs lock a record's row before its outbox entry, as the app path does
// (an app UPDATE locks the row, then its trigger upserts the entry). Found by the chaos harness
// (issue 15): crm.complete_outbox locked the entries first and then the rows, so an app update
// of a record whose push was completing deadlocked with it, and Postgres aborted one of the two
// statements. Two real sessions against the shared stack database: the app's transaction holds
// the row lock, the engine's call starts, then the app's update needs the entry.
import assert from "node:assert/strict";
import { type Sql, twoSessions, type Tx } from "../_support/db.ts";

async function waitForLock(tx: Tx, pid: number): Promise<void> {
  for (let i = 0;; i++) {
    const [{ waiting }] = await tx`select exists (
        select 1 from pg_stat_activity where pid = ${pid} and wait_event_type = 'Lock') as waiting`;
    if (waiting) return;
    assert.ok(i < 200, "the engine's call never waited for the app's row lock");
    await new Promise((r) => setTimeout(r, 25));
  }
}

type Verb = (b: Sql, id: string, lease: string) => Promise<unknown>;

async function race(name: string, verb: Verb): Promise<void> {
  await twoSessions("hubspot", { "conflict_policy": "newest_wins" }, async (a, b, connectionId) => {
    const [{ id: rowId }] = await a.begin(async (tx) => {
      await tx`select set_config('crm.engine', 'on', true)`;
      return await tx`
        insert into crm.contacts (connection_id, remote_id, remote_updated_at, first_name)
        values (${connectionId}::uuid, 'lo-1', '2026-01-01T00:00:00Z', 'F0')
        returning id::text as id`;
    });
    await a`update crm.contacts set first_name = 'AF1' where id = ${rowId}::uuid`;
    const [claim] = await b`
      select id::text as id, lease::text as lease
      from crm.claim_outbox('lock-order-test', 10, '5 minutes', ${connectionId}::uuid)`;
    assert.ok(claim, `${name}: the app edit was claimed`);
    // Deadlocks are detected after deadlock_timeout (1 s): the race must not end there.
    await b`set deadlock_timeout = '200ms'`;
    await a`set deadlock_timeout = '200ms'`;
    const [{ pid }] = await b`select pg_backend_pid() as pid`;
    let engine: Promise<unknown> | undefined;
    await a.begin(async (tx) => {
      // The app's transaction locks the row (as an UPDATE does before its trigger runs).
      await tx`select 1 from crm.contacts where id = ${rowId}::uuid for update`;
      engine = verb(b, claim.id, claim.lease);
      engine.catch(() => {}); // awaited below
      await waitForLock(tx, pid);
      // The app's edit: its trigger upserts the entry the engine's call is about.
      await tx`update crm.contacts set first_name = 'AF2' where id = ${rowId}::uuid`;
    });
    await engine!;
    const [row] = await a`select first_name from crm.contacts where id = ${rowId}::uuid`;
    assert.equal(row.first_name, "AF2", `${name}: the app's edit stays`);
    const [ob] = await a`select state, changed_columns from crm.outbox
                         where object = 'contacts' and record_id = ${rowId}::uuid`;
    assert.ok(ob, `${name}: the app's later edit is still to push`);
    assert.ok(ob.changed_columns.includes("first_name"));
  });
}

Deno.test("complete_outbox: an app update during the completion neither deadlocks nor is lost", async () => {
  await race(
    "complete_outbox",
    (b, id, lease) =>
      b`select * from crm.complete_outbox(${
        b.json([{ id: Number(id), lease, remote_version: "2026-01-01T00:00:01Z" }])
      })`.execute(),
  );
});

Deno.test("fail_outbox: an app update during a failure neither deadlocks nor is lost", async () => {
  await race(
    "fail_outbox",
    (b, id, lease) =>
      b`select * from crm.fail_outbox(${
        b.json([{ id: Number(id), lease, error: "boom", action: "retry" }])
      })`.execute(),
  );
});
