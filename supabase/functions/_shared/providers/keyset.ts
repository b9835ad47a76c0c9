// Keyset paging over "modified since" APIs that sort by one timestamp only (HubSpot search)
// and cap how deep a query may page (HubSpot: 10,000 results, then 400).
//
// Decision: never page with the API's own `after` cursor. Every page is a fresh query from
// the last timestamp seen (`>= t`), so the 10k cap can never be reached and a record modified
// while we page (which moves to the end of a timestamp-sorted result) cannot shift an offset
// and be skipped. The cost is re-reading the records that share the page's last timestamp,
// usually one, so a page of L yields about L-1 new records (≈0.5 % more calls at L = 200).
// When a page holds only one timestamp (a bulk edit gave thousands of records the same
// modified time), `>= t` could never advance, so we switch to a tie phase: `= t` sorted by id
// with `id > last`, then continue with `> t`.

export interface KeysetState {
  /** Current timestamp boundary, epoch milliseconds. */
  t: number;
  /** Forward: `>= t` (gte) or `> t` (gt, after a finished tie phase). */
  op: "gte" | "gt";
  /** Set during a tie phase: page records with modified == t and id > tieAfter. */
  tieAfter?: string;
  /** Ids at timestamp t already delivered (by the forward page before a tie phase). */
  seenAtT: string[];
}

export type KeysetQuery =
  | { kind: "forward"; op: "gte" | "gt"; t: number }
  | { kind: "tie"; t: number; afterId: string };

export interface Keyed {
  id: string;
  modifiedMs: number;
}

export function initialState(fromMs: number): KeysetState {
  return { t: fromMs, op: "gte", seenAtT: [] };
}

export function nextQuery(s: KeysetState): KeysetQuery {
  return s.tieAfter !== undefined
    ? { kind: "tie", t: s.t, afterId: s.tieAfter }
    : { kind: "forward", op: s.op, t: s.t };
}

/** Numeric ids compare as numbers (HubSpot hs_object_id), others as strings. */
export function compareIds(a: string, b: string): number {
  if (/^\d+$/.test(a) && /^\d+$/.test(b)) {
    return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Given the page a query returned (in API order) and the page size asked for, returns the
 * records that are new, the state for the next query, and whether the walk is complete.
 */
export function advance<T extends Keyed>(
  s: KeysetState,
  page: T[],
  pageSize: number,
): { fresh: T[]; state: KeysetState; done: boolean } {
  const q = nextQuery(s);
  const seen = new Set(s.seenAtT);
  if (q.kind === "tie") {
    const fresh = page.filter((r) => !seen.has(r.id));
    if (page.length < pageSize) {
      // The group at t is exhausted; continue strictly after t.
      return { fresh, state: { t: s.t, op: "gt", seenAtT: [] }, done: false };
    }
    return { fresh, state: { ...s, tieAfter: page.at(-1)!.id }, done: false };
  }

  const fresh = page.filter((r) => !(r.modifiedMs === s.t && seen.has(r.id)));
  if (page.length === 0) return { fresh, state: s, done: true };
  const lastT = page.at(-1)!.modifiedMs;
  const atLast = page.filter((r) => r.modifiedMs === lastT).map((r) => r.id);
  const full = page.length >= pageSize;
  if (full && page[0].modifiedMs === lastT) {
    // One timestamp fills the whole page: `>= t` cannot move on. Walk that group by id and
    // deliver it from there, skipping the ids an earlier page already delivered.
    const delivered = lastT === s.t ? s.seenAtT : [];
    return {
      fresh: [],
      state: { t: lastT, op: "gte", tieAfter: "0", seenAtT: delivered },
      done: false,
    };
  }
  const carried = lastT === s.t ? [...new Set([...s.seenAtT, ...atLast])] : atLast;
  return { fresh, state: { t: lastT, op: "gte", seenAtT: carried }, done: !full };
}
