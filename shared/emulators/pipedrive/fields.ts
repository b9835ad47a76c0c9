/**
 * Pipedrive field metadata: the writable standard fields of each entity (for
 * request validation) and the account's custom fields, which API v2 returns
 * under `custom_fields` keyed by a 40-character hash.
 * Docs: https://pipedrive.readme.io/docs/core-api-concepts-custom-fields
 */
import type { Prng } from "../common/prng.ts";

export type PdEntity = "person" | "organization" | "deal" | "lead";
export const V2_ENTITIES = ["person", "organization", "deal"] as const;
export type V2Entity = typeof V2_ENTITIES[number];

export const PLURAL: Record<PdEntity, string> = {
  person: "persons",
  organization: "organizations",
  deal: "deals",
  lead: "leads",
};

export function entityFromPlural(p: string): V2Entity | null {
  return p === "persons"
    ? "person"
    : p === "organizations"
    ? "organization"
    : p === "deals"
    ? "deal"
    : null;
}

/** Writable standard fields per entity (v2 request bodies). */
export const WRITABLE_FIELDS: Record<PdEntity, readonly string[]> = {
  person: [
    "name",
    "first_name",
    "last_name",
    "owner_id",
    "org_id",
    "add_time",
    "emails",
    "phones",
    "visible_to",
    "label_ids",
    "postal_address",
    "notes",
    "im",
    "birthday",
    "job_title",
    "marketing_status",
  ],
  organization: [
    "name",
    "owner_id",
    "add_time",
    "visible_to",
    "label_ids",
    "address",
    "website",
    "linkedin",
    "industry",
    "annual_revenue",
    "employee_count",
  ],
  deal: [
    "title",
    "owner_id",
    "person_id",
    "org_id",
    "pipeline_id",
    "stage_id",
    "value",
    "currency",
    "add_time",
    "is_deleted",
    "is_archived",
    "archive_time",
    "status",
    "probability",
    "lost_reason",
    "visible_to",
    "close_time",
    "won_time",
    "lost_time",
    "expected_close_date",
    "label_ids",
  ],
  lead: [
    "title",
    "owner_id",
    "label_ids",
    "person_id",
    "organization_id",
    "value",
    "expected_close_date",
    "visible_to",
    "was_seen",
    "is_archived",
    "origin_id",
    "channel",
    "channel_id",
  ],
};

/** Field types POST /v1/{entity}Fields accepts (the SDK's FieldFieldTypeConst). */
export const FIELD_TYPES = [
  "address",
  "date",
  "daterange",
  "double",
  "enum",
  "monetary",
  "org",
  "people",
  "phone",
  "set",
  "text",
  "time",
  "timerange",
  "user",
  "varchar",
  "varchar_auto",
  "visible_to",
] as const;
export type FieldType = typeof FIELD_TYPES[number];

/** Custom field types the search endpoints look into (Pipedrive's search docs). */
export const SEARCHABLE_TYPES: ReadonlySet<FieldType> = new Set([
  "address",
  "varchar",
  "text",
  "varchar_auto",
  "double",
  "monetary",
  "phone",
]);

export interface CustomField {
  key: string;
  entity: PdEntity;
  name: string;
  type: FieldType;
  options?: Array<{ id: number; label: string }>;
  /** Set on fields added through the API (epoch ms); seeded fields have none. */
  addTime?: number;
}

/** The sandbox account's custom fields (keys derived from the seed). */
export function customFields(p: Prng): CustomField[] {
  const key = () => p.hex(40);
  return [
    { key: key(), entity: "person", name: "External ID", type: "varchar" },
    {
      key: key(),
      entity: "person",
      name: "Customer tier",
      type: "enum",
      options: [{ id: 11, label: "Gold" }, { id: 12, label: "Silver" }, {
        id: 13,
        label: "Bronze",
      }],
    },
    { key: key(), entity: "organization", name: "External ID", type: "varchar" },
    { key: key(), entity: "organization", name: "Segment", type: "varchar" },
    { key: key(), entity: "deal", name: "External ID", type: "varchar" },
    { key: key(), entity: "deal", name: "Source", type: "varchar" },
    { key: key(), entity: "deal", name: "Renewal date", type: "date" },
  ];
}

/** Validate a custom field value; returns an error message or null. */
export function checkCustomValue(f: CustomField, v: unknown): string | null {
  if (v === null) return null;
  switch (f.type) {
    case "varchar":
    case "varchar_auto":
    case "text":
    case "phone":
      return typeof v === "string" ? null : `${f.name} must be a string`;
    case "double":
    case "monetary":
      return typeof v === "number" ? null : `${f.name} must be a number`;
    case "date":
      return typeof v === "string" && /^\d{4}-\d{2}-\d{2}$/.test(v)
        ? null
        : `${f.name} must be a date (YYYY-MM-DD)`;
    case "enum":
      return typeof v === "number" && f.options!.some((o) => o.id === v)
        ? null
        : `${f.name} must be one of the option ids ${f.options!.map((o) => o.id).join(", ")}`;
    default:
      // Structured types (address, ranges, set, links) are not modelled: any JSON value.
      return null;
  }
}
