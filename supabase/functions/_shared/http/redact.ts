// Secrets that travel in URLs must not reach logs, sync_log, jobs or webhook_setup. Two layers:
// 1. `fetchOrThrowSafe` (and `TransportError`) rethrow a failed request as method + origin +
//    path + the error's class: Deno's transport errors quote the whole URL, query included
//    (HubSpot's ?hapikey=, Pipedrive's ?api_token=).
// 2. `redactSecrets`, a backstop applied where errors become stored or logged text
//    (errorMessage, the retry log, the functions' log lines): any `name=value` of a known
//    secret-bearing query parameter has its value replaced. It is a pattern, so it also
//    catches a secret echoed back in a CRM's error body.

/** Query/form parameters whose values are credentials. */
const SECRET_PARAMS = [
  "hapikey",
  "api_token",
  "apikey",
  "api_key",
  "access_token",
  "refresh_token",
  "id_token",
  "client_secret",
  "developer_api_key",
  "password",
  "token",
];
const PARAM_RE = new RegExp(
  `(^|[^A-Za-z0-9_])(${SECRET_PARAMS.join("|")})=([^&\\s"'#<>\\\\]+)`,
  "gi",
);

export const REDACTED = "[redacted]";

/** `text` with the values of secret-bearing `name=value` pairs replaced. */
export function redactSecrets(text: string): string {
  return text.replace(PARAM_RE, (_m, pre, name) => `${pre}${name}=${REDACTED}`);
}

/** Origin and path of `url`, never its query or fragment; a URL that does not parse is
 * shown as "(invalid URL)" (its text may hold anything). */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return "(invalid URL)";
  }
}

/** A request that got no HTTP answer (refused, reset, DNS, TLS): the message names the
 * method, origin, path and the underlying error's class; the underlying message is dropped
 * because it quotes the full URL. The word "network" keeps `isNetworkError` true. */
export class TransportError extends Error {
  constructor(method: string, url: string, cause: unknown) {
    const kind = cause instanceof Error ? cause.name : typeof cause;
    super(`${method} ${describeUrl(url)}: network error (${kind})`);
    this.name = "TransportError";
  }
}

/** `fetch`, rethrowing a transport failure as a TransportError. An abort by the request's
 * signal rethrows the signal's reason as it is (the caller's timeout or stop error). */
export async function fetchOrThrowSafe(
  method: string,
  url: string,
  init: RequestInit = {},
): Promise<Response> {
  try {
    return await fetch(url, { ...init, method });
  } catch (e) {
    const signal = init.signal;
    if (signal?.aborted && e === signal.reason) throw e;
    throw new TransportError(method, url, e);
  }
}

/** One JSON log line with secrets redacted (the functions' loggers). */
export function logLine(fn: string, msg: string, extra?: Record<string, unknown>): void {
  let line: string;
  try {
    line = JSON.stringify({ fn, msg, ...extra });
  } catch {
    line = JSON.stringify({ fn, msg, extra: "(not serialisable)" });
  }
  console.log(redactSecrets(line));
}
