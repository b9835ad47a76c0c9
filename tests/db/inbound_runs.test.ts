// Inbound stream leases with two real database sessions: a second session cannot take a held
// stream; once the lease has expired it takes it over with a newer token, and the first
// session's page, sweep and close are then refused with CRM10 and write nothing; a taker that
// arrives while the holder is writing a page waits for that page, whose heartbeat keeps the
// stream with the holder.
import assert from "node:assert/strict";
import { openSession as open, type Sql, type Tx } from "../_support/db.ts";

async function fixture(sql: Sql): Promise<string> {
  const [{ id }] = await sql`
    insert into crm.connections (account_id, provider, remote_account_id)
    values (gen_random_uuid(), 'hubspot', ${"leases-test-" + crypto.randomUUID()})
    returning id::text`;
  return id;
}

const begin = (sql: Sql, conn: string, lease = "5 minutes") =>
  sql<{ run_id: string; lease_token: string }[]>`
    select run_id::text, lease_token::text
    from crm.begin_inbound_run(${conn}::uuid, 'contacts', 'cron', 'delta', null, ${lease}::interval)`;

const page = (
  sql: Sql | Tx,
  conn: string,
  run: string,
  token: string,
  id: string,
) =>
  sql`select * from crm.save_inbound_page(${run}::bigint, ${token}::bigint, ${conn}::uuid,
        'contacts', 'delta',
        ${
    JSON.stringify([{ remote_id: id, remote_updated_at: "2026-01-01T00:00:00Z" }])
  }::text::jsonb,
        '2026-01-01T00:00:00Z', ${id}, '{"after": 1}')`;

const expire = (sql: Sql, conn: string) =>
  sql`update crm.inbound_leases set expires_at = now() - interval '1 second'
      where connection_id = ${conn}::uuid and object = 'contacts'`;

Deno.test("inbound lease: takeover after expiry fences the old run out (two sessions)", async () => {
  const a = open();
  const b = open();
  let conn = "";
  try {
    conn = await fixture(a);
    const [ra] = await begin(a, conn);
    assert.ok(ra, "session A takes the stream");
    assert.equal((await begin(b, conn)).length, 0, "session B cannot while A holds it");
    await page(a, conn, ra.run_id, ra.lease_token, "a1");

    await expire(b, conn); // A stopped heartbeating (a paused or killed worker).
    const [rb] = await begin(b, conn);
    assert.ok(rb, "session B takes the expired stream over");
    assert.ok(BigInt(rb.lease_token) > BigInt(ra.lease_token), "with a newer token");

    for (
      const [what, q] of [
        ["page", () => page(a, conn, ra.run_id, ra.lease_token, "a2")],
        ["sweep", () =>
          a`select * from crm.finish_full_sync_sweep(${conn}::uuid, 'contacts',
              ${ra.run_id}::bigint, ${ra.lease_token}::bigint)`],
        [
          "close",
          () =>
            a`select crm.close_inbound_run(${ra.run_id}::bigint, ${ra.lease_token}::bigint, 'success')`,
        ],
      ] as const
    ) {
      await assert.rejects(q(), (e: { code?: string }) => e.code === "CRM10", `A's ${what}: CRM10`);
    }
    const [cur] = await b`select watermark_id, delta_checkpoint from crm.sync_cursors
                          where connection_id = ${conn}::uuid and object = 'contacts'`;
    assert.equal(cur.watermark_id, "a1", "A's refused page moved no watermark");
    const [{ n }] = await b`select count(*)::int as n from crm.contacts
                            where connection_id = ${conn}::uuid and remote_id = 'a2'`;
    assert.equal(n, 0, "and wrote no record");
    const [log] = await b`select status, error from crm.sync_log where id = ${ra.run_id}::bigint`;
    assert.equal(log.status, "failed");
    assert.match(log.error.message, /^lease lost/);

    await page(b, conn, rb.run_id, rb.lease_token, "b1");
    await b`select crm.close_inbound_run(${rb.run_id}::bigint, ${rb.lease_token}::bigint, 'success')`;
  } finally {
    if (conn) await a`delete from crm.connections where id = ${conn}::uuid`;
    await a.end();
    await b.end();
  }
});

Deno.test("inbound lease: a taker waits for the holder's page, whose heartbeat keeps the stream", async () => {
  const a = open();
  const b = open();
  let conn = "";
  try {
    conn = await fixture(a);
    const [ra] = await begin(a, conn);
    await expire(a, conn); // Expired, but nobody has taken it yet: the token still holds.
    let taken: Promise<unknown[]> | null = null;
    await a.begin(async (tx) => {
      await page(tx, conn, ra.run_id, ra.lease_token, "a1");
      taken = Promise.resolve(begin(b, conn)); // postgres.js queries start when awaited
      // B must be waiting on the lease row A's page locked.
      for (let i = 0; i < 200; i++) {
        await tx`select pg_stat_clear_snapshot()`; // activity is otherwise cached per transaction
        const [{ waiting }] = await tx`
          select count(*)::int as waiting from pg_stat_activity
          where wait_event_type = 'Lock' and query like '%begin_inbound_run%'
            and pid <> pg_backend_pid()`;
        if (waiting > 0) return;
        await new Promise((r) => setTimeout(r, 25));
      }
      throw new Error("session B never waited for the lease row");
    });
    assert.equal((await taken!).length, 0, "after A's heartbeat B finds the stream held");
    await page(a, conn, ra.run_id, ra.lease_token, "a2");
    await a`select crm.close_inbound_run(${ra.run_id}::bigint, ${ra.lease_token}::bigint, 'success')`;
    assert.equal((await begin(b, conn)).length, 1, "a closed run frees the stream");
  } finally {
    if (conn) await a`delete from crm.connections where id = ${conn}::uuid`;
    await a.end();
    await b.end();
  }
});
