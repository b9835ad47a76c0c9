// mapping/phone.ts reimplements PhoneNumber.isValid() with precompiled patterns; it must agree
// with the library on everything: numbers of every country in national and international
// notation, the same numbers one digit short / long / changed, the emulators' generated phones
// (junk included), and random digit strings, read in many default regions.
import assert from "node:assert/strict";
import {
  type CountryCode,
  getCountries,
  getCountryCallingCode,
  parsePhoneNumberFromString,
} from "libphonenumber-js/max";
import { isValidPhone, toE164 } from "../../supabase/functions/_shared/mapping/phone.ts";
import { generatePhone, PHONE_REGIONS } from "../../shared/emulators/common/phones.ts";
import { Prng } from "../../shared/emulators/common/prng.ts";

/** What transforms.ts did before phone.ts: the library end to end. */
function reference(raw: string, region: CountryCode | undefined): string | null {
  const parsed = parsePhoneNumberFromString(raw.replace(/^00/, "+"), region);
  return parsed?.isValid() ? parsed.number : null;
}

/** One example mobile number per country, national significant digits (shipped with the library). */
const examples: Record<string, string> = JSON.parse(
  Deno.readTextFileSync(
    new URL("../../node_modules/libphonenumber-js/examples.mobile.json", import.meta.url),
  ),
);

function corpus(): [string, CountryCode | undefined][] {
  const p = new Prng(42);
  const countries = getCountries();
  const regions: (CountryCode | undefined)[] = [undefined, "US", "GB", "DE", "IN", "CA"];
  const out: [string, CountryCode | undefined][] = [];
  const add = (raw: string, own?: CountryCode) => {
    for (const r of own ? [own, ...regions] : regions) out.push([raw, r]);
  };
  for (const [country, national] of Object.entries(examples)) {
    const cc = getCountryCallingCode(country as CountryCode);
    const variants = [
      national,
      national.slice(0, -1),
      national + String(p.int(0, 9)),
      national.slice(0, -2) + String(p.int(0, 9)) + national.slice(-1),
      `0${national}`,
    ];
    for (const v of variants) {
      add(v, country as CountryCode);
      add(`+${cc} ${v}`);
      add(`00${cc}${v}`);
    }
  }
  for (let i = 0; i < 6000; i++) {
    out.push([generatePhone(p, p.pick(PHONE_REGIONS)).raw, p.pick(countries)]);
    out.push([generatePhone(p).raw, p.pick(regions)]);
  }
  for (let i = 0; i < 6000; i++) {
    const digits = p.digits(p.int(3, 17));
    const prefix = p.pick(["", "+", "00", "0", "+1", "(", "tel:+"]);
    out.push([prefix + digits, p.pick([...regions, p.pick(countries)])]);
  }
  return out;
}

Deno.test("phone: isValidPhone and toE164 agree with libphonenumber-js on a wide corpus", () => {
  let valid = 0;
  const cases = corpus();
  for (const [raw, region] of cases) {
    const parsed = parsePhoneNumberFromString(raw.replace(/^00/, "+"), region);
    if (parsed) {
      assert.equal(isValidPhone(parsed), parsed.isValid(), `${raw} in ${region}`);
      if (parsed.isValid()) valid++;
    }
    // Twice: the second answer comes from the memo.
    for (let k = 0; k < 2; k++) assert.equal(toE164(raw, region), reference(raw, region), raw);
  }
  // The corpus must exercise both outcomes in earnest.
  assert.ok(valid > cases.length / 5 && valid < cases.length * 0.9, `${valid} of ${cases.length}`);
});
