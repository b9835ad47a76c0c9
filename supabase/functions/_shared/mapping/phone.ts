// E.164 normalisation with libphonenumber-js (max metadata) at a fraction of its cost per call.
// Parsing stays the library's. Validity is PhoneNumber.isValid() of libphonenumber-js 1.13.16
// (isValidNumber -> getNumberType) on the library's own metadata and numbering-plan selection;
// only the patterns are compiled once per plan: the library builds a new RegExp from the
// pattern text on every test (matchesEntirely), which was most of the ~15-25 µs a number cost.
// The same held for parsing: where countries share a calling code (+1: US, CA and 23 more; +44,
// +7, ...) the library finds the number's country by testing it against each country's
// leading digits and type patterns, again building each RegExp per test (~25 µs a NANP number,
// more for junk, which fails every country). So the parse runs on a copy of the metadata that
// lists only each calling code's main country (the national number it extracts does not depend
// on which), and the country is found here by the library's rule (getCountryByNationalNumber)
// with compiled patterns.
// tests/unit/phone.test.ts checks both against the library on a large corpus; recheck it when
// the library is upgraded.
import {
  type CountryCode,
  Metadata,
  type MetadataJson,
  parsePhoneNumberFromString,
  type PhoneNumber,
} from "libphonenumber-js/core";
import max from "libphonenumber-js/max/metadata";

const full = max as unknown as MetadataJson & { country_calling_codes: Record<string, string[]> };
/** The parse's metadata: one country per calling code, so the parse never searches for one. */
const parseMetadata = {
  ...full,
  country_calling_codes: Object.fromEntries(
    Object.entries(full.country_calling_codes).map((
      [cc, countries],
    ) => [cc, countries.slice(0, 1)]),
  ),
} as MetadataJson;

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
  /** Matches at the start of the national number when the plan has leading digits. */
  leadingDigits: RegExp | null;
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
  metadata ??= new Metadata(full);
  metadata.selectNumberingPlan(selector as CountryCode);
  const m = metadata as unknown as {
    leadingDigits(): string | undefined;
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
  const leading = m.leadingDigits();
  plan = {
    leadingDigits: leading ? new RegExp(`^(?:${leading})`) : null,
    nationalNumber: whole(m.nationalNumberPattern()),
    types,
  };
  plans.set(selector, plan);
  return plan;
}

/** getNumberType(...) !== undefined: the national pattern and one type pattern match. */
function hasType(plan: PlanCheck, nn: string): boolean {
  if (!plan.nationalNumber.test(nn) || plan.types === null) return false;
  for (const t of plan.types) {
    if (t.lengths && t.lengths.indexOf(nn.length) < 0) continue;
    if (t.re.test(nn)) return true;
  }
  return false;
}

/** isValid() for the plan `selector` (a country, or a calling code's main country). */
function validIn(selector: string, nn: string): boolean {
  const plan = planFor(selector);
  // Without per-type patterns the national pattern decides.
  return plan.types === null ? plan.nationalNumber.test(nn) : hasType(plan, nn);
}

/** Same answer as `n.isValid()`. */
export function isValidPhone(n: PhoneNumber): boolean {
  return validIn(n.country || n.countryCallingCode, n.nationalNumber || "");
}

/**
 * getCountryByCallingCode's answer: the only country of the calling code, else the first whose
 * leading digits start the number or, for countries without them, whose type patterns match.
 */
function countryOf(callingCode: string, nn: string): string | undefined {
  const countries = full.country_calling_codes[callingCode];
  if (!countries) return undefined;
  if (countries.length === 1) return countries[0];
  for (const country of countries) {
    const plan = planFor(country);
    if (plan.leadingDigits) {
      if (nn && plan.leadingDigits.test(nn)) return country;
    } else if (hasType(plan, nn)) return country;
  }
  return undefined;
}

/** Same answer as parsing with the full metadata and asking `isValid()`, without its search. */
function isValidParsed(n: PhoneNumber, region: CountryCode | undefined): boolean {
  const nn = n.nationalNumber || "";
  // A national number read in `region` keeps that country when none is found; a number that
  // carried its calling code has none then (the library's parse does the same).
  const national =
    (n as unknown as { __countryCallingCodeSource?: string }).__countryCallingCodeSource ===
      undefined;
  const country = countryOf(n.countryCallingCode, nn) ?? (national ? region : undefined);
  return validIn(country || n.countryCallingCode, nn);
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
  const parsed = parsePhoneNumberFromString(raw.replace(/^00/, "+"), {
    defaultCountry: region,
  }, parseMetadata);
  const e164 = parsed && isValidParsed(parsed, region) ? parsed.number : null;
  if (memo.size >= MEMO_MAX) memo.clear();
  memo.set(key, e164);
  return e164;
}
