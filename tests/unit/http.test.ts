import assert from "node:assert/strict";
import { type Clock, SlidingWindowLimiter } from "../../supabase/functions/_shared/http/limiter.ts";
import {
  backoffMs,
  type Classification,
  DEFAULT_RETRY,
  parseRetryAfter,
  RetryExhaustedError,
  withRetry,
} from "../../supabase/functions/_shared/http/retry.ts";
import {
  decryptJson,
  encryptJson,
  generateKey,
  importKey,
} from "../../supabase/functions/_shared/crypto.ts";

/** Virtual time: sleeping advances the clock instantly, so tests are fast and exact. */
function fakeClock(): Clock & { slept: number[] } {
  let t = 0;
  const slept: number[] = [];
  return {
    slept,
    now: () => t,
    sleep: (ms: number) => {
      slept.push(ms);
      t += ms;
      return Promise.resolve();
    },
  };
}

Deno.test("limiter never starts more than `limit` requests in any window", async () => {
  const clock = fakeClock();
  const lim = new SlidingWindowLimiter(10, 1000, clock);
  const starts: number[] = [];
  for (let i = 0; i < 35; i++) {
    await lim.acquire();
    starts.push(clock.now());
  }
  for (const s of starts) {
    assert.ok(starts.filter((x) => x > s - 1000 && x <= s).length <= 10);
  }
  assert.equal(starts.at(-1), 3000, "35 requests at 10/s take exactly 3 s of virtual time");
});

Deno.test("limiter pause holds every caller until the server's wait is over", async () => {
  const clock = fakeClock();
  const lim = new SlidingWindowLimiter(100, 10_000, clock);
  await lim.acquire();
  lim.pause(2500);
  await lim.acquire();
  assert.equal(clock.now(), 2500);
});

Deno.test("Retry-After in seconds and as an HTTP date", () => {
  assert.equal(parseRetryAfter("3"), 3000);
  assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 4000), 6000);
  assert.equal(parseRetryAfter("soon"), undefined);
  assert.equal(parseRetryAfter(null), undefined);
});

Deno.test("backoff grows exponentially with jitter and is capped", () => {
  const p = { ...DEFAULT_RETRY, baseMs: 100, maxDelayMs: 1000 };
  assert.equal(backoffMs(1, p, () => 0), 50);
  assert.equal(backoffMs(1, p, () => 1), 100);
  assert.equal(backoffMs(3, p, () => 1), 400);
  assert.equal(backoffMs(10, p, () => 1), 1000);
});

Deno.test("withRetry: retries retryable errors, honours afterMs, stops at the cap", async () => {
  const clock = fakeClock();
  let calls = 0;
  const result = await withRetry(
    () => {
      calls++;
      if (calls < 3) throw new Error(calls === 1 ? "429" : "503");
      return Promise.resolve("done");
    },
    (e): Classification =>
      (e as Error).message === "429"
        ? { kind: "retry", reason: "429", afterMs: 1234 }
        : { kind: "retry", reason: "5xx" },
    { sleep: clock.sleep, random: () => 1 },
  );
  assert.equal(result, "done");
  assert.equal(calls, 3);
  assert.deepEqual(clock.slept, [1234, 500]);

  let n = 0;
  await assert.rejects(
    withRetry(
      () => {
        n++;
        throw new Error("down");
      },
      () => ({ kind: "retry", reason: "down" }),
      { sleep: clock.sleep },
      { ...DEFAULT_RETRY, maxAttempts: 4 },
    ),
    RetryExhaustedError,
  );
  assert.equal(n, 4);
});

Deno.test("withRetry: fatal errors are thrown at once; reauth refreshes exactly once", async () => {
  const clock = fakeClock();
  let refreshes = 0;
  let calls = 0;
  await assert.rejects(
    withRetry(
      () => {
        calls++;
        throw new Error("401");
      },
      () => ({ kind: "reauth", reason: "expired" }),
      {
        sleep: clock.sleep,
        refresh: () => {
          refreshes++;
          return Promise.resolve();
        },
      },
    ),
    /401/,
  );
  assert.equal(refreshes, 1, "a 401 that persists after a refresh does not loop");
  assert.equal(calls, 2);
  await assert.rejects(
    withRetry(() => Promise.reject(new Error("400")), () => ({ kind: "fatal", reason: "bad" }), {
      sleep: clock.sleep,
    }),
    /400/,
  );
});

Deno.test("credentials: AES-GCM round trip, bound to the connection, tamper-evident", async () => {
  const key = await importKey(generateKey());
  const stored = await encryptJson(key, { refresh_token: "r-123" }, "conn-a");
  assert.ok(!stored.includes("r-123"));
  assert.match(stored, /^v1:/);
  assert.deepEqual(await decryptJson(key, stored, "conn-a"), { refresh_token: "r-123" });
  await assert.rejects(decryptJson(key, stored, "conn-b"));
  const other = await importKey(generateKey());
  await assert.rejects(decryptJson(other, stored, "conn-a"));
  await assert.rejects(importKey(undefined), /CRM_ENCRYPTION_KEY/);
  await assert.rejects(importKey(btoa("short")), /32 bytes/);
});
