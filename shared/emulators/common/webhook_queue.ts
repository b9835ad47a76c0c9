/**
 * Outgoing webhook delivery: bounded concurrency, per-attempt request
 * building (fresh signature timestamps, current record data), retries with a
 * provider-specific schedule multiplied by `timeScale`, and injected faults
 * (drop, duplicate, reorder).
 *
 * `timeScale` only scales retry delays (1 = real provider timing, 0.001 makes
 * a 30 s retry 30 ms). Request timeouts are given in real ms by the caller.
 */
import type { Faults } from "./faults.ts";
import { sleep } from "./http.ts";

export interface WebhookRequest {
  url: string;
  method?: string;
  headers: Record<string, string>;
  body: string;
}

export interface RetryPolicy {
  /** Delay before attempt 2, 3, … in real-provider ms (scaled by timeScale). */
  delaysMs: readonly number[];
  /** Per-attempt response timeout in ms (not scaled). */
  timeoutMs: number;
}

export interface DeliveryJob {
  /** Short description for the delivery log, e.g. "contact.creation ×3". */
  label: string;
  /** Build the request for attempt n (1-based); null = nothing to send any more. */
  build(attempt: number): WebhookRequest | null;
  /** Decide success from status and body (default: any 2xx). */
  isSuccess?(status: number, body: string): boolean;
  policy: RetryPolicy;
  /** Called once the job is finished (delivered, dropped or given up). */
  onSettled?(outcome: "delivered" | "dropped" | "failed"): void;
}

export interface DeliveryRecord {
  seq: number;
  jobId: number;
  label: string;
  attempt: number;
  url: string;
  at: string;
  status: number | null;
  ok: boolean;
  error?: string;
  durationMs: number;
  /** Fault annotations. */
  duplicate?: boolean;
  reordered?: boolean;
  dropped?: boolean;
  /** Last attempt of a job that was given up. */
  gaveUp?: boolean;
  /** Request body that was sent (kept for the last `keepBodies` records). */
  body?: string;
  headers?: Record<string, string>;
}

interface Pending {
  id: number;
  job: DeliveryJob;
  attempt: number;
  duplicate: boolean;
  reordered: boolean;
}

export interface WebhookQueueOptions {
  faults: Faults;
  timeScale: number;
  maxConcurrency: number;
  /** Keep request bodies/headers in the log (useful in tests). */
  keepBodies?: number;
  log?: (line: string) => void;
}

export class WebhookQueue {
  #ready: Pending[] = [];
  #timers = new Set<number>();
  #inFlight = 0;
  #nextJob = 1;
  #nextRecord = 1;
  #closed = false;
  #abort = new AbortController();
  #idleWaiters: Array<() => void> = [];
  #records: DeliveryRecord[] = [];
  #maxRecords = 10_000;
  readonly stats = {
    enqueued: 0,
    attempts: 0,
    delivered: 0,
    failedAttempts: 0,
    gaveUp: 0,
    dropped: 0,
    duplicated: 0,
    reordered: 0,
  };

  constructor(private opts: WebhookQueueOptions) {}

  set timeScale(v: number) {
    this.opts.timeScale = v;
  }
  get timeScale(): number {
    return this.opts.timeScale;
  }
  set maxConcurrency(v: number) {
    this.opts.maxConcurrency = v;
    this.#pump();
  }

  enqueue(job: DeliveryJob): number {
    if (this.#closed) return 0;
    const id = this.#nextJob++;
    this.stats.enqueued++;
    if (this.opts.faults.dropWebhook()) {
      this.stats.dropped++;
      this.#record({
        jobId: id,
        label: job.label,
        attempt: 1,
        url: "",
        status: null,
        ok: false,
        durationMs: 0,
        dropped: true,
      });
      job.onSettled?.("dropped");
      this.#checkIdle();
      return id;
    }
    const p: Pending = { id, job, attempt: 1, duplicate: false, reordered: false };
    if (this.opts.faults.reorderWebhook()) {
      p.reordered = true;
      this.stats.reordered++;
      // Hold it back: it is released after later jobs had a chance to go first.
      this.#later(this.opts.faults.config.webhookReorderHoldMs, () => this.#push(p));
      return id;
    }
    this.#push(p);
    return id;
  }

  /** Delivery log (oldest first). */
  get deliveries(): readonly DeliveryRecord[] {
    return this.#records;
  }

  clearLog(): void {
    this.#records = [];
  }

  get pending(): number {
    return this.#ready.length + this.#inFlight + this.#timers.size + this.#holds;
  }

  #holds = 0;

  /** Count work that is about to be enqueued (e.g. events waiting to be batched). */
  retain(): void {
    this.#holds++;
  }

  release(): void {
    if (this.#holds > 0) this.#holds--;
    this.#checkIdle();
  }

  /** Resolves true once nothing is queued, in flight or waiting for a retry. */
  idle(timeoutMs = 30_000): Promise<boolean> {
    if (this.pending === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#idleWaiters = this.#idleWaiters.filter((w) => w !== done);
        resolve(false);
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.#idleWaiters.push(done);
    });
  }

  /** Stop: cancel timers, abort in-flight requests, wait for them to finish. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#holds = 0;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    this.#ready = [];
    this.#abort.abort();
    while (this.#inFlight > 0) await sleep(1);
    this.#checkIdle();
  }

  /** Drop everything queued (used by admin reset) without closing. */
  cancelAll(): void {
    this.#holds = 0;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    this.#ready = [];
    this.#checkIdle();
  }

  #later(ms: number, fn: () => void): void {
    if (this.#closed) return;
    const t = setTimeout(() => {
      this.#timers.delete(t);
      fn();
      this.#checkIdle();
    }, Math.max(0, ms));
    this.#timers.add(t);
  }

  #push(p: Pending): void {
    if (this.#closed) return;
    this.#ready.push(p);
    this.#pump();
  }

  #pump(): void {
    while (!this.#closed && this.#inFlight < this.opts.maxConcurrency && this.#ready.length > 0) {
      const p = this.#ready.shift()!;
      this.#inFlight++;
      this.#attempt(p).finally(() => {
        this.#inFlight--;
        this.#pump();
        this.#checkIdle();
      });
    }
  }

  async #attempt(p: Pending): Promise<void> {
    let req: WebhookRequest | null;
    try {
      req = p.job.build(p.attempt);
    } catch (e) {
      this.opts.log?.(`webhook ${p.job.label}: building the request failed: ${e}`);
      req = null;
    }
    if (!req) {
      p.job.onSettled?.("dropped");
      return;
    }
    this.stats.attempts++;
    const started = performance.now();
    let status: number | null = null;
    let error: string | undefined;
    let ok = false;
    const ctrl = new AbortController();
    const onClose = () => ctrl.abort();
    this.#abort.signal.addEventListener("abort", onClose, { once: true });
    const timer = setTimeout(() => ctrl.abort(), p.job.policy.timeoutMs);
    try {
      const res = await fetch(req.url, {
        method: req.method ?? "POST",
        headers: req.headers,
        body: req.body,
        signal: ctrl.signal,
      });
      const text = await res.text();
      status = res.status;
      ok = p.job.isSuccess
        ? p.job.isSuccess(res.status, text)
        : res.status >= 200 && res.status < 300;
      if (!ok) error = `HTTP ${res.status}${text ? `: ${text.slice(0, 200)}` : ""}`;
    } catch (e) {
      error = ctrl.signal.aborted && !this.#closed
        ? `timeout after ${p.job.policy.timeoutMs} ms`
        : String(e);
    } finally {
      clearTimeout(timer);
      this.#abort.signal.removeEventListener("abort", onClose);
    }
    const durationMs = Math.round(performance.now() - started);
    const maxAttempts = 1 + p.job.policy.delaysMs.length;
    const gaveUp = !ok && p.attempt >= maxAttempts;
    this.#record({
      jobId: p.id,
      label: p.job.label,
      attempt: p.attempt,
      url: req.url,
      status,
      ok,
      error,
      durationMs,
      duplicate: p.duplicate || undefined,
      reordered: p.reordered || undefined,
      gaveUp: gaveUp || undefined,
      body: req.body,
      headers: req.headers,
    });
    if (this.#closed) return;
    if (ok) {
      this.stats.delivered++;
      if (!p.duplicate && this.opts.faults.duplicateWebhook()) {
        this.stats.duplicated++;
        // Re-send the identical request shortly after, as an at-least-once system does.
        const copy = req;
        this.#later(
          5,
          () =>
            this.#push({
              id: p.id,
              job: {
                ...p.job,
                build: () => copy,
                onSettled: undefined,
                policy: { ...p.job.policy, delaysMs: [] },
              },
              attempt: p.attempt,
              duplicate: true,
              reordered: false,
            }),
        );
      }
      if (!p.duplicate) p.job.onSettled?.("delivered");
      return;
    }
    this.stats.failedAttempts++;
    if (gaveUp) {
      this.stats.gaveUp++;
      p.job.onSettled?.("failed");
      this.opts.log?.(`webhook ${p.job.label} gave up after ${p.attempt} attempts: ${error}`);
      return;
    }
    const delay = p.job.policy.delaysMs[p.attempt - 1] * this.opts.timeScale;
    this.#later(delay, () => this.#push({ ...p, attempt: p.attempt + 1 }));
  }

  #record(r: Omit<DeliveryRecord, "seq" | "at">): void {
    const rec: DeliveryRecord = { seq: this.#nextRecord++, at: new Date().toISOString(), ...r };
    const keep = this.opts.keepBodies ?? 1000;
    this.#records.push(rec);
    if (this.#records.length > keep) {
      const old = this.#records[this.#records.length - 1 - keep];
      delete old.body;
      delete old.headers;
    }
    if (this.#records.length > this.#maxRecords) {
      this.#records.splice(0, this.#records.length - this.#maxRecords);
    }
  }

  #checkIdle(): void {
    if (this.pending !== 0 || this.#idleWaiters.length === 0) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of waiters) w();
  }
}
