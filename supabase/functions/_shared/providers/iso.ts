// Timestamps to ISO 8601 UTC with milliseconds (RemoteRecord.modifiedAt), one or two per record.
// CRMs mostly send that form already (HubSpot) or it with a "+0000" offset (Salesforce); such
// text is returned as is when every field is in range, which is exactly when
// `new Date(s).toISOString()` would give it back (out-of-range days and hours are rolled over
// or rejected by Date, so those go through Date).

function num(s: string, at: number, len: number): number {
  let v = 0;
  for (let i = at; i < at + len; i++) {
    const d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v;
}

const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** True when `s` is `YYYY-MM-DDTHH:mm:ss.sssZ` with every field in range. */
function canonical(s: string): boolean {
  if (
    s.length !== 24 || s[4] !== "-" || s[7] !== "-" || s[10] !== "T" || s[13] !== ":" ||
    s[16] !== ":" || s[19] !== "." || s[23] !== "Z"
  ) return false;
  const y = num(s, 0, 4), mo = num(s, 5, 2), d = num(s, 8, 2);
  if (y < 0 || mo < 1 || mo > 12 || d < 1) return false;
  const leap = y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
  if (d > (mo === 2 && leap ? 29 : DAYS[mo - 1])) return false;
  const h = num(s, 11, 2), mi = num(s, 14, 2), sec = num(s, 17, 2);
  return h >= 0 && h <= 23 && mi >= 0 && mi <= 59 && sec >= 0 && sec <= 59 && num(s, 20, 3) >= 0;
}

/** `new Date(s).toISOString()`, or null for an invalid date. */
export function isoFromText(s: string): string | null {
  if (canonical(s)) return s;
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

/** Salesforce datetimes ("2024-05-01T12:00:00.000+0000") as ISO UTC, or null. */
export function isoFromSalesforce(s: string): string | null {
  if (s.length === 28 && s.endsWith("+0000")) {
    const z = `${s.slice(0, 23)}Z`;
    if (canonical(z)) return z;
  }
  const d = new Date(s.replace(/\+0000$/, "Z"));
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}
