// The job queue with two real database sessions: concurrent claimers never receive the same job
// and never wait for each other's locked rows (FOR UPDATE SKIP LOCKED); after a lease expires
// another worker takes the job over, and the first worker is fenced out of both the job (CRM11)
// and its inbound stream (CRM10). Claims are narrowed to the test's own connections, and
// max_workers is 0 while the tests run, and they start once no worker is live, so no real worker
// claims their jobs.
import assert from "node:assert/strict";
import { openSession as open, type Sql, type Tx } from "../_support/db.ts";

type Query = Sql | Tx;

interface Claimed {
  job_id: string;
  kind: string;
  object: string | null;
  lease_token: string;
  attempts: number;
  claims: number;
}

/** Every kind of job a connection can have: ten streams. */
const STREAMS = `(values ('inbound', 'contacts', 'delta'), ('inbound', 'companies', 'delta'),
  ('inbound', 'deals', 'delta'), ('inbound', 'owners', 'full'), ('outbound', null, null),
  ('outbound', 'contacts', null), ('outbound', 'companies', null), ('outbound', 'deals', null),
  ('inbox', null, null), ('setup', null, null)) as k(kind, object, mode)`;

async function connections(sql: Sql, n: number): Promise<string[]> {
  const rows = await sql`
    insert into crm.connections (account_id, provider, remote_account_id)
    select gen_random_uuid(), 'hubspot', 'jobs-test-' || gen_random_uuid() from generate_series(1, ${n})
    returning id::text`;
  return rows.map((r) => r.id);
}

async function enqueueAll(sql: Sql, conn: string): Promise<number> {
  const rows = await sql.unsafe(
    `select crm.enqueue_job(k.kind, $1::uuid, k.object, k.mode, '{}', now(), false) from ${STREAMS}`,
    [conn],
  );
  return rows.length;
}

const worker = async (sql: Sql): Promise<string> =>
  (await sql`select crm.worker_started()::text as id`)[0].id;

interface Run {
  run_id: string;
  lease_token: string;
}

const beginRun = async (sql: Sql, conn: string): Promise<Run | undefined> =>
  (await sql<Run[]>`select run_id::text, lease_token::text
                    from crm.begin_inbound_run(${conn}::uuid, 'contacts', 'cron', 'delta')`)[0];

const claim = (sql: Query, workerId: string, conn: string, lease = "2 minutes") =>
  sql<Claimed[]>`select job_id::text, kind, object, lease_token::text, attempts, claims
                 from crm.claim_job(${workerId}::bigint, ${lease}::interval, ${conn}::uuid)`;

/** Runs the test body with max_workers 0, restoring the setting and deleting the fixtures after. */
async function withQuietEngine(
  fn: (a: Sql, b: Sql, track: (conns: string[], workers: string[]) => void) => Promise<void>,
) {
  const a = open();
  const b = open();
  const conns: string[] = [];
  const workers: string[] = [];
  const [{ max_workers }] = await a`select max_workers from crm.engine_settings`;
  await a`update crm.engine_settings set max_workers = 0`;
  try {
    // A worker woken before (cron's first runs wake some for the stack's own connections) claims
    // without a connection filter and would take the test's jobs: wait until none is live.
    const quietBy = Date.now() + 90_000;
    while ((await a`select live from crm._worker_counts()`)[0].live > 0) {
      if (Date.now() > quietBy) throw new Error("workers stayed live for 90 s with max_workers 0");
      await new Promise((r) => setTimeout(r, 250));
    }
    await fn(a, b, (c, w) => {
      conns.push(...c);
      workers.push(...w);
    });
  } finally {
    if (conns.length) await a`delete from crm.connections where id = any(${conns}::uuid[])`;
    if (workers.length) await a`delete from crm.job_workers where id = any(${workers}::bigint[])`;
    await a`update crm.engine_settings set max_workers = ${max_workers}`;
    await a.end();
    await b.end();
  }
}

Deno.test("claim_job: two concurrent sessions never claim the same job", async () => {
  await withQuietEngine(async (a, b, track) => {
    const conns = await connections(a, 5);
    const wa = await worker(a);
    const wb = await worker(b);
    track(conns, [wa, wb]);
    let total = 0;
    for (const c of conns) total += await enqueueAll(a, c);
    assert.equal(total, 50);

    const seen = new Map<string, string>();
    // Both sessions work through the same connections at the same time; each claim keeps its
    // transaction (and the row lock) open for a moment, as a slow claimer would.
    const run = async (sql: Sql, id: string, name: string) => {
      for (const c of conns) {
        for (;;) {
          const rows = await sql.begin(async (tx) => {
            const got = await claim(tx, id, c);
            await tx`select pg_sleep(0.02)`;
            // Done at once: a connection's later inbound streams wait for its earlier ones.
            if (got.length) {
              await tx`select crm.finish_job(${got[0].job_id}::bigint, ${
                got[0].lease_token
              }::bigint,
                                             'done')`;
            }
            return got;
          });
          if (rows.length === 0) break;
          assert.equal(rows.length, 1, "one job per claim");
          const j = rows[0];
          assert.ok(
            !seen.has(j.job_id),
            `job ${j.job_id} claimed by ${seen.get(j.job_id)} and ${name}`,
          );
          seen.set(j.job_id, name);
          assert.equal(j.claims, 1);
          assert.equal(j.attempts, 0);
        }
      }
    };
    await Promise.all([run(a, wa, "a"), run(b, wb, "b")]);

    assert.equal(seen.size, 50, "every job was claimed exactly once");
    const names = [...seen.values()];
    assert.ok(names.includes("a") && names.includes("b"), "both workers got work");
    const [state] = await a`
      select count(*) filter (where state = 'done')::int as done,
             count(distinct lease_token)::int as tokens, max(claims)::int as max_claims
      from crm.jobs where connection_id = any(${conns}::uuid[])`;
    assert.deepEqual({ ...state }, { done: 50, tokens: 50, max_claims: 1 });
  });
});

Deno.test("claim_job: a claimer skips a job another session has locked instead of waiting", async () => {
  await withQuietEngine(async (a, b, track) => {
    const [conn] = await connections(a, 1);
    const wa = await worker(a);
    const wb = await worker(b);
    track([conn], [wa, wb]);
    await a`select crm.enqueue_job('inbound', ${conn}::uuid, 'contacts', 'delta', p_wake => false)`;
    await a`select crm.enqueue_job('outbound', ${conn}::uuid, p_wake => false)`;
    await a.begin(async (tx) => {
      const [mine] = await claim(tx, wa, conn);
      assert.ok(mine, "a claims one job (not committed yet: still queued to everyone else)");
      // Without SKIP LOCKED b would wait for a's commit, which waits for b: the timeout fails it.
      const theirs = await b.begin(async (tb) => {
        await tb`set local statement_timeout = '5s'`;
        return [...await claim(tb, wb, conn), ...await claim(tb, wb, conn)];
      });
      assert.equal(theirs.length, 1, "b gets the other job, and then nothing, without waiting");
      assert.notEqual(theirs[0].job_id, mine.job_id);
    });
  });
});

Deno.test("claim_job: a takeover after lease expiry fences the old worker out of the job and its stream", async () => {
  await withQuietEngine(async (a, b, track) => {
    const [conn] = await connections(a, 1);
    const wa = await worker(a);
    const wb = await worker(b);
    track([conn], [wa, wb]);
    const [{ id }] = await a`
      select crm.enqueue_job('inbound', ${conn}::uuid, 'contacts', 'delta', p_wake => false)::text as id`;

    const [ja] = await claim(a, wa, conn, "1 second");
    assert.equal(ja.job_id, id);
    const ra = (await beginRun(a, conn))!;
    const page = (sql: Sql, run: Run, remoteId: string) =>
      sql`select created from crm.save_inbound_page(${run.run_id}::bigint, ${run.lease_token}::bigint,
            ${conn}::uuid, 'contacts', 'delta',
            ${
        JSON.stringify([{ remote_id: remoteId, remote_updated_at: "2026-01-01T00:00:00Z" }])
      }::text::jsonb, '2026-01-01T00:00:00Z', ${remoteId}, null)`;
    await page(a, ra, "a1");
    assert.equal((await claim(b, wb, conn)).length, 0, "nothing to claim while A's lease runs");

    await new Promise((r) => setTimeout(r, 1200)); // A stops heartbeating: its lease expires.
    const [jb] = await claim(b, wb, conn);
    assert.ok(jb, "B takes the job over");
    assert.equal(jb.job_id, id);
    assert.ok(BigInt(jb.lease_token) > BigInt(ja.lease_token), "with a newer token");
    assert.equal(jb.attempts, 1, "A's lost claim counts as a failed attempt");

    const lost = (e: { code?: string }, code: string) => e.code === code;
    await assert.rejects(
      a`select crm.heartbeat_job(${id}::bigint, ${ja.lease_token}::bigint)`,
      (e: { code?: string }) => lost(e, "CRM11"),
      "A's heartbeat: CRM11",
    );
    await assert.rejects(
      a`select crm.finish_job(${id}::bigint, ${ja.lease_token}::bigint, 'done')`,
      (e: { code?: string }) => lost(e, "CRM11"),
      "A's finish: CRM11",
    );
    await assert.rejects(
      page(a, ra, "a2"),
      (e: { code?: string }) => lost(e, "CRM10"),
      "A's late page: CRM10",
    );
    const [{ n }] = await b`select count(*)::int as n from crm.contacts
                            where connection_id = ${conn}::uuid and remote_id = 'a2'`;
    assert.equal(n, 0, "A's late page wrote nothing");

    const rb = await beginRun(b, conn);
    assert.ok(rb, "B's run takes the stream at once (the takeover freed it)");
    await page(b, rb, "b1");
    await b`select crm.close_inbound_run(${rb.run_id}::bigint, ${rb.lease_token}::bigint, 'success')`;
    const [{ state }] = await b`
      select crm.finish_job(${id}::bigint, ${jb.lease_token}::bigint, 'done') as state`;
    assert.equal(state, "done");
    const [log] = await b`select status, error ->> 'message' as message from crm.sync_log
                          where id = ${ra.run_id}::bigint`;
    assert.equal(log.status, "failed");
    assert.match(log.message, /^lease lost/);
  });
});

Deno.test("claim_job: a takeover waits for the old holder's page in flight, then fences it", async () => {
  await withQuietEngine(async (a, b, track) => {
    const [conn] = await connections(a, 1);
    const wa = await worker(a);
    const wb = await worker(b);
    track([conn], [wa, wb]);
    await a`select crm.enqueue_job('inbound', ${conn}::uuid, 'contacts', 'delta', p_wake => false)`;
    const [ja] = await claim(a, wa, conn);
    const ra = (await beginRun(a, conn))!;
    await a`update crm.jobs set lease_expires_at = now() - interval '1 second'
            where id = ${ja.job_id}::bigint`;
    let taken: Promise<Claimed[]> | null = null;
    await a.begin(async (tx) => {
      // A's page holds the stream's lease row until it commits: B's takeover must not free the
      // stream under it, so it waits for that row and frees it after the page.
      await tx`select created from crm.save_inbound_page(${ra.run_id}::bigint, ${ra.lease_token}::bigint,
                 ${conn}::uuid, 'contacts', 'delta',
                 '[{"remote_id": "in-flight", "remote_updated_at": "2026-01-01T00:00:00Z"}]'::jsonb,
                 '2026-01-01T00:00:00Z', 'in-flight', null)`;
      taken = Promise.resolve(claim(b, wb, conn));
      for (let i = 0; i < 200; i++) {
        await tx`select pg_stat_clear_snapshot()`;
        const [{ waiting }] = await tx`
          select count(*)::int as waiting from pg_stat_activity
          where wait_event_type = 'Lock' and query like '%claim_job%' and pid <> pg_backend_pid()`;
        if (waiting > 0) return;
        await new Promise((r) => setTimeout(r, 25));
      }
      throw new Error("B's takeover never waited for A's page");
    });
    const [jb] = await taken!;
    assert.equal(jb?.job_id, ja.job_id, "B took the job over after A's page");
    const [{ n }] = await b`select count(*)::int as n from crm.contacts
                            where connection_id = ${conn}::uuid and remote_id = 'in-flight'`;
    assert.equal(n, 1, "A's page, written while A still held the stream, stands");
    await assert.rejects(
      a`select crm.close_inbound_run(${ra.run_id}::bigint, ${ra.lease_token}::bigint, 'success')`,
      (e: { code?: string }) => e.code === "CRM10",
      "but A can no longer close the run",
    );
  });
});
