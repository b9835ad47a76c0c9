// The rate budget gate (supabase/functions/_shared/sync/budget.ts) over a fake SQL budget and a
// simulated clock: grants are fetched in batches for the callers waiting, unused grants expire,
// waits respect the run's deadline, long pauses reject with pausedUntil (and guardedCall turns
// that into ProviderError "retry"), and 429s reach the budget at once.
import assert from "node:assert/strict";
import { BudgetPausedError } from "../../supabase/functions/_shared/http/limiter.ts";
import { BudgetExhaustedError } from "../../supabase/functions/_shared/http/retry.ts";
import { guardedCall } from "../../supabase/functions/_shared/providers/call.ts";
import {
  type ProviderDeps,
  ProviderError,
} from "../../supabase/functions/_shared/providers/types.ts";
import {
  type BudgetStore,
  createGate,
  type Grant,
  type Lane,
} from "../../supabase/functions/_shared/sync/budget.ts";
import {
  observationsFor,
  type RateObservation,
  untilUtcMidnight,
} from "../../supabase/functions/_shared/sync/budget_headers.ts";

function clock(start = 1_000_000) {
  let t = start;
  const slept: number[] = [];
  return {
    now: () => t,
    advance: (ms: number) => {
      t += ms;
    },
    sleep: (ms: number) => {
      slept.push(ms);
      t += ms;
      return Promise.resolve();
    },
    slept,
  };
}

interface Take {
  kind: string;
  count: number;
  lane: Lane;
  at: number;
}

/** A budget answering from a script (then granting everything asked). */
function fakeStore(c: { now(): number }, script: Partial<Grant>[] = []) {
  const takes: Take[] = [];
  const observed: RateObservation[][] = [];
  let observeGate: Promise<void> = Promise.resolve();
  const store: BudgetStore = {
    take: (kind, count, lane) => {
      takes.push({ kind, count, lane, at: c.now() });
      const s = script.shift();
      return Promise.resolve({
        granted: s?.granted ?? count,
        waitMs: s?.waitMs ?? 0,
        pausedUntil: s?.pausedUntil ?? null,
        reason: s?.reason ?? null,
      });
    },
    observe: async (o) => {
      await observeGate;
      observed.push(o);
    },
  };
  return {
    store,
    takes,
    observed,
    holdObserve(p: Promise<void>) {
      observeGate = p;
    },
  };
}

Deno.test("gate: concurrent callers share one round trip", async () => {
  const c = clock();
  const f = fakeStore(c);
  const gate = createGate(f.store, "hubspot", { lane: "backfill", now: c.now, sleep: c.sleep });
  await Promise.all([1, 2, 3, 4, 5].map(() => gate.beforeRequest("list")));
  // The first caller's round trip, then one for the four that queued behind it (plus one: this
  // gate used one grant within the ttl, so it expects to use another).
  assert.deepEqual(f.takes.map((t) => [t.count, t.lane]), [[1, "backfill"], [5, "backfill"]]);
  assert.equal(gate.stats().calls, 5);
});

Deno.test("gate: a batch is capped and partial grants are served in order", async () => {
  const c = clock();
  const f = fakeStore(c, [{ granted: 1 }, { granted: 2 }, { granted: 0, waitMs: 100 }]);
  const gate = createGate(f.store, "hubspot", {
    lane: "delta",
    now: c.now,
    sleep: c.sleep,
    maxBatch: 3,
  });
  const done: number[] = [];
  await Promise.all(
    [0, 1, 2, 3, 4].map((i) => gate.beforeRequest("list").then(() => done.push(i))),
  );
  assert.deepEqual(done, [0, 1, 2, 3, 4], "first come, first served");
  assert.ok(f.takes.every((t) => t.count <= 3), "never more than maxBatch at once");
  assert.deepEqual(c.slept, [100], "slept once, for the wait the budget named");
});

Deno.test("gate: grants not used within the ttl expire", async () => {
  const c = clock();
  // Asked for 1, the budget grants 3 (as it does when this gate was busy): two in stock.
  const f = fakeStore(c, [{ granted: 3 }]);
  const gate = createGate(f.store, "hubspot", {
    lane: "delta",
    now: c.now,
    sleep: c.sleep,
    ttlMs: 50,
  });
  await gate.beforeRequest("list");
  c.advance(10);
  await gate.beforeRequest("list");
  assert.equal(f.takes.length, 1, "the second call used the stock");
  c.advance(40);
  await gate.beforeRequest("list");
  assert.equal(f.takes.length, 2, "the stock expired 50 ms after it was asked for");
  assert.equal(gate.stats().expired, 1);
  // Stock of one kind is never spent on another.
  await gate.beforeRequest("search");
  assert.deepEqual(f.takes.map((t) => t.kind), ["list", "list", "search"]);
});

Deno.test("gate: a busy caller asks for what it used in the last ttl", async () => {
  const c = clock();
  const f = fakeStore(c, [{ granted: 1 }, { granted: 1 }, { granted: 1 }]);
  const gate = createGate(f.store, "hubspot", {
    lane: "delta",
    now: c.now,
    sleep: c.sleep,
    ttlMs: 50,
  });
  for (let i = 0; i < 4; i++) {
    await gate.beforeRequest("list");
    c.advance(10);
  }
  assert.deepEqual(f.takes.map((t) => t.count), [1, 2, 3, 4]);
});

Deno.test("gate: a wait that would end past the deadline rejects at once", async () => {
  const c = clock();
  const f = fakeStore(c, [{ granted: 0, waitMs: 500, reason: "window" }, {
    granted: 0,
    waitMs: 500,
    reason: "window",
  }]);
  const gate = createGate(f.store, "hubspot", { lane: "delta", now: c.now, sleep: c.sleep });
  await assert.rejects(
    gate.beforeRequest("list", { deadline: c.now() + 300 }),
    (e) => e instanceof BudgetExhaustedError && !(e instanceof BudgetPausedError),
  );
  assert.deepEqual(c.slept, [], "nothing slept for a refused wait");
  await gate.beforeRequest("list", { deadline: c.now() + 1000 });
  assert.deepEqual(c.slept, [500]);
});

Deno.test("gate: a long pause rejects with pausedUntil; guardedCall says retry then", async () => {
  const c = clock();
  const until = new Date(c.now() + 3_600_000).toISOString();
  const f = fakeStore(c, [{
    granted: 0,
    waitMs: 3_600_000,
    pausedUntil: until,
    reason: "reserve",
  }]);
  const gate = createGate(f.store, "salesforce", { lane: "backfill", now: c.now, sleep: c.sleep });
  const deps: ProviderDeps = {
    baseUrl: "http://crm.invalid",
    credentials: {},
    beforeRequest: gate.beforeRequest,
    onTokens: () => Promise.resolve(),
    countCall: () => {},
    log: () => {},
  };
  let called = false;
  const err = await guardedCall(deps, () => {
    called = true;
    return Promise.resolve(1);
  }, { kind: "query", classify: () => ({ kind: "fatal", reason: "x" }) }).catch((e) => e);
  assert.ok(err instanceof ProviderError, String(err));
  assert.equal(err.action, "retry");
  assert.equal(err.pausedUntil, until);
  assert.match(err.message, /reserve/);
  assert.equal(called, false, "no request was made");
  assert.deepEqual(c.slept, []);
});

Deno.test("gate: a short pause (a 429 window) is slept through", async () => {
  const c = clock();
  const until = new Date(c.now() + 2000).toISOString();
  const f = fakeStore(c, [{ granted: 0, waitMs: 2000, pausedUntil: until, reason: "throttled" }]);
  const gate = createGate(f.store, "hubspot", { lane: "delta", now: c.now, sleep: c.sleep });
  await gate.beforeRequest("list");
  assert.deepEqual(c.slept, [2000]);
});

Deno.test("gate: an aborted waiter rejects and leaves the others waiting", async () => {
  const f = fakeStore({ now: Date.now }, [{ granted: 0, waitMs: 30 }]);
  const gate = createGate(f.store, "hubspot", { lane: "delta" });
  const ctl = new AbortController();
  const a = gate.beforeRequest("list", { signal: ctl.signal });
  const b = gate.beforeRequest("list");
  ctl.abort(new Error("run stopped"));
  await assert.rejects(a, /run stopped/);
  await b;
  assert.equal(gate.stats().calls, 1);
});

Deno.test("gate: a 429 reaches the budget at once and the next grant waits for it", async () => {
  const c = clock();
  const f = fakeStore(c);
  const gate = createGate(f.store, "hubspot", {
    lane: "delta",
    now: c.now,
    sleep: c.sleep,
    flushMs: 2000,
  });
  let release = () => {};
  f.holdObserve(new Promise<void>((r) => release = r));
  gate.observe({
    kind: "list",
    status: 429,
    headers: new Headers({ "x-hubspot-ratelimit-max": "100" }),
    body: { status: "error", policyName: "TEN_SECONDLY_ROLLING" },
  });
  const next = gate.beforeRequest("list");
  await new Promise((r) => setTimeout(r, 5));
  assert.equal(f.takes.length, 0, "no grant is asked for while the 429 is being recorded");
  release();
  await next;
  assert.equal(f.observed.length, 1);
  assert.deepEqual(f.observed[0].map((o) => [o.class, o.throttled ?? false]), [
    ["burst", false],
    ["burst", true],
  ]);
  assert.equal(gate.stats().throttled, 1);
});

Deno.test("gate: header observations are batched, the latest per class", async () => {
  const c = clock();
  const f = fakeStore(c);
  const gate = createGate(f.store, "pipedrive", {
    lane: "delta",
    now: c.now,
    sleep: c.sleep,
    flushMs: 2000,
  });
  const res = (remaining: number) => ({
    kind: "list",
    status: 200,
    headers: new Headers({ "x-ratelimit-limit": "80", "x-ratelimit-remaining": String(remaining) }),
  });
  gate.observe(res(79));
  await gate.flush();
  c.advance(500);
  gate.observe(res(78));
  c.advance(500);
  gate.observe(res(77));
  assert.equal(f.observed.length, 1, "within flushMs nothing more is sent");
  await gate.flush();
  assert.deepEqual(f.observed.map((b) => b.map((o) => o.remaining)), [[79], [77]]);
});

Deno.test("headers: HubSpot burst, daily, and the 429 policies", () => {
  const now = Date.UTC(2030, 0, 1, 18);
  const h = new Headers({
    "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
    "X-HubSpot-RateLimit-Max": "190",
    "X-HubSpot-RateLimit-Remaining": "150",
    "X-HubSpot-RateLimit-Daily": "1000000",
    "X-HubSpot-RateLimit-Daily-Remaining": "999000",
  });
  const at = new Date(now).toISOString();
  assert.deepEqual(observationsFor("hubspot", { kind: "list", status: 200, headers: h }, now), [
    { class: "burst", limit: 190, window_ms: 10000, remaining: 150, at },
    { class: "daily", limit: 1000000, remaining: 999000, at },
  ]);
  assert.deepEqual(
    observationsFor("hubspot", {
      kind: "search",
      status: 429,
      headers: new Headers(),
      body: JSON.stringify({ policyName: "SECONDLY" }),
    }, now),
    [{ class: "search", throttled: true, retry_ms: 1000, at }],
  );
  assert.deepEqual(
    observationsFor("hubspot", {
      kind: "list",
      status: 429,
      headers: new Headers(),
      body: { policyName: "DAILY" },
    }, now),
    [{ class: "daily", throttled: true, retry_ms: 6 * 3_600_000, at }],
  );
  assert.equal(untilUtcMidnight(now), 6 * 3_600_000);
  assert.deepEqual(
    observationsFor("hubspot", {
      kind: "list",
      status: 200,
      headers: new Headers({ "X-HubSpot-RateLimit-Max": "0" }),
    }, now),
    [],
    "an unlimited sandbox says 0: nothing learnt",
  );
});

Deno.test("headers: Salesforce api-usage and REQUEST_LIMIT_EXCEEDED", () => {
  const now = 0;
  const at = new Date(now).toISOString();
  assert.deepEqual(
    observationsFor("salesforce", {
      kind: "query",
      status: 200,
      headers: new Headers({ "Sforce-Limit-Info": "api-usage=14000/15000" }),
    }, now),
    [{ class: "daily", used: 14000, limit: 15000, at }],
  );
  assert.deepEqual(
    observationsFor("salesforce", {
      kind: "query",
      status: 403,
      headers: new Headers(),
      body: [{ errorCode: "REQUEST_LIMIT_EXCEEDED", message: "TotalRequests Limit exceeded." }],
    }, now),
    [{ class: "daily", throttled: true, at }],
  );
  assert.deepEqual(
    observationsFor("salesforce", {
      kind: "query",
      status: 200,
      headers: new Headers({ "Sforce-Limit-Info": "api-usage=90000/0" }),
    }, now),
    [],
    "an org without a limit (a sandbox) says N/0: nothing learnt",
  );
});

Deno.test("headers: Pipedrive burst, its 429 and the daily token budget", () => {
  const now = Date.UTC(2030, 0, 1, 23);
  const at = new Date(now).toISOString();
  const h = new Headers({
    "x-ratelimit-limit": "80",
    "x-ratelimit-remaining": "0",
    "x-ratelimit-reset": "2",
  });
  assert.deepEqual(
    observationsFor("pipedrive", {
      kind: "list",
      status: 429,
      headers: h,
      body: { success: false, error: "Request over limit" },
    }, now),
    [
      { class: "burst", limit: 80, remaining: 0, at },
      { class: "burst", throttled: true, retry_ms: 2000, at },
    ],
  );
  assert.deepEqual(
    observationsFor("pipedrive", {
      kind: "list",
      status: 429,
      headers: new Headers(),
      body: { success: false, error: "Daily token budget exceeded" },
    }, now),
    [{ class: "daily", throttled: true, retry_ms: 3_600_000, at }],
  );
});
