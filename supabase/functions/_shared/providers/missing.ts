// readByIds: the ids a provider answered with neither a record nor an error for are records it
// does not have (deleted, merged away, never existed); they are reported as missing, so callers
// can tell them from records that exist but could not be parsed.
import type { RecordError, RemoteRecord } from "./types.ts";

export function missingIds(
  provider: string,
  wanted: string[],
  answered: (RemoteRecord | RecordError)[],
): RecordError[] {
  const found = new Set(answered.map((r) => r.remoteId));
  return wanted.filter((id) => !found.has(id)).map((id) => ({
    remoteId: id,
    reason: `not found in ${provider}`,
    missing: true,
  }));
}
