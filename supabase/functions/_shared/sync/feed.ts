// Fetches a stream's pages ahead of the writer and hands them over merged into write batches.
// Every crm.save_inbound_page call has a fixed cost (planning the apply statement, a commit:
// ≈ 10–30 ms), so a provider's small pages (HubSpot search: 200 records) are written together
// when they queue up, up to `batchRecords`; when the writer keeps up, pages go out one by one.
// At most `maxAhead` records wait in memory, and no fetch starts once `mayFetch` says no (the
// deadline is near: a page fetched then would be thrown away unwritten).
/** What the feed needs to know of a page. */
export interface FeedPage {
  count: number;
  checkpoint: unknown;
  done: boolean;
}

export interface FeedOptions<P> {
  batchRecords: number;
  maxAhead: number;
  mayFetch: () => boolean;
  /** Consecutive pages, oldest first, as one. */
  merge: (pages: P[]) => P;
}

export class PageFeed<P extends FeedPage> {
  #queue: P[] = [];
  #queued = 0;
  #ended = false;
  #stopped = false;
  #error: { cause: unknown } | null = null;
  #wakeReader: (() => void) | null = null;
  #wakeFetcher: (() => void) | null = null;

  constructor(
    private readonly fetchPage: (checkpoint: unknown) => Promise<P>,
    checkpoint: unknown,
    private readonly opts: FeedOptions<P>,
  ) {
    this.#run(checkpoint);
  }

  /** The next batch (pages merged, oldest first), or null once the stream has no more. A fetch
   * error is thrown after the pages fetched before it have been handed over. */
  async next(): Promise<P | null> {
    while (this.#queue.length === 0) {
      if (this.#ended) {
        if (this.#error) throw this.#error.cause;
        return null;
      }
      await new Promise<void>((r) => this.#wakeReader = r);
    }
    const taken = [this.#queue.shift()!];
    let n = taken[0].count;
    while (this.#queue.length > 0 && n + this.#queue[0].count <= this.opts.batchRecords) {
      const page = this.#queue.shift()!;
      taken.push(page);
      n += page.count;
    }
    this.#queued -= n;
    this.#wake("fetcher");
    return taken.length === 1 ? taken[0] : this.opts.merge(taken);
  }

  /** No further fetches; a fetch in flight finishes and is dropped. */
  stop(): void {
    this.#stopped = true;
    this.#wake("fetcher");
  }

  async #run(checkpoint: unknown): Promise<void> {
    let first = true;
    try {
      while (!this.#stopped) {
        while (this.#queued >= this.opts.maxAhead && !this.#stopped) {
          await new Promise<void>((r) => this.#wakeFetcher = r);
        }
        if (this.#stopped || (!first && !this.opts.mayFetch())) break;
        first = false;
        const page = await this.fetchPage(checkpoint);
        if (this.#stopped) break;
        this.#queue.push(page);
        this.#queued += page.count;
        this.#wake("reader");
        if (page.done) break;
        checkpoint = page.checkpoint;
      }
    } catch (e) {
      this.#error = { cause: e };
    }
    this.#ended = true;
    this.#wake("reader");
  }

  #wake(who: "reader" | "fetcher"): void {
    const f = who === "reader" ? this.#wakeReader : this.#wakeFetcher;
    if (who === "reader") this.#wakeReader = null;
    else this.#wakeFetcher = null;
    f?.();
  }
}
