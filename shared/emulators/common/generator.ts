/**
 * Provider-neutral generated CRM data: owners, companies, people, deals and
 * the links between them. Each emulator maps this into its own native shape
 * (and applies its own rules, e.g. HubSpot refuses duplicate emails).
 *
 * Deterministic: the same seed, counts and anchor give the same dataset.
 * Timestamps lie in the two years before `anchor` (a fixed instant by
 * default, so runs on different days still agree); about 5 % of records share
 * one of a few "bulk edit" instants, as after a mass update in a real CRM.
 */
import { Prng } from "./prng.ts";
import { type GeneratedPhone, generatePhone } from "./phones.ts";
import {
  COMPANY_SUFFIXES,
  COMPANY_WORDS,
  CURRENCIES,
  DEAL_WORDS,
  FIRST_NAMES,
  FREE_MAIL_DOMAINS,
  INDUSTRIES,
  JOB_TITLES,
  LAST_NAMES,
  PLACES,
  TLDS,
} from "./words.ts";

/** 2025-01-01T00:00:00Z — default anchor for generated timestamps. */
export const DEFAULT_ANCHOR = Date.UTC(2025, 0, 1);
const DAY = 86_400_000;

export interface GenOwner {
  index: number;
  firstName: string;
  lastName: string;
  email: string;
  active: boolean;
  createdAt: number;
  updatedAt: number;
}

export interface GenCompany {
  index: number;
  name: string;
  /** As typed by users: sometimes with scheme, `www.` or capitals. */
  domain: string | null;
  industry: string;
  annualRevenue: number | null;
  employees: number | null;
  phone: GeneratedPhone | null;
  countryCode: string;
  country: string;
  city: string;
  ownerIndex: number;
  createdAt: number;
  updatedAt: number;
}

export type EmailQuirk = "normal" | "odd-case" | "duplicate" | "plus-tag" | "padded" | "invalid";

export interface GenPerson {
  index: number;
  firstName: string;
  lastName: string;
  email: string | null;
  /** What was done to the email (ground truth for dedupe tests). */
  emailQuirk: EmailQuirk;
  /** Index of the person whose email this duplicates (case-insensitively). */
  duplicateOf: number | null;
  phone: GeneratedPhone | null;
  mobile: GeneratedPhone | null;
  jobTitle: string;
  companyIndex: number | null;
  ownerIndex: number;
  lifecycleStage: string;
  leadStatus: string;
  countryCode: string;
  city: string;
  createdAt: number;
  updatedAt: number;
}

export interface GenStage {
  key: string;
  label: string;
  probability: number;
  status: "open" | "won" | "lost";
}

export interface GenPipeline {
  key: string;
  label: string;
  stages: GenStage[];
}

export interface GenDeal {
  index: number;
  name: string;
  amount: number | null;
  currency: string;
  pipelineIndex: number;
  stageIndex: number;
  status: "open" | "won" | "lost";
  closeDate: number | null;
  probability: number;
  ownerIndex: number;
  companyIndex: number | null;
  personIndex: number | null;
  createdAt: number;
  updatedAt: number;
}

export const PIPELINES: readonly GenPipeline[] = [
  {
    key: "sales",
    label: "Sales Pipeline",
    stages: [
      { key: "qualify", label: "Qualification", probability: 0.1, status: "open" },
      { key: "meeting", label: "Meeting scheduled", probability: 0.2, status: "open" },
      { key: "proposal", label: "Proposal sent", probability: 0.4, status: "open" },
      { key: "negotiation", label: "Negotiation", probability: 0.8, status: "open" },
      { key: "won", label: "Closed won", probability: 1, status: "won" },
      { key: "lost", label: "Closed lost", probability: 0, status: "lost" },
    ],
  },
  {
    key: "renewals",
    label: "Renewals",
    stages: [
      { key: "upcoming", label: "Renewal upcoming", probability: 0.5, status: "open" },
      { key: "quoted", label: "Renewal quoted", probability: 0.7, status: "open" },
      { key: "won", label: "Renewed", probability: 1, status: "won" },
      { key: "lost", label: "Churned", probability: 0, status: "lost" },
    ],
  },
];

export const LIFECYCLE_STAGES = [
  "subscriber",
  "lead",
  "marketingqualifiedlead",
  "salesqualifiedlead",
  "opportunity",
  "customer",
  "evangelist",
  "other",
];
export const LEAD_STATUSES = [
  "NEW",
  "OPEN",
  "IN_PROGRESS",
  "OPEN_DEAL",
  "UNQUALIFIED",
  "ATTEMPTED_TO_CONTACT",
  "CONNECTED",
  "BAD_TIMING",
];

export interface Dataset {
  anchor: number;
  owners: GenOwner[];
  companies: GenCompany[];
  people: GenPerson[];
  deals: GenDeal[];
  pipelines: readonly GenPipeline[];
}

export interface DatasetOptions {
  seed: number;
  /** Records per object (companies, people, deals). */
  records: number;
  /** Number of owners; default scales with records (5..25). */
  owners?: number;
  anchor?: number;
  /** Sub-stream label, e.g. "leads" to get a second population of people. */
  label?: string;
}

function asciiFold(s: string): string {
  return s.normalize("NFKD").replace(/[\u0300-\u036f]/g, "").replace(/[^A-Za-z0-9]+/g, "")
    .toLowerCase();
}

class TimeSource {
  readonly bulkInstants: number[];
  constructor(private p: Prng, readonly anchor: number) {
    this.bulkInstants = [1, 2, 3].map(() => anchor - p.int(5, 200) * DAY + p.int(0, DAY - 1));
  }
  created(): number {
    return this.anchor - this.p.int(2, 730) * DAY + this.p.int(0, DAY - 1);
  }
  updated(created: number): number {
    if (this.p.chance(0.05)) {
      const bulk = this.p.pick(this.bulkInstants);
      if (bulk >= created) return bulk;
    }
    if (this.p.chance(0.2)) return created;
    return created + Math.floor(this.p.next() * (this.anchor - created));
  }
}

export function generateOwners(p: Prng, n: number, time: TimeSource): GenOwner[] {
  const owners: GenOwner[] = [];
  const used = new Set<string>();
  for (let i = 0; i < n; i++) {
    const firstName = p.pick(FIRST_NAMES);
    const lastName = p.pick(LAST_NAMES);
    let local = `${asciiFold(firstName) || "user"}.${asciiFold(lastName) || "x"}`;
    while (used.has(local)) local += String(p.int(0, 9));
    used.add(local);
    const createdAt = time.created();
    owners.push({
      index: i,
      firstName,
      lastName,
      email: `${local}@sandbox-crm.example`,
      active: i < 2 || !p.chance(0.1),
      createdAt,
      updatedAt: time.updated(createdAt),
    });
  }
  return owners;
}

export function generateCompanies(
  p: Prng,
  n: number,
  ownerCount: number,
  time: TimeSource,
): GenCompany[] {
  const companies: GenCompany[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const word = p.pick(COMPANY_WORDS);
    const second = p.chance(0.4) ? ` ${p.pick(LAST_NAMES)}` : "";
    const suffix = p.pick(COMPANY_SUFFIXES);
    const name = `${word}${second}${suffix ? " " + suffix : ""}`;
    const slug = asciiFold(word + second) || `company${i}`;
    let domain: string | null = `${slug}${i % 7 === 0 ? "" : String(i)}.${p.pick(TLDS)}`;
    const quirk = p.next();
    if (quirk < 0.05) domain = null;
    else if (quirk < 0.1) domain = `https://www.${domain}/`;
    else if (quirk < 0.15) domain = `www.${domain}`;
    else if (quirk < 0.18) domain = domain.toUpperCase();
    const place = p.pick(PLACES);
    const createdAt = time.created();
    companies[i] = {
      index: i,
      name,
      domain,
      industry: p.pick(INDUSTRIES),
      annualRevenue: p.chance(0.7) ? p.int(1, 5000) * 10_000 : null,
      employees: p.chance(0.7) ? p.int(1, 20_000) : null,
      phone: p.chance(0.8) ? generatePhone(p, place.code) : null,
      countryCode: place.code,
      country: place.country,
      city: p.pick(place.cities),
      ownerIndex: p.int(0, ownerCount - 1),
      createdAt,
      updatedAt: time.updated(createdAt),
    };
  }
  return companies;
}

export function generatePeople(
  p: Prng,
  n: number,
  companies: readonly GenCompany[],
  ownerCount: number,
  time: TimeSource,
): GenPerson[] {
  const people: GenPerson[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const firstName = p.pick(FIRST_NAMES);
    const lastName = p.pick(LAST_NAMES);
    const companyIndex = companies.length > 0 && p.chance(0.8)
      ? p.int(0, companies.length - 1)
      : null;
    const company = companyIndex === null ? null : companies[companyIndex];
    const place = company ? PLACES.find((x) => x.code === company.countryCode)! : p.pick(PLACES);
    const f = asciiFold(firstName) || "contact";
    const l = asciiFold(lastName) || String(i);
    const domain = company?.domain && p.chance(0.8)
      ? company.domain.toLowerCase().replace(/^https?:\/\//, "").replace(/^www\./, "").replace(
        /\/$/,
        "",
      )
      : p.pick(FREE_MAIL_DOMAINS);
    let email: string | null = `${f}.${l}${i}@${domain}`;
    let emailQuirk: EmailQuirk = "normal";
    let duplicateOf: number | null = null;
    const r = p.next();
    if (r < 0.05) {
      email = null;
    } else if (r < 0.08 && i > 0) {
      duplicateOf = p.int(Math.max(0, i - 500), i - 1);
      const other = people[duplicateOf].email;
      if (other) {
        email = p.chance(0.5) ? other.toUpperCase() : other;
        emailQuirk = "duplicate";
      } else duplicateOf = null;
    } else if (r < 0.14) {
      email = `${firstName.slice(0, 1).toUpperCase()}${f.slice(1)}.${l.slice(0, 1).toUpperCase()}${
        l.slice(1)
      }${i}@${domain.toUpperCase()}`;
      emailQuirk = "odd-case";
    } else if (r < 0.16) {
      email = `${f}+crm${i}@${domain}`;
      emailQuirk = "plus-tag";
    } else if (r < 0.17) {
      email = ` ${email} `;
      emailQuirk = "padded";
    } else if (r < 0.18) {
      email = p.pick([`${f}.${l}${i}@`, `${f} at ${domain}`, `${f}.${l}${i}@@${domain}`]);
      emailQuirk = "invalid";
    }
    const createdAt = Math.max(time.created(), company?.createdAt ?? 0);
    people[i] = {
      index: i,
      firstName,
      lastName,
      email,
      emailQuirk,
      duplicateOf,
      phone: p.chance(0.75) ? generatePhone(p, place.code) : null,
      mobile: p.chance(0.3) ? generatePhone(p, place.code) : null,
      jobTitle: p.pick(JOB_TITLES),
      companyIndex,
      ownerIndex: p.int(0, ownerCount - 1),
      lifecycleStage: p.pick(LIFECYCLE_STAGES),
      leadStatus: p.pick(LEAD_STATUSES),
      countryCode: place.code,
      city: p.pick(place.cities),
      createdAt,
      updatedAt: time.updated(createdAt),
    };
  }
  return people;
}

export function generateDeals(
  p: Prng,
  n: number,
  companies: readonly GenCompany[],
  people: readonly GenPerson[],
  ownerCount: number,
  time: TimeSource,
): GenDeal[] {
  const deals: GenDeal[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const pipelineIndex = p.chance(0.8) ? 0 : 1;
    const pipeline = PIPELINES[pipelineIndex];
    const stageIndex = p.int(0, pipeline.stages.length - 1);
    const stage = pipeline.stages[stageIndex];
    const personIndex = people.length > 0 && p.chance(0.85) ? p.int(0, people.length - 1) : null;
    const personCompany = personIndex === null ? null : people[personIndex].companyIndex;
    const companyIndex = personCompany ??
      (companies.length > 0 && p.chance(0.7) ? p.int(0, companies.length - 1) : null);
    const companyName = companyIndex === null ? "" : ` – ${companies[companyIndex].name}`;
    const createdAt = time.created();
    const closeDate = stage.status === "open"
      ? (p.chance(0.8) ? createdAt + p.int(14, 240) * DAY : null)
      : createdAt + p.int(7, 180) * DAY;
    deals[i] = {
      index: i,
      name: `${p.pick(DEAL_WORDS)}${companyName}`,
      amount: p.chance(0.9) ? p.int(5, 5000) * 100 : null,
      currency: p.pick(CURRENCIES),
      pipelineIndex,
      stageIndex,
      status: stage.status,
      closeDate: closeDate === null ? null : Math.floor(closeDate / DAY) * DAY,
      probability: stage.probability,
      ownerIndex: p.int(0, ownerCount - 1),
      companyIndex,
      personIndex,
      createdAt,
      updatedAt: time.updated(createdAt),
    };
  }
  return deals;
}

export function defaultOwnerCount(records: number): number {
  return Math.min(25, Math.max(5, Math.ceil(records / 100)));
}

/** The full dataset for one seeded sandbox account. */
export function generateDataset(opts: DatasetOptions): Dataset {
  const root = new Prng(opts.seed).fork(opts.label ?? "dataset");
  const anchor = opts.anchor ?? DEFAULT_ANCHOR;
  const time = new TimeSource(root.fork("time"), anchor);
  const ownerCount = opts.owners ?? defaultOwnerCount(opts.records);
  const owners = generateOwners(root.fork("owners"), ownerCount, time);
  const companies = generateCompanies(root.fork("companies"), opts.records, ownerCount, time);
  const people = generatePeople(root.fork("people"), opts.records, companies, ownerCount, time);
  const deals = generateDeals(
    root.fork("deals"),
    opts.records,
    companies,
    people,
    ownerCount,
    time,
  );
  return { anchor, owners, companies, people, deals, pipelines: PIPELINES };
}

/** A second population of people (e.g. Salesforce Leads, Pipedrive leads). */
export function generateExtraPeople(
  seed: number,
  label: string,
  n: number,
  companies: readonly GenCompany[],
  ownerCount: number,
  anchor = DEFAULT_ANCHOR,
): GenPerson[] {
  const root = new Prng(seed).fork(label);
  const time = new TimeSource(root.fork("time"), anchor);
  return generatePeople(root.fork("people"), n, companies, ownerCount, time);
}
