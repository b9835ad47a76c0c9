// Abusive senders are slowed down without ever counting a valid delivery: a sender whose
// requests to one route were REFUSED (400, 401, 413) more than `limit` times within a window is
// answered 429 with Retry-After, before its body is read or the database is asked, until the
// window ends. Accepted deliveries are never counted, and a sender that is refused can retry:
// every provider retries a 429 (HubSpot up to 10 times over 24 h, Salesforce for 24 h, Pipedrive
// 3 times), and the hourly drift check repairs what a sender finally gives up on.
//
// Per isolate, in memory: each isolate counts on its own (an abuser spread over n isolates gets
// up to n × limit refusals per window), and a new isolate starts from zero. It bounds the
// database work forged requests can cause, it is not an exact quota.
//
// The sender is the first entry of a request header (clientAddress: X-Forwarded-For unless
// CRM_WEBHOOK_CLIENT_HEADER names another, e.g. x-real-ip). Supabase's edge and the local
// gateway (shared/local/gateway.ts) append the address they received the request from, but the
// FIRST entry is whatever the sender wrote: a sender can pick its key, to escape its count or to
// charge another address (a provider's delivery IPs). That is why the limit only ever delays
// requests that need the database: a delivery that verifies from memory (a cached route whose
// secret matches, a HubSpot app signature; verified_in_memory.ts) is served whatever its
// sender's count. Deploy behind a proxy that overwrites a header with the peer address and name
// it in CRM_WEBHOOK_CLIENT_HEADER to key by an address the sender cannot choose. The key is the
// address and the route (hubspot, salesforce, pipedrive), so a sender refused on one route is
// not slowed on another. A provider's valid delivery whose route is not cached in this isolate
// can still be answered 429 while a forger charges the provider's address; the provider retries
// it (and it is cached as soon as any sender's valid delivery of that connection goes through).
export const REFUSAL_LIMIT = 30;
export const REFUSAL_WINDOW_MS = 10_000;
const MAX_SENDERS = 10_000;

/** Statuses that count against a sender: it did not prove who it is, or sent what no provider
 * sends. (404/405 cost nothing and are answered before any work.) */
export const COUNTED = new Set([400, 401, 413]);

interface Window {
  start: number;
  refusals: number;
}

export class RefusalLimiter {
  #senders = new Map<string, Window>();
  constructor(
    readonly limit = REFUSAL_LIMIT,
    readonly windowMs = REFUSAL_WINDOW_MS,
    readonly now = () => Date.now(),
  ) {}

  #window(key: string): Window | null {
    const w = this.#senders.get(key);
    if (!w) return null;
    if (this.now() - w.start >= this.windowMs) {
      this.#senders.delete(key);
      return null;
    }
    return w;
  }

  /** Seconds the sender must wait, or 0 when it may be served. */
  retryAfter(key: string): number {
    const w = this.#window(key);
    if (!w || w.refusals <= this.limit) return 0;
    return Math.max(1, Math.ceil((w.start + this.windowMs - this.now()) / 1000));
  }

  /** Counts one answer; only refusals (COUNTED) are kept. */
  answered(key: string, status: number): void {
    if (!COUNTED.has(status)) return;
    const w = this.#window(key);
    if (w) {
      w.refusals++;
      return;
    }
    this.#senders.set(key, { start: this.now(), refusals: 1 });
    // Bounded: the oldest windows go first (a flood of distinct addresses cannot grow it).
    while (this.#senders.size > MAX_SENDERS) {
      this.#senders.delete(this.#senders.keys().next().value!);
    }
  }

  get size(): number {
    return this.#senders.size;
  }
}

/**
 * The sender's address: the first entry of `header` (default X-Forwarded-For;
 * CRM_WEBHOOK_CLIENT_HEADER in crm-webhook picks another, e.g. x-real-ip). Supabase's edge
 * (and the local gateway, shared/local/gateway.ts) adds the address it received the request
 * from to X-Forwarded-For; the first entry is the client's as the first proxy saw it. It is what
 * the sender's own side says when the sender sets the header itself, so a forger can pick its
 * key (escape its count, or charge another address's); it cannot make a valid delivery fail,
 * only wait for the provider's retry. Without the header (a direct call) every sender shares
 * the key "unknown".
 */
export function clientAddress(req: Request, header = "x-forwarded-for"): string {
  const value = req.headers.get(header);
  const first = value?.split(",", 1)[0].trim().slice(0, 64);
  return first || "unknown";
}
