/**
 * CRM v3 object endpoints for contacts, companies and deals:
 * list, get, create, update, archive, merge, GDPR delete and the batch
 * endpoints (read/create/update/upsert/archive, at most 100 inputs).
 * Status codes follow what the SDK's response processors accept: create 201,
 * batch create 201/207, batch read/update/upsert 200/207, archive 204.
 * Docs: https://developers.hubspot.com/docs/api/crm/contacts
 */
import { z } from "zod";
import { boolParam, intParam, json, jsonText, listParam, noContent } from "../common/http.ts";
import { cachedJson } from "../common/json_cache.ts";
import type { RequestContext } from "../common/router.ts";
import { HsError, notFoundError } from "./errors.ts";
import type { HubSpotEmulator } from "./emulator.ts";
import { classifyTypeId } from "./association_types.ts";
import { type HsObjectType, objectTypeFromPath, SINGULAR } from "./properties.ts";
import { type ApiObject, batchEnvelope, toApiObject } from "./serialize.ts";
import { type HsRecord, ID_BASE } from "./store.ts";

export const MAX_BATCH = 100;
const Id = z.union([z.string(), z.number()]).transform(String);
const Props = z.record(z.string(), z.unknown());

const AssociationInput = z.object({
  to: z.object({ id: Id }),
  types: z.array(z.object({
    associationCategory: z.string(),
    associationTypeId: z.number().int(),
  })).min(1),
});

const CreateInput = z.object({
  properties: Props.default({}),
  associations: z.array(AssociationInput).optional(),
});
const UpdateInput = z.object({ properties: Props });
const BatchRead = z.object({
  inputs: z.array(z.object({ id: Id })),
  properties: z.array(z.string()).optional(),
  propertiesWithHistory: z.array(z.string()).optional(),
  idProperty: z.string().optional(),
});
const BatchCreate = z.object({ inputs: z.array(CreateInput) });
const BatchUpdate = z.object({
  inputs: z.array(z.object({ id: Id, idProperty: z.string().optional(), properties: Props })),
});
const BatchUpsert = z.object({
  inputs: z.array(z.object({
    id: Id,
    idProperty: z.string().optional(),
    properties: Props,
    objectWriteTraceId: z.string().optional(),
  })),
});
const BatchArchive = z.object({ inputs: z.array(z.object({ id: Id })) });
const MergeInput = z.object({ primaryObjectId: Id, objectIdToMerge: Id });
const GdprInput = z.object({ objectId: Id, idProperty: z.string().optional() });

export function typeParam(hs: HubSpotEmulator, ctx: RequestContext): HsObjectType {
  const t = objectTypeFromPath(ctx.params.objectType ?? "");
  if (!t) {
    hs.fail(400, "VALIDATION_ERROR", `Unable to infer object type from: ${ctx.params.objectType}`);
  }
  return t;
}

function tooMany(n: number): void {
  if (n > MAX_BATCH) {
    throw new HsError(
      400,
      "VALIDATION_ERROR",
      `Batch input array exceeds the limit of ${MAX_BATCH} inputs (got ${n})`,
    );
  }
}

/** A record refused by the sandbox's refusals (../common/refusals.ts) fails its whole call as
 * HubSpot fails a batch with an invalid value: 400 VALIDATION_ERROR, nothing written. */
function refuse(hs: HubSpotEmulator, ids: Array<string | undefined>): void {
  for (const id of ids) {
    const msg = id === undefined ? null : hs.refusals.check(id);
    if (msg === null) continue;
    hs.fail(
      400,
      "VALIDATION_ERROR",
      `Property values were not valid: ${
        JSON.stringify([{ isValid: false, message: `${msg} (record ${id})`, error: "INVALID" }])
      }`,
    );
  }
}

/** HubSpot refuses a batch that names one record twice (400, nothing written). */
function noDuplicateIds(hs: HubSpotEmulator, keys: string[]): void {
  const seen = new Set<string>();
  const dup = new Set<string>();
  for (const k of keys) (seen.has(k) ? dup : seen).add(k);
  if (dup.size) {
    hs.fail(
      400,
      "VALIDATION_ERROR",
      `Duplicate IDs found in batch input: [${
        [...dup].map((k) => k.slice(k.indexOf(":") + 1)).join(", ")
      }]. IDs must be unique`,
    );
  }
}

/** Unique values of a batch's writes, against the portal and against each other. */
function checkBatchUnique(
  hs: HubSpotEmulator,
  type: HsObjectType,
  plans: Array<{ target?: HsRecord; values: Record<string, string | null> }>,
): void {
  const taken = new Map<string, number>();
  const unique = hs.store.props.unique(type);
  plans.forEach((p, i) => {
    hs.store.checkUnique(type, p.values, p.target);
    for (const prop of unique) {
      const v = p.values[prop];
      if (!v) continue;
      const j = taken.get(`${prop}:${v}`);
      if (j !== undefined) {
        hs.fail(400, "VALIDATION_ERROR", `Duplicate ${prop} values in inputs ${j} and ${i}`);
      }
      taken.set(`${prop}:${v}`, i);
    }
  });
}

/** Resolve a record by id or by a unique property. */
export function lookup(
  hs: HubSpotEmulator,
  type: HsObjectType,
  id: string,
  idProperty: string | undefined,
  archived = false,
): HsRecord | undefined {
  let r: HsRecord | undefined;
  if (idProperty && idProperty !== "hs_object_id") {
    const def = hs.store.props.get(type, idProperty);
    if (!def?.hasUniqueValue) {
      hs.fail(
        400,
        "VALIDATION_ERROR",
        `${idProperty} is not a unique identifier property for ${type}`,
      );
    }
    r = hs.store.byUnique(type, idProperty, id);
  } else r = hs.store.find(type, id);
  if (!r) return undefined;
  return r.archived === archived ? r : undefined;
}

function applyAssociations(
  hs: HubSpotEmulator,
  type: HsObjectType,
  id: string,
  list: z.infer<typeof AssociationInput>[] | undefined,
): void {
  for (const a of list ?? []) {
    for (const t of a.types) {
      // Infer the target type from the type id.
      const target = (["contacts", "companies", "deals"] as HsObjectType[]).find((to) =>
        classifyTypeId(type, to, t.associationTypeId) !== null
      );
      if (!target) {
        hs.fail(
          400,
          "VALIDATION_ERROR",
          `Unknown association type id ${t.associationTypeId} for ${type}`,
        );
      }
      const kind = classifyTypeId(type, target, t.associationTypeId);
      hs.store.associate(type, id, target, a.to.id, kind === "primary", "INTEGRATION");
    }
  }
}

function checkAssociationTargets(
  hs: HubSpotEmulator,
  type: HsObjectType,
  list: z.infer<typeof AssociationInput>[] | undefined,
): void {
  for (const a of list ?? []) {
    for (const t of a.types) {
      const target = (["contacts", "companies", "deals"] as HsObjectType[]).find((to) =>
        classifyTypeId(type, to, t.associationTypeId) !== null
      );
      if (!target) {
        hs.fail(
          400,
          "VALIDATION_ERROR",
          `Unknown association type id ${t.associationTypeId} for ${type}`,
        );
      }
      if (!hs.store.live(target, a.to.id)) {
        hs.fail(
          400,
          "VALIDATION_ERROR",
          `One or more associations are invalid: ${target} ${a.to.id} does not exist`,
        );
      }
    }
  }
}

export function registerObjectRoutes(hs: HubSpotEmulator): void {
  const base = "/crm/v3/objects/:objectType";

  // List (id order, `after` = next id).
  hs.route("GET", base, (ctx) => {
    const type = typeParam(hs, ctx);
    const limit = intParam(ctx.url, "limit") ?? 10;
    if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
      hs.fail(
        400,
        "VALIDATION_ERROR",
        `limit must be between 1 and 100 (got ${ctx.url.searchParams.get("limit")})`,
      );
    }
    const archived = boolParam(ctx.url, "archived") ?? false;
    const after = ctx.url.searchParams.get("after");
    const opts = {
      properties: listParam(ctx.url, "properties"),
      propertiesWithHistory: listParam(ctx.url, "propertiesWithHistory"),
      associations: listParam(ctx.url, "associations"),
    };
    const table = hs.store.tables[type];
    let start = 0;
    if (after) {
      const n = Number(after);
      if (!Number.isFinite(n)) hs.fail(400, "VALIDATION_ERROR", `Invalid after cursor: ${after}`);
      start = table.seqLowerBound(n - ID_BASE[type]);
    }
    const rows = table.bySeq;
    const results: string[] = [];
    // Serialised records are memoised per selection (associations change without a record write, so never cached).
    const key = opts.associations?.length
      ? null
      : `${hs.store.props.version}|${opts.properties?.join(",") ?? ""}|${
        opts.propertiesWithHistory?.join(",") ?? ""
      }`;
    let i = start;
    for (; i < rows.length && results.length < limit; i++) {
      const r = rows[i];
      if (r.mergedInto || r.archived !== archived) continue;
      results.push(
        key === null
          ? JSON.stringify(toApiObject(hs.store, r, opts))
          : cachedJson(r, key, () => toApiObject(hs.store, r, opts)),
      );
    }
    let next: HsRecord | undefined;
    for (; i < rows.length; i++) {
      const r = rows[i];
      if (!r.mergedInto && r.archived === archived) {
        next = r;
        break;
      }
    }
    let paging = "";
    if (next) {
      const link = new URL(ctx.url);
      link.searchParams.set("after", next.id);
      paging = `,"paging":${
        JSON.stringify({
          next: { after: next.id, link: `${hs.url}${link.pathname}${link.search}` },
        })
      }`;
    }
    return jsonText(`{"results":[${results.join(",")}]${paging}}`);
  });

  // Batch endpoints (registered before /:id so "batch" is not taken as an id).
  hs.route("POST", `${base}/batch/read`, async (ctx) => {
    const type = typeParam(hs, ctx);
    const startedAt = new Date().toISOString();
    const body = await hs.body(ctx, BatchRead);
    tooMany(body.inputs.length);
    const archived = boolParam(ctx.url, "archived") ?? false;
    const results: ApiObject[] = [];
    const missing: string[] = [];
    const seen = new Set<string>();
    for (const { id } of body.inputs) {
      const r = lookup(hs, type, id, body.idProperty, archived);
      if (!r) missing.push(id);
      else if (!seen.has(r.id)) {
        seen.add(r.id);
        results.push(toApiObject(hs.store, r, body));
      }
    }
    if (missing.length === 0) return json(batchEnvelope(results, startedAt));
    return json(
      batchEnvelope(results, startedAt, {
        numErrors: 1,
        errors: [{
          status: "error",
          category: "OBJECT_NOT_FOUND",
          message: `Could not get some ${
            SINGULAR[type].toUpperCase()
          } objects, they may be deleted or not exist. Check that ids are valid.`,
          context: { ids: missing },
          errors: [],
          links: {},
        }],
      }),
      207,
    );
  });

  hs.route("POST", `${base}/batch/create`, async (ctx) => {
    const type = typeParam(hs, ctx);
    const startedAt = new Date().toISOString();
    const body = await hs.body(ctx, BatchCreate);
    tooMany(body.inputs.length);
    // All-or-nothing: validate everything (including in-batch duplicates) first.
    const normalised = body.inputs.map((inp) => hs.store.normalise(type, inp.properties));
    for (const inp of body.inputs) checkAssociationTargets(hs, type, inp.associations);
    const uniq = hs.store.props.unique(type);
    for (const prop of uniq) {
      const seen = new Map<string, number>();
      normalised.forEach((v, i) => {
        const val = v[prop];
        if (!val) return;
        const existing = hs.store.byUnique(type, prop, val);
        if (existing) {
          hs.fail(
            409,
            "CONFLICT",
            type === "contacts" && prop === "email"
              ? `Contact already exists. Existing ID: ${existing.id}`
              : `Duplicate value for ${prop}: ${val} (existing id ${existing.id})`,
          );
        }
        if (seen.has(val)) {
          hs.fail(
            400,
            "VALIDATION_ERROR",
            `Duplicate ${prop} values in inputs ${seen.get(val)} and ${i}`,
          );
        }
        seen.set(val, i);
      });
    }
    const results = body.inputs.map((inp) => {
      const r = hs.store.create(type, inp.properties, "INTEGRATION");
      applyAssociations(hs, type, r.id, inp.associations);
      return toApiObject(hs.store, r, { properties: Object.keys(inp.properties) });
    });
    return json(batchEnvelope(results, startedAt), 201);
  });

  hs.route("POST", `${base}/batch/update`, async (ctx) => {
    const type = typeParam(hs, ctx);
    const startedAt = new Date().toISOString();
    const body = await hs.body(ctx, BatchUpdate);
    tooMany(body.inputs.length);
    const targets = body.inputs.map((inp) => lookup(hs, type, inp.id, inp.idProperty));
    // All or nothing for the records found: values and unique values are checked first.
    const plans = body.inputs.map((inp, i) => ({
      target: targets[i],
      values: hs.store.normalise(type, inp.properties),
    }));
    noDuplicateIds(hs, targets.map((t, i) => t?.id ?? `missing:${body.inputs[i].id}`));
    checkBatchUnique(hs, type, plans.filter((p) => p.target));
    refuse(hs, targets.map((t) => t?.id));
    const results: ApiObject[] = [];
    const missing: string[] = [];
    body.inputs.forEach((inp, i) => {
      const r = targets[i];
      if (!r) return missing.push(inp.id);
      const u = hs.store.update(type, r.id, inp.properties, "INTEGRATION");
      results.push(toApiObject(hs.store, u, { properties: Object.keys(inp.properties) }));
    });
    if (missing.length === 0) return json(batchEnvelope(results, startedAt));
    return json(
      batchEnvelope(results, startedAt, {
        numErrors: missing.length,
        errors: missing.map((id) => ({
          status: "error",
          category: "OBJECT_NOT_FOUND",
          message: `Object not found. objectId: ${id}`,
          context: { ids: [id] },
          errors: [],
          links: {},
        })),
      }),
      207,
    );
  });

  // Upsert by a unique-value property: an input whose id no record holds creates one (with
  // that value), one a record holds updates it; `new` tells which. All or nothing, like
  // batch create: inputs are validated (values, unique values against the portal and each
  // other, ids named twice) before anything is written, so a contact whose email another
  // contact has fails the whole batch with 409 "Contact already exists. Existing ID: N".
  hs.route("POST", `${base}/batch/upsert`, async (ctx) => {
    const type = typeParam(hs, ctx);
    const startedAt = new Date().toISOString();
    const body = await hs.body(ctx, BatchUpsert);
    tooMany(body.inputs.length);
    const plans = body.inputs.map((inp) => {
      const prop = inp.idProperty;
      const def = prop ? hs.store.props.get(type, prop) : undefined;
      if (!prop || !def?.hasUniqueValue) {
        hs.fail(
          400,
          "VALIDATION_ERROR",
          `Unable to perform update/upsert by non-unique ${type} property ${prop ?? "(none)"}`,
        );
      }
      const values = hs.store.normalise(type, inp.properties);
      const existing = hs.store.byUnique(type, prop, inp.id);
      return {
        inp,
        prop,
        target: existing,
        values: existing ? values : { ...values, ...hs.store.normalise(type, { [prop]: inp.id }) },
      };
    });
    noDuplicateIds(hs, plans.map((p) => `${p.prop}:${p.target?.id ?? p.values[p.prop]}`));
    checkBatchUnique(hs, type, plans);
    refuse(hs, plans.map((p) => p.target?.id));
    const results = plans.map((p) => {
      const names = [...new Set([...Object.keys(p.inp.properties), p.prop])];
      const r = p.target
        ? hs.store.update(type, p.target.id, p.inp.properties, "INTEGRATION")
        : hs.store.create(type, p.values, "INTEGRATION");
      return { ...toApiObject(hs.store, r, { properties: names }), new: !p.target };
    });
    return json(batchEnvelope(results, startedAt));
  });

  hs.route("POST", `${base}/batch/archive`, async (ctx) => {
    const type = typeParam(hs, ctx);
    const body = await hs.body(ctx, BatchArchive);
    tooMany(body.inputs.length);
    for (const { id } of body.inputs) hs.store.archive(type, id, "INTEGRATION");
    return noContent();
  });

  hs.route("POST", `${base}/merge`, async (ctx) => {
    const type = typeParam(hs, ctx);
    const body = await hs.body(ctx, MergeInput);
    const r = hs.store.merge(type, body.primaryObjectId, body.objectIdToMerge, "INTEGRATION");
    return json(toApiObject(hs.store, r));
  });

  hs.route("POST", `${base}/gdpr-delete`, async (ctx) => {
    const type = typeParam(hs, ctx);
    if (type !== "contacts") {
      hs.fail(400, "VALIDATION_ERROR", "GDPR delete is only available for contacts");
    }
    const body = await hs.body(ctx, GdprInput);
    const r = lookup(hs, type, body.objectId, body.idProperty) ??
      lookup(hs, type, body.objectId, body.idProperty, true);
    if (!r) throw notFoundError(body.objectId);
    hs.store.purge(type, r.id, "INTEGRATION");
    return noContent();
  });

  hs.route("POST", base, async (ctx) => {
    const type = typeParam(hs, ctx);
    const body = await hs.body(ctx, CreateInput);
    hs.store.normalise(type, body.properties);
    checkAssociationTargets(hs, type, body.associations);
    const r = hs.store.create(type, body.properties, "INTEGRATION");
    applyAssociations(hs, type, r.id, body.associations);
    return json(toApiObject(hs.store, r, { properties: Object.keys(body.properties) }), 201);
  });

  hs.route("GET", `${base}/:id`, (ctx) => {
    const type = typeParam(hs, ctx);
    const archived = boolParam(ctx.url, "archived") ?? false;
    const r = lookup(
      hs,
      type,
      ctx.params.id,
      ctx.url.searchParams.get("idProperty") ?? undefined,
      archived,
    );
    if (!r) throw notFoundError(ctx.params.id);
    return json(toApiObject(hs.store, r, {
      properties: listParam(ctx.url, "properties"),
      propertiesWithHistory: listParam(ctx.url, "propertiesWithHistory"),
      associations: listParam(ctx.url, "associations"),
    }));
  });

  hs.route("PATCH", `${base}/:id`, async (ctx) => {
    const type = typeParam(hs, ctx);
    const body = await hs.body(ctx, UpdateInput);
    const r = lookup(hs, type, ctx.params.id, ctx.url.searchParams.get("idProperty") ?? undefined);
    if (!r) throw notFoundError(ctx.params.id);
    refuse(hs, [r.id]);
    const u = hs.store.update(type, r.id, body.properties, "INTEGRATION");
    return json(toApiObject(hs.store, u, { properties: Object.keys(body.properties) }));
  });

  hs.route("DELETE", `${base}/:id`, (ctx) => {
    const type = typeParam(hs, ctx);
    hs.store.archive(type, ctx.params.id, "INTEGRATION");
    return noContent();
  });
}
