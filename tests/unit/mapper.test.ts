// The inbound mapper over the migration's seeded mappings: one realistic raw record per
// provider x object becomes exactly the canonical record crm.apply_inbound takes.
import assert from "node:assert/strict";
import {
  createMapper,
  type FieldMappingRow,
  resolveProperty,
} from "../../supabase/functions/_shared/mapping/mapper.ts";
import type { RemoteRecord } from "../../supabase/functions/_shared/providers/types.ts";
import { seededMappings } from "../providers/_seeded_mappings.ts";

const AT = "2026-03-02T10:00:00.000Z";

function rec(remoteType: string, remoteId: string, properties: Record<string, unknown>) {
  return {
    remoteId,
    remoteType,
    modifiedAt: AT,
    properties,
    deleted: false,
    mergedIds: [],
  } satisfies RemoteRecord;
}

const hubspot = createMapper("hubspot", seededMappings("hubspot"), { defaultRegion: "US" });
const salesforce = createMapper("salesforce", seededMappings("salesforce"), {
  defaultRegion: "US",
});
const pipedrive = createMapper("pipedrive", seededMappings("pipedrive"), { defaultRegion: "DE" });

Deno.test("seeded rows parse: 35 HubSpot, 44 Salesforce, 26 Pipedrive", () => {
  assert.equal(seededMappings("hubspot").length, 35);
  assert.equal(seededMappings("salesforce").length, 44);
  assert.equal(seededMappings("pipedrive").length, 26);
});

Deno.test("hubspot: contacts, companies, deals, owners", () => {
  const contact = hubspot.inbound(
    "contacts",
    rec("contacts", "101", {
      firstname: "Ada",
      lastname: "Lovelace",
      email: " Ada@Example.com",
      phone: "(415) 555-2671",
      company: "Analytical Engines",
      associatedcompanyid: "501",
      hubspot_owner_id: "77",
      lifecyclestage: "customer",
      hs_lead_status: "OPEN",
      jobtitle: "Engineer",
      notes_last_updated: "1772377200000",
      lastmodifieddate: AT,
      hs_object_id: "101",
      hs_merged_object_ids: null,
    }),
  );
  assert.deepEqual(contact, {
    record: {
      remote_id: "101",
      remote_updated_at: AT,
      first_name: "Ada",
      last_name: "Lovelace",
      email: "ada@example.com",
      phone: "+14155552671",
      phone_raw: "(415) 555-2671",
      company_name: "Analytical Engines",
      company_remote_id: "501",
      owner_remote_id: "77",
      lifecycle_stage: "customer",
      lead_status: "OPEN",
      job_title: "Engineer",
      last_activity_at: "2026-03-01T15:00:00.000Z",
      kind: "contact",
    },
    warnings: [],
  });

  const company = hubspot.inbound(
    "companies",
    rec("companies", "501", {
      name: "Analytical Engines",
      domain: "engines.example",
      industry: "MACHINERY",
      annualrevenue: "1250000.50",
      phone: "+44 20 7946 0958",
      country: "United Kingdom",
      city: "London",
      hubspot_owner_id: null,
    }),
  );
  assert.deepEqual(company.record, {
    remote_id: "501",
    remote_updated_at: AT,
    name: "Analytical Engines",
    domain: "engines.example",
    industry: "MACHINERY",
    annual_revenue: "1250000.50",
    phone: "+442079460958",
    country: "United Kingdom",
    city: "London",
    owner_remote_id: null,
  });

  const deal = hubspot.inbound(
    "deals",
    rec("deals", "9001", {
      dealname: "Difference Engine No. 2",
      amount: "5000",
      deal_currency_code: "GBP",
      pipeline: "default",
      dealstage: "closedwon",
      hs_is_closed: "true",
      hs_is_closed_won: "true",
      closedate: "2026-04-30T12:00:00.000Z",
      hs_deal_stage_probability: "1.0",
      hubspot_owner_id: "77",
      "associations.companies": ["501", "502"],
      "associations.contacts": [],
    }),
  );
  assert.deepEqual(deal.record, {
    remote_id: "9001",
    remote_updated_at: AT,
    name: "Difference Engine No. 2",
    amount: "5000",
    currency: "GBP",
    pipeline: "default",
    stage: "closedwon",
    status: "won",
    close_date: "2026-04-30",
    probability: 1,
    owner_remote_id: "77",
    company_remote_id: "501",
    primary_contact_remote_id: null,
  });
  assert.deepEqual(deal.warnings, []);
  const lost = hubspot.inbound(
    "deals",
    rec("deals", "9002", { hs_is_closed: "true", hs_is_closed_won: "false" }),
  );
  assert.equal(lost.record.status, "lost");
  const open = hubspot.inbound("deals", rec("deals", "9003", { hs_is_closed: "false" }));
  assert.equal(open.record.status, "open");

  const owner = hubspot.inbound(
    "owners",
    rec("owners", "77", {
      email: "Grace@Example.com",
      firstName: "Grace",
      lastName: "Hopper",
      userId: 12,
      archived: false,
    }),
  );
  assert.deepEqual(owner.record, {
    remote_id: "77",
    remote_updated_at: AT,
    email: "grace@example.com",
    first_name: "Grace",
    last_name: "Hopper",
    active: true,
  });
});

Deno.test("salesforce: Contact and Lead land in contacts with kind; Account, Opportunity, User", () => {
  const contact = salesforce.inbound(
    "contacts",
    rec("Contact", "003000000000001AAA", {
      Id: "003000000000001AAA",
      SystemModstamp: "2026-03-02T10:00:00.000+0000",
      IsDeleted: false,
      MasterRecordId: null,
      FirstName: "Ada",
      LastName: "Lovelace",
      Email: "ADA@example.com",
      Phone: "415.555.2671",
      Account: { attributes: { type: "Account" }, Name: "Analytical Engines" },
      AccountId: "001000000000001AAA",
      OwnerId: "005000000000001AAA",
      Title: "Engineer",
      Description: null,
      LastActivityDate: "2026-02-27",
    }),
  );
  assert.deepEqual(contact, {
    record: {
      remote_id: "003000000000001AAA",
      remote_updated_at: AT,
      first_name: "Ada",
      last_name: "Lovelace",
      email: "ada@example.com",
      phone: "+14155552671",
      phone_raw: "415.555.2671",
      company_name: "Analytical Engines",
      company_remote_id: "001000000000001AAA",
      owner_remote_id: "005000000000001AAA",
      job_title: "Engineer",
      description: null,
      last_activity_at: "2026-02-27T00:00:00.000Z",
      kind: "contact",
    },
    warnings: [],
  });
  const noAccount = salesforce.inbound(
    "contacts",
    rec("Contact", "003000000000002AAA", { Account: null, AccountId: null }),
  );
  assert.equal(noAccount.record.company_name, null, "a null relationship clears the name");

  const lead = salesforce.inbound(
    "contacts",
    rec("Lead", "00Q000000000001AAA", {
      FirstName: "Charles",
      LastName: "Babbage",
      Email: "charles@example.com",
      Phone: null,
      Company: "Difference Engines",
      OwnerId: "005000000000001AAA",
      Status: "Open - Not Contacted",
      Title: null,
      Description: "met at the fair",
      LastActivityDate: null,
    }),
  );
  assert.deepEqual(lead.record, {
    remote_id: "00Q000000000001AAA",
    remote_updated_at: AT,
    first_name: "Charles",
    last_name: "Babbage",
    email: "charles@example.com",
    phone: null,
    phone_raw: null,
    company_name: "Difference Engines",
    owner_remote_id: "005000000000001AAA",
    lead_status: "Open - Not Contacted",
    job_title: null,
    description: "met at the fair",
    last_activity_at: null,
    kind: "lead",
  });

  const account = salesforce.inbound(
    "companies",
    rec("Account", "001000000000001AAA", {
      Name: "Analytical Engines",
      Website: "engines.example",
      Industry: "Machinery",
      AnnualRevenue: 1250000.5,
      Phone: "555-0100",
      BillingCountry: "US",
      BillingCity: "New York",
      OwnerId: "005000000000001AAA",
    }),
  );
  assert.deepEqual(account.record, {
    remote_id: "001000000000001AAA",
    remote_updated_at: AT,
    name: "Analytical Engines",
    domain: "engines.example",
    industry: "Machinery",
    annual_revenue: "1250000.5",
    phone: null,
    country: "US",
    city: "New York",
    owner_remote_id: "005000000000001AAA",
  });
  assert.deepEqual(
    account.warnings.map((w) => w.column),
    ["phone"],
    "a number without its area code is not valid",
  );

  const opp = salesforce.inbound(
    "deals",
    rec("Opportunity", "006000000000001AAA", {
      Name: "Engine order",
      Amount: 12000.5,
      CurrencyIsoCode: "USD",
      StageName: "Closed Lost",
      IsClosed: true,
      IsWon: false,
      CloseDate: "2026-06-30",
      Probability: 57.7,
      OwnerId: "005000000000001AAA",
      AccountId: "001000000000001AAA",
      ContactId: null,
    }),
  );
  assert.deepEqual(opp.record, {
    remote_id: "006000000000001AAA",
    remote_updated_at: AT,
    name: "Engine order",
    amount: "12000.5",
    currency: "USD",
    stage: "Closed Lost",
    status: "lost",
    close_date: "2026-06-30",
    probability: 0.577,
    owner_remote_id: "005000000000001AAA",
    company_remote_id: "001000000000001AAA",
    primary_contact_remote_id: null,
  });

  const user = salesforce.inbound(
    "owners",
    rec("User", "005000000000001AAA", {
      Email: "Grace@Example.com",
      FirstName: "Grace",
      LastName: "Hopper",
      IsActive: false,
    }),
  );
  assert.deepEqual(user.record, {
    remote_id: "005000000000001AAA",
    remote_updated_at: AT,
    email: "grace@example.com",
    first_name: "Grace",
    last_name: "Hopper",
    active: false,
  });
});

Deno.test("pipedrive: persons, organizations, deals, users (records typed by our object name)", () => {
  const person = pipedrive.inbound(
    "contacts",
    rec("contacts", "9", {
      id: 9,
      name: "Ada Lovelace",
      first_name: "Ada",
      last_name: "Lovelace",
      emails: [
        { value: "ada@home.example", primary: false, label: "home" },
        { value: "Ada@Work.Example", primary: true, label: "work" },
      ],
      phones: [{ value: "030 901820", primary: true, label: "work" }],
      org_id: 33,
      owner_id: 4,
      update_time: "2026-03-02T10:00:00Z",
      custom_fields: {},
    }),
  );
  assert.deepEqual(person, {
    record: {
      remote_id: "9",
      remote_updated_at: AT,
      first_name: "Ada",
      last_name: "Lovelace",
      email: "ada@work.example",
      phone: "+4930901820",
      phone_raw: "030 901820",
      company_remote_id: "33",
      owner_remote_id: "4",
      kind: "contact",
    },
    warnings: [],
  });

  const org = pipedrive.inbound(
    "companies",
    rec("companies", "33", {
      id: 33,
      name: "Analytical Engines GmbH",
      address: { value: "Unter den Linden 1, Berlin", country: "Germany", locality: "Berlin" },
      owner_id: 4,
    }),
  );
  assert.deepEqual(org.record, {
    remote_id: "33",
    remote_updated_at: AT,
    name: "Analytical Engines GmbH",
    country: "Germany",
    city: "Berlin",
    owner_remote_id: "4",
  });
  const noAddress = pipedrive.inbound("companies", rec("companies", "34", { address: null }));
  assert.deepEqual(
    [noAddress.record.country, noAddress.record.city],
    [null, null],
    "a null address clears country and city",
  );

  const deal = pipedrive.inbound(
    "deals",
    rec("deals", "700", {
      id: 700,
      title: "Engine order",
      value: 1500.25,
      currency: "EUR",
      pipeline_id: 1,
      stage_id: 3,
      status: "won",
      expected_close_date: "2026-05-01",
      probability: 60,
      owner_id: 4,
      org_id: 33,
      person_id: 9,
    }),
  );
  assert.deepEqual(deal.record, {
    remote_id: "700",
    remote_updated_at: AT,
    name: "Engine order",
    amount: "1500.25",
    currency: "EUR",
    pipeline: "1",
    stage: "3",
    status: "won",
    close_date: "2026-05-01",
    probability: 0.6,
    owner_remote_id: "4",
    company_remote_id: "33",
    primary_contact_remote_id: "9",
  });

  const user = pipedrive.inbound(
    "owners",
    rec("owners", "4", {
      id: 4,
      name: "Grace Brewster Hopper",
      email: "Grace@Example.com",
      active_flag: false,
    }),
  );
  assert.deepEqual(user.record, {
    remote_id: "4",
    remote_updated_at: AT,
    email: "grace@example.com",
    first_name: "Grace Brewster",
    last_name: "Hopper",
    active: false,
  });
});

Deno.test("an invalid phone warns, leaves phone null and keeps the raw text in phone_raw", () => {
  const hs = hubspot.inbound("contacts", rec("contacts", "5", { phone: "call me maybe" }));
  assert.equal(hs.record.phone, null);
  assert.equal(hs.record.phone_raw, "call me maybe");
  assert.equal(hs.warnings.length, 1);
  assert.equal(hs.warnings[0].remoteId, "5");
  assert.equal(hs.warnings[0].column, "phone");
  assert.match(hs.warnings[0].message, /invalid phone number "call me maybe"/);

  const pd = pipedrive.inbound("contacts", rec("contacts", "6", { phones: [{ value: "12" }] }));
  assert.deepEqual([pd.record.phone, pd.record.phone_raw], [null, "12"]);
  assert.deepEqual(pd.warnings.map((w) => w.column), ["phone"]);
});

Deno.test("custom.<key> columns land under custom; dotted paths reach nested custom fields", () => {
  const hash = "a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2";
  const rows: FieldMappingRow[] = [
    ...seededMappings("pipedrive"),
    {
      object: "contacts",
      remote_object: "persons",
      column_name: "custom.tier",
      remote_property: `custom_fields.${hash}`,
      direction: "inbound",
      transform: "text",
    },
    {
      object: "contacts",
      remote_object: "persons",
      column_name: "custom.score",
      remote_property: "score",
      direction: "inbound",
      transform: "integer",
    },
  ];
  const m = createMapper("pipedrive", rows);
  const r = m.inbound(
    "contacts",
    rec("contacts", "9", { first_name: "Ada", score: "41.6", custom_fields: { [hash]: "Gold" } }),
  );
  assert.deepEqual(r.record.custom, { tier: "Gold", score: 42 });
  assert.ok(!("custom.tier" in r.record));
  assert.deepEqual(r.warnings.map((w) => w.column), ["custom.score"]);
  assert.equal(pipedrive.inbound("contacts", rec("contacts", "9", {})).record.custom, undefined);
});

Deno.test("absent properties are left out (patch); deletes and merges are carried", () => {
  const partial = hubspot.inbound("contacts", rec("contacts", "7", { firstname: "Ada" }));
  assert.deepEqual(partial.record, {
    remote_id: "7",
    remote_updated_at: AT,
    first_name: "Ada",
    kind: "contact",
  });
  const survivor = hubspot.inbound("contacts", {
    ...rec("contacts", "7", {}),
    mergedIds: ["8", "9"],
  });
  assert.deepEqual(survivor.record.merged_ids, ["8", "9"]);
  assert.ok(!("deleted" in survivor.record));
  const loser = salesforce.inbound("contacts", {
    ...rec("Contact", "003000000000009AAA", { LastName: "Gone" }),
    deleted: true,
    mergedInto: "003000000000001AAA",
  });
  assert.equal(loser.record.deleted, true);
  assert.equal(loser.record.merged_into, "003000000000001AAA");
  assert.equal(loser.record.last_name, "Gone", "a deleted record still maps what it carries");
  assert.ok(!("merged_ids" in loser.record));
});

Deno.test("fields(): every inbound property by remote object and by object", () => {
  const hs = hubspot.fields();
  assert.deepEqual(Object.keys(hs).sort(), ["companies", "contacts", "deals", "owners"]);
  for (
    const p of [
      "associations.companies",
      "associations.contacts",
      "hs_is_closed",
      "hs_is_closed_won",
    ]
  ) {
    assert.ok(hs.deals.includes(p), p);
  }
  assert.equal(hs.contacts.filter((p) => p === "phone").length, 1, "no duplicates");

  const sf = salesforce.fields();
  assert.deepEqual(
    Object.keys(sf).sort(),
    [
      "Account",
      "Contact",
      "Lead",
      "Opportunity",
      "User",
      "companies",
      "contacts",
      "deals",
      "owners",
    ],
  );
  assert.ok(sf.Contact.includes("Account.Name"));
  assert.ok(!sf.Lead.includes("Account.Name"));
  assert.ok(sf.Lead.includes("Company") && sf.Lead.includes("Status"));
  assert.ok(sf.contacts.includes("Account.Name") && sf.contacts.includes("Company"));
  assert.ok(sf.Opportunity.includes("IsClosed") && sf.Opportunity.includes("IsWon"));

  const pd = pipedrive.fields();
  assert.ok(pd.persons.includes("emails") && pd.contacts.includes("phones"));
  assert.ok(pd.organizations.includes("address.country"));
  assert.deepEqual(pd.users, pd.owners);

  const onlyOut = createMapper("hubspot", [{
    object: "contacts",
    remote_object: "contacts",
    column_name: "first_name",
    remote_property: "firstname",
    direction: "outbound",
    transform: "text",
  }, {
    object: "contacts",
    remote_object: "contacts",
    column_name: "last_name",
    remote_property: "lastname",
    direction: "both",
    transform: "text",
    enabled: false,
  }]);
  assert.deepEqual(onlyOut.fields(), {});
  assert.deepEqual(
    onlyOut.inbound("contacts", rec("contacts", "1", { firstname: "A", lastname: "B" })).record,
    { remote_id: "1", remote_updated_at: AT, kind: "contact" },
  );
});

Deno.test("several remote objects: an unknown remote type is a record warning, not a guess", () => {
  const r = salesforce.inbound("contacts", rec("Individual", "0PK000000000001AAA", { Email: "x" }));
  assert.deepEqual(r.record, {
    remote_id: "0PK000000000001AAA",
    remote_updated_at: AT,
    kind: "contact",
  });
  assert.deepEqual(r.warnings.map((w) => w.column), ["*"]);
});

Deno.test("rows are validated: wrong provider, unknown transform, bad column", () => {
  assert.throws(() => createMapper("hubspot", seededMappings("pipedrive")), /pipedrive/);
  const row: FieldMappingRow = {
    object: "contacts",
    remote_object: "contacts",
    column_name: "first_name",
    remote_property: "firstname",
    direction: "inbound",
    transform: "rot13",
  };
  assert.throws(() => createMapper("hubspot", [row]), /unknown transform/);
  assert.throws(() => createMapper("hubspot", [{ ...row, transform: "text", column_name: "X" }]));
  // Rows straight from postgres.js carry more columns; they are ignored.
  const fromDb = {
    ...row,
    transform: "text",
    id: "12",
    connection_id: null,
    created_at: new Date(),
  };
  assert.deepEqual(createMapper("hubspot", [fromDb]).fields(), { contacts: ["firstname"] });
});

Deno.test("resolveProperty: literal keys first, then nested paths; undefined means absent", () => {
  const props = {
    "associations.companies": ["1"],
    Account: { Name: "Acme" },
    Owner: null,
    address: { country: "DE" },
  };
  assert.deepEqual(resolveProperty(props, "associations.companies"), ["1"]);
  assert.equal(resolveProperty(props, "Account.Name"), "Acme");
  assert.equal(resolveProperty(props, "Owner.Name"), null);
  assert.equal(resolveProperty(props, "Missing.Name"), undefined);
  assert.equal(resolveProperty(props, "address.locality"), undefined);
  assert.equal(resolveProperty(props, "nothing"), undefined);
});
