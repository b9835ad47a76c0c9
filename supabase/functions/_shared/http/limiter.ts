import { BudgetExhaustedError, sleep } from "./retry.ts";

/** The shared rate budget is paused (a 429 until the window clears, the daily limit spent, only
 * the reserve left) for longer than a caller should sleep: its job is deferred until
 * `pausedUntil` (ISO) instead. guardedCall turns it into ProviderError(…, "retry") with
 * pausedUntil. */
export class BudgetPausedError extends BudgetExhaustedError {
  constructor(message: string, readonly pausedUntil: string, readonly reason: string) {
    super(message);
    this.name = "BudgetPausedError";
  }
}

// In-process rate limiting: a sliding window of request start times. The engine's calls take
// grants from the shared SQL budget instead (../sync/budget.ts); this limiter paces tools that
// run without a database (scripts/bench) and the adapter tests.
// (HubSpot private apps: 100-190 / 10 s; search 5 / s. Salesforce: daily org budget, no
// burst window. Pipedrive: burst per 2 s by plan.) A 429 can still come (other apps share
// the budget): `pause` stops all callers until the server's wait has passed.

export interface Clock {
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export class SlidingWindowLimiter {
  #starts: number[] = [];
  #pausedUntil = 0;
  #queue: Promise<void> = Promise.resolve();

  constructor(readonly limit: number, readonly windowMs: number, private clock: Clock) {
    if (limit < 1 || windowMs <= 0) throw new RangeError("limit and window must be positive");
  }

  /** Resolves when one more request may start; callers are served in arrival order. With a
   * deadline (epoch ms), a wait that would end at or past it rejects at once with
   * BudgetExhaustedError instead of sleeping: the run's budget counts the limiter's waits. */
  acquire(signal?: AbortSignal, deadline?: number): Promise<void> {
    const turn = this.#queue.then(() => this.#wait(signal, deadline));
    this.#queue = turn.catch(() => {});
    return turn;
  }

  pause(ms: number): void {
    this.#pausedUntil = Math.max(this.#pausedUntil, this.clock.now() + ms);
  }

  async #wait(signal?: AbortSignal, deadline?: number): Promise<void> {
    const hold = (until: number, now: number) => {
      if (deadline !== undefined && until >= deadline) {
        throw new BudgetExhaustedError(
          `rate limit wait of ${until - now} ms would end past the run's deadline`,
        );
      }
      return this.clock.sleep(until - now, signal);
    };
    for (;;) {
      const now = this.clock.now();
      if (now < this.#pausedUntil) {
        await hold(this.#pausedUntil, now);
        continue;
      }
      while (this.#starts.length && this.#starts[0] <= now - this.windowMs) this.#starts.shift();
      if (this.#starts.length < this.limit) {
        this.#starts.push(now);
        return;
      }
      await hold(this.#starts[0] + this.windowMs, now);
    }
  }
}

export const realClock: Clock = { now: () => Date.now(), sleep };
