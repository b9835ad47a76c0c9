// Every provider API call goes through here: the connection's rate budget, a call counter for
// sync_log, a timeout per HTTP request, and bounded retries classified by the provider (429
// honours the server's wait, 5xx, network errors and timeouts back off, 401 refreshes once,
// revoked credentials stop the run).
// Budget: with a deadline (ListOptions.deadline, the run's), no limiter wait or retry wait that
// would end past it and no request after it is started, and each request's timeout is cut to
// end at most DEADLINE_GRACE_MS after it, so a hung CRM ends the run by then. A request aborted because the run stopped
// (the caller's signal) is not retried.
// The SDKs learn the request's signal and timeout from `callScope` (AsyncLocalStorage, so
// concurrent calls of one adapter keep theirs): HubSpot's per-call httpApi, jsforce's transport
// options and Pipedrive's axios interceptor read it. Whatever an SDK does with it, the call's
// promise is raced against the timeout, so no SDK can hold a run past it.
import { AsyncLocalStorage } from "node:async_hooks";
import {
  BudgetExhaustedError,
  type Classification,
  type RetryPolicy,
  sleep,
  withRetry,
} from "../http/retry.ts";
import { BudgetPausedError } from "../http/limiter.ts";
import { redactSecrets } from "../http/redact.ts";
import { type ProviderDeps, ProviderError } from "./types.ts";

/** Longest wait for one HTTP answer when the connection sets none. CRM list pages answer in
 * 0.1–3 s; 30 s leaves room for a slow SOQL query without letting a hang eat a run. */
export const DEFAULT_CALL_TIMEOUT_MS = 30_000;
/** A request started before the deadline may run this much past it: the deadline is when no new
 * work starts (a walk writes the page it is fetching then, as before timeouts existed), and a
 * hung request ends here. Budgets are ≤ 120 s, so runs still end well inside the platform's
 * 150 s wall-clock limit. */
export const DEADLINE_GRACE_MS = 10_000;

export interface CallScope {
  signal: AbortSignal;
  timeoutMs: number;
}

/** The signal and timeout of the request being made, for the SDK hooks. */
export const callScope = new AsyncLocalStorage<CallScope>();

export interface CallOptions {
  kind: string;
  classify: (e: unknown) => Classification;
  refresh?: () => Promise<void>;
  signal?: AbortSignal;
  /** Epoch ms: the run's budget (see the header). */
  deadline?: number;
  policy?: RetryPolicy;
}

/** One request got no answer within its timeout. */
export class CallTimeoutError extends Error {
  constructor(readonly kind: string, readonly timeoutMs: number) {
    super(`${kind}: no answer within ${timeoutMs} ms`);
    this.name = "CallTimeoutError";
  }
}

/** The caller stopped the run while the request was open. */
class CallAbortedError extends Error {
  constructor(kind: string, reason: unknown) {
    super(`${kind}: aborted (${reason instanceof Error ? reason.message : String(reason)})`);
    this.name = "CallAbortedError";
  }
}

/** Runs `fn` with a signal that aborts after `timeoutMs` or with `outer`; rejects at that
 * moment even if `fn` ignores the signal. */
export async function withTimeout<T>(
  kind: string,
  timeoutMs: number,
  outer: AbortSignal | undefined,
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const ctl = new AbortController();
  let onAbort = () => {};
  const stopped = new Promise<never>((_, reject) => {
    onAbort = () => {
      const e = outer?.aborted
        ? new CallAbortedError(kind, outer.reason)
        : new CallTimeoutError(kind, timeoutMs);
      ctl.abort(e);
      reject(e);
    };
  });
  if (outer?.aborted) onAbort();
  const timer = setTimeout(onAbort, Math.max(0, timeoutMs));
  outer?.addEventListener("abort", onAbort, { once: true });
  try {
    const work = callScope.run({ signal: ctl.signal, timeoutMs }, () => fn(ctl.signal));
    // A rejection of the abandoned `work` after the timeout must not go unhandled.
    work.catch(() => {});
    return await Promise.race([work, stopped]);
  } finally {
    clearTimeout(timer);
    outer?.removeEventListener("abort", onAbort);
  }
}

export async function guardedCall<T>(
  deps: ProviderDeps,
  fn: (signal: AbortSignal) => Promise<T>,
  o: CallOptions,
): Promise<T> {
  const perCall = deps.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  const classify = (e: unknown): Classification => {
    if (e instanceof BudgetExhaustedError || e instanceof CallAbortedError) {
      return { kind: "fatal", reason: e.message };
    }
    if (e instanceof CallTimeoutError) return { kind: "retry", reason: e.message };
    return o.classify(e);
  };
  try {
    return await withRetry(
      async () => {
        await deps.beforeRequest(o.kind, { signal: o.signal, deadline: o.deadline });
        const left = o.deadline === undefined ? Infinity : o.deadline - Date.now();
        if (left <= 0) {
          throw new BudgetExhaustedError(`${o.kind}: the run's time budget is used up`);
        }
        deps.countCall();
        return await withTimeout(
          o.kind,
          Math.min(perCall, left + DEADLINE_GRACE_MS),
          o.signal,
          fn,
        );
      },
      classify,
      {
        sleep,
        signal: o.signal,
        deadline: o.deadline,
        refresh: o.refresh,
        onRetry: (attempt, delay, reason) =>
          deps.log(`retrying ${o.kind}`, { attempt, delay, reason: redactSecrets(reason) }),
      },
      o.policy,
    );
  } catch (e) {
    if (e instanceof ProviderError) throw e;
    const last = e instanceof Error && "lastError" in e
      ? (e as { lastError: unknown }).lastError
      : e;
    const c = classify(last);
    const message = redactSecrets(e instanceof Error ? e.message : String(e));
    if (c.kind === "reauth") {
      throw new ProviderError(`credentials rejected: ${redactSecrets(c.reason)}`, "revoked");
    }
    // A paused rate budget: retry, not before it ends (the worker defers its job until then).
    if (last instanceof BudgetPausedError) {
      throw new ProviderError(message, "retry", undefined, undefined, last.pausedUntil);
    }
    // Out of time is transient: the next run continues from the saved checkpoint.
    const outOfTime = last instanceof BudgetExhaustedError || last instanceof CallAbortedError;
    if (c.kind === "retry" || outOfTime) throw new ProviderError(message, "retry");
    throw new ProviderError(message, c.kind === "fatal" ? "fatal" : "retry");
  }
}

/** Network failures (refused, reset, DNS, TLS) are worth retrying. */
export function isNetworkError(e: unknown): boolean {
  const msg = e instanceof Error
    ? `${e.name} ${e.message} ${(e as { code?: string }).code ?? ""}`
    : String(e);
  return /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTFOUND|EAI_AGAIN|socket hang up|network|fetch failed|connection/i
    .test(msg);
}
