// E.164 normalisation with libphonenumber-js (max metadata) at a fraction of its cost per call.
// Parsing stays the library's. Validity is PhoneNumber.isValid() of libphonenumber-js 1.13.16
// (isValidNumber -> getNumberType) on the library's own metadata and numbering-plan selection;
// only the patterns are compiled once per plan: the library builds a new RegExp from the
// pattern text on every test (matchesEntirely), which was most of the ~15-25 µs a number cost.
// tests/unit/phone.test.ts checks this against isValid() on a large corpus; recheck it when
// the library is upgraded.
import {
  type CountryCode,
  Metadata,
  parsePhoneNumberFromString,
  type PhoneNumber,
} from "libphonenumber-js/max";

/** getNumberType's order: fixed line first, then these (order does not change validity). */
const TYPES = [
  "FIXED_LINE",
  "MOBILE",
  "PREMIUM_RATE",
  "TOLL_FREE",
  "SHARED_COST",
  "VOIP",
  "PERSONAL_NUMBER",
  "PAGER",
  "UAN",
  "VOICEMAIL",
] as const;

interface TypeCheck {
  re: RegExp;
  lengths: number[] | undefined;
}

interface PlanCheck {
  nationalNumber: RegExp;
  /** null when the plan has no per-type patterns (then the national pattern decides). */
  types: TypeCheck[] | null;
}

const whole = (pattern: string) => new RegExp(`^(?:${pattern})$`);
const plans = new Map<string, PlanCheck>();
let metadata: Metadata | undefined;

function planFor(selector: string): PlanCheck {
  let plan = plans.get(selector);
  if (plan) return plan;
  metadata ??= new Metadata();
  metadata.selectNumberingPlan(selector as CountryCode);
  const m = metadata as unknown as {
    hasTypes(): boolean;
    nationalNumberPattern(): string;
    type(t: string): { pattern(): string; possibleLengths(): number[] | undefined } | undefined;
  };
  let types: TypeCheck[] | null = null;
  if (m.hasTypes()) {
    types = [];
    for (const t of TYPES) {
      const def = m.type(t);
      // isNumberTypeEqualTo: a type without a pattern never matches.
      if (!def || !def.pattern()) continue;
      types.push({ re: whole(def.pattern()), lengths: def.possibleLengths() });
    }
  }
  plan = { nationalNumber: whole(m.nationalNumberPattern()), types };
  plans.set(selector, plan);
  return plan;
}

/** Same answer as `n.isValid()`. */
export function isValidPhone(n: PhoneNumber): boolean {
  const plan = planFor(n.country || n.countryCallingCode);
  const nn = n.nationalNumber || "";
  if (!plan.nationalNumber.test(nn)) return false;
  if (plan.types === null) return true;
  for (const t of plan.types) {
    if (t.lengths && t.lengths.indexOf(nn.length) < 0) continue;
    if (t.re.test(nn)) return true;
  }
  return false;
}

/**
 * Last results by region and text: CRMs repeat the same placeholder and junk values ("n/a",
 * a switchboard number), which are also the slowest to reject. Cleared when full.
 */
const MEMO_MAX = 10_000;
const memo = new Map<string, string | null>();

/** E.164 of `raw` (already trimmed) read in `region`, or null when it is not a valid number. */
export function toE164(raw: string, region: CountryCode | undefined): string | null {
  const key = `${region ?? ""}\u0000${raw}`;
  const hit = memo.get(key);
  if (hit !== undefined) return hit;
  const parsed = parsePhoneNumberFromString(raw.replace(/^00/, "+"), region);
  const e164 = parsed && isValidPhone(parsed) ? parsed.number : null;
  if (memo.size >= MEMO_MAX) memo.clear();
  memo.set(key, e164);
  return e164;
}
