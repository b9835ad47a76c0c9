// Text Postgres cannot store, cleaned where CRM data enters the mapper: a NUL (U+0000) is
// rejected by both text and jsonb, and a lone UTF-16 surrogate (U+D800–U+DFFF without its pair,
// legal in JSON escapes and JS strings) is rejected by jsonb. One such value used to fail its
// whole page, and with it every later run of the stream. NULs are removed; lone surrogates
// become U+FFFD (what TextEncoder and String.prototype.toWellFormed do); valid pairs (emoji)
// are left alone. Strings in nested objects and arrays are cleaned too, keys included.

/** What was changed in one value; empty when nothing was. */
export interface Cleaning {
  nul: boolean;
  surrogate: boolean;
}

/** The string Postgres can store, or the same string when it already can. */
export function cleanString(s: string, found?: Cleaning): string {
  const nul = s.includes("\0");
  const wellFormed = s.isWellFormed();
  if (!nul && wellFormed) return s;
  if (found) {
    found.nul ||= nul;
    found.surrogate ||= !wellFormed;
  }
  const noNul = nul ? s.replaceAll("\0", "") : s;
  return wellFormed ? noNul : noNul.toWellFormed();
}

/** `v` with every string in it cleaned; the same object when nothing needed it. */
export function cleanValue(v: unknown, found: Cleaning): unknown {
  if (typeof v === "string") return cleanString(v, found);
  if (v === null || typeof v !== "object") return v;
  if (Array.isArray(v)) {
    let out: unknown[] | null = null;
    for (let i = 0; i < v.length; i++) {
      const c = cleanValue(v[i], found);
      if (c !== v[i]) (out ??= [...v])[i] = c;
    }
    return out ?? v;
  }
  if (v instanceof Date) return v;
  let out: Record<string, unknown> | null = null;
  for (const [k, x] of Object.entries(v)) {
    const ck = cleanString(k, found);
    const cx = cleanValue(x, found);
    if (ck !== k || cx !== x) {
      out ??= { ...(v as Record<string, unknown>) };
      if (ck !== k) delete out[k];
      out[ck] = cx;
    }
  }
  return out ?? v;
}

/** The warning text for a cleaned value of `property`. */
export function cleaningMessage(property: string, found: Cleaning): string {
  const what = [
    found.nul ? "NUL characters removed" : "",
    found.surrogate ? "lone UTF-16 surrogates replaced with U+FFFD" : "",
  ].filter(Boolean).join(", ");
  return `${cleanString(property)}: ${what} (Postgres cannot store them)`;
}
