/**
 * Serialised-JSON memo per record. List endpoints splice the stored JSON of
 * each record into the page instead of rebuilding and re-stringifying it;
 * `Table` bumps a record's `rev` on every write, which invalidates the memo.
 * One variant (e.g. a property selection) is kept per record.
 */

export interface JsonCached {
  rev?: number;
  __json?: { rev: number; key: string; text: string };
}

export function cachedJson(r: JsonCached, key: string, build: () => unknown): string {
  const rev = r.rev ?? 0;
  const c = r.__json;
  if (c && c.rev === rev && c.key === key) return c.text;
  const text = JSON.stringify(build());
  r.__json = { rev, key, text };
  return text;
}
