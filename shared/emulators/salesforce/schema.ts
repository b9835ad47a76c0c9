/**
 * Field metadata for the emulated sObjects (Contact, Lead, Account,
 * Opportunity, User): what `describe` reports and what DML validates.
 * Field names/types follow the standard objects reference:
 * https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/
 * `External_Id__c` is a custom external-id field on every writable object, so
 * upserts by external id can be exercised.
 */

export type SfObject = "Contact" | "Lead" | "Account" | "Opportunity" | "User";
export const SOBJECTS: readonly SfObject[] = ["Account", "Contact", "Lead", "Opportunity", "User"];
export const WRITABLE: readonly SfObject[] = ["Account", "Contact", "Lead", "Opportunity"];

export type FieldType =
  | "id"
  | "reference"
  | "string"
  | "textarea"
  | "email"
  | "phone"
  | "url"
  | "picklist"
  | "boolean"
  | "double"
  | "int"
  | "currency"
  | "percent"
  | "date"
  | "datetime";

export interface FieldDef {
  name: string;
  type: FieldType;
  label: string;
  length?: number;
  /** Can be null on insert (false = required). */
  nillable: boolean;
  createable: boolean;
  updateable: boolean;
  custom?: boolean;
  externalId?: boolean;
  unique?: boolean;
  referenceTo?: SfObject[];
  relationshipName?: string;
  picklistValues?: string[];
  restrictedPicklist?: boolean;
  defaultValue?: unknown;
}

function f(name: string, type: FieldType, opts: Partial<FieldDef> = {}): FieldDef {
  return {
    name,
    type,
    label: name.replace(/__c$/, "").replace(/_/g, " ").replace(/([a-z])([A-Z])/g, "$1 $2"),
    length: type === "string" || type === "email" || type === "phone" || type === "url"
      ? 255
      : type === "textarea"
      ? 32000
      : undefined,
    nillable: true,
    createable: true,
    updateable: true,
    ...opts,
  };
}

const SYS = { createable: false, updateable: false };

function systemFields(): FieldDef[] {
  return [
    f("Id", "id", { ...SYS, nillable: false, length: 18 }),
    f("IsDeleted", "boolean", { ...SYS, nillable: false }),
    f("CreatedDate", "datetime", { ...SYS, nillable: false }),
    f("CreatedById", "reference", {
      ...SYS,
      nillable: false,
      referenceTo: ["User"],
      relationshipName: "CreatedBy",
    }),
    f("LastModifiedDate", "datetime", { ...SYS, nillable: false }),
    f("LastModifiedById", "reference", {
      ...SYS,
      nillable: false,
      referenceTo: ["User"],
      relationshipName: "LastModifiedBy",
    }),
    f("SystemModstamp", "datetime", { ...SYS, nillable: false }),
  ];
}

const owner = () =>
  f("OwnerId", "reference", { referenceTo: ["User"], relationshipName: "Owner", nillable: false });
const master = () => f("MasterRecordId", "reference", { ...SYS, relationshipName: "MasterRecord" });
const ext = () =>
  f("External_Id__c", "string", { custom: true, externalId: true, unique: true, length: 80 });

export const LEAD_SOURCES = ["Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other"];
export const LEAD_STATUSES = [
  "Open - Not Contacted",
  "Working - Contacted",
  "Closed - Converted",
  "Closed - Not Converted",
];
export const STAGES = [
  "Prospecting",
  "Qualification",
  "Needs Analysis",
  "Value Proposition",
  "Id. Decision Makers",
  "Perception Analysis",
  "Proposal/Price Quote",
  "Negotiation/Review",
  "Closed Won",
  "Closed Lost",
];
export const STAGE_PROBABILITY: Record<string, number> = {
  "Prospecting": 10,
  "Qualification": 10,
  "Needs Analysis": 20,
  "Value Proposition": 50,
  "Id. Decision Makers": 60,
  "Perception Analysis": 70,
  "Proposal/Price Quote": 75,
  "Negotiation/Review": 90,
  "Closed Won": 100,
  "Closed Lost": 0,
};

const FIELDS: Record<SfObject, FieldDef[]> = {
  Account: [
    ...systemFields(),
    master(),
    f("Name", "string", { nillable: false }),
    f("Type", "picklist", {
      picklistValues: ["Prospect", "Customer - Direct", "Customer - Channel", "Partner", "Other"],
    }),
    f("Industry", "picklist", { picklistValues: [] }),
    f("AnnualRevenue", "currency"),
    f("NumberOfEmployees", "int"),
    f("Phone", "phone", { length: 40 }),
    f("Website", "url"),
    f("BillingCity", "string", { length: 40 }),
    f("BillingCountry", "string", { length: 80 }),
    f("Description", "textarea"),
    owner(),
    ext(),
  ],
  Contact: [
    ...systemFields(),
    master(),
    f("AccountId", "reference", { referenceTo: ["Account"], relationshipName: "Account" }),
    f("LastName", "string", { nillable: false, length: 80 }),
    f("FirstName", "string", { length: 40 }),
    f("Salutation", "picklist", { picklistValues: ["Mr.", "Ms.", "Mrs.", "Dr.", "Prof."] }),
    f("Name", "string", { ...SYS, nillable: false, length: 121 }),
    f("Email", "email", { length: 80 }),
    f("Phone", "phone", { length: 40 }),
    f("MobilePhone", "phone", { length: 40 }),
    f("Title", "string", { length: 128 }),
    f("Department", "string", { length: 80 }),
    f("LeadSource", "picklist", { picklistValues: LEAD_SOURCES }),
    f("MailingCity", "string", { length: 40 }),
    f("MailingCountry", "string", { length: 80 }),
    f("Description", "textarea"),
    f("HasOptedOutOfEmail", "boolean", { nillable: false, defaultValue: false }),
    f("LastActivityDate", "date", SYS),
    owner(),
    ext(),
  ],
  Lead: [
    ...systemFields(),
    master(),
    f("LastName", "string", { nillable: false, length: 80 }),
    f("FirstName", "string", { length: 40 }),
    f("Name", "string", { ...SYS, nillable: false, length: 121 }),
    f("Company", "string", { nillable: false }),
    f("Email", "email", { length: 80 }),
    f("Phone", "phone", { length: 40 }),
    f("MobilePhone", "phone", { length: 40 }),
    f("Title", "string", { length: 128 }),
    f("Status", "picklist", {
      nillable: false,
      picklistValues: LEAD_STATUSES,
      restrictedPicklist: true,
      defaultValue: "Open - Not Contacted",
    }),
    f("LeadSource", "picklist", { picklistValues: LEAD_SOURCES }),
    f("Industry", "picklist", { picklistValues: [] }),
    f("City", "string", { length: 40 }),
    f("Country", "string", { length: 80 }),
    f("Description", "textarea"),
    f("IsConverted", "boolean", { ...SYS, nillable: false, defaultValue: false }),
    f("ConvertedContactId", "reference", {
      ...SYS,
      referenceTo: ["Contact"],
      relationshipName: "ConvertedContact",
    }),
    f("ConvertedAccountId", "reference", {
      ...SYS,
      referenceTo: ["Account"],
      relationshipName: "ConvertedAccount",
    }),
    f("ConvertedDate", "date", SYS),
    owner(),
    ext(),
  ],
  Opportunity: [
    ...systemFields(),
    f("AccountId", "reference", { referenceTo: ["Account"], relationshipName: "Account" }),
    f("ContactId", "reference", { referenceTo: ["Contact"], relationshipName: "Contact" }),
    f("Name", "string", { nillable: false, length: 120 }),
    f("Amount", "currency"),
    f("StageName", "picklist", {
      nillable: false,
      picklistValues: STAGES,
      restrictedPicklist: true,
    }),
    f("CloseDate", "date", { nillable: false }),
    f("Probability", "percent"),
    f("IsClosed", "boolean", { ...SYS, nillable: false }),
    f("IsWon", "boolean", { ...SYS, nillable: false }),
    f("Type", "picklist", {
      picklistValues: [
        "New Business",
        "Existing Customer - Upgrade",
        "Existing Customer - Replacement",
      ],
    }),
    f("LeadSource", "picklist", { picklistValues: LEAD_SOURCES }),
    f("NextStep", "string"),
    f("Description", "textarea"),
    owner(),
    ext(),
  ],
  User: [
    ...systemFields().filter((x) => x.name !== "IsDeleted"),
    f("Username", "string", { ...SYS, nillable: false, length: 80 }),
    f("LastName", "string", { ...SYS, nillable: false }),
    f("FirstName", "string", SYS),
    f("Name", "string", SYS),
    f("Email", "email", { ...SYS, nillable: false }),
    f("Alias", "string", { ...SYS, length: 8 }),
    f("IsActive", "boolean", { ...SYS, nillable: false }),
    f("TimeZoneSidKey", "picklist", SYS),
    f("UserType", "picklist", SYS),
  ],
};

export function fieldsOf(type: SfObject): FieldDef[] {
  return FIELDS[type];
}

const INDEX = new Map<SfObject, Map<string, FieldDef>>(
  SOBJECTS.map((t) => [t, new Map(FIELDS[t].map((d) => [d.name.toLowerCase(), d]))]),
);

/** Field by case-insensitive name (SOQL and DML are case-insensitive). */
export function field(type: SfObject, name: string): FieldDef | undefined {
  return INDEX.get(type)!.get(name.toLowerCase());
}

/** Relationship name (e.g. "Account", "Owner") → reference field. */
export function relationship(type: SfObject, name: string): FieldDef | undefined {
  const n = name.toLowerCase();
  return FIELDS[type].find((d) => d.relationshipName?.toLowerCase() === n);
}

export function objectName(raw: string): SfObject | null {
  return SOBJECTS.find((t) => t.toLowerCase() === raw.toLowerCase()) ?? null;
}

/**
 * The fields of one org: the standard schema above plus custom fields created at run time
 * (Tooling API CustomField). Orgs of one sandbox process (tenancy, parallel tests) each have
 * their own; the standard arrays above are shared and never mutated.
 */
export class OrgSchema {
  #custom = new Map<SfObject, FieldDef[]>();
  #all = new Map<SfObject, FieldDef[]>();

  fieldsOf(type: SfObject): FieldDef[] {
    return this.#all.get(type) ?? FIELDS[type];
  }

  field(type: SfObject, name: string): FieldDef | undefined {
    const base = field(type, name);
    if (base) return base;
    const n = name.toLowerCase();
    return this.#custom.get(type)?.find((d) => d.name.toLowerCase() === n);
  }

  custom(): Array<{ object: SfObject; field: FieldDef }> {
    return [...this.#custom].flatMap(([object, defs]) => defs.map((d) => ({ object, field: d })));
  }

  add(type: SfObject, def: FieldDef): void {
    const list = [...(this.#custom.get(type) ?? []), def];
    this.#custom.set(type, list);
    this.#all.set(type, [...FIELDS[type], ...list]);
  }

  clear(): void {
    this.#custom.clear();
    this.#all.clear();
  }
}

/** A custom Text field as the Tooling API's CustomField Metadata describes it. */
export function customTextField(
  name: string,
  m: {
    label?: string;
    length?: number;
    externalId?: boolean;
    unique?: boolean;
    required?: boolean;
  },
): FieldDef {
  return {
    ...f(name, "string", { custom: true, length: m.length ?? 255 }),
    ...(m.label ? { label: m.label } : {}),
    externalId: m.externalId ?? false,
    unique: m.unique ?? false,
    nillable: !m.required,
  };
}
