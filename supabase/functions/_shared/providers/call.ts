// Every provider API call goes through here: the per-connection limiter, a call counter for
// sync_log, and bounded retries classified by the provider (429 honours the server's wait,
// 5xx and network errors back off, 401 refreshes once, revoked credentials stop the run).
import { type Classification, type RetryPolicy, sleep, withRetry } from "../http/retry.ts";
import { type ProviderDeps, ProviderError } from "./types.ts";

export interface CallOptions {
  kind: string;
  classify: (e: unknown) => Classification;
  refresh?: () => Promise<void>;
  signal?: AbortSignal;
  policy?: RetryPolicy;
  /** Called with the server's requested wait so the limiter can hold every caller. */
  onThrottle?: (ms: number) => void;
}

export async function guardedCall<T>(
  deps: ProviderDeps,
  fn: () => Promise<T>,
  o: CallOptions,
): Promise<T> {
  const classify = (e: unknown): Classification => {
    const c = o.classify(e);
    if (c.kind === "retry" && c.afterMs !== undefined) o.onThrottle?.(c.afterMs);
    return c;
  };
  try {
    return await withRetry(
      async () => {
        await deps.beforeRequest(o.kind);
        deps.countCall();
        return await fn();
      },
      classify,
      {
        sleep,
        signal: o.signal,
        refresh: o.refresh,
        onRetry: (attempt, delay, reason) =>
          deps.log(`retrying ${o.kind}`, { attempt, delay, reason }),
      },
      o.policy,
    );
  } catch (e) {
    if (e instanceof ProviderError) throw e;
    const c = o.classify(
      e instanceof Error && "lastError" in e ? (e as { lastError: unknown }).lastError : e,
    );
    const message = e instanceof Error ? e.message : String(e);
    if (c.kind === "reauth") {
      throw new ProviderError(`credentials rejected: ${c.reason}`, "revoked");
    }
    if (c.kind === "retry") throw new ProviderError(message, "retry");
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
