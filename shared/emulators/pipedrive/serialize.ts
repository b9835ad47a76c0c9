/** Pipedrive records → API v2 entities and API v1 leads/users. */
import type { PdEntity } from "./fields.ts";
import { type PdRecord, pdTime, type PdUser } from "./store.ts";

const OPTIONAL_PERSON_FIELDS = new Set([
  "job_title",
  "notes",
  "postal_address",
  "birthday",
  "im",
  "marketing_status",
]);

/** API v2 entity (persons, organizations, deals). */
export function v2Json(r: PdRecord, customKeys?: string[]): Record<string, unknown> {
  let custom = r.custom;
  if (customKeys) {
    custom = {};
    for (const k of customKeys) if (k in r.custom) custom[k] = r.custom[k];
  }
  const out: Record<string, unknown> = { id: Number(r.id) };
  const person = r.entity === "person";
  for (const k in r.data) {
    const v = r.data[k];
    // Optional person fields appear only when set, as in the v2 API.
    if (person && (v === null || v === undefined) && OPTIONAL_PERSON_FIELDS.has(k)) continue;
    out[k] = v;
  }
  out.add_time = pdTime(r.addTime);
  out.update_time = pdTime(r.modifiedAt);
  out.is_deleted = r.isDeleted;
  out.custom_fields = custom;
  return out;
}

/** API v1 lead. */
export function leadJson(r: PdRecord): Record<string, unknown> {
  const iso = (ms: number) => new Date(ms).toISOString();
  return { id: r.id, ...r.data, add_time: iso(r.addTime), update_time: iso(r.modifiedAt) };
}

function v1Time(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace("T", " ");
}

/** API v1 user. */
export function userJson(u: PdUser, me: number): Record<string, unknown> {
  return {
    id: u.id,
    name: u.name,
    default_currency: "USD",
    locale: "en_US",
    lang: 1,
    email: u.email,
    phone: null,
    activated: u.active,
    last_login: v1Time(u.modified),
    created: v1Time(u.created),
    modified: v1Time(u.modified),
    has_created_company: u.id === me,
    access: [{ app: "sales", admin: u.isAdmin, permission_set_id: "sandbox" }],
    active_flag: u.active,
    timezone_name: "Europe/Berlin",
    timezone_offset: "+01:00",
    role_id: 1,
    icon_url: null,
    is_you: u.id === me,
    is_deleted: false,
  };
}

/** Webhook v2 `data` object for an entity (a compact subset, as Pipedrive sends). */
export function webhookData(r: PdRecord): Record<string, unknown> {
  if (r.entity === "lead") return leadJson(r);
  return v2Json(r);
}

export type { PdEntity };
