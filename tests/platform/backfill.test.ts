// The backfill loop of `npm start` against a stand-in for the sync function (an in-process
// server speaking its contract): what it sends, how it repeats while "more", how it sums up,
// and how it ends on a missing function, errors, retries and a function that never finishes.
import assert from "node:assert/strict";
import { type BackfillProgress, runBackfill } from "../../shared/local/backfill.ts";
import { backfillSummary } from "../../shared/local/backfill_view.ts";

type Answer = { status: number; body: unknown };

async function withStub(
  answers: Answer[],
  fn: (url: string, seen: { auth: string | null; body: unknown }[]) => Promise<void>,
) {
  const seen: { auth: string | null; body: unknown }[] = [];
  let i = 0;
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, async (req) => {
    if (new URL(req.url).pathname !== "/functions/v1/crm-sync-bidirectional") {
      return Response.json({ code: "NOT_FOUND" }, { status: 404 });
    }
    seen.push({ auth: req.headers.get("authorization"), body: await req.json() });
    const a = answers[Math.min(i++, answers.length - 1)];
    return Response.json(a.body, { status: a.status });
  });
  try {
    await fn(`http://127.0.0.1:${server.addr.port}`, seen);
  } finally {
    await server.shutdown();
  }
}

function run(object: string, processed: number, more: boolean, extra: object = {}) {
  return {
    connection_id: "c1",
    provider: "hubspot",
    object,
    run_id: 1,
    status: more ? "partial" : "success",
    processed,
    created: processed,
    updated: 0,
    unchanged: 0,
    deleted: 0,
    failed: 0,
    api_calls: 2,
    more,
    ...extra,
  };
}

const ok = (more: boolean, runs: unknown[]): Answer => ({
  status: 200,
  body: { ok: true, more, runs },
});
const fast = { retryDelaysMs: [1, 1, 1] };

Deno.test("backfill repeats while more, sends the cron-shaped request, sums per stream", async () => {
  await withStub([
    ok(true, [run("contacts", 100, true), run("owners", 3, false)]),
    ok(true, [run("contacts", 100, true)]),
    ok(false, [run("contacts", 50, false, { error: { message: "2 records skipped" } })]),
  ], async (url, seen) => {
    const snapshots: number[] = [];
    const r = await runBackfill({
      url: `${url}/`,
      serviceRoleKey: "svc",
      connectionIds: ["c1"],
      onProgress: (p: BackfillProgress) => {
        snapshots.push(p.streams.get("c1:contacts")!.processed);
      },
      ...fast,
    });
    assert.equal(r.outcome, "done");
    assert.equal(r.progress.requests, 3);
    assert.deepEqual(snapshots, [100, 200, 250]);
    const contacts = r.progress.streams.get("c1:contacts")!;
    assert.equal(contacts.created, 250);
    assert.equal(contacts.api_calls, 6);
    assert.equal(contacts.runs, 3);
    assert.equal(contacts.more, false);
    assert.equal(contacts.error, "2 records skipped");
    assert.equal(r.progress.streams.get("c1:owners")!.processed, 3);
    assert.equal(seen.length, 3);
    assert.equal(seen[0].auth, "Bearer svc");
    assert.deepEqual(seen[0].body, {
      direction: "inbound",
      mode: "delta",
      trigger: "backfill",
      connection_id: "c1",
    });
    assert.match(backfillSummary(r), /^backfill done: 253 records processed in/);
  });
});

Deno.test("backfill reports a function that is not deployed (the gateway's 404)", async () => {
  const r = await runBackfill({
    url: "http://127.0.0.1:1",
    serviceRoleKey: "x",
    connectionIds: ["c1"],
    ...fast,
  });
  assert.equal(r.outcome, "failed", "nothing listening: retried, then failed");
  await withStub([], async (url) => {
    const gone = await runBackfill({
      url: `${url}/elsewhere`,
      serviceRoleKey: "x",
      connectionIds: ["c1"],
      ...fast,
    });
    assert.equal(gone.outcome, "not_deployed");
    assert.match(backfillSummary(gone), /backfill skipped: crm-sync-bidirectional is not deployed/);
  });
});

Deno.test("backfill retries 5xx, then gives up; 4xx and a function's own 404 end it", async () => {
  await withStub([
    { status: 502, body: { code: "WORKER_ERROR" } },
    { status: 504, body: { code: "TIMEOUT" } },
    ok(false, [run("deals", 7, false)]),
  ], async (url) => {
    const r = await runBackfill({ url, serviceRoleKey: "x", connectionIds: ["c1"], ...fast });
    assert.equal(r.outcome, "done");
    assert.equal(r.progress.requests, 3);
    assert.equal(r.progress.streams.get("c1:deals")!.processed, 7);
  });
  await withStub([{ status: 500, body: { error: "boom" } }], async (url) => {
    const r = await runBackfill({ url, serviceRoleKey: "x", connectionIds: ["c1"], ...fast });
    assert.equal(r.outcome, "failed");
    assert.equal(r.progress.requests, 4, "one try and three retries");
    assert.match(r.message, /HTTP 500: boom/);
  });
  await withStub([{ status: 400, body: { error: "unknown direction" } }], async (url) => {
    const r = await runBackfill({ url, serviceRoleKey: "x", connectionIds: ["c1"], ...fast });
    assert.equal(r.outcome, "failed");
    assert.equal(r.progress.requests, 1);
    assert.match(r.message, /HTTP 400: unknown direction/);
  });
  await withStub([{ status: 404, body: { error: "connection not found" } }], async (url) => {
    const r = await runBackfill({ url, serviceRoleKey: "x", connectionIds: ["c1"], ...fast });
    assert.equal(r.outcome, "failed");
    assert.match(r.message, /connection not found/);
  });
});

Deno.test("backfill stops when the function keeps saying more but processes nothing", async () => {
  await withStub(
    [ok(true, [run("contacts", 0, true, { status: "failed", error: "bad" })])],
    async (url) => {
      const r = await runBackfill({
        url,
        serviceRoleKey: "x",
        connectionIds: ["c1"],
        maxIdleAnswers: 3,
        ...fast,
      });
      assert.equal(r.outcome, "stalled");
      assert.equal(r.progress.requests, 3);
      assert.equal(r.progress.streams.get("c1:contacts")!.error, "bad");
    },
  );
});

Deno.test("backfill calls again after a failed stream (it answers more: false), then gives up", async () => {
  const failed = run("contacts", 0, false, { status: "failed", error: "HTTP 503 from hubspot" });
  await withStub([
    ok(false, [failed]),
    ok(false, [run("contacts", 40, false)]),
  ], async (url) => {
    const r = await runBackfill({ url, serviceRoleKey: "svc", connectionIds: ["c1"], ...fast });
    assert.equal(r.outcome, "done");
    assert.equal(r.progress.requests, 2);
  });
  await withStub([ok(false, [failed])], async (url) => {
    const r = await runBackfill({ url, serviceRoleKey: "svc", connectionIds: ["c1"], ...fast });
    assert.equal(r.outcome, "failed");
    assert.equal(r.progress.requests, 4);
    assert.match(r.message, /contacts: HTTP 503 from hubspot/);
  });
  const revoked = run("contacts", 0, false, { status: "failed", revoked: true, error: "refused" });
  await withStub([ok(false, [revoked])], async (url) => {
    const r = await runBackfill({ url, serviceRoleKey: "svc", connectionIds: ["c1"], ...fast });
    assert.equal(r.outcome, "done", "revoked credentials are not retried");
    assert.equal(r.progress.requests, 1);
  });
});
