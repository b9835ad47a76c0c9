// The outbound mapping is the inverse of the inbound one: a canonical row mapped outbound and
// read back through the inbound mapping gives the same canonical values, for every field the
// seeded mappings write, on each provider. Plus the rules for what is not sent.
import assert from "node:assert/strict";
import { createMapper } from "../../supabase/functions/_shared/mapping/mapper.ts";
import { createOutboundMapper } from "../../supabase/functions/_shared/mapping/outbound.ts";
import type {
  ObjectType,
  ProviderName,
  RemoteRecord,
} from "../../supabase/functions/_shared/providers/types.ts";
import { seededMappings } from "../providers/_seeded_mappings.ts";

const ROWS: Record<ObjectType, Record<string, unknown>> = {
  contacts: {
    kind: "contact",
    first_name: "Ada",
    last_name: "Lovelace",
    email: "ada@example.com",
    phone: "+442071838750",
    company_name: "Analytical Engines",
    company_remote_id: "501",
    owner_remote_id: "77",
    lifecycle_stage: "lead",
    lead_status: "NEW",
    job_title: "Countess",
    description: "First programmer",
  },
  companies: {
    name: "Analytical Engines",
    domain: "engines.example",
    industry: "Computing",
    annual_revenue: "1250000.50",
    phone: "+14155550123",
    country: "GB",
    city: "London",
    owner_remote_id: "77",
  },
  deals: {
    name: "Difference engine",
    amount: "17000.25",
    currency: "GBP",
    pipeline: "9",
    stage: "12",
    status: "won",
    close_date: "2027-03-14",
    probability: 0.577,
    owner_remote_id: "77",
    company_remote_id: "501",
    primary_contact_remote_id: "601",
  },
  owners: {},
};

function remote(type: string, properties: Record<string, unknown>) {
  return {
    remoteId: "1",
    remoteType: type,
    modifiedAt: "2026-12-04T00:00:00.000Z",
    properties,
    deleted: false,
    mergedIds: [],
  } satisfies RemoteRecord;
}

for (const provider of ["hubspot", "salesforce", "pipedrive"] as ProviderName[]) {
  Deno.test(`${provider}: outbound then inbound gives back every written field`, () => {
    const rows = seededMappings(provider);
    const out = createOutboundMapper(provider, rows);
    const inbound = createMapper(provider, rows);
    for (const object of ["contacts", "companies", "deals"] as ObjectType[]) {
      const row = ROWS[object];
      const fields = Object.keys(row).filter((f) => f !== "kind");
      const plan = out.plan(object, row, fields);
      assert.ok(plan.remoteType, `${object} has an outbound remote type`);
      assert.deepEqual(plan.warnings, [], `${object}: ${JSON.stringify(plan.warnings)}`);
      const back = inbound.inbound(object, remote(plan.remoteType, plan.properties)).record;
      const written = rows.filter((m) =>
        m.object === object && m.remote_object === plan.remoteType && m.direction !== "inbound"
      ).map((m) => m.column_name);
      assert.ok(written.length >= 2, `${object}: ${written}`);
      for (const f of fields) {
        if (!written.includes(f) || plan.skipped.some((s) => s.field === f)) continue;
        assert.deepEqual(back[f], row[f], `${provider} ${object}.${f}`);
      }
      // Fields mapped inbound only (or not at all) are reported, never sent.
      for (const s of plan.skipped) assert.ok(!written.includes(s.field) || s.reason);
    }
  });
}

Deno.test("transforms on the wire: E.164, decimal strings, dates, percent, enum, lists", () => {
  const hs = createOutboundMapper("hubspot", seededMappings("hubspot"));
  const deal = hs.plan("deals", ROWS.deals, [
    "amount",
    "close_date",
    "company_remote_id",
    "status",
  ]);
  assert.deepEqual(deal.properties, {
    amount: "17000.25",
    closedate: "2027-03-14",
    "associations.companies": ["501"],
  });
  assert.deepEqual(deal.skipped, [{ field: "status", reason: "no outbound mapping" }]);

  const pd = createOutboundMapper("pipedrive", seededMappings("pipedrive"));
  const person = pd.plan("contacts", ROWS.contacts, ["email", "phone", "job_title"]);
  assert.deepEqual(person.properties, {
    emails: [{ value: "ada@example.com", primary: true, label: "work" }],
    phones: [{ value: "+442071838750", primary: true, label: "work" }],
  });
  assert.deepEqual(person.skipped, [{ field: "job_title", reason: "no outbound mapping" }]);
  const pdDeal = pd.plan("deals", ROWS.deals, ["status", "probability"]);
  assert.deepEqual(pdDeal.properties, { status: "won", probability: 57.7 });

  const sf = createOutboundMapper("salesforce", seededMappings("salesforce"));
  const opp = sf.plan("deals", ROWS.deals, ["probability", "amount", "status"]);
  assert.deepEqual(opp.properties, { Probability: 57.7, Amount: "17000.25" });
  assert.equal(opp.skipped[0].field, "status");
});

Deno.test("Salesforce contacts go to Lead or Contact by kind", () => {
  const sf = createOutboundMapper("salesforce", seededMappings("salesforce"));
  const lead = sf.plan("contacts", { ...ROWS.contacts, kind: "lead" }, ["company_name"]);
  assert.equal(lead.remoteType, "Lead");
  assert.deepEqual(lead.properties, { Company: "Analytical Engines" });
  const contact = sf.plan("contacts", ROWS.contacts, ["company_name", "last_name"]);
  assert.equal(contact.remoteType, "Contact");
  // Contact's company name is read through the Account relation: not writable there.
  assert.deepEqual(contact.properties, { LastName: "Lovelace" });
  assert.deepEqual(contact.skipped, [{ field: "company_name", reason: "no outbound mapping" }]);
});

Deno.test("a relation to a record not yet in the CRM is left out, a cleared one is sent", () => {
  const hs = createOutboundMapper("hubspot", seededMappings("hubspot"));
  const pending = hs.plan("deals", {
    ...ROWS.deals,
    company_remote_id: null,
    company_id: "8c9e1f52-3a4b-4c5d-9e6f-7a8b9c0d1e2f",
  }, ["company_remote_id", "name"]);
  assert.deepEqual(pending.properties, { dealname: "Difference engine" });
  assert.equal(pending.skipped[0].reason, "the related record is not in the CRM yet");
  const cleared = hs.plan("deals", { ...ROWS.deals, company_remote_id: null, company_id: null }, [
    "company_remote_id",
  ]);
  assert.deepEqual(cleared.properties, { "associations.companies": null });
});

Deno.test("custom columns map through custom.<key>; several columns on one property warn", () => {
  const rows = [
    ...seededMappings("hubspot"),
    {
      object: "contacts" as const,
      remote_object: "contacts",
      column_name: "custom.tier",
      remote_property: "tier__c",
      direction: "both" as const,
      transform: "text",
    },
    {
      object: "contacts" as const,
      remote_object: "contacts",
      column_name: "description",
      remote_property: "jobtitle",
      direction: "outbound" as const,
      transform: "text",
    },
  ];
  const hs = createOutboundMapper("hubspot", rows);
  const p = hs.plan("contacts", { ...ROWS.contacts, custom: { tier: " gold " } }, [
    "custom.tier",
    "job_title",
    "description",
  ]);
  assert.deepEqual(p.properties, { tier__c: "gold", jobtitle: "First programmer" });
  assert.equal(p.warnings.length, 1);
  assert.match(p.warnings[0].message, /jobtitle is mapped from several columns/);
  assert.equal(hs.remoteType("owners", {}), null);
});

Deno.test("only the changed properties are sent (a half name too: the writer reads the rest)", () => {
  const pd = createOutboundMapper("pipedrive", seededMappings("pipedrive"));
  assert.deepEqual(pd.plan("contacts", ROWS.contacts, ["first_name"]).properties, {
    first_name: "Ada",
  });
  assert.deepEqual(pd.plan("contacts", ROWS.contacts, ["owner_remote_id"]).properties, {
    owner_id: "77",
  });
});
