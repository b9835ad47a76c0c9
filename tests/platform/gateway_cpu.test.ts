// The hosted CPU limit as the gateway enforces it (shared/local/function_pool.ts), with a limit
// of 300 ms instead of 2 s to keep the tests short.
import assert from "node:assert/strict";
import { isAlive } from "../../shared/local/processes.ts";
import { bearer, call, type Gateway, withGateway } from "./gateway_harness.ts";

const LIMIT = 300;

interface ProcStats {
  pid: number;
  state: string;
  requests: number;
  cpuMsLast: number;
  cpuMsMax: number;
  peakRssMb: number;
  exit: string | null;
}
interface FnStats {
  spawned: number;
  requests: number;
  kills: { cpu: number; wall_clock: number; memory: number };
  processes: ProcStats[];
}

const burnStats = (gw: Gateway) => gw.stats().functions.burn as FnStats;
const proc = (gw: Gateway, pid: unknown) => burnStats(gw).processes.find((p) => p.pid === pid)!;

/** A process's stats once its request is accounted for (a moment after the answer). */
async function settled(gw: Gateway, pid: unknown): Promise<ProcStats> {
  await until(`process ${pid} settled`, () => proc(gw, pid).state !== "busy");
  return proc(gw, pid);
}

async function until(what: string, ok: () => boolean, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

Deno.test("a request over the CPU limit is terminated with the hosted 546; the next gets a fresh process", async () => {
  const logs: string[] = [];
  await withGateway(async (gw, { anon }) => {
    const warm = await call(`${gw.url}/functions/v1/burn`, bearer(anon));
    assert.equal(warm.status, 200);
    const killed = await call(`${gw.url}/functions/v1/burn?cpu=3000`, bearer(anon));
    assert.equal(killed.status, 546);
    assert.deepEqual(killed.body, {
      code: "WORKER_RESOURCE_LIMIT",
      message: "Function failed due to not having enough compute resources (please check logs)",
    });
    const pid = warm.body.pid as number;
    assert.ok(!isAlive(pid), "the process is gone");
    const dead = proc(gw, pid);
    assert.equal(dead.exit, "cpu");
    // Charged since boot (per_worker), so the warm-up request's few ms count as well.
    assert.ok(dead.cpuMsLast >= LIMIT - 100, `charged ${dead.cpuMsLast} ms`);
    assert.ok(dead.cpuMsLast < 2 * LIMIT, `killed soon after the limit (${dead.cpuMsLast} ms)`);
    assert.equal(burnStats(gw).kills.cpu, 1);
    assert.ok(logs.some((l) => /burn pid \d+: CPU Time exceeded/.test(l)), logs.join("\n"));

    const next = await call(`${gw.url}/functions/v1/burn`, bearer(anon));
    assert.equal(next.status, 200);
    assert.notEqual(next.body.pid, pid);
  }, { cpuLimitMs: LIMIT, log: (m) => logs.push(m) });
});

Deno.test("waiting on async work is not CPU: a long wait stays within the limit", async () => {
  await withGateway(async (gw, { anon }) => {
    // Over three times the limit in wall-clock time, little of it on the CPU.
    const r = await call(`${gw.url}/functions/v1/burn?wait=1000`, bearer(anon));
    assert.equal(r.status, 200);
    const p = await settled(gw, r.body.pid);
    assert.equal(p.exit, null);
    assert.ok(p.cpuMsLast < LIMIT, `${p.cpuMsLast} ms`);
    assert.equal(burnStats(gw).kills.cpu, 0);
  }, { cpuLimitMs: LIMIT });
});

Deno.test("two concurrent requests run in two processes, each charged its own CPU", async () => {
  await withGateway(async (gw, { anon }) => {
    // Together 400 ms, over the limit; each alone 200 ms, under it.
    const both = await Promise.all([
      call(`${gw.url}/functions/v1/burn?cpu=200`, bearer(anon)),
      call(`${gw.url}/functions/v1/burn?cpu=200`, bearer(anon)),
    ]);
    assert.deepEqual(both.map((r) => r.status), [200, 200]);
    assert.notEqual(both[0].body.pid, both[1].body.pid);
    for (const r of both) {
      const p = await settled(gw, r.body.pid);
      assert.ok(p.cpuMsLast >= 190 && p.cpuMsLast < LIMIT, `${p.cpuMsLast} ms`);
    }
    assert.equal(burnStats(gw).kills.cpu, 0);
  }, { cpuLimitMs: LIMIT });
});

Deno.test("EdgeRuntime.waitUntil work after the response is charged to the request", async () => {
  await withGateway(async (gw, { anon }) => {
    const r = await call(`${gw.url}/functions/v1/burn?bgcpu=3000`, bearer(anon));
    assert.equal(r.status, 202, "the answer went out before the background work");
    await until("the kill", () => burnStats(gw).kills.cpu === 1);
    assert.equal(proc(gw, r.body.pid).exit, "cpu");
    assert.ok(!isAlive(r.body.pid as number));
    assert.equal((await call(`${gw.url}/functions/v1/burn`, bearer(anon))).status, 200);
  }, { cpuLimitMs: LIMIT });
});

Deno.test("a process stays busy until its background work ends, then serves again", async () => {
  await withGateway(async (gw, { anon }) => {
    const a = await call(`${gw.url}/functions/v1/burn?bgwait=500`, bearer(anon));
    assert.equal(a.status, 202);
    const b = await call(`${gw.url}/functions/v1/burn`, bearer(anon));
    assert.notEqual(b.body.pid, a.body.pid, "the first process is still running its waitUntil");
    await until("both idle", () => burnStats(gw).processes.every((p) => p.state === "idle"));
    const c = await call(`${gw.url}/functions/v1/burn`, bearer(anon));
    assert.ok([a.body.pid, b.body.pid].includes(c.body.pid), "no third process");
    assert.equal(burnStats(gw).spawned, 2);
  }, { cpuLimitMs: LIMIT });
});

Deno.test("per_worker: a process past half the limit retires after its request; per_request never does", async () => {
  await withGateway(async (gw, { anon }) => {
    // 40 ms, then 150 ms more: the process's life is past the 150 ms soft limit.
    const one = await call(`${gw.url}/functions/v1/burn?cpu=40`, bearer(anon));
    const two = await call(`${gw.url}/functions/v1/burn?cpu=150`, bearer(anon));
    assert.equal(two.body.pid, one.body.pid, "under the soft limit the process is reused");
    const three = await call(`${gw.url}/functions/v1/burn`, bearer(anon));
    assert.notEqual(three.body.pid, one.body.pid, "past it, a fresh one serves");
    assert.equal((await settled(gw, one.body.pid)).exit, "retired");
    assert.equal(burnStats(gw).kills.cpu, 0);
  }, { cpuLimitMs: LIMIT });
  await withGateway(async (gw, { anon }) => {
    const pids = new Set<unknown>();
    for (let i = 0; i < 3; i++) {
      const r = await call(`${gw.url}/functions/v1/burn?cpu=200`, bearer(anon));
      assert.equal(r.status, 200);
      pids.add(r.body.pid);
    }
    assert.equal(pids.size, 1, "600 ms over three requests, each under the limit");
  }, { cpuLimitMs: LIMIT, cpuPolicy: "per_request" });
});

Deno.test("cpuLimitMs 0 disables the CPU limit", async () => {
  await withGateway(async (gw, { anon }) => {
    const r = await call(`${gw.url}/functions/v1/burn?cpu=400`, bearer(anon));
    assert.equal(r.status, 200);
    assert.ok((await settled(gw, r.body.pid)).cpuMsLast >= 400);
  }, { cpuLimitMs: 0 });
});

Deno.test("a function that outgrows its heap gets the same 546", async () => {
  const logs: string[] = [];
  await withGateway(async (gw, { anon }) => {
    const r = await call(`${gw.url}/functions/v1/burn?alloc=1`, bearer(anon));
    assert.equal(r.status, 546);
    assert.equal(r.body.code, "WORKER_RESOURCE_LIMIT");
    assert.equal(burnStats(gw).kills.memory, 1);
    assert.ok(logs.some((l) => /Memory limit exceeded/.test(l)), logs.join("\n"));
    assert.equal((await call(`${gw.url}/functions/v1/burn`, bearer(anon))).status, 200);
  }, { memoryMb: 32, log: (m) => logs.push(m) });
});

Deno.test("GET /_gateway/stats reports each process; DELETE starts the counters again", async () => {
  await withGateway(async (gw, { anon }) => {
    const r = await call(`${gw.url}/functions/v1/burn?cpu=50`, bearer(anon));
    assert.equal(r.status, 200);
    await settled(gw, r.body.pid);
    const stats = await call(`${gw.url}/_gateway/stats`);
    assert.equal(stats.status, 200);
    const limits = stats.body.limits as Record<string, unknown>;
    assert.equal(limits.cpuLimitMs, LIMIT);
    assert.equal(limits.cpuSoftLimitMs, LIMIT / 2);
    assert.equal(limits.cpuPolicy, "per_worker");
    const fn = (stats.body.functions as Record<string, FnStats>).burn;
    assert.equal(fn.requests, 1);
    const [p] = fn.processes;
    assert.equal(p.pid, r.body.pid);
    assert.equal(p.requests, 1);
    assert.ok(p.cpuMsMax >= 50 && p.cpuMsMax < LIMIT, `${p.cpuMsMax} ms`);
    assert.ok(p.peakRssMb > 10, `${p.peakRssMb} MB`);
    const reset = await call(`${gw.url}/_gateway/stats`, { method: "DELETE" });
    const after = (reset.body.functions as Record<string, FnStats>).burn;
    assert.equal(after.requests, 0);
    assert.equal(after.processes[0].cpuMsMax, 0);
    assert.equal((await call(`${gw.url}/_gateway/stats`, { method: "POST" })).status, 405);
    assert.equal((await call(`${gw.url}/functions/v1/_gateway`, bearer(anon))).status, 404);
  }, { cpuLimitMs: LIMIT });
});

Deno.test("a caller that gives up does not leave its process busy", async () => {
  await withGateway(async (gw, { anon }) => {
    const gaveUp = fetch(`${gw.url}/functions/v1/burn?wait=300`, {
      ...bearer(anon),
      signal: AbortSignal.timeout(100),
    });
    await assert.rejects(gaveUp);
    const [pid] = gw.workerPids("burn");
    await until("the process is free again", () => proc(gw, pid).state === "idle");
    const next = await call(`${gw.url}/functions/v1/burn`, bearer(anon));
    assert.equal(next.body.pid, pid, "the same process serves the next request");
  }, { cpuLimitMs: LIMIT });
});

Deno.test("requestsPerProcess > 1 (per_worker): concurrent requests share a process; the CPU limit is still the process's", async () => {
  await withGateway(async (gw, { anon }) => {
    const warm = await call(`${gw.url}/functions/v1/burn`, bearer(anon));
    const pid = warm.body.pid;
    // Eight requests that wait (no CPU) at once: one process serves them all.
    const waits = await Promise.all(
      Array.from({ length: 8 }, () => call(`${gw.url}/functions/v1/burn?wait=200`, bearer(anon))),
    );
    assert.deepEqual(new Set(waits.map((r) => r.body.pid)), new Set([pid]));
    assert.equal(burnStats(gw).spawned, 1, "no second process was started");
    // Over the hard limit while others run on it: every request it serves answers 546.
    const [burner, ...others] = await Promise.all([
      call(`${gw.url}/functions/v1/burn?cpu=3000`, bearer(anon)),
      call(`${gw.url}/functions/v1/burn?wait=2000`, bearer(anon)),
      call(`${gw.url}/functions/v1/burn?wait=2000`, bearer(anon)),
    ]);
    assert.equal(burner.status, 546);
    assert.deepEqual(others.map((r) => r.status), [546, 546], "terminated with its process");
    assert.equal(proc(gw, pid).exit, "cpu");
    assert.ok(!isAlive(pid as number));
    const next = await call(`${gw.url}/functions/v1/burn`, bearer(anon));
    assert.equal(next.status, 200);
    assert.notEqual(next.body.pid, pid, "a fresh process");
  }, { cpuLimitMs: LIMIT, requestsPerProcess: 16 });
});

Deno.test("requestsPerProcess > 1: past the soft limit a shared process takes nothing more and retires", async () => {
  await withGateway(async (gw, { anon }) => {
    const first = await call(`${gw.url}/functions/v1/burn?cpu=${LIMIT * 0.6}`, bearer(anon));
    const pid = first.body.pid;
    await settled(gw, pid);
    const next = await call(`${gw.url}/functions/v1/burn`, bearer(anon));
    assert.notEqual(next.body.pid, pid, "over half the limit: the next request goes elsewhere");
    await until("the old process retired", () => proc(gw, pid).exit === "retired");
  }, { cpuLimitMs: LIMIT, requestsPerProcess: 16 });
});

Deno.test("requestsPerProcess is ignored under per_request: one request per process", async () => {
  await withGateway(async (gw, { anon }) => {
    await call(`${gw.url}/functions/v1/burn`, bearer(anon));
    const rs = await Promise.all(
      Array.from({ length: 3 }, () => call(`${gw.url}/functions/v1/burn?wait=300`, bearer(anon))),
    );
    assert.equal(new Set(rs.map((r) => r.body.pid)).size, 3);
  }, { cpuLimitMs: LIMIT, cpuPolicy: "per_request", requestsPerProcess: 16 });
});
