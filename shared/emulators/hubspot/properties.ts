/**
 * HubSpot property definitions for the emulated objects, value validation and
 * normalisation. Values travel as strings, as in the real API.
 *
 * Docs: https://developers.hubspot.com/docs/api/crm/properties
 * - contacts use `lastmodifieddate`, companies/deals `hs_lastmodifieddate`;
 * - `email` is unique per portal (case-insensitive) and stored lower-case;
 * - unknown properties are rejected (PROPERTY_DOESNT_EXIST), read-only
 *   ones too (READ_ONLY_VALUE).
 */

export type HsObjectType = "contacts" | "companies" | "deals";
export const OBJECT_TYPES: readonly HsObjectType[] = ["contacts", "companies", "deals"];

export const OBJECT_TYPE_IDS: Record<HsObjectType, string> = {
  contacts: "0-1",
  companies: "0-2",
  deals: "0-3",
};

/** Singular names used in webhook subscription types and messages. */
export const SINGULAR: Record<HsObjectType, string> = {
  contacts: "contact",
  companies: "company",
  deals: "deal",
};

export function objectTypeFromPath(raw: string): HsObjectType | null {
  const v = raw.toLowerCase();
  if (v === "contacts" || v === "contact" || v === "0-1") return "contacts";
  if (v === "companies" || v === "company" || v === "0-2") return "companies";
  if (v === "deals" || v === "deal" || v === "0-3") return "deals";
  return null;
}

export type PropType = "string" | "number" | "datetime" | "date" | "enumeration" | "bool";

export interface PropertyDef {
  name: string;
  label: string;
  type: PropType;
  fieldType: string;
  groupName: string;
  readOnly?: boolean;
  hasUniqueValue?: boolean;
  options?: string[];
  /** Custom (non HubSpot-defined) property. */
  custom?: boolean;
  createdAt?: number;
}

function p(
  name: string,
  type: PropType,
  extra: Partial<PropertyDef> = {},
): PropertyDef {
  const fieldType = type === "enumeration"
    ? "select"
    : type === "number"
    ? "number"
    : type === "bool"
    ? "booleancheckbox"
    : type === "date" || type === "datetime"
    ? "date"
    : "text";
  return {
    name,
    label: name.replace(/^hs_/, "").replace(/_/g, " "),
    type,
    fieldType,
    groupName: "information",
    ...extra,
  };
}

const RO = { readOnly: true };

export const DEAL_STAGES: Record<string, string[]> = {
  default: [
    "appointmentscheduled",
    "qualifiedtobuy",
    "presentationscheduled",
    "decisionmakerboughtin",
    "contractsent",
    "closedwon",
    "closedlost",
  ],
  "75e28846-ad0d-4be2-a027-5e1da6590b98": [
    "renewalupcoming",
    "renewalquoted",
    "renewalwon",
    "renewallost",
  ],
};

const LIFECYCLE = [
  "subscriber",
  "lead",
  "marketingqualifiedlead",
  "salesqualifiedlead",
  "opportunity",
  "customer",
  "evangelist",
  "other",
];
const LEAD_STATUS = [
  "NEW",
  "OPEN",
  "IN_PROGRESS",
  "OPEN_DEAL",
  "UNQUALIFIED",
  "ATTEMPTED_TO_CONTACT",
  "CONNECTED",
  "BAD_TIMING",
];

export function builtinProperties(type: HsObjectType): PropertyDef[] {
  const common = [
    p("hs_object_id", "number", RO),
    p("createdate", "datetime", RO),
    p("hubspot_owner_id", "enumeration"),
    p("hs_merged_object_ids", "enumeration", RO),
    p("external_id", "string", { custom: true, hasUniqueValue: true, label: "External ID" }),
  ];
  if (type === "contacts") {
    return [
      ...common,
      p("lastmodifieddate", "datetime", RO),
      p("email", "string", { hasUniqueValue: true }),
      p("firstname", "string"),
      p("lastname", "string"),
      p("phone", "string"),
      p("mobilephone", "string"),
      p("company", "string"),
      p("jobtitle", "string"),
      p("website", "string"),
      p("city", "string"),
      p("country", "string"),
      p("lifecyclestage", "enumeration", { options: LIFECYCLE }),
      p("hs_lead_status", "enumeration", { options: LEAD_STATUS }),
      p("associatedcompanyid", "number"),
      p("hs_additional_emails", "enumeration", RO),
      p("notes_last_updated", "datetime", RO),
      p("customer_tier", "enumeration", { custom: true, options: ["gold", "silver", "bronze"] }),
    ];
  }
  if (type === "companies") {
    return [
      ...common,
      p("hs_lastmodifieddate", "datetime", RO),
      p("name", "string"),
      p("domain", "string"),
      p("website", "string"),
      p("industry", "string"),
      p("annualrevenue", "number"),
      p("numberofemployees", "number"),
      p("phone", "string"),
      p("country", "string"),
      p("city", "string"),
      p("description", "string"),
    ];
  }
  return [
    ...common,
    p("hs_lastmodifieddate", "datetime", RO),
    p("dealname", "string"),
    p("amount", "number"),
    p("deal_currency_code", "string"),
    p("pipeline", "enumeration", { options: Object.keys(DEAL_STAGES) }),
    p("dealstage", "enumeration", { options: Object.values(DEAL_STAGES).flat() }),
    p("closedate", "datetime"),
    p("hs_deal_stage_probability", "number"),
    p("hs_is_closed", "bool", RO),
    p("hs_is_closed_won", "bool", RO),
    p("description", "string"),
  ];
}

/** Properties returned when the request names none. */
export const DEFAULT_PROPERTIES: Record<HsObjectType, string[]> = {
  contacts: ["createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"],
  companies: ["createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"],
  deals: [
    "amount",
    "closedate",
    "createdate",
    "dealname",
    "dealstage",
    "hs_lastmodifieddate",
    "hs_object_id",
    "pipeline",
  ],
};

export function modifiedProperty(type: HsObjectType): string {
  return type === "contacts" ? "lastmodifieddate" : "hs_lastmodifieddate";
}

export interface PropertyIssue {
  isValid: false;
  message: string;
  error: string;
  name: string;
}

const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

export function isValidEmail(v: string): boolean {
  return EMAIL_RE.test(v);
}

/**
 * Normalise one incoming value. Returns the stored string (null clears) or
 * an issue. Read-only checks happen in the caller (system writes bypass them).
 */
export function normaliseValue(def: PropertyDef, raw: unknown): string | null | PropertyIssue {
  if (raw === null || raw === undefined || raw === "") return null;
  const text = typeof raw === "string" ? raw : String(raw);
  const issue = (error: string, message: string): PropertyIssue => ({
    isValid: false,
    message,
    error,
    name: def.name,
  });
  switch (def.type) {
    case "number": {
      const n = Number(text.trim());
      if (!Number.isFinite(n)) return issue("INVALID_INTEGER", `${text} was not a valid number.`);
      return String(n);
    }
    case "datetime":
    case "date": {
      const ms = /^-?\d+$/.test(text.trim()) ? Number(text.trim()) : Date.parse(text);
      if (!Number.isFinite(ms)) return issue("INVALID_DATE", `${text} was not a valid date.`);
      const iso = new Date(ms).toISOString();
      return def.type === "date" ? iso.slice(0, 10) : iso;
    }
    case "bool": {
      const v = text.toLowerCase();
      if (v !== "true" && v !== "false") {
        return issue("INVALID_BOOLEAN", `${text} is not a valid boolean.`);
      }
      return v;
    }
    case "enumeration": {
      if (def.options && !def.options.includes(text)) {
        return issue(
          "INVALID_OPTION",
          `${text} was not one of the allowed options: [${def.options.join(", ")}]`,
        );
      }
      return text;
    }
    default: {
      if (def.name === "email") {
        const v = text.trim().toLowerCase();
        if (!isValidEmail(v)) return issue("INVALID_EMAIL", `Email address ${text} is invalid`);
        return v;
      }
      return text;
    }
  }
}

/** Epoch ms of a date/datetime property value or filter value. */
export function toMillis(v: string | number | null | undefined): number | null {
  if (v === null || v === undefined || v === "") return null;
  if (typeof v === "number") return v;
  if (/^-?\d+$/.test(v.trim())) return Number(v.trim());
  const t = Date.parse(v);
  return Number.isNaN(t) ? null : t;
}

/** Registry of property definitions per object type (built-in + created via API). */
export class PropertyRegistry {
  #defs = new Map<HsObjectType, Map<string, PropertyDef>>();
  /** Bumped on every definition change (part of serialisation memo keys). */
  version = 0;

  constructor() {
    this.reset();
  }

  reset(): void {
    this.version++;
    for (const t of OBJECT_TYPES) {
      this.#defs.set(t, new Map(builtinProperties(t).map((d) => [d.name, d])));
    }
  }

  get(type: HsObjectType, name: string): PropertyDef | undefined {
    return this.#defs.get(type)!.get(name);
  }

  all(type: HsObjectType): PropertyDef[] {
    return [...this.#defs.get(type)!.values()];
  }

  add(type: HsObjectType, def: PropertyDef): void {
    this.version++;
    this.#defs.get(type)!.set(def.name, def);
  }

  remove(type: HsObjectType, name: string): boolean {
    this.version++;
    return this.#defs.get(type)!.delete(name);
  }

  /** Every definition per type (built-in and created), for a snapshot. */
  snapshot(): Record<string, PropertyDef[]> {
    return Object.fromEntries([...this.#defs].map(([t, m]) => [t, [...m.values()]]));
  }

  load(defs: Record<string, PropertyDef[]>): void {
    this.version++;
    for (const t of OBJECT_TYPES) {
      this.#defs.set(t, new Map((defs[t] ?? builtinProperties(t)).map((d) => [d.name, d])));
    }
  }

  unique(type: HsObjectType): string[] {
    return this.all(type).filter((d) => d.hasUniqueValue).map((d) => d.name);
  }
}
