/**
 * Salesforce record ids: 3-character key prefix + 12 base-62 characters
 * (15, case-sensitive) + 3-character case-safe checksum (18).
 * Base-62 digits in ASCII order (0-9, A-Z, a-z) keep string order equal to
 * creation order, so `ORDER BY Id` and `Id > '…'` tiebreaks behave as in an org.
 * Checksum: https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/field_types.htm#i1435616
 */

const B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

export const KEY_PREFIX: Record<string, string> = {
  Account: "001",
  Contact: "003",
  User: "005",
  Opportunity: "006",
  Lead: "00Q",
  Organization: "00D",
  OutboundMessage: "04k",
  OutboundNotification: "04l",
};

function checksum(id15: string): string {
  let out = "";
  for (let chunk = 0; chunk < 3; chunk++) {
    let bits = 0;
    for (let i = 0; i < 5; i++) {
      const c = id15.charCodeAt(chunk * 5 + i);
      if (c >= 65 && c <= 90) bits |= 1 << i;
    }
    out += SUFFIX[bits];
  }
  return out;
}

/** 18-character id for a key prefix and a creation number. */
export function makeId(prefix: string, seq: number, pod = "5g"): string {
  let n = seq;
  let body = "";
  for (let i = 0; i < 10; i++) {
    body = B62[n % 62] + body;
    n = Math.floor(n / 62);
  }
  const id15 = prefix + pod + body;
  return id15 + checksum(id15);
}

/** Normalise a 15- or 18-character id to 18 characters; null if malformed. */
export function to18(id: string): string | null {
  if (/^[0-9A-Za-z]{18}$/.test(id)) {
    return checksum(id.slice(0, 15)) === id.slice(15).toUpperCase()
      ? id.slice(0, 15) + checksum(id.slice(0, 15))
      : null;
  }
  if (/^[0-9A-Za-z]{15}$/.test(id)) return id + checksum(id);
  return null;
}

export function prefixOf(id: string): string {
  return id.slice(0, 3);
}
