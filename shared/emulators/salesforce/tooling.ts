/**
 * Tooling API CustomField: create a custom field (POST /tooling/sobjects/CustomField with
 * FullName `<SObject>.<Name>__c` and Metadata {type, label, length, externalId, unique,
 * required}) and read it back (GET /tooling/sobjects/CustomField/{id}). The new field is in
 * the object's describe and usable in DML and SOQL at once. Only Text fields are modelled.
 * Creating metadata needs the "Customize Application" permission: an org user without it
 * (admin API: PUT /__admin/permissions {customizeApplication: false}) gets
 * INSUFFICIENT_ACCESS_OR_READONLY (the sandbox answers 403; its wording is the sandbox's own).
 * A second field of the same name is DUPLICATE_DEVELOPER_NAME.
 * Docs: https://developer.salesforce.com/docs/atlas.en-us.api_tooling.meta/api_tooling/tooling_api_objects_customfield.htm
 */
import { z } from "zod";
import { json } from "../common/http.ts";
import type { SalesforceEmulator } from "./emulator.ts";
import { notFound, SfError } from "./errors.ts";
import { makeId } from "./ids.ts";
import { customTextField, type FieldDef, objectName, type SfObject, WRITABLE } from "./schema.ts";

const CustomFieldBody = z.object({
  FullName: z.string(),
  Metadata: z.object({
    type: z.string(),
    label: z.string().optional(),
    length: z.number().int().min(1).max(255).optional(),
    externalId: z.boolean().optional(),
    unique: z.boolean().optional(),
    required: z.boolean().optional(),
    caseSensitive: z.boolean().optional(),
    description: z.string().optional(),
  }).passthrough(),
}).passthrough();
export type CustomFieldInput = z.input<typeof CustomFieldBody>;

interface Created {
  id: string;
  object: SfObject;
  def: FieldDef;
  metadata: Record<string, unknown>;
  createdAt: number;
}

/** Custom fields of one org created through the Tooling API, by id. */
export class CustomFields {
  #byId = new Map<string, Created>();
  #seq = 1;

  constructor(private sf: SalesforceEmulator) {}

  /** The fields created so far and the id counter, for a sandbox snapshot. */
  snapshot(): { seq: number; created: Created[] } {
    return { seq: this.#seq, created: [...this.#byId.values()] };
  }

  /** Loads the Tooling API's record of created fields (the org schema is the store's). */
  load(s: { seq: number; created: Created[] }): void {
    this.#byId = new Map(s.created.map((c) => [c.id, c]));
    this.#seq = s.seq;
  }

  /** Validate and add a field; throws SfError as the Tooling API answers. */
  create(body: unknown): Created {
    const p = CustomFieldBody.safeParse(body);
    if (!p.success) {
      throw SfError.one(
        400,
        "JSON_PARSER_ERROR",
        `Cannot deserialize CustomField: ${p.error.message}`,
      );
    }
    const [objRaw, name, ...rest] = p.data.FullName.split(".");
    const object = objectName(objRaw ?? "");
    if (!object || !WRITABLE.includes(object) || !name || rest.length > 0) {
      throw SfError.one(
        400,
        "INVALID_CROSS_REFERENCE_KEY",
        `invalid cross reference id: FullName ${p.data.FullName}`,
      );
    }
    if (!/^[A-Za-z](?:[A-Za-z0-9]|_(?!_))*__c$/.test(name)) {
      throw SfError.one(
        400,
        "FIELD_INTEGRITY_EXCEPTION",
        `The API name ${name} must end with __c, begin with a letter and contain only letters, digits and single underscores`,
        ["FullName"],
      );
    }
    const m = p.data.Metadata;
    if (m.type !== "Text") {
      throw SfError.one(
        400,
        "FIELD_INTEGRITY_EXCEPTION",
        `This sandbox models Text custom fields only, not ${m.type}`,
        ["Metadata"],
      );
    }
    if (this.sf.store.schema.field(object, name)) {
      throw SfError.one(
        400,
        "DUPLICATE_DEVELOPER_NAME",
        `There is already a field named ${name.slice(0, -3)} on ${object}.`,
      );
    }
    const def = customTextField(name, m);
    this.sf.store.schema.add(object, def);
    const id = makeId("00N", this.#seq++, "5g");
    const c: Created = { id, object, def, metadata: m, createdAt: this.sf.now() };
    this.#byId.set(id, c);
    return c;
  }

  get(id: string): Created | undefined {
    return this.#byId.get(id);
  }

  clear(): void {
    this.#byId.clear();
  }
}

function fieldRecord(c: Created, version: string) {
  return {
    attributes: {
      type: "CustomField",
      url: `/services/data/v${version}/tooling/sobjects/CustomField/${c.id}`,
    },
    Id: c.id,
    DeveloperName: c.def.name.slice(0, -3),
    TableEnumOrId: c.object,
    FullName: `${c.object}.${c.def.name}`,
    Metadata: {
      type: "Text",
      label: c.def.label,
      length: c.def.length,
      externalId: !!c.def.externalId,
      unique: !!c.def.unique,
      required: !c.def.nillable,
    },
  };
}

export function registerToolingRoutes(sf: SalesforceEmulator): void {
  sf.route("POST", "/tooling/sobjects/CustomField", async (ctx) => {
    const body = await sf.body(ctx);
    if (!sf.permissions.customizeApplication) {
      throw SfError.one(
        403,
        "INSUFFICIENT_ACCESS_OR_READONLY",
        "insufficient access rights: creating a CustomField needs the Customize Application permission",
      );
    }
    const c = sf.customFields.create(body);
    return json({ id: c.id, success: true, errors: [], warnings: [], infos: [] }, 201);
  });

  sf.route("GET", "/tooling/sobjects/CustomField/:id", (ctx, auth) => {
    const c = sf.customFields.get(ctx.params.id);
    if (!c) throw notFound();
    return json(fieldRecord(c, auth.version));
  });
}
