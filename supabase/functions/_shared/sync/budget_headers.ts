// What a CRM response says about the rate budget, as observations for crm.observe_rate_limits
// (migration 20261204020300): limits and usage from the providers' headers, and the pause a 429
// (or Salesforce's 403 REQUEST_LIMIT_EXCEEDED) asks for.
// - HubSpot (developers.hubspot.com/docs/api/usage-details): X-HubSpot-RateLimit-Max,
//   -Interval-Milliseconds, -Remaining (the 10-second burst of the app and portal);
//   X-HubSpot-RateLimit-Daily, -Daily-Remaining. Search answers carry no rate-limit headers.
//   429 bodies name the policy: TEN_SECONDLY_ROLLING (burst), SECONDLY (search), DAILY.
// - Salesforce: Sforce-Limit-Info: api-usage=USED/LIMIT on every REST answer (the org's rolling
//   24 h allocation, every integration included); past it, 403 REQUEST_LIMIT_EXCEEDED.
// - Pipedrive (pipedrive.readme.io, rate limiting): x-ratelimit-limit, -remaining, -reset (s)
//   for the 2-second burst of the token; 429 past it (Retry-After, else x-ratelimit-reset), and
//   429 when the company's daily token budget is spent (until the next UTC day).
import type { ProviderName } from "../providers/types.ts";

export interface RateObservation {
  class: "burst" | "search" | "daily";
  limit?: number;
  window_ms?: number;
  remaining?: number;
  used?: number;
  throttled?: boolean;
  retry_ms?: number;
  /** ISO time the answer arrived. */
  at?: string;
}

export interface ObservedResponse {
  kind: string;
  status: number;
  headers: Headers;
  body?: unknown;
}

const int = (v: string | null): number | undefined => {
  if (v === null || v.trim() === "") return undefined;
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? Math.floor(n) : undefined;
};

/** Until the next UTC midnight, where daily budgets without a stated reset start again. */
export function untilUtcMidnight(now: number): number {
  const d = new Date(now);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1) - now;
}

/** The body as an object, whether the SDK handed over JSON text or parsed JSON. */
function bodyObject(body: unknown): Record<string, unknown> | null {
  if (typeof body === "string") {
    try {
      return bodyObject(JSON.parse(body));
    } catch {
      return { message: body };
    }
  }
  if (Array.isArray(body)) return bodyObject(body[0]);
  return body && typeof body === "object" ? body as Record<string, unknown> : null;
}

function hubspot(o: ObservedResponse, now: number): RateObservation[] {
  const h = o.headers;
  const out: RateObservation[] = [];
  const max = int(h.get("x-hubspot-ratelimit-max"));
  // An account without a limit (a sandbox) says 0: nothing to learn.
  if (max) {
    out.push({
      class: "burst",
      limit: max,
      window_ms: int(h.get("x-hubspot-ratelimit-interval-milliseconds")) || undefined,
      remaining: int(h.get("x-hubspot-ratelimit-remaining")),
    });
  }
  const daily = int(h.get("x-hubspot-ratelimit-daily"));
  if (daily) {
    out.push({
      class: "daily",
      limit: daily,
      remaining: int(h.get("x-hubspot-ratelimit-daily-remaining")),
    });
  }
  if (o.status === 429) {
    const policy = String(bodyObject(o.body)?.policyName ?? "");
    if (policy === "DAILY") {
      out.push({ class: "daily", throttled: true, retry_ms: untilUtcMidnight(now) });
    } else if (policy === "SECONDLY" || (!policy && o.kind === "search")) {
      out.push({ class: "search", throttled: true, retry_ms: 1000 });
    } else {
      // HubSpot names no wait: the budget pauses briefly and counts the window as full.
      out.push({ class: "burst", throttled: true });
    }
  }
  return out;
}

function salesforce(o: ObservedResponse): RateObservation[] {
  const out: RateObservation[] = [];
  const m = /api-usage=(\d+)\/(\d+)/.exec(o.headers.get("sforce-limit-info") ?? "");
  // An org without a limit (a sandbox) says N/0: nothing to learn.
  if (m && Number(m[2]) > 0) out.push({ class: "daily", used: Number(m[1]), limit: Number(m[2]) });
  if (o.status === 403 && /REQUEST_LIMIT_EXCEEDED/.test(JSON.stringify(o.body ?? ""))) {
    // The same code answers a spent allocation and a passing org limit (concurrent long-running
    // requests); the Sforce-Limit-Info of that answer tells them apart. Below the allocation the
    // class only pauses briefly, as for a 429.
    const spent = !m || Number(m[2]) <= 0 || Number(m[1]) >= Number(m[2]);
    out.push(
      spent ? { class: "daily", throttled: true } : {
        class: "daily",
        throttled: true,
        retry_ms: 1000,
      },
    );
  }
  return out;
}

function pipedrive(o: ObservedResponse, now: number): RateObservation[] {
  const h = o.headers;
  const out: RateObservation[] = [];
  const limit = int(h.get("x-ratelimit-limit"));
  if (limit) out.push({ class: "burst", limit, remaining: int(h.get("x-ratelimit-remaining")) });
  if (o.status === 429) {
    const b = bodyObject(o.body);
    const text = `${b?.error ?? ""} ${b?.message ?? ""} ${b?.error_info ?? ""}`;
    if (/daily|budget/i.test(text)) {
      out.push({ class: "daily", throttled: true, retry_ms: untilUtcMidnight(now) });
    } else {
      const after = int(h.get("retry-after")) ?? int(h.get("x-ratelimit-reset"));
      out.push({
        class: "burst",
        throttled: true,
        retry_ms: after === undefined ? undefined : after * 1000,
      });
    }
  }
  return out;
}

/** The observations one CRM answer carries (none for most search answers). */
export function observationsFor(
  provider: ProviderName,
  o: ObservedResponse,
  now: number,
): RateObservation[] {
  const found = provider === "hubspot"
    ? hubspot(o, now)
    : provider === "salesforce"
    ? salesforce(o)
    : pipedrive(o, now);
  const at = new Date(now).toISOString();
  return found.map((x) => ({ ...x, at }));
}
