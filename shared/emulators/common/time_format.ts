/**
 * Fast UTC timestamp formatting. `Date#toISOString` costs close to a
 * microsecond in V8 and list endpoints format two timestamps per record, so
 * this does the civil-date arithmetic directly (Howard Hinnant's
 * days-to-civil algorithm) with two-digit lookups.
 */

const D2 = Array.from({ length: 100 }, (_, i) => (i < 10 ? "0" : "") + i);
const D3 = Array.from({ length: 1000 }, (_, i) => (i < 10 ? "00" : i < 100 ? "0" : "") + i);

function parts(ms: number): [number, number, number, number] {
  const days = Math.floor(ms / 86_400_000);
  const msOfDay = ms - days * 86_400_000;
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365,
  );
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  const y = yoe + era * 400 + (m <= 2 ? 1 : 0);
  return [y, m, d, msOfDay];
}

/** `YYYY-MM-DDTHH:mm:ss` plus the given millisecond/zone suffix builder. */
function base(ms: number): [string, number] {
  const [y, m, d, t] = parts(ms);
  const h = Math.floor(t / 3_600_000);
  const mi = Math.floor((t % 3_600_000) / 60_000);
  const s = Math.floor((t % 60_000) / 1000);
  const year = y >= 1000 && y <= 9999 ? String(y) : new Date(ms).toISOString().slice(0, -20);
  return [`${year}-${D2[m]}-${D2[d]}T${D2[h]}:${D2[mi]}:${D2[s]}`, t % 1000];
}

/** Same output as `new Date(ms).toISOString()` for years 1000–9999. */
export function isoString(ms: number): string {
  const [b, frac] = base(ms);
  return `${b}.${D3[frac]}Z`;
}

/** `…T10:15:03.000+0000` (Salesforce REST datetimes). */
export function isoOffset(ms: number): string {
  const [b, frac] = base(ms);
  return `${b}.${D3[frac]}+0000`;
}

/** `…T10:15:03Z` (second precision, Pipedrive API v2). */
export function isoSeconds(ms: number): string {
  return `${base(ms)[0]}Z`;
}
