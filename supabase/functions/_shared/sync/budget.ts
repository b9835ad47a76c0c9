// The gate in front of every CRM call of a connection: grants come from the connection's rate
// budget in SQL (crm.take_rate_grant, migration 20261204020300), shared by every function
// instance and caller, and what the provider answers calibrates it (crm.observe_rate_limits).
// - Grants are fetched per call kind for the callers waiting now (plus as many as this gate
//   used in the last ttl), so concurrent calls of one process share a round trip; a grant not
//   used within ttlMs (50 ms) is dropped, because the SQL log assumes a request reaches the
//   provider within its margin of the grant (50 ms here, the rest for latency jitter).
// - A refusal says when to ask again; a wait that would end at or past the call's deadline
//   rejects at once with BudgetExhaustedError (the run's budget counts the waits, as before).
// - A pause (throttled, daily, reserve) longer than maxWaitMs rejects every waiter with
//   BudgetPausedError (pausedUntil), so the worker defers its job instead of sleeping.
// - Observations are sent in the background: at most one batch per flushMs, a 429 at once
//   (and the next grant waits for it, so nobody walks into the same wall).
import type { Sql } from "../db.ts";
import { BudgetPausedError } from "../http/limiter.ts";
import { BudgetExhaustedError, sleep as realSleep } from "../http/retry.ts";
import type { ProviderName } from "../providers/types.ts";
import { observationsFor, type ObservedResponse, type RateObservation } from "./budget_headers.ts";

/** Precedence, highest first: live reads; webhooks and outbound pushes; deltas; backfills and
 * drift checks. */
export const LANES = ["interactive", "realtime", "delta", "backfill"] as const;
export type Lane = typeof LANES[number];

export interface Grant {
  granted: number;
  waitMs: number;
  pausedUntil: string | null;
  reason: string | null;
}

/** The SQL budget of one connection (a fake in unit tests). */
export interface BudgetStore {
  take(kind: string, count: number, lane: Lane): Promise<Grant>;
  observe(observations: RateObservation[]): Promise<void>;
}

export function sqlBudgetStore(sql: Sql, connectionId: string): BudgetStore {
  return {
    async take(kind, count, lane) {
      const [g] = await sql`
        select granted, wait_ms, paused_until, reason
        from crm.take_rate_grant(${connectionId}::uuid, ${kind}, ${count}::integer, ${lane})`;
      return {
        granted: Number(g.granted),
        waitMs: Number(g.wait_ms),
        pausedUntil: g.paused_until ? new Date(g.paused_until).toISOString() : null,
        reason: g.reason ?? null,
      };
    },
    async observe(observations) {
      await sql`select crm.observe_rate_limits(${connectionId}::uuid, ${
        sql.json(observations as never)
      }::jsonb)`;
    },
  };
}

export interface GateOptions {
  lane: Lane;
  log?: (msg: string, extra?: Record<string, unknown>) => void;
  now?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Most grants asked for at once. */
  maxBatch?: number;
  /** A grant not used within this many ms of asking is dropped. */
  ttlMs?: number;
  /** Longer pauses reject with BudgetPausedError instead of sleeping. */
  maxWaitMs?: number;
  /** At most one batch of header observations per this many ms. */
  flushMs?: number;
}

export interface GateStats {
  /** Round trips to crm.take_rate_grant. */
  takes: number;
  granted: number;
  /** Grants dropped unused after ttlMs. */
  expired: number;
  /** Calls let through. */
  calls: number;
  /** Wait of each call let through (ms), in order; at most the last 10,000. */
  waits: number[];
  throttled: number;
}

export interface BudgetGate {
  /** ProviderDeps.beforeRequest. */
  beforeRequest(kind: string, o?: { signal?: AbortSignal; deadline?: number }): Promise<void>;
  /** ProviderDeps.observe. */
  observe(o: ObservedResponse): void;
  /** Sends pending observations now. */
  flush(): Promise<void>;
  stats(): GateStats;
}

interface Waiter {
  since: number;
  deadline?: number;
  resolve(): void;
  reject(e: unknown): void;
  detach(): void;
}

interface KindState {
  stock: number;
  stockUntil: number;
  waiters: Waiter[];
  pumping: boolean;
  /** When this gate's last calls of the kind went out (for the batch size). */
  recent: number[];
  wake: AbortController | null;
}

const MAX_WAITS = 10_000;

export function createGate(
  store: BudgetStore,
  provider: ProviderName,
  o: GateOptions,
): BudgetGate {
  const now = o.now ?? Date.now;
  const sleep = o.sleep ?? realSleep;
  const log = o.log ?? (() => {});
  const maxBatch = o.maxBatch ?? 8;
  const ttl = o.ttlMs ?? 50;
  const maxWait = o.maxWaitMs ?? 15_000;
  const flushMs = o.flushMs ?? 2_000;
  const kinds = new Map<string, KindState>();
  const stats: GateStats = { takes: 0, granted: 0, expired: 0, calls: 0, waits: [], throttled: 0 };

  const pending = new Map<string, RateObservation>();
  let lastFlush = 0;
  let flushing: Promise<void> | null = null;
  let urgent: Promise<void> | null = null;

  function letThrough(st: KindState, w: { since: number }, t: number) {
    stats.calls++;
    stats.waits.push(t - w.since);
    if (stats.waits.length > MAX_WAITS) stats.waits.splice(0, stats.waits.length - MAX_WAITS);
    st.recent.push(t);
    while (st.recent.length && st.recent[0] <= t - ttl) st.recent.shift();
  }

  function dropExpired(st: KindState, t: number) {
    if (st.stock > 0 && t >= st.stockUntil) {
      stats.expired += st.stock;
      st.stock = 0;
    }
  }

  function rejectAll(st: KindState, e: unknown) {
    for (const w of st.waiters.splice(0)) {
      w.detach();
      w.reject(e);
    }
  }

  async function pump(kind: string, st: KindState) {
    if (st.pumping) return;
    st.pumping = true;
    try {
      while (st.waiters.length > 0) {
        const t0 = now();
        dropExpired(st, t0);
        while (st.stock > 0 && st.waiters.length > 0) {
          st.stock--;
          const w = st.waiters.shift()!;
          w.detach();
          letThrough(st, w, t0);
          w.resolve();
        }
        if (st.waiters.length === 0) break;
        if (urgent) await urgent;
        const want = Math.min(maxBatch, st.waiters.length + st.recent.length);
        const asked = now();
        let g: Grant;
        try {
          g = await store.take(kind, want, o.lane);
        } catch (e) {
          rejectAll(st, e);
          break;
        }
        stats.takes++;
        if (g.granted > 0) {
          stats.granted += g.granted;
          const t = now();
          let n = g.granted;
          while (n > 0 && st.waiters.length > 0) {
            n--;
            const w = st.waiters.shift()!;
            w.detach();
            letThrough(st, w, t);
            w.resolve();
          }
          // Counted from before the round trip: never later than the grant's own time + ttl.
          if (n > 0) {
            st.stock = n;
            st.stockUntil = asked + ttl;
          }
          continue;
        }
        const t = now();
        const wait = Math.max(
          1,
          g.waitMs,
          g.pausedUntil ? Date.parse(g.pausedUntil) - t : 0,
        );
        if (g.pausedUntil && wait > maxWait) {
          log("rate budget paused", { kind, reason: g.reason, paused_until: g.pausedUntil });
          rejectAll(
            st,
            new BudgetPausedError(
              `rate budget paused (${g.reason ?? "paused"}) until ${g.pausedUntil}`,
              g.pausedUntil,
              g.reason ?? "paused",
            ),
          );
          break;
        }
        for (const w of [...st.waiters]) {
          if (w.deadline !== undefined && t + wait >= w.deadline) {
            st.waiters.splice(st.waiters.indexOf(w), 1);
            w.detach();
            w.reject(
              new BudgetExhaustedError(
                `rate budget wait of ${wait} ms (${
                  g.reason ?? "busy"
                }) would end past the run's deadline`,
              ),
            );
          }
        }
        if (st.waiters.length === 0) break;
        st.wake = new AbortController();
        await sleep(wait, st.wake.signal).catch(() => {});
        st.wake = null;
      }
    } finally {
      st.pumping = false;
    }
  }

  function stateOf(kind: string): KindState {
    let st = kinds.get(kind);
    if (!st) {
      st = { stock: 0, stockUntil: 0, waiters: [], pumping: false, recent: [], wake: null };
      kinds.set(kind, st);
    }
    return st;
  }

  function beforeRequest(
    kind: string,
    opts: { signal?: AbortSignal; deadline?: number } = {},
  ): Promise<void> {
    const st = stateOf(kind);
    const t = now();
    dropExpired(st, t);
    if (st.waiters.length === 0 && st.stock > 0 && !urgent) {
      st.stock--;
      letThrough(st, { since: t }, t);
      return Promise.resolve();
    }
    if (opts.signal?.aborted) return Promise.reject(opts.signal.reason);
    return new Promise<void>((resolve, reject) => {
      const signal = opts.signal;
      const onAbort = () => {
        const i = st.waiters.indexOf(w);
        if (i >= 0) st.waiters.splice(i, 1);
        if (st.waiters.length === 0) st.wake?.abort();
        reject(signal?.reason ?? new Error("aborted"));
      };
      const w: Waiter = {
        since: t,
        deadline: opts.deadline,
        resolve,
        reject,
        detach: () => signal?.removeEventListener("abort", onAbort),
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      st.waiters.push(w);
      void pump(kind, st);
    });
  }

  function flush(): Promise<void> {
    if (flushing) return flushing.then(() => pending.size ? flush() : undefined);
    if (pending.size === 0) return Promise.resolve();
    const batch = [...pending.values()];
    pending.clear();
    lastFlush = now();
    flushing = store.observe(batch)
      .catch((e) => log("rate budget observation not saved", { error: String(e) }))
      .finally(() => {
        flushing = null;
      });
    return flushing;
  }

  function observe(res: ObservedResponse) {
    const found = observationsFor(provider, res, now());
    if (found.length === 0) return;
    let throttled = false;
    for (const x of found) {
      const key = x.throttled ? `${x.class}:429` : x.class;
      pending.set(key, { ...pending.get(key), ...x });
      if (x.throttled) {
        throttled = true;
        stats.throttled++;
      }
    }
    if (throttled) {
      const p = flush();
      urgent = p;
      void p.finally(() => {
        if (urgent === p) urgent = null;
      });
    } else if (now() - lastFlush >= flushMs) {
      void flush();
    }
  }

  return {
    beforeRequest,
    observe,
    flush,
    stats: () => ({ ...stats, waits: [...stats.waits] }),
  };
}

/** The gate of one connection and lane over its SQL budget. */
export function createBudgetGate(
  sql: Sql,
  conn: { id: string; provider: ProviderName },
  o: GateOptions,
): BudgetGate {
  return createGate(sqlBudgetStore(sql, conn.id), conn.provider, o);
}
