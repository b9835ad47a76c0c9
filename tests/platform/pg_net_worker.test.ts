// The pg_net stand-in against the running stack's worker: requests go out only after commit,
// and success, non-2xx, timeouts and refused connections are recorded the way pg_net does.
import assert from "node:assert/strict";
import postgres from "postgres";
import { execute, startWorker } from "../../shared/local/pg_net_worker.ts";
import { need } from "../_support/env.ts";

interface Seen {
  method: string;
  path: string;
  headers: Headers;
  body: string;
}

async function withServer(fn: (url: string, seen: Seen[]) => Promise<void>) {
  const seen: Seen[] = [];
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    seen.push({
      method: req.method,
      path: url.pathname + url.search,
      headers: req.headers,
      body: await req.text(),
    });
    if (url.pathname === "/slow") await new Promise((r) => setTimeout(r, 1500));
    if (url.pathname === "/fail") return Response.json({ error: "nope" }, { status: 503 });
    return Response.json({ ok: true }, { headers: { "x-test": "yes" } });
  });
  try {
    await fn(`http://127.0.0.1:${server.addr.port}`, seen);
  } finally {
    await server.shutdown();
  }
}

async function response(sql: postgres.Sql, id: string, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const [row] = await sql`select * from net._http_response where id = ${id}::bigint`;
    if (row) return row;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`no response recorded for request ${id}`);
}

Deno.test("pg_net: POST after commit, response recorded with status, headers and body", async () => {
  const sql = postgres(need("SUPABASE_DB_URL"), { max: 2, onnotice: () => {} });
  try {
    await withServer(async (url, seen) => {
      let id = "";
      await sql.begin(async (tx) => {
        [{ id }] = await tx`select net.http_post(${url + "/hook"}, '{"a":1}'::jsonb,
                                                 '{"q":"x y"}'::jsonb)::text as id`;
        await new Promise((r) => setTimeout(r, 400));
        assert.equal(seen.length, 0, "nothing may be sent before the transaction commits");
      });
      const row = await response(sql, id);
      assert.equal(row.status_code, 200);
      assert.equal(row.timed_out, false);
      assert.equal(row.error_msg, null);
      assert.deepEqual(JSON.parse(row.content), { ok: true });
      assert.equal(row.headers["x-test"], "yes");
      assert.match(row.content_type, /application\/json/);
      assert.equal(seen.length, 1);
      assert.equal(seen[0].method, "POST");
      assert.equal(seen[0].path, "/hook?q=x%20y");
      assert.equal(seen[0].headers.get("content-type"), "application/json");
      assert.deepEqual(JSON.parse(seen[0].body), { a: 1 });
    });
  } finally {
    await sql.end();
  }
});

Deno.test("pg_net: a rolled back request is never sent", async () => {
  const sql = postgres(need("SUPABASE_DB_URL"), { max: 1, onnotice: () => {} });
  try {
    await withServer(async (url, seen) => {
      await sql.begin(async (tx) => {
        await tx`select net.http_get(${url + "/never"})`;
        throw new Error("rollback");
      }).catch(() => {});
      const [{ id }] = await sql`select net.http_get(${url + "/after"})::text as id`;
      await response(sql, id);
      assert.deepEqual(seen.map((s) => s.path), ["/after"]);
    });
  } finally {
    await sql.end();
  }
});

Deno.test("pg_net: non-2xx, timeout and refused connection are recorded, not raised", async () => {
  const sql = postgres(need("SUPABASE_DB_URL"), { max: 1, onnotice: () => {} });
  try {
    await withServer(async (url) => {
      const [{ id: fail }] = await sql`select net.http_delete(${url + "/fail"})::text as id`;
      const [{ id: slow }] = await sql`select net.http_get(${url + "/slow"},
                                                           timeout_milliseconds => 200)::text as id`;
      const refusedUrl = closedPort();
      const [{ id: refused }] = await sql`select net.http_get(${refusedUrl})::text as id`;

      const f = await response(sql, fail);
      assert.equal(f.status_code, 503);
      assert.equal(f.timed_out, false);
      const s = await response(sql, slow);
      assert.equal(s.timed_out, true);
      assert.equal(s.status_code, null);
      assert.match(s.error_msg, /Timeout of 200 ms/);
      const r = await response(sql, refused);
      assert.equal(r.status_code, null);
      assert.match(r.error_msg, /Couldn't connect to server/);
    });
  } finally {
    await sql.end();
  }
});

Deno.test("pg_net worker execute(): each outcome maps to one response row", async () => {
  const refused = await execute({
    id: "1",
    method: "GET",
    url: closedPort(),
    headers: {},
    body: null,
    timeout_milliseconds: 1000,
  });
  assert.equal(refused.timed_out, false);
  assert.match(refused.error_msg ?? "", /Couldn't connect/);
});

function closedPort(): string {
  const l = Deno.listen({ port: 0, hostname: "127.0.0.1" });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return `http://127.0.0.1:${port}/`;
}

Deno.test("pg_net worker purges responses older than its TTL", async () => {
  const sql = postgres(need("SUPABASE_DB_URL"), { max: 1, onnotice: () => {} });
  const worker = startWorker({ dbUrl: need("SUPABASE_DB_URL"), ttl: "1 hour", log: () => {} });
  try {
    await sql`insert into net._http_response (id, status_code, created)
              values (-42, 200, now() - interval '2 hours'), (-43, 200, now())`;
    await worker.purge();
    const left = await sql`select id::int from net._http_response where id in (-42, -43)`;
    assert.deepEqual(left.map((r) => r.id), [-43]);
  } finally {
    await sql`delete from net._http_response where id in (-42, -43)`;
    await worker.stop();
    await sql.end();
  }
});
