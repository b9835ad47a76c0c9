/**
 * Load a generated dataset into the org: Users (the integration user first,
 * then owners), Accounts, Contacts, Leads (a second population of people) and
 * Opportunities. Salesforce keeps duplicate emails and their casing but
 * rejects malformed addresses, so only those are blanked. ~1 % of records sit
 * in the recycle bin.
 */
import { generateDataset, generateExtraPeople } from "../common/generator.ts";
import { Prng } from "../common/prng.ts";
import { KEY_PREFIX, makeId } from "./ids.ts";
import { LEAD_SOURCES, LEAD_STATUSES } from "./schema.ts";
import type { SalesforceStore } from "./store.ts";
import { sfDate } from "./values.ts";

const STAGES: Record<string, Record<string, string>> = {
  sales: {
    qualify: "Qualification",
    meeting: "Needs Analysis",
    proposal: "Proposal/Price Quote",
    negotiation: "Negotiation/Review",
    won: "Closed Won",
    lost: "Closed Lost",
  },
  renewals: {
    upcoming: "Prospecting",
    quoted: "Value Proposition",
    won: "Closed Won",
    lost: "Closed Lost",
  },
};

const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const email = (e: string | null) => {
  const v = e?.trim() ?? null;
  return v && EMAIL_RE.test(v) ? v : null;
};

export function seedSalesforce(store: SalesforceStore, seed: number, records: number): void {
  store.clear();
  const ds = generateDataset({ seed, records });
  const p = new Prng(seed).fork("salesforce-seed");
  const deleted = (t: number) => (p.chance(0.01) ? t + 3_600_000 : null);

  store.apiUserId = makeId(KEY_PREFIX.User, 1);
  store.seed(
    "User",
    {
      Username: "integration@sandbox.example",
      FirstName: "Integration",
      LastName: "User",
      Name: "Integration User",
      Email: "integration@sandbox.example",
      Alias: "integ",
      IsActive: true,
      TimeZoneSidKey: "GMT",
      UserType: "Standard",
    },
    ds.anchor - 800 * 86_400_000,
    ds.anchor - 800 * 86_400_000,
  );
  const users = ds.owners.map((o) =>
    store.seed(
      "User",
      {
        Username: o.email,
        FirstName: o.firstName,
        LastName: o.lastName,
        Name: `${o.firstName} ${o.lastName}`,
        Email: o.email,
        Alias: (o.firstName.slice(0, 1) + o.lastName).slice(0, 8).toLowerCase(),
        IsActive: o.active,
        TimeZoneSidKey: "Europe/Berlin",
        UserType: "Standard",
      },
      o.createdAt,
      o.updatedAt,
    ).id
  );
  // Admin edits (the admin API, "someone in the UI") are made as the first owner.
  store.adminUserId = users[0] ?? store.apiUserId;

  const accounts = ds.companies.map((c) =>
    store.seed(
      "Account",
      {
        Name: c.name,
        Type: p.pick(["Prospect", "Customer - Direct", "Customer - Channel", "Partner"]),
        Industry: c.industry,
        AnnualRevenue: c.annualRevenue,
        NumberOfEmployees: c.employees,
        Phone: c.phone?.raw ?? null,
        Website: c.domain,
        BillingCity: c.city,
        BillingCountry: c.country,
        OwnerId: users[c.ownerIndex],
      },
      c.createdAt,
      c.updatedAt,
      deleted(c.updatedAt),
    ).id
  );

  const contacts = ds.people.map((x) =>
    store.seed(
      "Contact",
      {
        FirstName: x.firstName,
        LastName: x.lastName,
        Email: email(x.email),
        Phone: x.phone?.raw ?? null,
        MobilePhone: x.mobile?.raw ?? null,
        Title: x.jobTitle || null,
        AccountId: x.companyIndex === null ? null : accounts[x.companyIndex],
        LeadSource: p.pick(LEAD_SOURCES),
        MailingCity: x.city,
        MailingCountry: x.countryCode,
        OwnerId: users[x.ownerIndex],
      },
      x.createdAt,
      x.updatedAt,
      deleted(x.updatedAt),
    ).id
  );

  const leads = generateExtraPeople(
    seed,
    "leads",
    records,
    ds.companies,
    ds.owners.length,
    ds.anchor,
  );
  for (const x of leads) {
    const company = x.companyIndex === null ? null : ds.companies[x.companyIndex];
    store.seed(
      "Lead",
      {
        FirstName: x.firstName,
        LastName: x.lastName,
        Company: company?.name ?? `${x.lastName} (self-employed)`,
        Email: email(x.email),
        Phone: x.phone?.raw ?? null,
        MobilePhone: x.mobile?.raw ?? null,
        Title: x.jobTitle || null,
        Status: p.pick(LEAD_STATUSES.slice(0, 2).concat(LEAD_STATUSES[3])),
        LeadSource: p.pick(LEAD_SOURCES),
        City: x.city,
        Country: x.countryCode,
        OwnerId: users[x.ownerIndex],
      },
      x.createdAt,
      x.updatedAt,
      deleted(x.updatedAt),
    );
  }

  for (const d of ds.deals) {
    const pipeline = ds.pipelines[d.pipelineIndex];
    const stage = pipeline.stages[d.stageIndex];
    store.seed(
      "Opportunity",
      {
        Name: d.name,
        Amount: d.amount,
        StageName: STAGES[pipeline.key][stage.key],
        CloseDate: sfDate(d.closeDate ?? d.createdAt + 90 * 86_400_000),
        Probability: Math.round(stage.probability * 100),
        Type: pipeline.key === "renewals" ? "Existing Customer - Upgrade" : "New Business",
        AccountId: d.companyIndex === null ? null : accounts[d.companyIndex],
        ContactId: d.personIndex === null ? null : contacts[d.personIndex],
        OwnerId: users[d.ownerIndex],
      },
      d.createdAt,
      d.updatedAt,
      deleted(d.updatedAt),
    );
  }
  store.finishSeeding();
}
