// Bounded retries with exponential backoff and full jitter, honouring the server's
// Retry-After (seconds or HTTP date) and provider bodies that say how long to wait.
// Every loop here has a hard cap on attempts and on total wait: no unbounded retry, and with a
// deadline no wait that would end past it is started (the run's budget counts every wait).

export type Classification =
  | { kind: "ok" }
  | { kind: "retry"; reason: string; afterMs?: number }
  | { kind: "reauth"; reason: string }
  | { kind: "fatal"; reason: string };

export interface RetryPolicy {
  maxAttempts: number;
  baseMs: number;
  maxDelayMs: number;
  /** Total time the retries may wait; past it the last error is thrown. */
  budgetMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: 6,
  baseMs: 250,
  maxDelayMs: 20_000,
  budgetMs: 60_000,
};

export function parseRetryAfter(
  value: string | null | undefined,
  now = Date.now(),
): number | undefined {
  if (!value) return undefined;
  const s = Number(value);
  if (Number.isFinite(s)) return Math.max(0, s * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

export function backoffMs(attempt: number, policy: RetryPolicy, random = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseMs * 2 ** (attempt - 1));
  return Math.round(ceiling / 2 + random() * ceiling / 2);
}

export interface RetryDeps {
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  random?: () => number;
  signal?: AbortSignal;
  /** Epoch ms: a retry whose wait would end past it is not started. */
  deadline?: number;
  now?: () => number;
  onRetry?: (attempt: number, delayMs: number, reason: string) => void;
}

export class RetryExhaustedError extends Error {
  constructor(message: string, readonly attempts: number, readonly lastError: unknown) {
    super(message);
    this.name = "RetryExhaustedError";
  }
}

/** A wait or a call would end past the run's deadline, so it was not started (or was cut). */
export class BudgetExhaustedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BudgetExhaustedError";
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Runs `op` until it succeeds, a non-retryable error occurs, or the policy is exhausted.
 * `classify` maps an error to what to do next; `reauth` runs the refresh callback once.
 */
export async function withRetry<T>(
  op: (attempt: number) => Promise<T>,
  classify: (e: unknown) => Classification,
  deps: RetryDeps & { refresh?: () => Promise<void> },
  policy: RetryPolicy = DEFAULT_RETRY,
): Promise<T> {
  let waited = 0;
  let refreshed = false;
  for (let attempt = 1;; attempt++) {
    try {
      return await op(attempt);
    } catch (e) {
      const c = classify(e);
      if (c.kind === "reauth" && deps.refresh && !refreshed) {
        refreshed = true;
        await deps.refresh();
        continue;
      }
      if (c.kind !== "retry") throw e;
      if (attempt >= policy.maxAttempts) {
        throw new RetryExhaustedError(`gave up after ${attempt} attempts: ${c.reason}`, attempt, e);
      }
      const delay = Math.min(
        c.afterMs ?? backoffMs(attempt, policy, deps.random),
        policy.maxDelayMs * 3,
      );
      if (waited + delay > policy.budgetMs) {
        throw new RetryExhaustedError(`retry budget exhausted: ${c.reason}`, attempt, e);
      }
      const now = (deps.now ?? Date.now)();
      if (deps.deadline !== undefined && now + delay >= deps.deadline) {
        throw new RetryExhaustedError(
          `no time left in the run's budget to retry after ${delay} ms: ${c.reason}`,
          attempt,
          e,
        );
      }
      waited += delay;
      deps.onRetry?.(attempt, delay, c.reason);
      await deps.sleep(delay, deps.signal);
    }
  }
}
