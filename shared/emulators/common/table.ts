/**
 * In-memory table with the two orders every CRM list API needs:
 *
 * - creation order (`seq`, which is also numeric-id / Salesforce-Id order),
 * - modification order `(modifiedAt, seq)` for delta queries.
 *
 * Both are plain sorted arrays searched with binary search. A write moves
 * one row inside the modification index (binary-search remove + insert; new
 * timestamps are usually the largest, so the insert is an append). Listing a
 * page is O(log n + page), so walking 100k rows is linear overall.
 */

export interface Row {
  id: string;
  /** Monotonic creation number; defines id order. */
  seq: number;
  /** Epoch ms used for the modification index. */
  modifiedAt: number;
  /** Write counter (bumped by touch/bulkSetModified); invalidates cached JSON. */
  rev?: number;
}

interface Indexed {
  /** modifiedAt value under which the row currently sits in the index. */
  __mk?: number;
}

function cmp(aKey: number, aSeq: number, bKey: number, bSeq: number): number {
  return aKey !== bKey ? aKey - bKey : aSeq - bSeq;
}

export interface TableSnapshot<R> {
  nextSeq: number;
  rows: R[];
}

function stripIndexKey<R extends Row>(row: R): R {
  const { __mk: _, ...rest } = row as R & Indexed;
  return rest as unknown as R;
}

export class Table<R extends Row> {
  readonly byId = new Map<string, R>();
  /** Rows sorted by seq. */
  readonly bySeq: R[] = [];
  /** Rows sorted by (modifiedAt, seq). */
  readonly byModified: R[] = [];
  /**
   * Bumped by every change to the table's rows or indexes (insert, touch, remove, reindex,
   * clear), so derived data such as per-index counts can be cached until the next write.
   */
  version = 0;
  #nextSeq = 1;

  get size(): number {
    return this.byId.size;
  }

  /** Next creation number (callers may use it to derive ids). */
  peekSeq(): number {
    return this.#nextSeq;
  }

  takeSeq(): number {
    return this.#nextSeq++;
  }

  get(id: string): R | undefined {
    return this.byId.get(id);
  }

  /**
   * Add a row. With `deferIndex` the modification index is left unsorted
   * (bulk loading); call `reindex()` once afterwards.
   */
  insert(row: R, deferIndex = false): R {
    if (this.byId.has(row.id)) throw new Error(`duplicate id ${row.id}`);
    if (row.seq >= this.#nextSeq) this.#nextSeq = row.seq + 1;
    this.version++;
    this.byId.set(row.id, row);
    const seqs = this.bySeq;
    if (seqs.length === 0 || seqs[seqs.length - 1].seq < row.seq) seqs.push(row);
    else seqs.splice(this.seqLowerBound(row.seq), 0, row);
    if (deferIndex) this.byModified.push(row);
    else this.#indexInsert(row);
    return row;
  }

  /** Move a row to a new modification time. */
  touch(row: R, modifiedAt: number): void {
    row.rev = (row.rev ?? 0) + 1;
    this.version++;
    this.#indexRemove(row);
    row.modifiedAt = modifiedAt;
    this.#indexInsert(row);
  }

  /** Remove a row completely (hard delete). */
  remove(row: R): void {
    if (!this.byId.delete(row.id)) return;
    this.version++;
    const i = this.seqLowerBound(row.seq);
    if (this.bySeq[i] === row) this.bySeq.splice(i, 1);
    this.#indexRemove(row);
  }

  /** Replace modification times of many rows at once, then re-sort once. */
  bulkSetModified(rows: Iterable<R>, modifiedAt: (row: R) => number): number {
    let n = 0;
    for (const row of rows) {
      row.modifiedAt = modifiedAt(row);
      row.rev = (row.rev ?? 0) + 1;
      n++;
    }
    this.reindex();
    return n;
  }

  reindex(): void {
    this.version++;
    for (const row of this.byModified) (row as R & Indexed).__mk = row.modifiedAt;
    this.byModified.sort((a, b) => cmp(a.modifiedAt, a.seq, b.modifiedAt, b.seq));
  }

  /** The rows and the next creation number, for a snapshot (./snapshot.ts). */
  snapshot(): TableSnapshot<R> {
    return { nextSeq: this.#nextSeq, rows: this.bySeq.map((r) => stripIndexKey(r)) };
  }

  /** Replace the contents with a snapshot's rows (ids and creation numbers kept). */
  load(s: TableSnapshot<R>): void {
    this.clear();
    for (const r of s.rows) this.insert(r, true);
    this.reindex();
    // Ids of rows deleted for good before the snapshot are never handed out again.
    if (s.nextSeq > this.#nextSeq) this.#nextSeq = s.nextSeq;
  }

  clear(): void {
    this.version++;
    this.byId.clear();
    this.bySeq.length = 0;
    this.byModified.length = 0;
    this.#nextSeq = 1;
  }

  /** First position in `bySeq` whose seq is >= `seq`. */
  seqLowerBound(seq: number): number {
    const a = this.bySeq;
    let lo = 0, hi = a.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (a[mid].seq < seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** First position in `byModified` at or after `(modifiedAt, seq)`. */
  modifiedLowerBound(modifiedAt: number, seq = -Infinity): number {
    const a = this.byModified;
    let lo = 0, hi = a.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const r = a[mid] as R & Indexed;
      if (cmp(r.__mk ?? r.modifiedAt, r.seq, modifiedAt, seq) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** First position in `byModified` strictly after `(modifiedAt, seq)`. */
  modifiedUpperBound(modifiedAt: number, seq = Infinity): number {
    const a = this.byModified;
    let lo = 0, hi = a.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const r = a[mid] as R & Indexed;
      if (cmp(r.__mk ?? r.modifiedAt, r.seq, modifiedAt, seq) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  #indexInsert(row: R): void {
    const r = row as R & Indexed;
    r.__mk = row.modifiedAt;
    const a = this.byModified;
    const last = a[a.length - 1] as (R & Indexed) | undefined;
    if (!last || cmp(last.__mk ?? last.modifiedAt, last.seq, row.modifiedAt, row.seq) < 0) {
      a.push(row);
      return;
    }
    a.splice(this.modifiedLowerBound(row.modifiedAt, row.seq), 0, row);
  }

  #indexRemove(row: R): void {
    const r = row as R & Indexed;
    const key = r.__mk ?? row.modifiedAt;
    const i = this.modifiedLowerBound(key, row.seq);
    if (this.byModified[i] === row) this.byModified.splice(i, 1);
    else {
      // Defensive fallback: should not happen, but never leave a stale entry.
      const j = this.byModified.indexOf(row);
      if (j >= 0) this.byModified.splice(j, 1);
    }
  }
}
