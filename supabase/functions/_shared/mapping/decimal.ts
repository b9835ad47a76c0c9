// Decimal arithmetic on strings where a float would invent digits: 57.7 / 100 in binary
// floating point is 0.5770000000000001, the string shift gives "0.577".

const DECIMAL = /^([+-]?)(\d*)(?:\.(\d*))?(?:e([+-]?\d+))?$/i;

/** Canonical decimal text of a number or numeric string, or null when it is not one. */
export function decimalText(v: unknown): string | null {
  if (typeof v === "number") return Number.isFinite(v) ? shiftDecimal(String(v), 0) : null;
  if (typeof v !== "string") return null;
  return shiftDecimal(v.trim(), 0);
}

/**
 * Moves the decimal point of `s` by `places` (positive: multiply by 10^places) without leaving
 * decimal notation: "12.5", -2 -> "0.125"; "1e-7", 2 -> "0.00001". Null when `s` is not a
 * decimal number.
 */
export function shiftDecimal(s: string, places: number): string | null {
  const m = DECIMAL.exec(s);
  if (!m || (m[2] === "" && (m[3] ?? "") === "")) return null;
  const [, sign, int, frac = "", exp = "0"] = m;
  const digits = int + frac;
  const point = int.length + Number(exp) + places;
  let whole: string;
  let fraction: string;
  if (point <= 0) {
    whole = "0";
    fraction = "0".repeat(-point) + digits;
  } else if (point >= digits.length) {
    whole = digits + "0".repeat(point - digits.length);
    fraction = "";
  } else {
    whole = digits.slice(0, point);
    fraction = digits.slice(point);
  }
  whole = whole.replace(/^0+(?=\d)/, "");
  fraction = fraction.replace(/0+$/, "");
  const body = fraction ? `${whole}.${fraction}` : whole;
  return sign === "-" && /[1-9]/.test(body) ? `-${body}` : body;
}
