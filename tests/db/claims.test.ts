// Work-queue claims with two real database sessions: concurrent claimers never receive the same
// outbox entry (FOR UPDATE SKIP LOCKED, and a claimer is never blocked by the other's locks),
// and an expired lease is reclaimed by another worker while the first worker's late completion
// is refused. Runs against the shared stack database, so it creates its own connection and
// deletes it (with everything hanging off it) afterwards.
import assert from "node:assert/strict";
import { openSession as open, type Sql, type Tx } from "../_support/db.ts";

type Query = Sql | Tx;

interface Claimed {
  id: string;
  record_id: string;
  attempts: number;
  lease: string;
}

/** A connection with `n` synced contacts, each with a pending app change (one outbox entry). */
async function fixture(sql: Sql, n: number): Promise<string> {
  const [{ id }] = await sql`
    insert into crm.connections (account_id, provider, remote_account_id)
    values (gen_random_uuid(), 'hubspot', ${"claims-test-" + crypto.randomUUID()})
    returning id::text`;
  await sql.begin(async (tx) => {
    await tx`select set_config('crm.engine', 'on', true)`;
    await tx`insert into crm.contacts (connection_id, remote_id, email)
             select ${id}::uuid, 'ct-' || g, 'ct' || g || '@claims.test' from generate_series(1, ${n}) g`;
  });
  // App write (engine flag off): one outbox entry per row.
  await sql`update crm.contacts set first_name = 'changed' where connection_id = ${id}::uuid`;
  const [{ count }] =
    await sql`select count(*)::int as count from crm.outbox where connection_id = ${id}::uuid`;
  assert.equal(count, n, "fixture: one outbox entry per changed row");
  return id;
}

async function cleanup(sql: Sql, connectionId: string) {
  await sql`delete from crm.connections where id = ${connectionId}::uuid`;
}

const claim = (
  sql: Query,
  worker: string,
  connectionId: string,
  limit: number,
  lease = "5 minutes",
) =>
  sql<Claimed[]>`select id::text, record_id::text, attempts, lease::text
                 from crm.claim_outbox(${worker}, ${limit}, ${lease}::interval, ${connectionId}::uuid)`;

Deno.test("claim_outbox: two concurrent sessions never claim the same entry", async () => {
  const a = open();
  const b = open();
  let connectionId = "";
  try {
    connectionId = await fixture(a, 60);
    const seen = new Map<string, string>();

    // Each worker claims a batch and keeps its transaction (and row locks) open for a moment,
    // the way a slow claimer would; the other must skip those rows, not wait for them.
    const worker = async (sql: Sql, name: string) => {
      for (;;) {
        const rows = await sql.begin(async (tx) => {
          const got = await claim(tx, name, connectionId, 7);
          await tx`select pg_sleep(0.05)`;
          return got;
        });
        if (rows.length === 0) return;
        for (const r of rows) {
          assert.ok(!seen.has(r.id), `entry ${r.id} claimed by ${seen.get(r.id)} and ${name}`);
          seen.set(r.id, name);
          assert.equal(r.attempts, 1);
        }
      }
    };
    await Promise.all([worker(a, "worker-a"), worker(b, "worker-b")]);

    assert.equal(seen.size, 60, "every entry was claimed exactly once");
    const byWorker = [...seen.values()];
    assert.ok(
      byWorker.includes("worker-a") && byWorker.includes("worker-b"),
      "both workers got work",
    );

    const [state] = await a`
      select count(*) filter (where state = 'processing')::int as processing,
             count(distinct lease)::int as leases,
             max(attempts)::int as max_attempts
      from crm.outbox where connection_id = ${connectionId}::uuid`;
    assert.deepEqual({ ...state }, { processing: 60, leases: 60, max_attempts: 1 });
  } finally {
    if (connectionId) await cleanup(a, connectionId);
    await a.end();
    await b.end();
  }
});

Deno.test("claim_outbox: an expired lease is reclaimed by another worker; the old lease is refused", async () => {
  const a = open();
  const b = open();
  let connectionId = "";
  try {
    connectionId = await fixture(a, 3);
    const first = await claim(a, "crashing-worker", connectionId, 10, "1 second");
    assert.equal(first.length, 3);
    assert.equal(
      (await claim(b, "rescuer", connectionId, 10)).length,
      0,
      "nothing to claim while the lease runs",
    );

    await new Promise((r) => setTimeout(r, 1300));
    const second = await claim(b, "rescuer", connectionId, 10);
    assert.deepEqual(
      second.map((r) => r.id).sort(),
      first.map((r) => r.id).sort(),
      "the same entries come back",
    );
    for (const r of second) {
      assert.equal(r.attempts, 2, "the crashed attempt counts");
      assert.ok(!first.some((f) => f.lease === r.lease), "with a new lease token");
    }

    const results = (rows: Claimed[]) => rows.map((r) => ({ id: Number(r.id), lease: r.lease }));
    const [refused] = await a`select * from crm.complete_outbox(${a.json(results(first))})`;
    assert.deepEqual(
      { ...refused },
      { completed: 0, released: 0 },
      "the first worker's late completion is refused",
    );
    const [done] = await b`select * from crm.complete_outbox(${b.json(results(second))})`;
    assert.deepEqual({ ...done }, { completed: 3, released: 0 });
    const [{ left }] =
      await a`select count(*)::int as left from crm.outbox where connection_id = ${connectionId}::uuid`;
    assert.equal(left, 0);
  } finally {
    if (connectionId) await cleanup(a, connectionId);
    await a.end();
    await b.end();
  }
});

Deno.test("claim_outbox: a claimer skips rows another session has locked instead of waiting", async () => {
  const a = open();
  const b = open();
  let connectionId = "";
  try {
    connectionId = await fixture(a, 10);
    await a.begin(async (tx) => {
      // a's claim is not committed yet: its rows are still 'pending' to everyone else, but locked.
      const mine = await claim(tx, "worker-a", connectionId, 4);
      assert.equal(mine.length, 4);
      // Without SKIP LOCKED b would wait for a's commit, which waits for b: the timeout fails it.
      const theirs = await b.begin(async (tb) => {
        await tb`set local statement_timeout = '5s'`;
        return await claim(tb, "worker-b", connectionId, 10);
      });
      assert.equal(theirs.length, 6, "b gets every entry a has not locked");
      const overlap = theirs.filter((r) => mine.some((m) => m.id === r.id));
      assert.equal(overlap.length, 0, "and none that a holds");
    });
  } finally {
    if (connectionId) await cleanup(a, connectionId);
    await a.end();
    await b.end();
  }
});
