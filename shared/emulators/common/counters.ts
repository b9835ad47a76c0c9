/**
 * Request counters per route pattern and per status, so tests can assert
 * e.g. "exactly 3 429s were served" or "the engine made N list calls".
 */

export interface RouteCount {
  total: number;
  byStatus: Record<string, number>;
}

export interface CountersSnapshot {
  total: number;
  byStatus: Record<string, number>;
  routes: Record<string, RouteCount>;
}

export class Counters {
  #total = 0;
  #byStatus = new Map<number, number>();
  #routes = new Map<string, { total: number; byStatus: Map<number, number> }>();

  record(route: string, status: number): void {
    this.#total++;
    this.#byStatus.set(status, (this.#byStatus.get(status) ?? 0) + 1);
    let r = this.#routes.get(route);
    if (!r) {
      r = { total: 0, byStatus: new Map() };
      this.#routes.set(route, r);
    }
    r.total++;
    r.byStatus.set(status, (r.byStatus.get(status) ?? 0) + 1);
  }

  /** Count for one route (optionally one status). */
  count(route: string, status?: number): number {
    const r = this.#routes.get(route);
    if (!r) return 0;
    return status === undefined ? r.total : r.byStatus.get(status) ?? 0;
  }

  /** Count over all routes for one status. */
  status(status: number): number {
    return this.#byStatus.get(status) ?? 0;
  }

  get total(): number {
    return this.#total;
  }

  snapshot(): CountersSnapshot {
    const routes: Record<string, RouteCount> = {};
    for (const [k, v] of [...this.#routes.entries()].sort(([a], [b]) => a.localeCompare(b))) {
      routes[k] = { total: v.total, byStatus: Object.fromEntries(v.byStatus) };
    }
    return { total: this.#total, byStatus: Object.fromEntries(this.#byStatus), routes };
  }

  reset(): void {
    this.#total = 0;
    this.#byStatus.clear();
    this.#routes.clear();
  }
}
