/**
 * /crm/v3/properties/{objectType}: list, get, create, archive.
 * Lets adapters discover (and tests add) custom properties. Creating one needs the scope
 * `crm.schemas.{objectType}.write` (403 MISSING_SCOPES when denied through /__admin/scopes).
 */
import { z } from "zod";
import { json, noContent } from "../common/http.ts";
import type { HubSpotEmulator } from "./emulator.ts";
import { typeParam } from "./objects.ts";
import type { PropertyDef, PropType } from "./properties.ts";

function propJson(d: PropertyDef) {
  return {
    name: d.name,
    label: d.label,
    type: d.type,
    fieldType: d.fieldType,
    groupName: d.groupName,
    description: "",
    options: (d.options ?? []).map((o, i) => ({
      label: o,
      value: o,
      displayOrder: i,
      hidden: false,
    })),
    displayOrder: -1,
    calculated: false,
    externalOptions: false,
    hasUniqueValue: !!d.hasUniqueValue,
    hidden: false,
    hubspotDefined: !d.custom,
    formField: !d.readOnly,
    modificationMetadata: {
      archivable: !!d.custom,
      readOnlyDefinition: !d.custom,
      readOnlyValue: !!d.readOnly,
    },
    createdAt: d.createdAt ? new Date(d.createdAt).toISOString() : undefined,
    updatedAt: d.createdAt ? new Date(d.createdAt).toISOString() : undefined,
    archived: false,
  };
}

const CreateProperty = z.object({
  name: z.string().regex(/^[a-z][a-z0-9_]*$/),
  label: z.string(),
  type: z.enum(["string", "number", "datetime", "date", "enumeration", "bool"]),
  fieldType: z.string(),
  groupName: z.string(),
  hasUniqueValue: z.boolean().optional(),
  options: z.array(z.object({ label: z.string(), value: z.string() })).optional(),
}).passthrough();

export function registerPropertyRoutes(hs: HubSpotEmulator): void {
  hs.route("GET", "/crm/v3/properties/:objectType", (ctx) => {
    const type = typeParam(hs, ctx);
    return json({ results: hs.store.props.all(type).map(propJson) });
  });
  hs.route("GET", "/crm/v3/properties/:objectType/:propertyName", (ctx) => {
    const type = typeParam(hs, ctx);
    const d = hs.store.props.get(type, ctx.params.propertyName);
    if (!d) hs.fail(404, "OBJECT_NOT_FOUND", `Unable to find property ${ctx.params.propertyName}`);
    return json(propJson(d));
  });
  hs.route("POST", "/crm/v3/properties/:objectType", async (ctx) => {
    const type = typeParam(hs, ctx);
    hs.requireScope(`crm.schemas.${type}.write`);
    const body = await hs.body(ctx, CreateProperty);
    if (hs.store.props.get(type, body.name)) {
      hs.fail(409, "OBJECT_ALREADY_EXISTS", `A property named '${body.name}' already exists.`);
    }
    const def: PropertyDef = {
      name: body.name,
      label: body.label,
      type: body.type as PropType,
      fieldType: body.fieldType,
      groupName: body.groupName,
      hasUniqueValue: body.hasUniqueValue,
      options: body.options?.map((o) => o.value),
      custom: true,
      createdAt: hs.now(),
    };
    hs.store.props.add(type, def);
    if (def.hasUniqueValue) hs.store.addUniqueIndex(type, def.name);
    return json(propJson(def), 201);
  });
  hs.route("DELETE", "/crm/v3/properties/:objectType/:propertyName", (ctx) => {
    const type = typeParam(hs, ctx);
    const d = hs.store.props.get(type, ctx.params.propertyName);
    if (d && !d.custom) {
      hs.fail(
        400,
        "VALIDATION_ERROR",
        `${d.name} is a HubSpot-defined property and cannot be archived`,
      );
    }
    hs.store.props.remove(type, ctx.params.propertyName);
    return noContent();
  });
}
