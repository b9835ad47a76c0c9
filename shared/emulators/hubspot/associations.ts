/**
 * Associations v4 for contact↔company, contact↔deal and deal↔company.
 * Docs: https://developers.hubspot.com/docs/api/crm/associations/v4
 * SDK status codes: createDefault 200, create (labelled) 201, archive 204,
 * getPage 200; batch read 200/207, batch create 201/207, batch default 200,
 * batch archive 204.
 */
import { z } from "zod";
import { intParam, json, noContent } from "../common/http.ts";
import type { RequestContext } from "../common/router.ts";
import { classifyTypeId, pairTypes, typesFor } from "./association_types.ts";
import type { HubSpotEmulator } from "./emulator.ts";
import { notFoundError } from "./errors.ts";
import { type HsObjectType, OBJECT_TYPE_IDS, objectTypeFromPath } from "./properties.ts";
import { batchEnvelope } from "./serialize.ts";

const Id = z.union([z.string(), z.number()]).transform(String);
const Spec = z.object({ associationCategory: z.string(), associationTypeId: z.number().int() });

function pair(
  hs: HubSpotEmulator,
  ctx: RequestContext,
  fromKey: string,
  toKey: string,
): [HsObjectType, HsObjectType] {
  const from = objectTypeFromPath(ctx.params[fromKey] ?? "");
  const to = objectTypeFromPath(ctx.params[toKey] ?? "");
  if (!from || !to || !pairTypes(from, to)) {
    hs.fail(
      400,
      "VALIDATION_ERROR",
      `Unsupported association pair ${ctx.params[fromKey]} -> ${ctx.params[toKey]}`,
    );
  }
  return [from, to];
}

function requireLive(hs: HubSpotEmulator, type: HsObjectType, id: string): string {
  const r = hs.store.live(type, id);
  if (!r) throw notFoundError(id);
  return r.id;
}

export function registerAssociationRoutes(hs: HubSpotEmulator): void {
  const assocList = (from: HsObjectType, id: string, to: HsObjectType) =>
    hs.store.associations(from, id, to).map((a) => ({
      toObjectId: Number(a.id),
      associationTypes: typesFor(from, to, a.primary),
    }));

  hs.route("GET", "/crm/v4/objects/:objectType/:objectId/associations/:toObjectType", (ctx) => {
    const [from, to] = pair(hs, ctx, "objectType", "toObjectType");
    const id = requireLive(hs, from, ctx.params.objectId);
    const limit = Math.min(intParam(ctx.url, "limit") ?? 500, 500);
    const after = Number(ctx.url.searchParams.get("after") ?? 0) || 0;
    const all = assocList(from, id, to);
    const results = all.slice(after, after + limit);
    const body: Record<string, unknown> = { results };
    if (after + limit < all.length) body.paging = { next: { after: String(after + limit) } };
    return json(body);
  });

  hs.route(
    "PUT",
    "/crm/v4/objects/:fromObjectType/:fromObjectId/associations/default/:toObjectType/:toObjectId",
    (ctx) => {
      const [from, to] = pair(hs, ctx, "fromObjectType", "toObjectType");
      const startedAt = new Date().toISOString();
      const fromId = requireLive(hs, from, ctx.params.fromObjectId);
      const toId = requireLive(hs, to, ctx.params.toObjectId);
      hs.store.associate(from, fromId, to, toId, false, "INTEGRATION");
      const t = pairTypes(from, to)!;
      return json(batchEnvelope([{
        from: { id: fromId },
        to: { id: toId },
        associationSpec: { associationCategory: "HUBSPOT_DEFINED", associationTypeId: t.unlabeled },
      }], startedAt));
    },
  );

  hs.route(
    "PUT",
    "/crm/v4/objects/:objectType/:objectId/associations/:toObjectType/:toObjectId",
    async (ctx) => {
      const [from, to] = pair(hs, ctx, "objectType", "toObjectType");
      const specs = await hs.body(ctx, z.array(Spec).min(1));
      const fromId = requireLive(hs, from, ctx.params.objectId);
      const toId = requireLive(hs, to, ctx.params.toObjectId);
      let primary = false;
      for (const s of specs) {
        const kind = classifyTypeId(from, to, s.associationTypeId);
        if (!kind) {
          hs.fail(
            400,
            "VALIDATION_ERROR",
            `associationTypeId ${s.associationTypeId} is not valid for ${from} -> ${to}`,
          );
        }
        if (kind === "primary") primary = true;
      }
      hs.store.associate(from, fromId, to, toId, primary, "INTEGRATION");
      return json({
        fromObjectTypeId: OBJECT_TYPE_IDS[from],
        fromObjectId: Number(fromId),
        toObjectTypeId: OBJECT_TYPE_IDS[to],
        toObjectId: Number(toId),
        labels: primary ? ["Primary"] : [],
      }, 201);
    },
  );

  hs.route(
    "DELETE",
    "/crm/v4/objects/:objectType/:objectId/associations/:toObjectType/:toObjectId",
    (ctx) => {
      const [from, to] = pair(hs, ctx, "objectType", "toObjectType");
      hs.store.dissociate(from, ctx.params.objectId, to, ctx.params.toObjectId, "INTEGRATION");
      return noContent();
    },
  );

  const batchBase = "/crm/v4/associations/:fromObjectType/:toObjectType/batch";

  hs.route("POST", `${batchBase}/read`, async (ctx) => {
    const [from, to] = pair(hs, ctx, "fromObjectType", "toObjectType");
    const startedAt = new Date().toISOString();
    const body = await hs.body(
      ctx,
      z.object({ inputs: z.array(z.object({ id: Id, after: z.string().optional() })) }),
    );
    if (body.inputs.length > 1000) {
      hs.fail(400, "VALIDATION_ERROR", "Batch read accepts at most 1000 inputs");
    }
    const results: unknown[] = [];
    const missing: string[] = [];
    for (const inp of body.inputs) {
      const r = hs.store.live(from, inp.id);
      if (!r) {
        missing.push(inp.id);
        continue;
      }
      const to_ = assocList(from, r.id, to);
      if (to_.length === 0) {
        missing.push(inp.id);
        continue;
      }
      results.push({ from: { id: r.id }, to: to_ });
    }
    if (missing.length === 0) return json(batchEnvelope(results, startedAt));
    return json(
      batchEnvelope(results, startedAt, {
        numErrors: missing.length,
        errors: missing.map((id) => ({
          status: "error",
          category: "OBJECT_NOT_FOUND",
          subCategory: "crm.associations.NO_ASSOCIATIONS_FOUND",
          message: `No ${to} is associated with ${from} ${id}.`,
          context: { fromObjectId: [id] },
          errors: [],
          links: {},
        })),
      }),
      207,
    );
  });

  hs.route("POST", `${batchBase}/create`, async (ctx) => {
    const [from, to] = pair(hs, ctx, "fromObjectType", "toObjectType");
    const startedAt = new Date().toISOString();
    const body = await hs.body(
      ctx,
      z.object({
        inputs: z.array(
          z.object({
            from: z.object({ id: Id }),
            to: z.object({ id: Id }),
            types: z.array(Spec).min(1),
          }),
        ),
      }),
    );
    if (body.inputs.length > 2000) {
      hs.fail(400, "VALIDATION_ERROR", "Batch create accepts at most 2000 inputs");
    }
    const results: unknown[] = [];
    const errors: unknown[] = [];
    for (const inp of body.inputs) {
      const a = hs.store.live(from, inp.from.id), b = hs.store.live(to, inp.to.id);
      if (!a || !b) {
        errors.push({
          status: "error",
          category: "VALIDATION_ERROR",
          message: `${!a ? from : to} ${!a ? inp.from.id : inp.to.id} is not valid`,
          context: {},
          errors: [],
          links: {},
        });
        continue;
      }
      const primary = inp.types.some((s) =>
        classifyTypeId(from, to, s.associationTypeId) === "primary"
      );
      hs.store.associate(from, a.id, to, b.id, primary, "INTEGRATION");
      results.push({
        fromObjectTypeId: OBJECT_TYPE_IDS[from],
        fromObjectId: Number(a.id),
        toObjectTypeId: OBJECT_TYPE_IDS[to],
        toObjectId: Number(b.id),
        labels: primary ? ["Primary"] : [],
      });
    }
    if (errors.length === 0) return json(batchEnvelope(results, startedAt), 201);
    return json(batchEnvelope(results, startedAt, { numErrors: errors.length, errors }), 207);
  });

  hs.route("POST", `${batchBase}/associate/default`, async (ctx) => {
    const [from, to] = pair(hs, ctx, "fromObjectType", "toObjectType");
    const startedAt = new Date().toISOString();
    const body = await hs.body(
      ctx,
      z.object({
        inputs: z.array(z.object({ from: z.object({ id: Id }), to: z.object({ id: Id }) })),
      }),
    );
    const t = pairTypes(from, to)!;
    const results: unknown[] = [];
    const errors: unknown[] = [];
    for (const inp of body.inputs) {
      const a = hs.store.live(from, inp.from.id), b = hs.store.live(to, inp.to.id);
      if (!a || !b) {
        errors.push({
          status: "error",
          category: "VALIDATION_ERROR",
          message: `${!a ? from : to} ${!a ? inp.from.id : inp.to.id} is not valid`,
          context: {},
          errors: [],
          links: {},
        });
        continue;
      }
      hs.store.associate(from, a.id, to, b.id, false, "INTEGRATION");
      results.push({
        from: { id: a.id },
        to: { id: b.id },
        associationSpec: { associationCategory: "HUBSPOT_DEFINED", associationTypeId: t.unlabeled },
      });
    }
    return json(
      batchEnvelope(results, startedAt, errors.length ? { numErrors: errors.length, errors } : {}),
    );
  });

  hs.route("POST", `${batchBase}/archive`, async (ctx) => {
    const [from, to] = pair(hs, ctx, "fromObjectType", "toObjectType");
    const body = await hs.body(
      ctx,
      z.object({
        inputs: z.array(
          z.object({ from: z.object({ id: Id }), to: z.array(z.object({ id: Id })) }),
        ),
      }),
    );
    for (const inp of body.inputs) {
      for (const t of inp.to) hs.store.dissociate(from, inp.from.id, to, t.id, "INTEGRATION");
    }
    return noContent();
  });
}
