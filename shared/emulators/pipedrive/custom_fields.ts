/**
 * Custom fields through API v1: `POST /v1/{personFields|organizationFields|dealFields}` and the
 * v1 field shape both it and the list endpoints answer.
 * Docs: https://developers.pipedrive.com/docs/api/v1/PersonFields#addPersonField
 * - body `{name, field_type, options?, add_visible_flag?}`; `name` and `field_type` required,
 *   `options` required for enum/set; the answer (200) is `{success, data: <field>}` with the
 *   generated 40-hex `key` that v2 bodies use under `custom_fields`;
 * - a user whose permission set does not allow changing fields gets 403. The sandbox's user
 *   has the permission until the admin API takes it away (`PUT /__admin/permissions`
 *   `{"customFields": false}`); the 403 text is the sandbox's own.
 */
import { PdError } from "./errors.ts";
import type { PipedriveEmulator } from "./emulator.ts";
import { type CustomField, FIELD_TYPES, type FieldType, type V2Entity } from "./fields.ts";

export const FIELDS_FORBIDDEN =
  "You do not have permission to add custom fields. Ask an admin to allow it in your permission set.";

function v1Time(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace("T", " ");
}

export function fieldJson(pd: PipedriveEmulator, f: CustomField): Record<string, unknown> {
  const i = pd.store.fields.indexOf(f);
  const at = f.addTime === undefined ? "2023-01-01 00:00:00" : v1Time(f.addTime);
  return {
    id: 9000 + i,
    key: f.key,
    name: f.name,
    order_nr: i + 1,
    field_type: f.type,
    add_time: at,
    update_time: at,
    last_updated_by_user_id: 1,
    created_by_user_id: 1,
    active_flag: true,
    edit_flag: true,
    index_visible_flag: true,
    details_visible_flag: true,
    add_visible_flag: true,
    important_flag: false,
    bulk_edit_allowed: true,
    searchable_flag: ["varchar", "text", "varchar_auto", "address", "phone"].includes(f.type),
    filtering_allowed: true,
    sortable_flag: true,
    mandatory_flag: false,
    options: f.options?.map((o) => ({ id: o.id, label: o.label })) ?? null,
  };
}

export function addField(
  pd: PipedriveEmulator,
  entity: V2Entity,
  body: Record<string, unknown>,
): CustomField {
  if (!pd.permissions.customFields) {
    throw new PdError(403, FIELDS_FORBIDDEN, { errorCode: 403 });
  }
  const name = typeof body.name === "string" ? body.name.trim() : "";
  if (!name) throw new PdError(400, "Field name is required", { errorCode: 400 });
  const type = body.field_type;
  if (typeof type !== "string" || !(FIELD_TYPES as readonly string[]).includes(type)) {
    throw new PdError(
      400,
      `field_type must be one of ${FIELD_TYPES.join(", ")}`,
      { errorCode: 400 },
    );
  }
  let options: Array<{ label: string }> | undefined;
  if (type === "enum" || type === "set") {
    const raw = typeof body.options === "string" ? safeParse(body.options) : body.options;
    if (
      !Array.isArray(raw) || raw.length === 0 ||
      raw.some((o) => typeof (o as { label?: unknown })?.label !== "string")
    ) {
      throw new PdError(400, "Options are required for enum and set fields", { errorCode: 400 });
    }
    options = raw as Array<{ label: string }>;
  }
  return pd.store.addCustomField(entity, name, type as FieldType, options);
}

function safeParse(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return null;
  }
}
