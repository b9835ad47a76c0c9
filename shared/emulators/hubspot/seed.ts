/**
 * Load a generated dataset into a HubSpot portal. HubSpot rules applied:
 * emails are trimmed and lower-cased, invalid or already-used emails are
 * left empty (the portal cannot hold them), ~1 % of records start archived.
 */
import { type GenDeal, generateDataset } from "../common/generator.ts";
import { Prng } from "../common/prng.ts";
import { isValidEmail } from "./properties.ts";
import type { HubSpotStore } from "./store.ts";

const STAGE_MAP: Record<string, Record<string, string>> = {
  sales: {
    qualify: "qualifiedtobuy",
    meeting: "appointmentscheduled",
    proposal: "presentationscheduled",
    negotiation: "contractsent",
    won: "closedwon",
    lost: "closedlost",
  },
  renewals: {
    upcoming: "renewalupcoming",
    quoted: "renewalquoted",
    won: "renewalwon",
    lost: "renewallost",
  },
};
const PIPELINE_IDS: Record<string, string> = {
  sales: "default",
  renewals: "75e28846-ad0d-4be2-a027-5e1da6590b98",
};

export function seedHubSpot(store: HubSpotStore, seed: number, records: number): void {
  store.clear();
  const ds = generateDataset({ seed, records });
  const p = new Prng(seed).fork("hubspot-seed");
  const archivedAt = (updated: number) => (p.chance(0.01) ? updated + 3_600_000 : null);

  const owners = ds.owners.map((o) =>
    store.addOwner({
      email: o.email,
      firstName: o.firstName,
      lastName: o.lastName,
      createdAt: o.createdAt,
      updatedAt: o.updatedAt,
      archived: !o.active,
    })
  );
  const ownerId = (i: number) => owners[i].id;

  const companyIds = ds.companies.map((c) =>
    store.seedRecord(
      "companies",
      {
        name: c.name,
        domain: c.domain,
        industry: c.industry,
        annualrevenue: c.annualRevenue === null ? null : String(c.annualRevenue),
        numberofemployees: c.employees === null ? null : String(c.employees),
        phone: c.phone?.raw ?? null,
        country: c.country,
        city: c.city,
        hubspot_owner_id: ownerId(c.ownerIndex),
      },
      c.createdAt,
      c.updatedAt,
      archivedAt(c.updatedAt),
    ).id
  );

  const contactIds = ds.people.map((person) => {
    const email = person.email?.trim().toLowerCase() ?? null;
    const company = person.companyIndex === null ? null : ds.companies[person.companyIndex];
    const r = store.seedRecord(
      "contacts",
      {
        email: email && isValidEmail(email) ? email : null,
        firstname: person.firstName,
        lastname: person.lastName,
        phone: person.phone?.raw ?? null,
        mobilephone: person.mobile?.raw ?? null,
        jobtitle: person.jobTitle || null,
        company: company?.name ?? null,
        city: person.city,
        country: person.countryCode,
        lifecyclestage: person.lifecycleStage,
        hs_lead_status: person.leadStatus,
        hubspot_owner_id: ownerId(person.ownerIndex),
        associatedcompanyid: person.companyIndex === null ? null : companyIds[person.companyIndex],
      },
      person.createdAt,
      person.updatedAt,
      archivedAt(person.updatedAt),
    );
    if (person.companyIndex !== null) {
      store.seedLink("contacts", r.id, "companies", companyIds[person.companyIndex], true);
    }
    return r.id;
  });

  ds.deals.forEach((d: GenDeal) => {
    const pipeline = ds.pipelines[d.pipelineIndex];
    const stage = pipeline.stages[d.stageIndex];
    const r = store.seedRecord(
      "deals",
      {
        dealname: d.name,
        amount: d.amount === null ? null : String(d.amount),
        deal_currency_code: d.currency,
        pipeline: PIPELINE_IDS[pipeline.key],
        dealstage: STAGE_MAP[pipeline.key][stage.key],
        closedate: d.closeDate === null ? null : new Date(d.closeDate).toISOString(),
        hs_deal_stage_probability: String(stage.probability),
        hubspot_owner_id: ownerId(d.ownerIndex),
      },
      d.createdAt,
      d.updatedAt,
      archivedAt(d.updatedAt),
    );
    if (d.companyIndex !== null) {
      store.seedLink("deals", r.id, "companies", companyIds[d.companyIndex], true);
    }
    if (d.personIndex !== null) {
      store.seedLink("deals", r.id, "contacts", contactIds[d.personIndex], false);
    }
  });
  store.finishSeeding();
}
