/**
 * Load a generated dataset into a Pipedrive company. Pipedrive stores emails
 * and phones as free-text arrays, so duplicates, odd casing, padding and
 * malformed values all survive here. Won/lost deals sit in their pipeline's
 * last open stage with status won/lost. ~1 % of records are deleted.
 */
import { generateDataset, generateExtraPeople } from "../common/generator.ts";
import { Prng } from "../common/prng.ts";
import type { PipedriveStore } from "./store.ts";

const STAGE_MAP: Record<string, Record<string, number>> = {
  sales: { qualify: 1, meeting: 2, proposal: 3, negotiation: 4, won: 4, lost: 3 },
  renewals: { upcoming: 5, quoted: 6, won: 6, lost: 6 },
};

export function seedPipedrive(store: PipedriveStore, seed: number, records: number): void {
  store.clear();
  const ds = generateDataset({ seed, records });
  const p = new Prng(seed).fork("pipedrive-seed");
  const deleted = (t: number) => (p.chance(0.01) ? t + 3_600_000 : null);
  const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

  store.users = [
    {
      id: 1,
      name: "Sandbox Admin",
      email: "admin@sandbox.pipedrive.test",
      active: true,
      isAdmin: true,
      created: ds.anchor - 900 * 86_400_000,
      modified: ds.anchor - 10 * 86_400_000,
    },
    ...ds.owners.map((o, i) => ({
      id: i + 2,
      name: `${o.firstName} ${o.lastName}`,
      email: o.email,
      active: o.active,
      isAdmin: false,
      created: o.createdAt,
      modified: o.updatedAt,
    })),
  ];
  const owner = (i: number) => i + 2;
  const cf = (entity: string, name: string) =>
    store.fields.find((f) => f.entity === entity && f.name === name)!.key;

  const orgIds = ds.companies.map((c, i) =>
    store.seed(
      "organization",
      {
        name: c.name,
        owner_id: owner(c.ownerIndex),
        address: { value: `${c.city}, ${c.country}`, country: c.country, locality: c.city },
        website: c.domain,
        annual_revenue: c.annualRevenue,
        employee_count: c.employees,
      },
      {
        [cf("organization", "Segment")]: p.pick(["SMB", "Mid-market", "Enterprise", null]),
        [cf("organization", "External ID")]: p.chance(0.3) ? `org-${i}` : null,
      },
      c.createdAt,
      c.updatedAt,
      deleted(c.updatedAt),
    ).id
  );

  const personIds = ds.people.map((x, i) => {
    const emails = [] as Array<{ value: string; primary: boolean; label: string }>;
    if (x.email !== null) emails.push({ value: x.email, primary: true, label: "work" });
    if (p.chance(0.15)) {
      emails.push({
        value: `${x.firstName.toLowerCase()}${i}@${p.pick(["gmail.com", "icloud.com", "web.de"])}`,
        primary: emails.length === 0,
        label: "home",
      });
    }
    const phones = [] as Array<{ value: string; primary: boolean; label: string }>;
    if (x.phone) phones.push({ value: x.phone.raw, primary: true, label: "work" });
    if (x.mobile) {
      phones.push({ value: x.mobile.raw, primary: phones.length === 0, label: "mobile" });
    }
    return store.seed(
      "person",
      {
        name: `${x.firstName} ${x.lastName}`,
        first_name: x.firstName,
        last_name: x.lastName,
        owner_id: owner(x.ownerIndex),
        org_id: x.companyIndex === null ? null : Number(orgIds[x.companyIndex]),
        emails,
        phones,
        job_title: x.jobTitle || null,
      },
      {
        [cf("person", "Customer tier")]: p.pick([11, 12, 13, null, null]),
        [cf("person", "External ID")]: null,
      },
      x.createdAt,
      x.updatedAt,
      deleted(x.updatedAt),
    ).id;
  });

  for (const d of ds.deals) {
    const pipeline = ds.pipelines[d.pipelineIndex];
    const stage = pipeline.stages[d.stageIndex];
    const closeIso = d.closeDate === null ? null : iso(d.closeDate);
    store.seed(
      "deal",
      {
        title: d.name,
        owner_id: owner(d.ownerIndex),
        person_id: d.personIndex === null ? null : Number(personIds[d.personIndex]),
        org_id: d.companyIndex === null ? null : Number(orgIds[d.companyIndex]),
        pipeline_id: d.pipelineIndex + 1,
        stage_id: STAGE_MAP[pipeline.key][stage.key],
        value: d.amount ?? 0,
        currency: d.currency,
        status: d.status,
        probability: Math.round(stage.probability * 100),
        lost_reason: d.status === "lost"
          ? p.pick(["Price", "Timing", "Competitor", "No budget"])
          : null,
        close_time: d.status === "open" ? null : closeIso,
        won_time: d.status === "won" ? closeIso : null,
        lost_time: d.status === "lost" ? closeIso : null,
        expected_close_date: d.closeDate === null
          ? null
          : new Date(d.closeDate).toISOString().slice(0, 10),
      },
      { [cf("deal", "Source")]: p.pick(["Inbound", "Outbound", "Partner", null]) },
      d.createdAt,
      d.updatedAt,
      deleted(d.updatedAt),
    );
  }

  // Leads: a second population of people, linked to new persons or to organizations.
  const leadPeople = generateExtraPeople(
    seed,
    "pipedrive-leads",
    Math.max(1, Math.round(records / 2)),
    ds.companies,
    ds.owners.length,
    ds.anchor,
  );
  for (const x of leadPeople) {
    const orgId = x.companyIndex === null ? null : Number(orgIds[x.companyIndex]);
    const personId = orgId === null
      ? Number(personIds[p.int(0, personIds.length - 1)] ?? 0) || null
      : null;
    if (orgId === null && personId === null) continue;
    store.seed(
      "lead",
      {
        title: `${x.firstName} ${x.lastName} lead`,
        owner_id: owner(x.ownerIndex),
        creator_id: 1,
        person_id: personId,
        organization_id: orgId,
        value: p.chance(0.6) ? { amount: p.int(1, 200) * 100, currency: "USD" } : null,
        source_name: p.pick(["Web forms", "Leadbooster", "Manually created", "API"]),
        was_seen: p.chance(0.5),
        is_archived: p.chance(0.05),
      },
      {},
      x.createdAt,
      x.updatedAt,
    );
  }
  store.finishSeeding();
}
