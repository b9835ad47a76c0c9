import assert from "node:assert/strict";
import { mintKey } from "../../shared/local/jwt.ts";
import { isAlive } from "../../shared/local/processes.ts";
import { bearer, call, SECRET, withGateway } from "./gateway_harness.ts";

Deno.test("gateway routes /functions/v1/<slug>/rest with query, method and body", async () => {
  await withGateway(async (gw, { anon }) => {
    const r = await call(`${gw.url}/functions/v1/hello/a/b?x=1&y=2`, {
      method: "POST",
      body: "payload",
      headers: { Authorization: `Bearer ${anon}` },
    });
    assert.equal(r.status, 200);
    assert.equal(r.body.path, "/hello/a/b");
    assert.equal(r.body.query, "?x=1&y=2");
    assert.equal(r.body.method, "POST");
    assert.equal(r.body.body, "payload");
    const unknown = await call(`${gw.url}/functions/v1/nope`, bearer(anon));
    assert.equal(unknown.status, 404);
    const shared = await call(`${gw.url}/functions/v1/_shared`, bearer(anon));
    assert.equal(shared.status, 404, "folders starting with _ are never functions");
    assert.equal((await call(`${gw.url}/elsewhere`)).status, 404);
  });
});

Deno.test("gateway gives functions the platform env and secrets, never SUPABASE_* overrides", async () => {
  await withGateway(async (gw, { anon }) => {
    Deno.env.set("GATEWAY_ONLY", "leak");
    try {
      const r = await call(`${gw.url}/functions/v1/hello`, bearer(anon));
      const env = r.body.env as Record<string, string | null>;
      assert.equal(env.SUPABASE_URL, "http://127.0.0.1:1");
      assert.equal(env.SUPABASE_DB_URL, "postgresql://fixture");
      assert.equal(env.SUPABASE_ANON_KEY, "set");
      assert.equal(env.SUPABASE_SERVICE_ROLE_KEY, "set");
      assert.equal(env.MY_SECRET, "s3cret");
      assert.equal(env.STACK_SECRET, "from-stack");
      assert.equal(env.GATEWAY_ONLY, null, "the gateway's own environment is not inherited");
      assert.equal(env.JWT_SECRET, SECRET, "the project's JWT secret, never a secret's override");
    } finally {
      Deno.env.delete("GATEWAY_ONLY");
    }
  });
});

Deno.test("verify_jwt: 401 without or with a bad token, 200 with a valid key; off when configured", async () => {
  await withGateway(async (gw, { anon, service }) => {
    const missing = await call(`${gw.url}/functions/v1/hello`);
    assert.equal(missing.status, 401);
    assert.equal(missing.body.message, "Missing authorization header");
    const forged = await mintKey("another-secret-of-at-least-32-characters!!", {
      role: "service_role",
    });
    assert.equal((await call(`${gw.url}/functions/v1/hello`, bearer(forged))).status, 401);
    const expired = await mintKey(SECRET, { role: "anon" }, 10, 1_000_000);
    assert.equal((await call(`${gw.url}/functions/v1/hello`, bearer(expired))).status, 401);
    assert.equal((await call(`${gw.url}/functions/v1/hello`, bearer("not.a.jwt"))).status, 401);
    assert.equal((await call(`${gw.url}/functions/v1/hello`, bearer(anon))).status, 200);
    assert.equal((await call(`${gw.url}/functions/v1/hello`, bearer(service))).status, 200);
    assert.equal((await call(`${gw.url}/functions/v1/open`)).status, 200, "verify_jwt = false");
  });
});

Deno.test("verify_jwt lets OPTIONS preflights through to the function, like the CLI", async () => {
  await withGateway(async (gw) => {
    const pre = await call(`${gw.url}/functions/v1/hello`, {
      method: "OPTIONS",
      headers: { Origin: "http://localhost:5173", "Access-Control-Request-Method": "POST" },
    });
    assert.equal(pre.status, 200);
    assert.equal(pre.body.method, "OPTIONS", "the function answered the preflight");
    // Unauthenticated, so a body sent with it is dropped, not buffered and passed on.
    const loaded = await call(`${gw.url}/functions/v1/hello`, {
      method: "OPTIONS",
      headers: { Origin: "http://localhost:5173" },
      body: "x".repeat(1 << 20),
    });
    assert.equal(loaded.status, 200);
    assert.ok(!loaded.body.body, "the preflight's body never reached the function");
    const get = await call(`${gw.url}/functions/v1/hello`, { method: "GET" });
    assert.equal(get.status, 401, "only OPTIONS skips the check");
    const jwks = await call(`${gw.url}/auth/v1/.well-known/jwks.json`);
    assert.deepEqual(jwks.body, { keys: [] }, "the local project signs with HS256 only");
  });
});

Deno.test("EdgeRuntime.waitUntil work finishes after the response", async () => {
  await withGateway(async (gw) => {
    const file = await Deno.makeTempFile();
    await Deno.remove(file);
    const anon = await mintKey(SECRET, { role: "anon" });
    const res = await call(`${gw.url}/functions/v1/background`, {
      method: "POST",
      headers: { Authorization: `Bearer ${anon}` },
      body: JSON.stringify({ file, delayMs: 300 }),
    });
    assert.equal(res.status, 202);
    let exists = false;
    try {
      await Deno.stat(file);
      exists = true;
    } catch { /* not yet */ }
    assert(!exists, "the background task must not have finished before the response");
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      try {
        assert.equal(await Deno.readTextFile(file), "done");
        await Deno.remove(file);
        return;
      } catch { /* not yet */ }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error("waitUntil task never completed");
  });
});

Deno.test("a crashing, throwing or non-booting function does not take the gateway down", async () => {
  await withGateway(async (gw, { anon }) => {
    const url = (q: string) => `${gw.url}/functions/v1/crasher?mode=${q}`;
    const first = await call(url("ok"), bearer(anon));
    assert.equal(first.status, 200);
    const pid = first.body.pid as number;

    const threw = await call(url("throw"), bearer(anon));
    assert.equal(threw.status, 500);
    assert.equal((await call(url("ok"), bearer(anon))).body.pid, pid, "a throw keeps the worker");

    const exited = await call(url("exit"), bearer(anon));
    assert.equal(exited.status, 502);
    assert.match(String(exited.body.code), /WORKER_ERROR/);
    const again = await call(url("ok"), bearer(anon));
    assert.equal(again.status, 200, "the function is restarted on the next request");
    assert(again.body.pid !== pid);
    assert(!isAlive(pid));

    const boot = await call(`${gw.url}/functions/v1/boot-fail`, bearer(anon));
    assert.equal(boot.status, 503);
    assert.equal(boot.body.code, "BOOT_ERROR");

    assert.equal((await call(`${gw.url}/functions/v1/hello`, bearer(anon))).status, 200);
    assert.equal((await call(`${gw.url}/__health`)).status, 200);
  });
});

Deno.test("a hanging function hits the wall-clock limit with 504", async () => {
  await withGateway(async (gw, { anon }) => {
    const r = await call(`${gw.url}/functions/v1/crasher?mode=hang`, bearer(anon));
    assert.equal(r.status, 504);
    assert.equal((await call(`${gw.url}/functions/v1/crasher?mode=ok`, bearer(anon))).status, 200);
  }, { requestTimeoutMs: 500 });
});

Deno.test("concurrent requests get a process each; later ones reuse the idle processes", async () => {
  await withGateway(async (gw, { anon }) => {
    const round = () =>
      Promise.all(
        Array.from(
          { length: 4 },
          () => call(`${gw.url}/functions/v1/burn?wait=300`, bearer(anon)),
        ),
      );
    const first = await round();
    assert.deepEqual(first.map((c) => c.status), Array(4).fill(200));
    const pids = new Set(first.map((c) => c.body.pid as number));
    assert.equal(pids.size, 4, "one request per process at a time");
    assert.deepEqual(new Set(gw.workerPids("burn")), pids, "every process started is tracked");
    const second = await round();
    assert.deepEqual(new Set(second.map((c) => c.body.pid)), pids, "idle processes are reused");
    assert.equal((gw.stats().functions.burn as { spawned: number }).spawned, 4);
  });
});

Deno.test("a function's pool is capped: requests beyond it wait for a free process", async () => {
  await withGateway(async (gw, { anon }) => {
    const calls = await Promise.all(
      Array.from({ length: 3 }, () => call(`${gw.url}/functions/v1/burn?wait=300`, bearer(anon))),
    );
    assert.deepEqual(calls.map((c) => c.status), [200, 200, 200]);
    assert.equal(new Set(calls.map((c) => c.body.pid)).size, 2);
    // The idle extra goes after idleTimeoutMs; one process stays warm.
    const deadline = Date.now() + 5000;
    while (gw.workerPids("burn").length > 1 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(gw.workerPids("burn").length, 1);
    const [exited] = (gw.stats().functions.burn as { processes: { exit: string | null }[] })
      .processes.filter((p) => p.exit);
    assert.equal(exited.exit, "reaped");
  }, { maxProcessesPerFunction: 2, idleTimeoutMs: 200 });
});
