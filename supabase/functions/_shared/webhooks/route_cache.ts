// A short-lived, per-isolate memory of verified webhook routing: which connection a HubSpot
// portal, a Salesforce URL token or a Pipedrive basic-auth user belongs to, with its decrypted
// credentials. It saves a database round trip and a decryption on every delivery of a busy
// connection (a burst of deliveries reuses one isolate).
// Limits, on purpose:
//  - Only found connections are kept; a miss always asks the database, so a connection created
//    a moment ago is routed at once, and forged names cannot fill the cache.
//  - Entries live TTL_MS. A request whose credentials do not match a remembered entry is checked
//    again against the database before it is refused, so a rotated secret works at once; the
//    old secret keeps being accepted for at most TTL_MS after the rotation (in isolates that
//    remembered it), and so does a connection deleted or re-pointed meanwhile.
//  - At most MAX_ENTRIES; the oldest entry goes first. Secrets live only in this isolate's
//    memory, as they do for the length of any request; they are never logged or answered.
export const ROUTE_TTL_MS = 10_000;
const MAX_ENTRIES = 1000;

export interface Remembered<V> {
  value: V;
  cached: boolean;
}

export class RouteCache<V> {
  #entries = new Map<string, { value: V; until: number }>();
  constructor(readonly ttlMs = ROUTE_TTL_MS, readonly now = () => Date.now()) {}

  /** The remembered value, or what `load` finds (remembered when not null). */
  async get(
    key: string,
    load: () => Promise<V | null>,
    fresh = false,
  ): Promise<Remembered<V> | null> {
    const hit = this.#entries.get(key);
    if (!fresh && hit && hit.until > this.now()) return { value: hit.value, cached: true };
    this.#entries.delete(key);
    const value = await load();
    if (value === null) return null;
    this.#entries.set(key, { value, until: this.now() + this.ttlMs });
    while (this.#entries.size > MAX_ENTRIES) {
      this.#entries.delete(this.#entries.keys().next().value!);
    }
    return { value, cached: false };
  }

  /** The remembered value if still fresh; never loads (the refusal limiter's in-memory check). */
  peek(key: string): V | null {
    const hit = this.#entries.get(key);
    return hit && hit.until > this.now() ? hit.value : null;
  }

  forget(key: string): void {
    this.#entries.delete(key);
  }

  get size(): number {
    return this.#entries.size;
  }
}

/**
 * A remembered value that passes `ok`, else the database's (fresh) one if that passes, else
 * null: a request refused on a remembered entry is always re-checked before it is refused.
 * The fresh entry stays remembered even when the request fails it: it is the database's truth,
 * and forgetting it would let a forger evict a route (verified_in_memory.ts relies on it).
 */
export async function verifiedRoute<V>(
  cache: RouteCache<V>,
  key: string,
  load: () => Promise<V | null>,
  ok: (v: V) => boolean | Promise<boolean>,
): Promise<V | null> {
  const first = await cache.get(key, load);
  if (first && await ok(first.value)) return first.value;
  if (!first?.cached) return null;
  const fresh = await cache.get(key, load, true);
  return fresh && await ok(fresh.value) ? fresh.value : null;
}
