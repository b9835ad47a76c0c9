/**
 * API v1 endpoints with no v2 equivalent: users, leads, field metadata,
 * merges and webhooks. Served under both `/v1` (API-token base path) and
 * `/api/v1` (OAuth `api_domain` base path).
 * Docs: https://developers.pipedrive.com/docs/api/v1/Leads,
 * https://developers.pipedrive.com/docs/api/v1/Webhooks
 */
import { json } from "../common/http.ts";
import type { RequestContext } from "../common/router.ts";
import { PdError } from "./errors.ts";
import type { PipedriveEmulator } from "./emulator.ts";
import { PLURAL, V2_ENTITIES } from "./fields.ts";
import { addField, fieldJson } from "./custom_fields.ts";
import { leadJson, userJson, v2Json } from "./serialize.ts";
import type { PdRecord } from "./store.ts";

const both = (p: string) => [`/v1${p}`, `/api/v1${p}`];

function pageParams(ctx: RequestContext): { start: number; limit: number } {
  const start = Number(ctx.url.searchParams.get("start") ?? 0);
  const limit = Number(ctx.url.searchParams.get("limit") ?? 100);
  if (!Number.isInteger(start) || start < 0) {
    throw new PdError(400, "start must be a non-negative integer");
  }
  if (!Number.isInteger(limit) || limit < 1 || limit > 500) {
    throw new PdError(400, "limit must be between 1 and 500");
  }
  return { start, limit };
}

export function registerV1Routes(pd: PipedriveEmulator): void {
  // ---- users -----------------------------------------------------------------
  pd.route(
    "GET",
    both("/users"),
    "v1List",
    (_ctx, auth) =>
      json({ success: true, data: pd.store.users.map((u) => userJson(u, auth.userId)) }),
  );
  pd.route("GET", both("/users/me"), "v1Get", (_ctx, auth) => {
    const me = pd.store.user(auth.userId) ?? pd.store.users[0];
    return json({
      success: true,
      data: {
        ...userJson(me, auth.userId),
        company_id: pd.creds.companyId,
        company_name: "Sandbox Company",
        company_domain: pd.creds.companyDomain,
        company_country: "DE",
        company_industry: "Software",
        language: { language_code: "en", country_code: "US" },
      },
    });
  });
  pd.route("GET", both("/users/:id"), "v1Get", (ctx, auth) => {
    const u = pd.store.user(ctx.params.id);
    if (!u) throw PdError.notFound("user");
    return json({ success: true, data: userJson(u, auth.userId) });
  });

  // ---- leads -------------------------------------------------------------------
  const leadList = (archived: boolean) => (ctx: RequestContext) => {
    const { start, limit } = pageParams(ctx);
    const q = ctx.url.searchParams;
    const num = (k: string) => (q.get(k) === null ? undefined : Number(q.get(k)));
    const owner = num("owner_id"), person = num("person_id"), org = num("organization_id");
    const since = q.get("updated_since") ? Date.parse(q.get("updated_since")!) : null;
    const [sortField, sortDir] = (q.get("sort") ?? "add_time ASC").split(/\s+/);
    const rows = pd.store.tables.lead.bySeq.filter((r) =>
      !r.isDeleted && r.data.is_archived === archived &&
      (owner === undefined || r.data.owner_id === owner) &&
      (person === undefined || r.data.person_id === person) &&
      (org === undefined || r.data.organization_id === org) &&
      (since === null || r.modifiedAt >= since)
    );
    const key = (r: PdRecord) =>
      sortField === "update_time"
        ? r.modifiedAt
        : sortField === "add_time"
        ? r.addTime
        : String(r.data[sortField] ?? "");
    rows.sort((a, b) => {
      const x = key(a), y = key(b);
      const c = x < y ? -1 : x > y ? 1 : a.seq - b.seq;
      return sortDir?.toUpperCase() === "DESC" ? -c : c;
    });
    const page = rows.slice(start, start + limit);
    const more = start + limit < rows.length;
    return json({
      success: true,
      data: page.map(leadJson),
      additional_data: {
        start,
        limit,
        more_items_in_collection: more,
        ...(more ? { next_start: start + limit } : {}),
      },
    });
  };
  pd.route("GET", both("/leads"), "v1List", leadList(false));
  pd.route("GET", both("/leads/archived"), "v1List", leadList(true));
  pd.route("GET", both("/leads/:id"), "v1Get", (ctx) => {
    const r = pd.store.live("lead", ctx.params.id);
    if (!r) throw PdError.notFound("lead");
    return json({ success: true, data: leadJson(r) });
  });
  pd.route(
    "POST",
    both("/leads"),
    "v1Write",
    async (ctx, auth) =>
      json(
        {
          success: true,
          data: leadJson(
            pd.store.create("lead", await pd.body(ctx), { source: "api", userId: auth.userId }),
          ),
        },
        201,
      ),
  );
  pd.route(
    "PATCH",
    both("/leads/:id"),
    "v1Write",
    async (ctx, auth) =>
      json({
        success: true,
        data: leadJson(pd.store.update("lead", ctx.params.id, await pd.body(ctx), {
          source: "api",
          userId: auth.userId,
        })),
      }),
  );
  pd.route("DELETE", both("/leads/:id"), "v1Delete", (ctx, auth) => {
    const r = pd.store.delete("lead", ctx.params.id, { source: "api", userId: auth.userId });
    return json({ success: true, data: { id: r.id } });
  });

  // ---- merges ------------------------------------------------------------------
  for (const entity of V2_ENTITIES) {
    pd.route("PUT", both(`/${PLURAL[entity]}/:id/merge`), "v1Write", async (ctx, auth) => {
      const body = await pd.body(ctx);
      const other = body.merge_with_id;
      if (other === undefined || other === null) {
        throw new PdError(400, "merge_with_id is required");
      }
      // The item in the path is merged INTO merge_with_id (Pipedrive semantics).
      const kept = pd.store.merge(entity, String(other), ctx.params.id, {
        source: "api",
        userId: auth.userId,
      });
      return json({
        success: true,
        data: { ...v2Json(kept), merge_what_id: Number(ctx.params.id) },
      });
    });
  }

  // ---- field metadata (v1 shape) -------------------------------------------------
  for (const entity of V2_ENTITIES) {
    pd.route("GET", both(`/${entity}Fields`), "v1List", () => {
      const data = pd.store.customFieldsOf(entity).map((f) => fieldJson(pd, f));
      return json({
        success: true,
        data,
        additional_data: { pagination: { start: 0, limit: 500, more_items_in_collection: false } },
      });
    });
    pd.route("POST", both(`/${entity}Fields`), "v1Write", async (ctx) => {
      const f = addField(pd, entity, await pd.body(ctx));
      return json({ success: true, data: fieldJson(pd, f) });
    });
  }

  // ---- webhooks ----------------------------------------------------------------
  pd.route(
    "GET",
    both("/webhooks"),
    "v1List",
    () =>
      json({
        success: true,
        status: "ok",
        data: pd.webhooks.list().map((w) => pd.webhooks.toJson(w)),
      }),
  );
  pd.route("POST", both("/webhooks"), "v1Write", async (ctx, auth) => {
    const body = await pd.body(ctx);
    const w = pd.webhooks.add({
      subscription_url: String(body.subscription_url ?? ""),
      event_action: String(body.event_action ?? ""),
      event_object: String(body.event_object ?? ""),
      user_id: body.user_id === undefined ? auth.userId : Number(body.user_id),
      http_auth_user: body.http_auth_user === undefined ? null : String(body.http_auth_user),
      http_auth_password: body.http_auth_password === undefined
        ? null
        : String(body.http_auth_password),
      version: body.version === undefined ? "1.0" : String(body.version),
      name: body.name === undefined ? null : String(body.name),
    });
    return json({ success: true, status: "ok", data: pd.webhooks.toJson(w) }, 201);
  });
  pd.route("DELETE", both("/webhooks/:id"), "v1Delete", (ctx) => {
    if (!pd.webhooks.remove(Number(ctx.params.id))) throw PdError.notFound("webhook");
    return json({ success: true, status: "ok" });
  });
}
