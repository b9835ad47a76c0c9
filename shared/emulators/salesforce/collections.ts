/**
 * sObject Collections (API 42.0+; upsert 46.0+): up to 200 records per
 * request, HTTP 200 with one result per record in request order. Per-record
 * errors use `statusCode` (not `errorCode`). With `allOrNone: true` one bad
 * record rolls back the whole request and the valid ones report
 * ALL_OR_NONE_OPERATION_ROLLED_BACK.
 * Upsert by an external-id field: no match creates (`created: true`), one match updates
 * (`created: false`); records of one request sharing a value all fail with DUPLICATE_VALUE
 * ("Duplicate external id specified"); a value matching several records (a non-unique
 * external-id field) fails with DUPLICATE_EXTERNAL_ID.
 * Docs: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections.htm
 */
import { json } from "../common/http.ts";
import { notFound, SfError, type SfErrorItem } from "./errors.ts";
import type { SalesforceEmulator } from "./emulator.ts";
import { to18 } from "./ids.ts";
import { objectName, type OrgSchema, type SfObject } from "./schema.ts";
import type { SfRecord } from "./store.ts";
import { refusal } from "./validation_rules.ts";
import { recordJson, sobjectType } from "./sobjects.ts";

export const MAX_COLLECTION = 200;

interface Result {
  id: string | null;
  success: boolean;
  errors: Array<{ statusCode: string; message: string; fields: string[] }>;
  created?: boolean;
}

const ROLLED_BACK = {
  statusCode: "ALL_OR_NONE_OPERATION_ROLLED_BACK",
  message:
    "Record rolled back because not all records were valid and the request was using AllOrNone header",
  fields: [],
};

const toStatus = (e: SfErrorItem) => ({
  statusCode: e.errorCode,
  message: e.message,
  fields: e.fields ?? [],
});
const fail = (id: string | null, errors: SfErrorItem[]): Result => ({
  id,
  success: false,
  errors: errors.map(toStatus),
});

interface Planned {
  result: Result;
  apply?: () => string;
}

function records(body: unknown): { allOrNone: boolean; records: Record<string, unknown>[] } {
  const b = body as { allOrNone?: unknown; records?: unknown };
  if (!b || typeof b !== "object" || !Array.isArray(b.records)) {
    throw SfError.one(
      400,
      "JSON_PARSER_ERROR",
      "Expected a body of the form {allOrNone, records: [...]}",
    );
  }
  if (b.records.length > MAX_COLLECTION) {
    throw SfError.one(
      400,
      "EXCEEDED_ID_LIMIT",
      `record limit exceeded: cannot submit more than ${MAX_COLLECTION} records in this operation`,
    );
  }
  return { allOrNone: b.allOrNone === true, records: b.records as Record<string, unknown>[] };
}

function typeOfRecord(rec: Record<string, unknown>, fallback?: SfObject): SfObject | SfErrorItem {
  const attrs = rec.attributes as { type?: string } | undefined;
  const t = attrs?.type ? objectName(attrs.type) : fallback ?? null;
  if (!t) {
    return {
      errorCode: "INVALID_TYPE",
      message: `sObject type '${attrs?.type ?? ""}' is not supported`,
      fields: [],
    };
  }
  return t;
}

/** Run planned operations: all-or-none or one by one. */
function execute(plans: Planned[], allOrNone: boolean): Result[] {
  const anyFailed = plans.some((p) => !p.apply);
  if (allOrNone && anyFailed) {
    return plans.map((p) =>
      p.apply ? { id: null, success: false, errors: [ROLLED_BACK] } : p.result
    );
  }
  return plans.map((p) => {
    if (!p.apply) return p.result;
    try {
      const id = p.apply();
      return { ...p.result, id };
    } catch (e) {
      if (e instanceof SfError) return fail(p.result.id, e.items);
      throw e;
    }
  });
}

/** Detect duplicate unique values inside one request. */
function uniqueGuard(schema: OrgSchema) {
  const seen = new Map<string, number>();
  return (type: SfObject, values: Record<string, unknown>, i: number): SfErrorItem | null => {
    for (const d of schema.fieldsOf(type)) {
      if (!d.unique || values[d.name] === null || values[d.name] === undefined) continue;
      const k = `${type}.${d.name}=${values[d.name]}`;
      if (seen.has(k)) {
        return {
          errorCode: "DUPLICATE_VALUE",
          message: `duplicate value found: ${d.name} duplicates value on record ${
            seen.get(k)
          } in this request`,
          fields: [d.name],
        };
      }
      seen.set(k, i);
    }
    return null;
  };
}

export function registerCollectionRoutes(sf: SalesforceEmulator): void {
  // Create.
  sf.route("POST", "/composite/sobjects", async (ctx) => {
    const { allOrNone, records: recs } = records(await sf.body(ctx));
    const dup = uniqueGuard(sf.store.schema);
    const plans = recs.map((rec, i): Planned => {
      const type = typeOfRecord(rec);
      if (typeof type !== "string") return { result: fail(null, [type]) };
      if (rec.Id !== undefined) {
        return {
          result: fail(null, [{
            errorCode: "INVALID_FIELD",
            message: "cannot specify Id in an insert call",
            fields: ["Id"],
          }]),
        };
      }
      const { attributes: _a, ...input } = rec;
      const v = sf.store.validate(type, input, "insert");
      if (!v.ok) return { result: fail(null, v.errors) };
      const d = dup(type, v.values, i);
      if (d) return { result: fail(null, [d]) };
      return {
        result: { id: null, success: true, errors: [] },
        apply: () => sf.store.insert(type, input, "api").id,
      };
    });
    return json(execute(plans, allOrNone));
  });

  // Update.
  sf.route("PATCH", "/composite/sobjects", async (ctx) => {
    const { allOrNone, records: recs } = records(await sf.body(ctx));
    const dup = uniqueGuard(sf.store.schema);
    const plans = recs.map((rec, i): Planned => {
      const rawId = typeof rec.id === "string"
        ? rec.id
        : typeof rec.Id === "string"
        ? rec.Id
        : null;
      if (!rawId) {
        return {
          result: fail(null, [{
            errorCode: "MISSING_ARGUMENT",
            message: "Id not specified in an update call",
            fields: [],
          }]),
        };
      }
      const id = to18(rawId);
      if (!id) {
        return {
          result: fail(rawId, [{
            errorCode: "MALFORMED_ID",
            message: `bad id ${rawId}`,
            fields: [],
          }]),
        };
      }
      const type = typeOfRecord(rec, sf.store.typeOfId(id));
      if (typeof type !== "string") return { result: fail(id, [type]) };
      const r = sf.store.find(type, id);
      if (!r) {
        return {
          result: fail(id, [{
            errorCode: "INVALID_CROSS_REFERENCE_KEY",
            message: "invalid cross reference id",
            fields: [],
          }]),
        };
      }
      if (r.isDeleted) {
        return {
          result: fail(id, [{
            errorCode: "ENTITY_IS_DELETED",
            message: "entity is deleted",
            fields: [],
          }]),
        };
      }
      const { attributes: _a, id: _i, Id: _I, ...input } = rec;
      const refused = refusal(sf.refusals, r.id);
      if (refused) return { result: fail(id, refused) };
      const v = sf.store.validate(type, input, "update", r);
      if (!v.ok) return { result: fail(id, v.errors) };
      const d = dup(type, v.values, i);
      if (d) return { result: fail(id, [d]) };
      return {
        result: { id, success: true, errors: [] },
        apply: () => (sf.store.applyValidated(r, v.values, "api"), r.id),
      };
    });
    return json(execute(plans, allOrNone));
  });

  // Upsert by external id.
  sf.route("PATCH", "/composite/sobjects/:type/:field", async (ctx, auth) => {
    if (Number(auth.version) < 46) throw notFound();
    const type = sobjectType(ctx);
    const ext = sf.store.schema.field(type, ctx.params.field);
    if (!ext || !ext.externalId) {
      throw SfError.one(
        400,
        "INVALID_FIELD",
        `Field ${ctx.params.field} is not an external id field on ${type}`,
      );
    }
    const { allOrNone, records: recs } = records(await sf.body(ctx));
    const dup = uniqueGuard(sf.store.schema);
    const keyOf = (rec: Record<string, unknown>) =>
      rec[ext.name] ??
        Object.entries(rec).find(([k]) => k.toLowerCase() === ext.name.toLowerCase())?.[1];
    const uses = new Map<string, number>();
    for (const rec of recs) {
      const k = keyOf(rec);
      if (k !== undefined && k !== null && k !== "") {
        uses.set(String(k), (uses.get(String(k)) ?? 0) + 1);
      }
    }
    const plans = recs.map((rec, i): Planned => {
      const key = keyOf(rec);
      if (key === undefined || key === null || key === "") {
        return {
          result: fail(null, [{
            errorCode: "MISSING_ARGUMENT",
            message: `${ext.name} not specified`,
            fields: [ext.name],
          }]),
        };
      }
      if ((uses.get(String(key)) ?? 0) > 1) {
        return {
          result: fail(null, [{
            errorCode: "DUPLICATE_VALUE",
            message: `Duplicate external id specified: ${key}`,
            fields: [ext.name],
          }]),
        };
      }
      const { attributes: _a, ...input } = rec;
      const hits = sf.store.matching(type, ext.name, String(key));
      if (hits.length > 1) {
        return {
          result: fail(null, [{
            errorCode: "DUPLICATE_EXTERNAL_ID",
            message: `more than one record found for external id field: [${
              hits.map((h) => h.id).join(", ")
            }]`,
            fields: [ext.name],
          }]),
        };
      }
      const existing = hits[0];
      if (existing) {
        const refused = refusal(sf.refusals, existing.id);
        if (refused) return { result: fail(existing.id, refused) };
        const v = sf.store.validate(type, input, "update", existing);
        if (!v.ok) return { result: fail(existing.id, v.errors) };
        return {
          result: { id: existing.id, success: true, errors: [], created: false },
          apply: () => (sf.store.applyValidated(existing, v.values, "api"), existing.id),
        };
      }
      const v = sf.store.validate(type, input, "insert");
      if (!v.ok) return { result: fail(null, v.errors) };
      const d = dup(type, v.values, i);
      if (d) return { result: fail(null, [d]) };
      return {
        result: { id: null, success: true, errors: [], created: true },
        apply: () => sf.store.insert(type, input, "api").id,
      };
    });
    return json(execute(plans, allOrNone));
  });

  // Delete.
  sf.route("DELETE", "/composite/sobjects", (ctx) => {
    const ids = (ctx.url.searchParams.get("ids") ?? "").split(",").map((s) => s.trim()).filter(
      Boolean,
    );
    if (ids.length === 0) throw SfError.one(400, "MISSING_ARGUMENT", "ids parameter is required");
    if (ids.length > MAX_COLLECTION) {
      throw SfError.one(
        400,
        "EXCEEDED_ID_LIMIT",
        `cannot delete more than ${MAX_COLLECTION} records in this operation`,
      );
    }
    const allOrNone = ctx.url.searchParams.get("allOrNone") === "true";
    const plans = ids.map((raw): Planned => {
      const id = to18(raw);
      if (!id) {
        return {
          result: fail(raw, [{ errorCode: "MALFORMED_ID", message: `bad id ${raw}`, fields: [] }]),
        };
      }
      const type = sf.store.typeOfId(id);
      const r: SfRecord | undefined = type ? sf.store.find(type, id) : undefined;
      if (!r) {
        return {
          result: fail(id, [{
            errorCode: "INVALID_CROSS_REFERENCE_KEY",
            message: "invalid cross reference id",
            fields: [],
          }]),
        };
      }
      if (r.isDeleted) {
        return {
          result: fail(id, [{
            errorCode: "ENTITY_IS_DELETED",
            message: "entity is deleted",
            fields: [],
          }]),
        };
      }
      return {
        result: { id, success: true, errors: [] },
        apply: () => sf.store.delete(r.type, r.id, "api").id,
      };
    });
    return json(execute(plans, allOrNone));
  });

  // Retrieve.
  const retrieve = (type: SfObject, ids: string[], fieldsRaw: string[], version: string) => {
    if (ids.length > 2000) {
      throw SfError.one(400, "EXCEEDED_ID_LIMIT", "cannot retrieve more than 2000 records");
    }
    const names = fieldsRaw.map((n) => {
      const d = sf.store.schema.field(type, n);
      if (!d) {
        throw SfError.one(400, "INVALID_FIELD", `No such column '${n}' on sobject of type ${type}`);
      }
      return d.name;
    });
    return json(ids.map((id) => {
      const r = sf.store.live(type, id);
      return r ? recordJson(sf.store.schema, r, version, names) : null;
    }));
  };
  sf.route("POST", "/composite/sobjects/:type", async (ctx, auth) => {
    const type = sobjectType(ctx);
    const b = await sf.body(ctx) as { ids?: string[]; fields?: string[] };
    if (!Array.isArray(b?.ids) || !Array.isArray(b?.fields)) {
      throw SfError.one(400, "JSON_PARSER_ERROR", "Expected {ids, fields}");
    }
    return retrieve(type, b.ids, b.fields, auth.version);
  });
  sf.route("GET", "/composite/sobjects/:type", (ctx, auth) => {
    const type = sobjectType(ctx);
    const split = (k: string) =>
      (ctx.url.searchParams.get(k) ?? "").split(",").map((s) => s.trim()).filter(Boolean);
    return retrieve(type, split("ids"), split("fields"), auth.version);
  });
}
