/**
 * Single-record sObject resources and the replication endpoints:
 * - POST /sobjects/{T} → 201 {id, success, errors}
 * - GET|PATCH|DELETE /sobjects/{T}/{id} → 200 / 204 / 204
 * - GET|PATCH|DELETE /sobjects/{T}/{extIdField}/{value} (upsert: 201 created,
 *   200 updated with `created: false`, as since API 46.0)
 * - GET /sobjects/{T}/updated and /deleted?start=&end= (start at most 30 days
 *   back; deleted records stay available for 15 days, like the recycle bin)
 * Docs: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_basic_info.htm
 */
import { json, noContent } from "../common/http.ts";
import type { RequestContext } from "../common/router.ts";
import { notFound, SfError } from "./errors.ts";
import type { SalesforceEmulator } from "./emulator.ts";
import { objectName, type OrgSchema, type SfObject } from "./schema.ts";
import type { SfRecord } from "./store.ts";
import { refusal } from "./validation_rules.ts";
import { parseSfTime, sfDateTime } from "./values.ts";

const DAY = 86_400_000;

export function recordJson(
  schema: OrgSchema,
  r: SfRecord,
  version: string,
  only?: string[],
): Record<string, unknown> {
  const out: Record<string, unknown> = {
    attributes: { type: r.type, url: `/services/data/v${version}/sobjects/${r.type}/${r.id}` },
  };
  const names = only ?? schema.fieldsOf(r.type).map((d) => d.name);
  for (const n of names) out[n] = r.fields[n] ?? null;
  return out;
}

export function sobjectType(ctx: RequestContext): SfObject {
  const t = objectName(ctx.params.type ?? "");
  if (!t) throw notFound();
  return t;
}

function asInput(body: unknown): Record<string, unknown> {
  if (!body || typeof body !== "object" || Array.isArray(body)) {
    throw SfError.one(
      400,
      "JSON_PARSER_ERROR",
      "Cannot deserialize instance of sObject from the given JSON",
    );
  }
  return body as Record<string, unknown>;
}

function selectedFields(
  schema: OrgSchema,
  type: SfObject,
  raw: string | null,
): string[] | undefined {
  if (!raw) return undefined;
  return raw.split(",").map((s) => s.trim()).filter(Boolean).map((n) => {
    const d = schema.field(type, n);
    if (!d) {
      throw SfError.one(400, "INVALID_FIELD", `No such column '${n}' on sobject of type ${type}`);
    }
    return d.name;
  });
}

function minute(ms: number): number {
  return Math.floor(ms / 60_000) * 60_000;
}

export function registerSObjectRoutes(sf: SalesforceEmulator): void {
  const range = (ctx: RequestContext) => {
    const start = parseSfTime(ctx.url.searchParams.get("start"));
    const end = parseSfTime(ctx.url.searchParams.get("end"));
    if (start === null || end === null) {
      throw SfError.one(
        400,
        "MALFORMED_QUERY",
        "Both start and end date/time parameters are required and must be valid dateTime values",
      );
    }
    if (start > end) {
      throw SfError.one(
        400,
        "INVALID_REPLICATION_DATE",
        "startDate must chronologically precede endDate by more than one minute",
      );
    }
    const now = sf.now();
    if (start < now - 30 * DAY) {
      throw SfError.one(
        400,
        "INVALID_REPLICATION_DATE",
        "startDate cannot be more than 30 days ago",
      );
    }
    return { start, end: minute(Math.min(end, now)) };
  };

  sf.route("GET", "/sobjects/:type/updated", (ctx) => {
    const type = sobjectType(ctx);
    const { start, end } = range(ctx);
    const t = sf.store.tables[type];
    const ids: string[] = [];
    for (let i = t.modifiedLowerBound(start); i < t.byModified.length; i++) {
      const r = t.byModified[i];
      if (r.modifiedAt >= end) break;
      if (!r.isDeleted) ids.push(r.id);
    }
    if (ids.length > 600_000) {
      throw SfError.one(400, "EXCEEDED_ID_LIMIT", "too many ids: narrow the date range");
    }
    return json({ ids, latestDateCovered: sfDateTime(end) });
  });

  sf.route("GET", "/sobjects/:type/deleted", (ctx) => {
    const type = sobjectType(ctx);
    const { start, end } = range(ctx);
    const retention = sf.now() - 15 * DAY;
    const deleted = sf.store.tables[type].bySeq.filter((r) =>
      r.isDeleted && r.deletedAt !== null && r.deletedAt >= retention
    );
    const earliest = deleted.reduce((m, r) => Math.min(m, r.deletedAt!), Infinity);
    return json({
      deletedRecords: deleted.filter((r) => r.deletedAt! >= start && r.deletedAt! < end).sort((
        a,
        b,
      ) => a.deletedAt! - b.deletedAt!)
        .map((r) => ({ id: r.id, deletedDate: sfDateTime(r.deletedAt!) })),
      earliestDateAvailable: sfDateTime(minute(Number.isFinite(earliest) ? earliest : retention)),
      latestDateCovered: sfDateTime(end),
    });
  });

  sf.route("POST", "/sobjects/:type", async (ctx) => {
    const type = sobjectType(ctx);
    const input = asInput(await sf.body(ctx));
    const r = sf.store.insert(type, input, "api");
    return json({ id: r.id, success: true, errors: [] }, 201);
  });

  sf.route("GET", "/sobjects/:type/:id", (ctx, auth) => {
    const type = sobjectType(ctx);
    const r = sf.store.find(type, ctx.params.id);
    if (!r) throw notFound();
    if (r.isDeleted) throw SfError.one(404, "ENTITY_IS_DELETED", "entity is deleted");
    return json(
      recordJson(
        sf.store.schema,
        r,
        auth.version,
        selectedFields(sf.store.schema, type, ctx.url.searchParams.get("fields")),
      ),
    );
  });

  sf.route("PATCH", "/sobjects/:type/:id", async (ctx) => {
    const type = sobjectType(ctx);
    const input = asInput(await sf.body(ctx));
    const found = sf.store.find(type, ctx.params.id);
    if (!found) throw notFound();
    const refused = refusal(sf.refusals, found.id);
    if (refused) throw new SfError(400, refused);
    sf.store.update(type, ctx.params.id, input, "api");
    return noContent();
  });

  sf.route("DELETE", "/sobjects/:type/:id", (ctx) => {
    const type = sobjectType(ctx);
    if (!sf.store.find(type, ctx.params.id)) throw notFound();
    sf.store.delete(type, ctx.params.id, "api");
    return noContent();
  });

  const extField = (type: SfObject, name: string) => {
    const d = sf.store.schema.field(type, name);
    if (!d || (!d.externalId && d.name !== "Id")) {
      throw SfError.one(
        404,
        "NOT_FOUND",
        `Provided external ID field does not exist or is not accessible: ${name}`,
      );
    }
    return d;
  };
  const byExt = (type: SfObject, name: string, value: string): SfRecord | undefined => {
    const d = extField(type, name);
    if (d.name === "Id") return sf.store.live(type, value);
    const hits = sf.store.matching(type, d.name, value);
    if (hits.length > 1) {
      // More than one match (a non-unique external id): 300 with the candidates' URLs.
      sf.respond(json(hits.map((h) => `/services/data/v62.0/sobjects/${type}/${h.id}`), 300));
    }
    return hits[0];
  };

  sf.route("GET", "/sobjects/:type/:field/:value", (ctx, auth) => {
    const type = sobjectType(ctx);
    const r = byExt(type, ctx.params.field, ctx.params.value);
    if (!r) throw notFound();
    return json(
      recordJson(
        sf.store.schema,
        r,
        auth.version,
        selectedFields(sf.store.schema, type, ctx.url.searchParams.get("fields")),
      ),
    );
  });

  sf.route("PATCH", "/sobjects/:type/:field/:value", async (ctx, auth) => {
    const type = sobjectType(ctx);
    const d = extField(type, ctx.params.field);
    const input = asInput(await sf.body(ctx));
    const existing = byExt(type, d.name, ctx.params.value);
    if (existing) {
      const refused = refusal(sf.refusals, existing.id);
      if (refused) throw new SfError(400, refused);
      sf.store.update(type, existing.id, input, "api");
      const body = { id: existing.id, success: true, errors: [], created: false };
      return Number(auth.version) >= 46 ? json(body, 200) : noContent();
    }
    if (d.name === "Id") throw notFound();
    const r = sf.store.insert(type, { ...input, [d.name]: ctx.params.value }, "api");
    return json({ id: r.id, success: true, errors: [], created: true }, 201);
  });

  sf.route("DELETE", "/sobjects/:type/:field/:value", (ctx) => {
    const type = sobjectType(ctx);
    const r = byExt(type, ctx.params.field, ctx.params.value);
    if (!r) throw notFound();
    sf.store.delete(type, r.id, "api");
    return noContent();
  });
}
