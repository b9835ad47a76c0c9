/** HubSpot record → API object (`SimplePublicObject…` in the SDK). */
import { isoString } from "../common/time_format.ts";
import { pairTypes } from "./association_types.ts";
import { DEFAULT_PROPERTIES, type HsObjectType, objectTypeFromPath } from "./properties.ts";
import type { HsRecord, HubSpotStore } from "./store.ts";

export interface SerializeOptions {
  properties?: string[];
  propertiesWithHistory?: string[];
  associations?: string[];
}

export interface ApiObject {
  id: string;
  properties: Record<string, string | null>;
  createdAt: string;
  updatedAt: string;
  archived: boolean;
  archivedAt?: string;
  propertiesWithHistory?: Record<
    string,
    Array<{ value: string; timestamp: string; sourceType: string; sourceId?: string }>
  >;
  associations?: Record<string, { results: Array<{ id: string; type: string }> }>;
}

export function toApiObject(
  store: HubSpotStore,
  r: HsRecord,
  opts: SerializeOptions = {},
): ApiObject {
  const names = opts.properties && opts.properties.length > 0
    ? opts.properties
    : DEFAULT_PROPERTIES[r.type];
  const properties: Record<string, string | null> = {};
  for (const n of names) {
    if (n in r.properties) properties[n] = r.properties[n];
    else if (store.props.get(r.type, n)) properties[n] = null;
  }
  // HubSpot always includes these three.
  properties.hs_object_id = r.id;
  properties.createdate = r.properties.createdate;
  const mod = r.type === "contacts" ? "lastmodifieddate" : "hs_lastmodifieddate";
  properties[mod] = r.properties[mod];
  const out: ApiObject = {
    id: r.id,
    properties,
    // createdate is the creation time already formatted.
    createdAt: r.properties.createdate ?? isoString(r.createdAt),
    updatedAt: isoString(r.archivedAt ?? r.modifiedAt),
    archived: r.archived,
  };
  if (r.archivedAt !== null) out.archivedAt = isoString(r.archivedAt);
  if (opts.propertiesWithHistory?.length) {
    // History is not tracked: the current value is reported as the only version.
    out.propertiesWithHistory = {};
    for (const n of opts.propertiesWithHistory) {
      const v = r.properties[n];
      const src = r.sources?.[n];
      out.propertiesWithHistory[n] = v === null || v === undefined ? [] : [{
        value: v,
        timestamp: new Date(src?.at ?? r.modifiedAt).toISOString(),
        sourceType: src?.source ?? "IMPORT",
        ...(src ? { sourceId: src.sourceId } : {}),
      }];
    }
  }
  if (opts.associations?.length) {
    const assoc: NonNullable<ApiObject["associations"]> = {};
    for (const raw of opts.associations) {
      const to = objectTypeFromPath(raw);
      if (!to) continue;
      const t = pairTypes(r.type, to);
      if (!t) continue;
      const results: Array<{ id: string; type: string }> = [];
      for (const a of store.associations(r.type, r.id, to)) {
        if (a.primary && t.primary !== undefined) results.push({ id: a.id, type: t.name });
        results.push({ id: a.id, type: `${t.name}_unlabeled` });
      }
      if (results.length) assoc[to] = { results };
    }
    if (Object.keys(assoc).length) out.associations = assoc;
  }
  return out;
}

export function batchEnvelope<T>(
  results: T[],
  startedAt: string,
  extra: Record<string, unknown> = {},
) {
  return {
    status: "COMPLETE",
    results,
    startedAt,
    completedAt: new Date().toISOString(),
    ...extra,
  };
}

export type { HsObjectType };
