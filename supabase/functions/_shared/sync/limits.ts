// In-process request pacing for tools that call a CRM without the database (scripts/bench, the
// adapter probes). The engine and every function take grants from the connection's shared rate
// budget in SQL instead (./budget.ts, migration 20261204020300), which reads the same
// settings.rate_limits override, e.g. for a HubSpot account with the API limit increase:
//   {"rate_limits": {"default": {"limit": 180, "window_ms": 10000}}}
// ("default" is the provider's burst class there; "search" and "daily" are classes too).
// Sources: HubSpot private apps 100 / 10 s (Free/Starter) and search 5 / s; Pipedrive 80
// requests / 2 s per token on most plans; Salesforce has no burst window (a daily org budget
// of 100,000+ calls), so we only keep a polite ceiling.
import { z } from "zod";
import { type Clock, realClock, SlidingWindowLimiter } from "../http/limiter.ts";
import type { ProviderName } from "../providers/types.ts";

export interface RateLimit {
  limit: number;
  windowMs: number;
}

export const PROVIDER_LIMITS: Record<ProviderName, Record<string, RateLimit>> = {
  hubspot: { default: { limit: 90, windowMs: 10_000 }, search: { limit: 4, windowMs: 1_000 } },
  salesforce: { default: { limit: 25, windowMs: 1_000 } },
  pipedrive: { default: { limit: 70, windowMs: 2_000 } },
};

const Override = z.record(
  z.string(),
  z.object({
    limit: z.number().int().positive().max(100_000),
    window_ms: z.number().int().positive().max(86_400_000),
  }),
);

export function limitsFor(provider: ProviderName, settings: unknown): Record<string, RateLimit> {
  const out = { ...PROVIDER_LIMITS[provider] };
  const parsed = Override.safeParse((settings as { rate_limits?: unknown })?.rate_limits);
  if (parsed.success) {
    for (const [k, v] of Object.entries(parsed.data)) {
      out[k] = { limit: v.limit, windowMs: v.window_ms };
    }
  }
  return out;
}

/** beforeRequest(kind): every call takes a slot of the default window, and of its own if any;
 * a wait that would end past the call's deadline is refused (BudgetExhaustedError). */
export function createRateGate(
  limits: Record<string, RateLimit>,
  clock: Clock = realClock,
): (kind: string, o?: { signal?: AbortSignal; deadline?: number }) => Promise<void> {
  const gates = new Map<string, SlidingWindowLimiter>();
  for (const [k, l] of Object.entries(limits)) {
    gates.set(k, new SlidingWindowLimiter(l.limit, l.windowMs, clock));
  }
  return async (kind, o = {}) => {
    const own = kind !== "default" ? gates.get(kind) : undefined;
    if (own) await own.acquire(o.signal, o.deadline);
    await gates.get("default")?.acquire(o.signal, o.deadline);
  };
}
