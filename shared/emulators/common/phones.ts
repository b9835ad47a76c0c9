/**
 * Phone numbers the way people type them into CRMs: national and
 * international notations, trunk prefixes, `(0)`, extensions, `00`
 * international prefixes, and a share of garbage that no parser should accept.
 *
 * Each generated number carries the ground truth (`e164`, `region`) so tests
 * of the product's normalisation can compare against it. Number ranges use
 * real area codes / mobile prefixes with random subscriber digits.
 */
import type { Prng } from "./prng.ts";

export interface GeneratedPhone {
  /** What the CRM stores. */
  raw: string;
  /** ISO region whose numbering plan the number belongs to. */
  region: string;
  /** E.164 form when the number is valid, else null. */
  e164: string | null;
  /**
   * True when `raw` starts with +country code. Note "+44 (0)20 …" style
   * numbers still need the region (or "(0)" removed) to parse.
   */
  international: boolean;
}

interface Plan {
  region: string;
  cc: string;
  /** National significant number, split in display groups. */
  nsn(p: Prng): string[];
  /** National formats (trunk prefix etc.) from the groups. */
  national: ReadonlyArray<(g: string[]) => string>;
  /** International formats, `cc` given. */
  intl: ReadonlyArray<(g: string[], cc: string) => string>;
}

const j = (g: string[], sep = "") => g.join(sep);

const PLANS: readonly Plan[] = [
  {
    region: "US",
    cc: "1",
    nsn: (p) => [
      String(p.pick([212, 312, 415, 512, 617, 206, 303, 404, 646, 718, 202, 305, 773, 917])),
      String(p.int(2, 9)) + p.pick(["23", "34", "45", "67", "78", "89", "20", "40", "93"]),
      p.digits(4),
    ],
    national: [
      (g) => `(${g[0]}) ${g[1]}-${g[2]}`,
      (g) => `${g[0]}-${g[1]}-${g[2]}`,
      (g) => `${g[0]}.${g[1]}.${g[2]}`,
      (g) => j(g),
      (g) => `1-${g[0]}-${g[1]}-${g[2]}`,
      (g) => `(${g[0]}) ${g[1]}-${g[2]} ext. ${g[2].slice(0, 2)}`,
    ],
    intl: [
      (g, cc) => `+${cc} ${j(g, " ")}`,
      (g, cc) => `+${cc}${j(g)}`,
      (g, cc) => `+${cc} (${g[0]}) ${g[1]}-${g[2]}`,
      (g, cc) => `+${cc}-${j(g, "-")}`,
    ],
  },
  {
    region: "GB",
    cc: "44",
    nsn: (p) =>
      p.chance(0.5) ? ["20", String(p.pick([3, 7, 8])) + p.digits(3), p.digits(4)] : [
        "7" + String(p.int(1, 3)) + p.digits(2),
        p.digits(6),
      ],
    national: [(g) => `0${j(g, " ")}`, (g) => `0${j(g)}`],
    intl: [
      (g, cc) => `+${cc} ${j(g, " ")}`,
      (g, cc) => `+${cc} (0)${j(g, " ")}`,
      (g, cc) => `+${cc}${j(g)}`,
      (g, cc) => `00${cc} ${j(g, " ")}`,
    ],
  },
  {
    region: "DE",
    cc: "49",
    nsn: (p) =>
      p.chance(0.5)
        ? [p.pick(["30", "89", "40", "221", "69"]), p.digits(4), p.digits(4)]
        : [p.pick(["151", "160", "170", "171", "176"]), p.digits(4), p.digits(4)],
    national: [(g) => `0${g[0]} ${g[1]}${g[2]}`, (g) => `0${g[0]}/${g[1]} ${g[2]}`],
    intl: [
      (g, cc) => `+${cc} ${g[0]} ${g[1]}${g[2]}`,
      (g, cc) => `+${cc} (0)${j(g, " ")}`,
      (g, cc) => `00${cc} ${j(g, " ")}`,
      (g, cc) => `+${cc}-${j(g, "-")}`,
    ],
  },
  {
    region: "FR",
    cc: "33",
    nsn: (
      p,
    ) => [
      String(p.pick([1, 2, 3, 4, 5, 6, 7])),
      p.digits(2),
      p.digits(2),
      p.digits(2),
      p.digits(2),
    ],
    national: [(g) => `0${j(g, " ")}`, (g) => `0${j(g)}`, (g) => `0${j(g, ".")}`],
    intl: [(g, cc) => `+${cc} ${j(g, " ")}`, (g, cc) => `+${cc} (0)${j(g, " ")}`],
  },
  {
    region: "IN",
    cc: "91",
    nsn: (p) => [String(p.int(7, 9)) + p.digits(4), p.digits(5)],
    national: [(g) => `0${j(g, " ")}`, (g) => j(g)],
    intl: [(g, cc) => `+${cc} ${j(g, " ")}`, (g, cc) => `+${cc}-${j(g)}`],
  },
  {
    region: "BR",
    cc: "55",
    nsn: (p) => [p.pick(["11", "21", "31"]), "9" + p.digits(4), p.digits(4)],
    national: [(g) => `(${g[0]}) ${g[1]}-${g[2]}`],
    intl: [(g, cc) => `+${cc} ${g[0]} ${g[1]}-${g[2]}`],
  },
  {
    region: "AU",
    cc: "61",
    nsn: (p) =>
      p.chance(0.5) ? ["2", p.pick(["9", "8"]) + p.digits(3), p.digits(4)] : [
        "4" + p.pick(["0", "1", "2", "3", "6"]) + p.digits(1),
        p.digits(3),
        p.digits(3),
      ],
    national: [
      (g) => g.length === 3 && g[0] === "2" ? `(0${g[0]}) ${g[1]} ${g[2]}` : `0${j(g, " ")}`,
    ],
    intl: [(g, cc) => `+${cc} ${j(g, " ")}`],
  },
  {
    region: "JP",
    cc: "81",
    nsn: (p) => p.chance(0.5) ? ["3", p.digits(4), p.digits(4)] : ["90", p.digits(4), p.digits(4)],
    national: [(g) => `0${j(g, "-")}`],
    intl: [(g, cc) => `+${cc} ${g[0]}-${g[1]}-${g[2]}`],
  },
  {
    region: "ES",
    cc: "34",
    nsn: (p) => ["6" + p.digits(2), p.digits(2), p.digits(2), p.digits(2)],
    national: [(g) => j(g, " ")],
    intl: [(g, cc) => `+${cc} ${j(g, " ")}`],
  },
  {
    region: "NL",
    cc: "31",
    nsn: (p) => p.chance(0.5) ? ["20", p.digits(7)] : ["6", p.digits(8)],
    national: [(g) => `0${g[0]}-${g[1]}`],
    intl: [(g, cc) => `+${cc} ${g[0]} ${g[1]}`],
  },
];

const INVALID = [
  "123",
  "555-CALL-NOW",
  "+1 415 555",
  "n/a",
  "000-000-0000",
  "+999 123 456 789",
  "call me",
  "++44 20 7946 0958",
  "tel:",
  "0",
  "+44 20 7946 09581234",
  "-",
  "TBD",
  "ask reception",
  "(000)",
];

export function regionPlan(region: string): Plan | undefined {
  return PLANS.find((p) => p.region === region);
}

/**
 * A phone number for someone living in `region` (falls back to a random
 * plan). About 8 % are invalid; about half of the valid ones are national.
 */
export function generatePhone(p: Prng, region?: string, invalidRate = 0.08): GeneratedPhone {
  const plan = (region && regionPlan(region)) || p.pick(PLANS);
  if (p.chance(invalidRate)) {
    return { raw: p.pick(INVALID), region: plan.region, e164: null, international: false };
  }
  const groups = plan.nsn(p);
  const e164 = `+${plan.cc}${groups.join("")}`;
  if (p.chance(0.5)) {
    const raw = p.pick(plan.intl)(groups, plan.cc);
    // "00 49 …" needs the caller's region to know that 00 is the exit code.
    return { raw, region: plan.region, e164, international: raw.startsWith("+") };
  }
  return { raw: p.pick(plan.national)(groups), region: plan.region, e164, international: false };
}

export const PHONE_REGIONS: readonly string[] = PLANS.map((p) => p.region);
