// The refusal limit, the route memory and the coalesced inbox enqueue of crm-webhook.
import assert from "node:assert/strict";
import { coalescedEnqueue } from "../../supabase/functions/_shared/webhooks/event.ts";
import {
  clientAddress,
  RefusalLimiter,
} from "../../supabase/functions/_shared/webhooks/refusal_limit.ts";
import {
  RouteCache,
  verifiedRoute,
} from "../../supabase/functions/_shared/webhooks/route_cache.ts";

Deno.test("refusal limit: only refusals count; over the limit 429 until the window ends", () => {
  let now = 1_000_000;
  const l = new RefusalLimiter(3, 10_000, () => now);
  const a = "203.0.113.9 hubspot";
  // Accepted deliveries never count, however many.
  for (let i = 0; i < 100; i++) l.answered(a, 200);
  l.answered(a, 404);
  l.answered(a, 405);
  assert.equal(l.retryAfter(a), 0);
  for (const s of [401, 400, 413]) l.answered(a, s);
  assert.equal(l.retryAfter(a), 0, "at the limit, not over it: still served");
  l.answered(a, 401);
  assert.equal(l.retryAfter(a), 10, "over the limit: wait for the window's end");
  now += 4_200;
  assert.equal(l.retryAfter(a), 6);
  // Another address, and the same address on another route, are not affected.
  assert.equal(l.retryAfter("198.51.100.7 hubspot"), 0);
  assert.equal(l.retryAfter("203.0.113.9 pipedrive"), 0);
  now += 5_800;
  assert.equal(l.retryAfter(a), 0, "a new window starts from zero");
  l.answered(a, 401);
  assert.equal(l.retryAfter(a), 0);
});

Deno.test("refusal limit: memory is bounded under a flood of distinct addresses", () => {
  const l = new RefusalLimiter(1, 60_000, () => 0);
  for (let i = 0; i < 12_000; i++) l.answered(`10.0.${i >> 8}.${i & 255} hubspot`, 401);
  assert.ok(l.size <= 10_000, `${l.size}`);
});

Deno.test("clientAddress: first X-Forwarded-For entry, trimmed; 'unknown' without it", () => {
  const req = (h: Record<string, string>) => new Request("http://x/", { headers: h });
  assert.equal(clientAddress(req({ "x-forwarded-for": " 203.0.113.9 , 10.0.0.1" })), "203.0.113.9");
  assert.equal(clientAddress(req({ "x-forwarded-for": "2001:db8::1" })), "2001:db8::1");
  assert.equal(clientAddress(req({})), "unknown");
  assert.equal(clientAddress(req({ "x-forwarded-for": "x".repeat(500) })).length, 64);
  assert.equal(
    clientAddress(req({ "x-forwarded-for": "10.0.0.1", "x-real-ip": "203.0.113.5" }), "x-real-ip"),
    "203.0.113.5",
    "another header when configured",
  );
});

Deno.test("route memory: found routes kept for the TTL, misses never", async () => {
  let now = 0;
  const c = new RouteCache<string>(10_000, () => now);
  let loads = 0;
  const load = (v: string | null) => () => (loads++, Promise.resolve(v));
  assert.equal(await c.get("missing", load(null)), null);
  assert.equal(await c.get("missing", load(null)), null);
  assert.equal(loads, 2, "a miss is asked again");
  assert.deepEqual(await c.get("k", load("v1")), { value: "v1", cached: false });
  assert.deepEqual(await c.get("k", load("v2")), { value: "v1", cached: true });
  now = 10_000;
  assert.deepEqual(await c.get("k", load("v2")), { value: "v2", cached: false }, "expired");
});

Deno.test("verifiedRoute: a refusal on a remembered entry is re-checked against the source", async () => {
  const c = new RouteCache<string>(10_000, () => 0);
  let secret = "old";
  const load = () => Promise.resolve(secret);
  assert.equal(await verifiedRoute(c, "k", load, (s) => s === "old"), "old");
  secret = "new"; // rotated: the remembered "old" fails, the fresh one passes at once
  assert.equal(await verifiedRoute(c, "k", load, (s) => s === "new"), "new");
  // The old secret is no longer remembered once the source said otherwise.
  assert.equal(await verifiedRoute(c, "k", load, (s) => s === "old"), null);
  assert.equal(c.peek("k"), "new", "the source's entry stays: a refused request evicts nothing");
});

Deno.test("verifiedRoute: forged requests never evict a remembered route", async () => {
  const c = new RouteCache<string>(10_000, () => 0);
  let loads = 0;
  const load = () => (loads++, Promise.resolve("secret"));
  assert.equal(await verifiedRoute(c, "k", load, (s) => s === "secret"), "secret");
  for (let i = 0; i < 5; i++) {
    assert.equal(await verifiedRoute(c, "k", load, (s) => s === `forged-${i}`), null);
    assert.equal(c.peek("k"), "secret", `still remembered after forged request ${i}`);
  }
  assert.equal(loads, 6, "each refusal on the remembered entry was re-checked at the source");
});

Deno.test("coalescedEnqueue: requests ending during a call share the next one", async () => {
  const calls: string[][] = [];
  const gates: Array<() => void> = [];
  const enqueue = (ids: string[]) => {
    calls.push([...ids].sort());
    return new Promise<void>((ok) => gates.push(ok));
  };
  const kick = coalescedEnqueue(enqueue);
  const a = kick(["c1"]);
  const b = kick(["c2"]);
  const c = kick(["c1", "c3"]);
  assert.deepEqual(calls, [["c1"]], "one call runs; the others wait for the next");
  let bDone = false;
  b.then(() => bDone = true);
  gates[0]();
  await a;
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(calls, [["c1"], ["c1", "c2", "c3"]], "one more call, after the first");
  assert.equal(bDone, false, "a waiting request ends only with the call that covers it");
  gates[1]();
  await Promise.all([b, c]);
  // Idle again: the next request starts a call at once.
  const d = kick(["c4"]);
  assert.deepEqual(calls.at(-1), ["c4"]);
  gates[2]();
  await d;
});

Deno.test("coalescedEnqueue: a failed call fails its callers only; the next still runs", async () => {
  let n = 0;
  const kick = coalescedEnqueue(() =>
    ++n === 1 ? Promise.reject(new Error("db down")) : Promise.resolve()
  );
  const first = kick(["c1"]);
  const second = kick(["c2"]);
  await assert.rejects(first, /db down/);
  await second;
  assert.equal(n, 2);
});
