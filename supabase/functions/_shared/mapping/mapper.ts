// Inbound mapping: crm.field_mappings rows in force for one connection turn an adapter's raw
// RemoteRecord into the canonical record crm.apply_inbound takes. Built once per run.
//
// Patch semantics: a column whose remote properties are all absent from the record is left out
// (apply_inbound then leaves it alone), so partial records (webhooks, archived-record listings
// without associations) never clear values. A property present with null clears the column.
// Text Postgres cannot store (NUL, lone surrogates) is cleaned from every mapped property before
// its transform, with a warning naming the record, column and property (./clean.ts); merge ids
// are cleaned the same way.
// Limit: Pipedrive v2 omits some optional person fields when unset, so clearing such a field in
// Pipedrive is not seen until it is set again.
import { z } from "zod";
import type { FieldSelection } from "../providers/registry.ts";
import {
  type ObjectType,
  ObjectTypeSchema,
  type ProviderName,
  type RemoteRecord,
} from "../providers/types.ts";
import { type Cleaning, cleaningMessage, cleanString, cleanValue } from "./clean.ts";
import {
  inboundTransform,
  isKnownTransform,
  parseTransform,
  TAKES_LIST,
  type TransformContext,
  type Transformed,
} from "./transforms.ts";

/** A row of crm.effective_field_mappings as postgres.js returns it (options already parsed). */
export const FieldMappingRowSchema = z.object({
  provider: z.string().optional(),
  object: ObjectTypeSchema,
  remote_object: z.string().min(1),
  column_name: z.string().regex(/^([a-z][a-z0-9_]*|custom\.[A-Za-z0-9_.-]+)$/),
  remote_property: z.string().min(1),
  direction: z.enum(["inbound", "outbound", "both"]),
  transform: z.string().refine(isKnownTransform, { message: "unknown transform" }),
  options: z.looseObject({
    map: z.record(z.string(), z.string()).optional(),
    raw: z.boolean().optional(),
  }).default({}),
  enabled: z.boolean().default(true),
});
export type FieldMappingRow = z.input<typeof FieldMappingRowSchema>;

export interface MappingWarning {
  remoteId: string;
  /** Canonical column, or "*" for a problem with the whole record. */
  column: string;
  message: string;
}

export interface InboundResult {
  record: Record<string, unknown>;
  warnings: MappingWarning[];
}

export interface Mapper {
  /** Remote properties to read, keyed by remote object and by object. */
  fields(): FieldSelection;
  inbound(object: ObjectType, r: RemoteRecord): InboundResult;
}

interface Compiled {
  column: string;
  /** custom.<key> columns land under record.custom[key]. */
  customKey: string | null;
  properties: string[];
  /** The dotted path of each property, split once (null for a plain name). */
  paths: (string[] | null)[];
  takesList: boolean;
  transform: (v: unknown, ctx: TransformContext) => Transformed;
  ctx: TransformContext;
}

const CUSTOM = "custom.";

export function splitProperties(remoteProperty: string): string[] {
  return remoteProperty.split(",").map((p) => p.trim()).filter(Boolean);
}

/**
 * A property by name: the literal key first (HubSpot's "associations.companies" is one key),
 * then a dotted path through nested objects (Salesforce `Account: {Name}`, Pipedrive
 * `address: {country}`). Undefined = absent; a null on the way = null.
 */
export function resolveProperty(props: Record<string, unknown>, path: string): unknown {
  return resolvePath(props, path, path.includes(".") ? path.split(".") : null);
}

function resolvePath(
  props: Record<string, unknown>,
  path: string,
  parts: string[] | null,
): unknown {
  if (Object.hasOwn(props, path)) return props[path];
  if (parts === null) return undefined;
  let cur: unknown = props;
  for (const part of parts) {
    if (cur === null) return null;
    if (typeof cur !== "object" || !Object.hasOwn(cur, part)) return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

/** One mapped property's value, cleaned of text Postgres rejects; a warning says so. */
function clean(
  remoteId: string,
  m: Compiled,
  i: number,
  value: unknown,
  warnings: MappingWarning[],
): unknown {
  if (value === null || value === undefined || typeof value === "number") return value;
  const found: Cleaning = { nul: false, surrogate: false };
  const out = cleanValue(value, found);
  if (out !== value) {
    warnings.push({ remoteId, column: m.column, message: cleaningMessage(m.properties[i], found) });
  }
  return out;
}

/**
 * Every row is checked against FieldMappingRowSchema (a bad row throws: the mappings are
 * configuration, not data), so database rows can be passed as they come.
 */
export function createMapper(
  provider: ProviderName,
  mappings: readonly (FieldMappingRow | Record<string, unknown>)[],
  ctx: { defaultRegion?: string } = {},
): Mapper {
  // object -> remote object -> compiled inbound mappings
  const inboundByObject = new Map<ObjectType, Map<string, Compiled[]>>();
  const selection = new Map<string, Set<string>>();

  for (const raw of mappings) {
    const row = FieldMappingRowSchema.parse(raw);
    if (row.provider !== undefined && row.provider !== provider) {
      throw new Error(`field mapping for ${row.provider} given to the ${provider} mapper`);
    }
    if (!row.enabled || row.direction === "outbound") continue;
    const properties = splitProperties(row.remote_property);
    for (const key of [row.remote_object, row.object]) {
      const set = selection.get(key) ?? new Set<string>();
      for (const p of properties) set.add(p);
      selection.set(key, set);
    }
    const byRemote = inboundByObject.get(row.object) ?? new Map<string, Compiled[]>();
    inboundByObject.set(row.object, byRemote);
    const list = byRemote.get(row.remote_object) ?? [];
    byRemote.set(row.remote_object, list);
    const [name] = parseTransform(row.transform);
    list.push({
      column: row.column_name,
      customKey: row.column_name.startsWith(CUSTOM) ? row.column_name.slice(CUSTOM.length) : null,
      properties,
      paths: properties.map((p) => (p.includes(".") ? p.split(".") : null)),
      takesList: TAKES_LIST.has(name),
      transform: inboundTransform(row.transform),
      ctx: { defaultRegion: ctx.defaultRegion, options: row.options },
    });
  }

  /**
   * The mappings for a record: by its remote type where the object has several (Salesforce
   * Contact and Lead), else the object's only remote object (Pipedrive records are typed by
   * our object name, the mappings by Pipedrive's).
   */
  function mappingsFor(object: ObjectType, remoteType: string): Compiled[] | null {
    const byRemote = inboundByObject.get(object);
    if (!byRemote) return [];
    const exact = byRemote.get(remoteType);
    if (exact) return exact;
    return byRemote.size === 1 ? [...byRemote.values()][0] : null;
  }

  return {
    fields() {
      return Object.fromEntries([...selection].map(([k, v]) => [k, [...v]]));
    },

    inbound(object, r) {
      const warnings: MappingWarning[] = [];
      const record: Record<string, unknown> = {
        remote_id: r.remoteId,
        remote_updated_at: r.modifiedAt,
      };
      const custom: Record<string, unknown> = {};
      const rows = mappingsFor(object, r.remoteType);
      if (rows === null) {
        warnings.push({
          remoteId: r.remoteId,
          column: "*",
          message: `no field mappings for ${provider} ${r.remoteType} (${object})`,
        });
      }
      for (const m of rows ?? []) {
        let input: unknown;
        if (m.properties.length === 1) {
          input = resolvePath(r.properties, m.properties[0], m.paths[0]);
          if (input === undefined) continue;
          input = clean(r.remoteId, m, 0, input, warnings);
          if (m.takesList) input = [input];
        } else {
          const values = m.properties.map((p, i) => resolvePath(r.properties, p, m.paths[i]));
          if (values.every((v) => v === undefined)) continue;
          for (let i = 0; i < values.length; i++) {
            values[i] = clean(r.remoteId, m, i, values[i], warnings);
          }
          input = m.takesList ? values : values[0];
        }
        const t = m.transform(input, m.ctx);
        if (t.warning) {
          warnings.push({ remoteId: r.remoteId, column: m.column, message: t.warning });
        }
        const value = t.value === undefined ? null : t.value;
        if (m.customKey !== null) custom[m.customKey] = value;
        else record[m.column] = value;
      }
      if (Object.keys(custom).length > 0) record.custom = custom;
      if (r.deleted) record.deleted = true;
      if (r.mergedIds.length > 0) record.merged_ids = r.mergedIds.map((id) => cleanString(id));
      if (r.mergedInto && r.mergedInto !== r.remoteId) {
        record.merged_into = cleanString(r.mergedInto);
      }
      // Routing, not a mapped field: which Salesforce object the row belongs to.
      if (object === "contacts") {
        record.kind = provider === "salesforce" && r.remoteType === "Lead" ? "lead" : "contact";
      }
      return { record, warnings };
    },
  };
}
