// One JSON request of a subscription registration: a timeout per request and bounded retries
// (providers/call.ts guardedCall: 429 waits for the server's Retry-After, 5xx, network errors
// and timeouts back off), the connection's rate budget when the call spends it (calls on the
// connection's own credentials; HubSpot's app-level settings API is authenticated by the
// developer key and counted by HubSpot against the app, not the portal), and every answer
// reported to the budget (rate-limit headers). Errors come out as ProviderError: "revoked" when
// the connection's credentials were refused (guardedCall turns a "reauth" without a refresh
// into it), "fatal" for other refusals, "retry" for the rest.
import { guardedCall, isNetworkError } from "../providers/call.ts";
import { fetchOrThrowSafe, redactSecrets } from "../http/redact.ts";
import type { ProviderDeps } from "../providers/types.ts";
import { type Classification, parseRetryAfter } from "../http/retry.ts";

/** Registration calls answer in well under a second; a hung CRM must not hold the job. */
export const SUBSCRIBE_TIMEOUT_MS = 10_000;

export interface ApiCaller {
  /** The connection's budget (ProviderDeps.beforeRequest), or none for app-level calls. */
  beforeRequest?: ProviderDeps["beforeRequest"];
  observe?: ProviderDeps["observe"];
  log: ProviderDeps["log"];
  timeoutMs?: number;
  /** Epoch ms after which no request starts (the job's budget). */
  deadline?: number;
  /** What a 401/403 means: the connection's credentials were refused ("revoked": the
   * connection goes to error), or an app-level key is wrong ("fatal": a configuration error). */
  refusal: "revoked" | "fatal";
}

export class HttpAnswerError extends Error {
  constructor(
    readonly status: number,
    readonly headers: Headers,
    readonly body: unknown,
  ) {
    super(`HTTP ${status}: ${redactSecrets(JSON.stringify(body).slice(0, 300))}`);
    this.name = "HttpAnswerError";
  }
}

export interface JsonAnswer {
  status: number;
  body: unknown;
}

function classify(e: unknown, refusal: ApiCaller["refusal"]): Classification {
  if (e instanceof HttpAnswerError) {
    if (e.status === 429) {
      return {
        kind: "retry",
        reason: "429",
        afterMs: parseRetryAfter(e.headers.get("retry-after") ?? undefined) ?? 2000,
      };
    }
    if (e.status === 401 || e.status === 403) {
      return refusal === "revoked"
        ? { kind: "reauth", reason: `${e.status} (credentials refused)` }
        : { kind: "fatal", reason: `${e.status}: the app's developer key was refused` };
    }
    if (e.status >= 500) return { kind: "retry", reason: `${e.status}` };
    return { kind: "fatal", reason: e.message };
  }
  if (isNetworkError(e)) {
    return { kind: "retry", reason: `network: ${redactSecrets((e as Error).message)}` };
  }
  return { kind: "fatal", reason: redactSecrets(String((e as Error)?.message ?? e)) };
}

/**
 * `method url` with a JSON body; answers the parsed body. Statuses in `accept` (e.g. 404 for
 * "nothing configured yet") are answered instead of thrown.
 */
export async function requestJson(
  c: ApiCaller,
  kind: string,
  method: string,
  url: string,
  o: { headers?: Record<string, string>; body?: unknown; accept?: number[] } = {},
): Promise<JsonAnswer> {
  const deps: ProviderDeps = {
    baseUrl: "",
    credentials: {},
    beforeRequest: c.beforeRequest ?? (() => Promise.resolve()),
    callTimeoutMs: c.timeoutMs ?? SUBSCRIBE_TIMEOUT_MS,
    onTokens: () => Promise.resolve(),
    countCall: () => {},
    log: c.log,
  };
  return await guardedCall(deps, async (signal) => {
    const res = await fetchOrThrowSafe(method, url, {
      signal,
      headers: {
        accept: "application/json",
        ...(o.body === undefined ? {} : { "content-type": "application/json" }),
        ...o.headers,
      },
      body: o.body === undefined ? undefined : JSON.stringify(o.body),
    });
    const text = await res.text();
    let body: unknown = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = { text: text.slice(0, 300) };
    }
    try {
      c.observe?.({
        kind,
        status: res.status,
        headers: res.headers,
        body: res.ok ? undefined : body,
      });
    } catch (e) {
      c.log("rate budget observer failed", { error: (e as Error).message });
    }
    if (res.ok || o.accept?.includes(res.status)) return { status: res.status, body };
    throw new HttpAnswerError(res.status, res.headers, body);
  }, {
    kind,
    classify: (e) => classify(e, c.refusal),
    deadline: c.deadline,
  });
}
