// Every CRM response goes to ProviderDeps.observe (the shared rate budget calibrates from the
// providers' rate-limit headers and 429 bodies), tagged with the `kind` of the adapter call that
// made it, the same text the call passed to beforeRequest. The SDKs' transports (HubSpot's
// httpApi, jsforce's transport, Pipedrive's axios interceptors) see every response but not the
// call, so the adapter's call wrapper puts the kind in `observeScope` (AsyncLocalStorage, as
// ./call.ts does for the timeout, so concurrent calls keep theirs) and the transports report
// through `observeResponse`.
import { AsyncLocalStorage } from "node:async_hooks";
import type { ProviderDeps } from "./types.ts";

export type Observation = Parameters<NonNullable<ProviderDeps["observe"]>>[0];

interface ObserveScope {
  kind: string;
  deps: Pick<ProviderDeps, "observe" | "log">;
}

const observeScope = new AsyncLocalStorage<ObserveScope>();

/** `fn` with its responses reported under `kind` (unchanged when deps.observe is not set). */
export function observing<A extends unknown[], T>(
  deps: Pick<ProviderDeps, "observe" | "log">,
  kind: string,
  fn: (...args: A) => Promise<T>,
): (...args: A) => Promise<T> {
  if (!deps.observe) return fn;
  return (...args) => observeScope.run({ kind, deps }, () => fn(...args));
}

/** Header values as SDKs hand them over: strings, arrays (set-cookie) or missing. */
type LooseHeaders = Headers | Record<string, string | string[] | number | undefined | null>;

function toHeaders(h: LooseHeaders): Headers {
  if (h instanceof Headers) return h;
  const out = new Headers();
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || v === null) continue;
    for (const one of Array.isArray(v) ? v : [v]) {
      try {
        out.append(k, String(one));
      } catch { /* a header name or value fetch would not accept either: left out */ }
    }
  }
  return out;
}

/** An error body as JSON when it is JSON, else its text (empty: undefined). */
export function parseErrorBody(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Hands one response to the observer of the call being made (or of `deps`, with `kind`).
 * An observer that throws is logged and never fails the request. */
export function observeResponse(
  status: number,
  headers: LooseHeaders,
  body?: unknown,
  explicit?: ObserveScope,
): void {
  const scope = explicit ?? observeScope.getStore();
  const observe = scope?.deps.observe;
  if (!scope || !observe) return;
  try {
    observe({
      kind: scope.kind,
      status,
      headers: toHeaders(headers),
      ...(body === undefined ? {} : { body }),
    });
  } catch (e) {
    scope.deps.log("observe failed", { kind: scope.kind, error: String(e) });
  }
}
