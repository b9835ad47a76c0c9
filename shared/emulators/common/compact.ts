/**
 * Compact copy of a JSON value, used once after seeding so that thousands of seeded accounts
 * stay small. V8 keeps an object whose properties were added one computed key at a time
 * (`fields[def.name] = …`, dozens of fields) in dictionary mode, and generated strings as
 * concatenation trees; a JSON round trip rebuilds both as fast-mode objects and flat strings.
 * Measured on 20k seeded Salesforce records: 2.8 KB → 1.0 KB of heap per record.
 * Only for plain JSON data (keys with `undefined` values are dropped).
 */
export function compactJson<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}
