/**
 * Rolling-window request limiter keyed by token (or account), plus a daily
 * counter. Each key keeps a ring of its last `max` hit times, so a check is
 * O(1) and memory is O(keys × max).
 */

export interface LimitResult {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** ms until the oldest hit in the window leaves it. */
  resetMs: number;
  windowMs: number;
}

export class RollingWindowLimiter {
  #hits = new Map<string, { ring: number[]; pos: number; count: number }>();

  constructor(public max: number, public windowMs: number) {}

  /** Record a hit if allowed (denied hits are not recorded). */
  hit(key: string, now: number): LimitResult {
    if (this.max <= 0) {
      return { allowed: true, limit: 0, remaining: 0, resetMs: 0, windowMs: this.windowMs };
    }
    let e = this.#hits.get(key);
    if (!e || e.ring.length !== this.max) {
      e = { ring: new Array(this.max).fill(-Infinity), pos: 0, count: 0 };
      this.#hits.set(key, e);
    }
    // ring[pos] is the oldest of the last `max` hits.
    const oldest = e.ring[e.pos];
    if (now - oldest < this.windowMs) {
      return {
        allowed: false,
        limit: this.max,
        remaining: 0,
        resetMs: this.windowMs - (now - oldest),
        windowMs: this.windowMs,
      };
    }
    e.ring[e.pos] = now;
    e.pos = (e.pos + 1) % this.max;
    let inWindow = 0;
    let oldestInWindow = now;
    for (const t of e.ring) {
      if (now - t < this.windowMs) {
        inWindow++;
        if (t < oldestInWindow) oldestInWindow = t;
      }
    }
    return {
      allowed: true,
      limit: this.max,
      remaining: this.max - inWindow,
      // Until the oldest hit still in the window drops out of it.
      resetMs: this.windowMs - (now - oldestInWindow),
      windowMs: this.windowMs,
    };
  }

  configure(max: number, windowMs: number): void {
    this.max = max;
    this.windowMs = windowMs;
    this.#hits.clear();
  }

  reset(): void {
    this.#hits.clear();
  }
}

/** Calendar-day (UTC) budget per key. */
export class DailyBudget {
  #used = new Map<string, { day: number; used: number }>();

  constructor(public limit: number) {}

  /** Spend `cost`; returns remaining budget or -1 when exhausted. */
  spend(key: string, now: number, cost = 1): { allowed: boolean; used: number; remaining: number } {
    const day = Math.floor(now / 86_400_000);
    let e = this.#used.get(key);
    if (!e || e.day !== day) {
      e = { day, used: 0 };
      this.#used.set(key, e);
    }
    if (this.limit > 0 && e.used + cost > this.limit) {
      return { allowed: false, used: e.used, remaining: Math.max(0, this.limit - e.used) };
    }
    e.used += cost;
    return {
      allowed: true,
      used: e.used,
      remaining: this.limit > 0 ? this.limit - e.used : Number.MAX_SAFE_INTEGER,
    };
  }

  used(key: string, now: number): number {
    const e = this.#used.get(key);
    return e && e.day === Math.floor(now / 86_400_000) ? e.used : 0;
  }

  reset(): void {
    this.#used.clear();
  }
}
