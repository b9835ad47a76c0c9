// The run's budget reaches every wait: the limiter, retry backoff and each request's timeout.
import assert from "node:assert/strict";
import { type Clock, SlidingWindowLimiter } from "../../supabase/functions/_shared/http/limiter.ts";
import {
  BudgetExhaustedError,
  type Classification,
  RetryExhaustedError,
  withRetry,
} from "../../supabase/functions/_shared/http/retry.ts";
import {
  CallTimeoutError,
  guardedCall,
  withTimeout,
} from "../../supabase/functions/_shared/providers/call.ts";
import {
  type ProviderDeps,
  ProviderError,
} from "../../supabase/functions/_shared/providers/types.ts";

function fakeClock(): Clock {
  let t = 0;
  return {
    now: () => t,
    sleep: (ms: number) => {
      t += ms;
      return Promise.resolve();
    },
  };
}

Deno.test("limiter: a wait that would end past the deadline is refused, not slept", async () => {
  const clock = fakeClock();
  const lim = new SlidingWindowLimiter(2, 1000, clock);
  await lim.acquire(undefined, 5000);
  await lim.acquire(undefined, 5000);
  // The third slot frees at t = 1000: past a deadline of 800, fine for one of 5000.
  await assert.rejects(lim.acquire(undefined, 800), BudgetExhaustedError);
  assert.equal(clock.now(), 0, "nothing was slept for the refused wait");
  await lim.acquire(undefined, 5000);
  assert.equal(clock.now(), 1000);
});

Deno.test("withRetry: a retry whose wait ends past the deadline is not started", async () => {
  let t = 0;
  let attempts = 0;
  const retry = (): Classification => ({ kind: "retry", reason: "503", afterMs: 400 });
  await assert.rejects(
    withRetry(
      () => {
        attempts++;
        return Promise.reject(new Error("503"));
      },
      retry,
      {
        sleep: (ms) => {
          t += ms;
          return Promise.resolve();
        },
        now: () => t,
        deadline: 1000,
      },
    ),
    (e: unknown) => e instanceof RetryExhaustedError && /no time left/.test(e.message),
  );
  // Waits end at 400 and 800; a third would end at 1200 > 1000.
  assert.equal(attempts, 3);
  assert.equal(t, 800);
});

Deno.test("withTimeout: a call that ignores its signal still ends at the timeout", async () => {
  let seen: AbortSignal | undefined;
  const never = (signal: AbortSignal) => {
    seen = signal;
    return new Promise<never>(() => {});
  };
  await assert.rejects(withTimeout("search", 20, undefined, never), CallTimeoutError);
  assert.ok(seen?.aborted, "the SDK's signal was aborted too");
});

function deps(o: Partial<ProviderDeps> = {}): ProviderDeps & { count: () => number } {
  let n = 0;
  return {
    baseUrl: "http://127.0.0.1:9",
    credentials: {},
    beforeRequest: () => Promise.resolve(),
    onTokens: () => Promise.resolve(),
    countCall: () => {
      n++;
    },
    log: () => {},
    callTimeoutMs: 30,
    count: () => n,
    ...o,
  };
}

Deno.test("guardedCall: a hung CRM is retried within the budget, then reported retryable", async () => {
  const d = deps();
  const start = Date.now();
  const err = await guardedCall(d, () => new Promise<never>(() => {}), {
    kind: "search",
    classify: () => ({ kind: "fatal", reason: "unexpected" }),
    deadline: start + 400,
  }).catch((e) => e);
  assert.ok(err instanceof ProviderError, String(err));
  assert.equal(err.action, "retry");
  assert.match(err.message, /no answer within 30 ms|time budget|no time left/);
  assert.ok(d.count() >= 2, `timeouts are retried (${d.count()} calls)`);
});

Deno.test("guardedCall: past the deadline no request is started", async () => {
  const d = deps();
  const err = await guardedCall(d, () => Promise.resolve(1), {
    kind: "search",
    classify: () => ({ kind: "fatal", reason: "x" }),
    deadline: Date.now() - 1,
  }).catch((e) => e);
  assert.ok(err instanceof ProviderError);
  assert.equal(err.action, "retry");
  assert.match(err.message, /time budget is used up/);
  assert.equal(d.count(), 0);
});

Deno.test("guardedCall: the limiter's deadline refusal ends the call without a request", async () => {
  const d = deps({
    beforeRequest: (_kind, o) =>
      Promise.reject(new BudgetExhaustedError(`wait past ${o?.deadline}`)),
  });
  const err = await guardedCall(d, () => Promise.resolve(1), {
    kind: "list",
    classify: () => ({ kind: "retry", reason: "x" }),
    deadline: Date.now() + 60_000,
  }).catch((e) => e);
  assert.ok(err instanceof ProviderError);
  assert.match(err.message, /wait past \d+/);
  assert.equal(d.count(), 0);
});
