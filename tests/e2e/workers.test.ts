// Job workers end to end: jobs enqueued in SQL, workers woken through pg_net, each a request
// of crm-sync-bidirectional through the gateway ({"worker": true}):
// - several workers drain a backlog of many streams, each job run by one worker at a time,
//   every record arriving once;
// - a worker killed mid-job loses nothing: its lease expires, another worker resumes from the
//   checkpoint, and the old holder's late writes are refused (CRM10 / CRM11);
// - one tenant's backfill does not delay another tenant's job by more than one slice.
import assert from "node:assert/strict";
import {
  admin,
  awaitJobs,
  busyFunctionPids,
  callFunction,
  connect,
  db,
  gatewayStats,
  type Sql,
  startSandbox,
  syncUntilDone,
  until,
  withConnection,
  withSettings,
} from "./_harness.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test({
  ...opts,
  name: "e2e workers: four workers drain twelve streams, one worker per job, every record once",
  fn: async () => {
    const sql = db();
    const sb = await startSandbox("hubspot", { seed: 71, records: 300, unlimited: true });
    const conns: string[] = [];
    try {
      await admin(sb.url, "PUT", "/faults", { latencyMs: 20 });
      for (let i = 0; i < 6; i++) conns.push(await connect(sql, sb));
      await withSettings(sql, { max_workers: 4, worker_cpu_budget_ms: 400 }, async () => {
        const [{ t0 }] = await sql`select clock_timestamp() as t0`;
        for (const c of conns) {
          await sql`select crm.enqueue_inbound(array['contacts', 'companies'], 'full', ${c}::uuid,
                                               'backfill')`;
        }
        for (const c of conns) {
          const answer = await awaitJobs(sql, c, t0);
          assert.equal(answer.ok, true, JSON.stringify(answer));
        }
        const jobs = await sql`select state, claims from crm.jobs
                               where connection_id in ${sql(conns)}`;
        assert.equal(jobs.length, 12);
        assert.ok(jobs.every((j) => j.state === "done"), JSON.stringify(jobs));
        // One stream's runs never overlap: no two workers ran a job at the same time.
        const [overlap] = await sql`
          select count(*)::int as n from crm.sync_log a join crm.sync_log b
            on a.connection_id = b.connection_id and a.object = b.object and a.id < b.id
           and b.started_at < a.finished_at
          where a.connection_id in ${sql(conns)}`;
        assert.equal(overlap.n, 0, "runs of one stream overlapped");
        const [workers] = await sql`
          select count(distinct w.id)::int as n from crm.job_workers w
          where w.started_at >= ${t0} and (w.stats ->> 'jobs')::int > 0`;
        assert.ok(workers.n >= 2, `several workers took jobs (${workers.n})`);
        for (const c of conns) {
          const [n] = await sql`
            select (select count(*)::int from crm.contacts where connection_id = ${c}) as contacts,
                   (select count(*)::int from crm.companies where connection_id = ${c}) as companies,
                   (select sum(processed)::int from crm.sync_log
                    where connection_id = ${c} and object = 'contacts') as processed`;
          assert.equal(n.contacts, 300);
          assert.equal(n.companies, 300);
          assert.equal(n.processed, 300, "each contact read and written once");
        }
      });
    } finally {
      for (const c of conns) await sql`delete from crm.connections where id = ${c}`;
      await sb.close();
      await sql.end();
    }
  },
});

Deno.test({
  ...opts,
  name: "e2e workers: a worker killed mid-job loses nothing; its late writes are refused",
  fn: () =>
    // 2,000 Contacts and 2,000 Leads.
    withConnection("salesforce", { seed: 72, records: 2_000 }, async ({ sb, sql, conn }) => {
      await admin(sb.url, "PUT", "/faults", { latencyMs: 80 });
      await withSettings(sql, { max_workers: 1, job_lease: "3 seconds" }, async () => {
        const [{ t0 }] = await sql`select clock_timestamp() as t0`;
        await sql`select crm.enqueue_job('inbound', ${conn}::uuid, 'contacts', 'full',
                                         '{"page_size": 50, "trigger": "backfill"}'::jsonb)`;
        let held: Record<string, unknown> | undefined;
        await until("the worker has written a few pages", async () => {
          [held] = await sql`
            select j.lease_token::text as job_token, l.token::text as stream_token, l.run_id,
                   s.processed
            from crm.jobs j
            join crm.inbound_leases l on l.connection_id = j.connection_id and l.object = j.object
            join crm.sync_log s on s.id = l.run_id
            where j.connection_id = ${conn} and j.state = 'running' and s.status = 'running'`;
          return Number(held?.processed ?? 0) >= 200;
        });
        for (const pid of await busyFunctionPids("crm-sync-bidirectional")) {
          Deno.kill(pid, "SIGKILL");
        }
        // Another worker takes the job over once its lease has expired, and finishes it.
        await until("the lease expired (or the job was taken over)", async () => {
          const [j] = await sql`select lease_expires_at < now() or claims >= 2 as expired
                                from crm.jobs
                                where connection_id = ${conn} and kind = 'inbound'`;
          return j.expired;
        });
        await sql`select crm.wake_workers('test')`;
        const answer = await awaitJobs(sql, conn, t0);
        assert.equal(answer.more, false);
        const [job] = await sql`select state, claims, attempts from crm.jobs
                                where connection_id = ${conn}`;
        assert.equal(job.state, "done");
        assert.ok(job.claims >= 2, "the job was claimed again after the kill");
        const [n] = await sql`select count(*)::int as n from crm.contacts
                              where connection_id = ${conn}`;
        assert.equal(n.n, 4_000, "every contact and lead arrived");
        // The killed worker's fencing tokens are worthless now.
        await assert.rejects(
          sql`select crm.heartbeat_job(j.id, ${held!.job_token as string}::bigint)
              from crm.jobs j where j.connection_id = ${conn}`,
          (e: { code?: string }) => e.code === "CRM11",
        );
        await assert.rejects(
          sql`select * from crm.save_inbound_page(${held!.run_id as number}::bigint,
                ${held!.stream_token as string}::bigint, ${conn}::uuid, 'contacts', 'full',
                '[]'::jsonb, null, null, null)`,
          (e: { code?: string }) => e.code === "CRM10",
        );
      });
    }),
});

// A delta outranks a backfill (its lane); a backfill of another account is fair by the
// account served least recently.
for (const mode of ["delta", "full"]) {
  Deno.test({
    ...opts,
    name: `e2e workers: a tenant's backfill delays another tenant's ${
      mode === "delta" ? "delta" : "backfill"
    } by one slice at most`,
    fn: () =>
      withConnection(
        "hubspot",
        { seed: 73, records: 3_000, unlimited: true },
        (big) =>
          withConnection("hubspot", { seed: 74, records: 50, unlimited: true }, async (small) => {
            const sql = big.sql;
            const a = big.conn;
            const b = small.conn;
            await admin(big.sb.url, "PUT", "/faults", { latencyMs: 30 });
            await withSettings(sql, { max_workers: 1, worker_cpu_budget_ms: 40 }, async () => {
              const [{ t0 }] = await sql`select clock_timestamp() as t0`;
              await sql`select crm.enqueue_job('inbound', ${a}::uuid, 'contacts', 'full')`;
              await until("A's backfill is under way", async () => {
                const [r] = await sql`select count(*)::int as n from crm.sync_log
                                where connection_id = ${a} and processed > 0`;
                return r.n > 0;
              });
              const [{ t1 }] = await sql`select clock_timestamp() as t1`;
              await sql`select crm.enqueue_job('inbound', ${b}::uuid, 'contacts', ${mode})`;
              const answerB = await awaitJobs(sql, b, t0);
              assert.equal(answerB.ok, true);
              const [bRun] = await sql`select min(started_at) as at from crm.sync_log
                                 where connection_id = ${b}`;
              const [between] = await sql`select count(*)::int as n from crm.sync_log
                                    where connection_id = ${a} and started_at > ${t1}
                                      and started_at < ${bRun.at}`;
              assert.ok(between.n <= 1, `A ran ${between.n} slices before B's first`);
              await awaitJobs(sql, a, t0);
              const [slices] = await sql`select count(*)::int as n, max(started_at) as last
                                   from crm.sync_log where connection_id = ${a}`;
              assert.ok(slices.n >= 2, `A's backfill was handed over in slices (${slices.n})`);
              assert.ok(bRun.at < slices.last, "B ran between A's slices, not after its backfill");
            });
          }),
      ),
  });
}

Deno.test({
  ...opts,
  name: "e2e workers: a 100k backfill is handed over between requests, none over the CPU limit",
  fn: () =>
    // Salesforce seeds `records` Contacts and as many Leads: 100,000 rows of crm.contacts.
    withConnection("salesforce", {
      seed: 75,
      records: 50_000,
      settings: { objects: ["contacts"] },
    }, async ({ sql, conn }) => {
      const before = (await gatewayStats())["crm-sync-bidirectional"];
      const killsBefore = before?.kills.cpu ?? 0;
      const [{ t0 }] = await sql`select clock_timestamp() as t0`;
      await sql`select crm.enqueue_job('inbound', ${conn}::uuid, 'contacts', 'full',
                                       '{"trigger": "backfill"}'::jsonb)`;
      const answer = await awaitJobs(sql, conn, t0, 300_000);
      assert.equal(answer.ok, true, JSON.stringify(answer.runs.at(-1)));
      const [n] = await sql`select count(*)::int as n from crm.contacts
                            where connection_id = ${conn}`;
      assert.equal(n.n, 100_000);
      const workers = await sql`
        select (stats ->> 'cpu_ms')::int as cpu_ms from crm.job_workers
        where started_at >= ${t0} and (stats ->> 'jobs')::int > 0`;
      assert.ok(answer.runs.length >= 2, `handed over (${answer.runs.length} runs)`);
      // crm.backfill_progress() reads the handed-over walk as one: every run and record, and
      // the estimate Salesforce's counts gave at its first page.
      const [p] = await sql`select state, records, estimated_total, runs
                            from crm.backfill_progress()
                            where connection_id = ${conn} and object = 'contacts'`;
      assert.deepEqual(
        { ...p, records: Number(p.records), estimated_total: Number(p.estimated_total) },
        { state: "done", records: 100_000, estimated_total: 100_000, runs: answer.runs.length },
      );
      const limit = 2_000;
      assert.ok(
        workers.every((w) => w.cpu_ms < limit),
        `worker CPU: ${workers.map((w) => w.cpu_ms).join(", ")}`,
      );
      const after = (await gatewayStats())["crm-sync-bidirectional"];
      assert.equal(after.kills.cpu, killsBefore, "the gateway killed no request for CPU");
      assert.ok(after.cpuMsMax < limit, `the gateway measured at most ${after.cpuMsMax} ms`);
    }),
});

// HubSpot's 100 requests / 10 s shortened to 40 / 2 s: the same rolling window, 5× faster.
const SHORT_WINDOW = { tenSecondly: 40, intervalMs: 2_000 };

/** The sandbox served no 429, and exactly `made` requests in all. */
async function assertCountedNo429(url: string, made: number) {
  const counters = await admin(url, "GET", "/counters");
  assert.equal(counters.byStatus["429"] ?? 0, 0, JSON.stringify(counters.byStatus));
  const served = Object.values(counters.byStatus as Record<string, number>)
    .reduce((a, b) => a + b, 0);
  assert.equal(served, made, "the sandbox counted every call we made");
}

/** API calls the connection's runs logged in crm.sync_log. */
async function loggedCalls(sql: Sql, conn: string): Promise<number> {
  const [calls] = await sql`select sum(api_calls)::int as n from crm.sync_log
                            where connection_id = ${conn}`;
  return calls.n;
}

Deno.test({
  ...opts,
  name:
    "e2e workers: a backfill worker and live reads share one budget: no 429, every call counted",
  fn: async () => {
    await withConnection(
      "hubspot",
      { seed: 76, records: 3_000, hubspotWindow: SHORT_WINDOW },
      async (s) => {
        const { sb, sql, conn } = s;
        await admin(sb.url, "DELETE", "/counters");
        const [{ t0 }] = await sql`select clock_timestamp() as t0`;
        await sql`select crm.enqueue_job('inbound', ${conn}::uuid, 'contacts', 'full')`;
        // Live reads of the same connection while the backfill runs.
        let reads = 0;
        let liveCalls = 0;
        let done = false;
        const jobs = awaitJobs(sql, conn, t0).finally(() => done = true);
        while (!done) {
          const r = await callFunction("crm-fetch-live", {
            type: "companies",
            connection_id: conn,
            limit: 10,
          });
          if (r.status === 200) {
            reads++;
            for (const res of r.json.results as Array<{ api_calls: number }>) {
              liveCalls += res.api_calls;
            }
          } else assert.equal(r.status, 429, JSON.stringify(r.json)); // the account's own live limit
          await new Promise((res) => setTimeout(res, 250));
        }
        const answer = await jobs;
        assert.equal(answer.ok, true, JSON.stringify(answer.runs.at(-1)));
        assert.ok(reads > 0, "live reads ran during the backfill");
        const [n] =
          await sql`select count(*)::int as n from crm.contacts where connection_id = ${conn}`;
        assert.equal(n.n, 3_000);
        await assertCountedNo429(sb.url, await loggedCalls(sql, conn) + liveCalls);
      },
    );
  },
});

Deno.test({
  ...opts,
  name: "e2e workers: two function instances walking one connection stay within its limit",
  fn: async () => {
    await withConnection(
      "hubspot",
      { seed: 77, records: 2_000, hubspotWindow: SHORT_WINDOW },
      async (s) => {
        const { sb, sql, conn } = s;
        await admin(sb.url, "DELETE", "/counters");
        // Two requests at once, each in its own function process, each walking one object.
        const [contacts, companies] = await Promise.all([
          syncUntilDone(conn, { objects: ["contacts"], mode: "full" }),
          syncUntilDone(conn, { objects: ["companies"], mode: "full" }),
        ]);
        assert.ok(contacts.length + companies.length >= 2);
        await assertCountedNo429(sb.url, await loggedCalls(sql, conn));
        const [n] = await sql`
        select (select count(*)::int from crm.contacts where connection_id = ${conn}) as contacts,
               (select count(*)::int from crm.companies where connection_id = ${conn}) as companies`;
        assert.deepEqual({ ...n }, { contacts: 2_000, companies: 2_000 });
      },
    );
  },
});
