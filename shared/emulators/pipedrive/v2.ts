/**
 * API v2 persons, organizations and deals, plus pipelines, stages and field
 * metadata.
 * Docs: https://developers.pipedrive.com/docs/api/v1 (v2 sections) and
 * https://pipedrive.readme.io/docs/core-api-concepts-pagination
 * - list: cursor pagination (`additional_data.next_cursor`, null at the end),
 *   `limit` ≤ 500 (default 100), `sort_by` id|update_time|add_time,
 *   `sort_direction` asc|desc, `updated_since` (inclusive) and
 *   `updated_until` (exclusive) in RFC 3339, `custom_fields` to narrow the
 *   custom field keys returned; deleted items are not listed (deals:
 *   `status=deleted` lists them);
 * - get/POST/PATCH return `{success, data}`; DELETE returns `{success, data: {id}}`;
 *   a deleted item stays readable by id with `is_deleted: true`.
 * The cursor is keyset-based (last sort key + id), so pages stay consistent
 * while records change.
 */
import { json, jsonText } from "../common/http.ts";
import { cachedJson } from "../common/json_cache.ts";
import type { RequestContext } from "../common/router.ts";
import { PdError } from "./errors.ts";
import type { PdAuth, PipedriveEmulator } from "./emulator.ts";
import { PLURAL, V2_ENTITIES, type V2Entity } from "./fields.ts";
import { v2Json } from "./serialize.ts";
import { searchHandler } from "./search.ts";
import { type PdActor, type PdRecord, pdTime, PIPELINES, STAGES } from "./store.ts";

/** API writes are recorded as change_source "api" by the token's user. */
const api = (auth: PdAuth): PdActor => ({ source: "api", userId: auth.userId });

interface Cursor {
  s: "id" | "update_time" | "add_time";
  d: "asc" | "desc";
  k: number;
  i: number;
}

const bad = (msg: string) =>
  new PdError(400, `Validation failed: ${msg}`, { code: "ERR_SCHEMA_VALIDATION_FAILED" });

function encodeCursor(c: Cursor): string {
  return btoa(JSON.stringify(c)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function decodeCursor(raw: string): Cursor {
  try {
    const c = JSON.parse(atob(raw.replace(/-/g, "+").replace(/_/g, "/"))) as Cursor;
    if (typeof c.k !== "number" || typeof c.i !== "number") throw new Error();
    return c;
  } catch {
    throw bad("cursor: Invalid cursor");
  }
}

function time(url: URL, name: string): number | null {
  const v = url.searchParams.get(name);
  if (v === null || v === "") return null;
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(v)) {
    throw bad(`${name}: Invalid datetime, expected RFC 3339 (e.g. 2025-01-01T10:20:00Z)`);
  }
  return Date.parse(v);
}

function ints(url: URL, name: string): number[] | null {
  const v = url.searchParams.get(name);
  if (v === null || v === "") return null;
  const out = v.split(",").map((s) => Number(s.trim()));
  if (out.some((n) => !Number.isInteger(n))) throw bad(`${name}: Expected integer`);
  return out;
}

function listHandler(pd: PipedriveEmulator, entity: V2Entity) {
  return (ctx: RequestContext) => {
    const url = ctx.url;
    const limit = url.searchParams.has("limit") ? Number(url.searchParams.get("limit")) : 100;
    if (!Number.isInteger(limit) || limit < 1) throw bad("limit: Expected a positive integer");
    if (limit > 500) throw bad("limit: Number must be less than or equal to 500");
    const sortBy = (url.searchParams.get("sort_by") ?? "id") as Cursor["s"];
    if (!["id", "update_time", "add_time"].includes(sortBy)) {
      throw bad("sort_by: Invalid enum value. Expected 'id' | 'update_time' | 'add_time'");
    }
    const dir = (url.searchParams.get("sort_direction") ?? "asc") as Cursor["d"];
    if (dir !== "asc" && dir !== "desc") {
      throw bad("sort_direction: Invalid enum value. Expected 'asc' | 'desc'");
    }
    const since = time(url, "updated_since");
    const until = time(url, "updated_until");
    const cursorRaw = url.searchParams.get("cursor");
    const cursor = cursorRaw ? decodeCursor(cursorRaw) : null;
    if (cursor && (cursor.s !== sortBy || cursor.d !== dir)) {
      throw bad("cursor: The cursor does not match the sort parameters");
    }
    const ids = ints(url, "ids");
    if (ids && ids.length > 100) throw bad("ids: Array must contain at most 100 element(s)");
    const owner = ints(url, "owner_id")?.[0];
    const org = ints(url, "org_id")?.[0];
    const person = ints(url, "person_id")?.[0];
    const pipeline = ints(url, "pipeline_id")?.[0];
    const stage = ints(url, "stage_id")?.[0];
    const status = url.searchParams.get("status")?.split(",").map((s) => s.trim());
    if (status && status.some((s) => !["open", "won", "lost", "deleted"].includes(s))) {
      throw bad("status: Invalid enum value. Expected 'open' | 'won' | 'lost' | 'deleted'");
    }
    const customKeys = url.searchParams.get("custom_fields")?.split(",").map((s) => s.trim())
      .filter(Boolean);
    if (customKeys && customKeys.length > 15) {
      throw bad("custom_fields: Array must contain at most 15 element(s)");
    }

    const wantDeleted = entity === "deal" && status?.includes("deleted");
    const idSet = ids ? new Set(ids.map(String)) : null;
    const match = (r: PdRecord): boolean => {
      if (r.isDeleted && !wantDeleted) return false;
      if (!r.isDeleted && wantDeleted && status!.length === 1) return false;
      if (since !== null && r.modifiedAt < since) return false;
      if (until !== null && r.modifiedAt >= until) return false;
      if (idSet && !idSet.has(r.id)) return false;
      if (owner !== undefined && r.data.owner_id !== owner) return false;
      if (org !== undefined && r.data.org_id !== org) return false;
      if (person !== undefined && r.data.person_id !== person) return false;
      if (pipeline !== undefined && r.data.pipeline_id !== pipeline) return false;
      if (stage !== undefined && r.data.stage_id !== stage) return false;
      if (status && entity === "deal" && !r.isDeleted && !status.includes(String(r.data.status))) {
        return false;
      }
      return true;
    };

    const table = pd.store.tables[entity];
    const page: PdRecord[] = [];
    let more = false;
    const take = (r: PdRecord): boolean => {
      if (!match(r)) return true;
      if (page.length === limit) {
        more = true;
        return false;
      }
      page.push(r);
      return true;
    };
    if (sortBy === "id") {
      const a = table.bySeq;
      if (dir === "asc") {
        for (let i = cursor ? table.seqLowerBound(cursor.i + 1) : 0; i < a.length; i++) {
          if (!take(a[i])) break;
        }
      } else {
        for (let i = (cursor ? table.seqLowerBound(cursor.i) : a.length) - 1; i >= 0; i--) {
          if (!take(a[i])) break;
        }
      }
    } else if (sortBy === "update_time") {
      const a = table.byModified;
      if (dir === "asc") {
        const from = cursor
          ? table.modifiedUpperBound(cursor.k, cursor.i)
          : since !== null
          ? table.modifiedLowerBound(since)
          : 0;
        for (let i = from; i < a.length; i++) {
          if (until !== null && a[i].modifiedAt >= until) break;
          if (!take(a[i])) break;
        }
      } else {
        const to = cursor
          ? table.modifiedLowerBound(cursor.k, cursor.i)
          : until !== null
          ? table.modifiedLowerBound(until)
          : a.length;
        for (let i = to - 1; i >= 0; i--) {
          if (since !== null && a[i].modifiedAt < since) break;
          if (!take(a[i])) break;
        }
      }
    } else {
      const sorted = table.bySeq.filter(match).sort((x, y) =>
        x.addTime - y.addTime || x.seq - y.seq
      );
      if (dir === "desc") sorted.reverse();
      const after = cursor
        ? sorted.findIndex((r) =>
          dir === "asc"
            ? (r.addTime > cursor.k || (r.addTime === cursor.k && r.seq > cursor.i))
            : (r.addTime < cursor.k || (r.addTime === cursor.k && r.seq < cursor.i))
        )
        : 0;
      for (const r of after < 0 ? [] : sorted.slice(after)) if (!take(r)) break;
    }
    const last = page[page.length - 1];
    const next = more && last
      ? encodeCursor({
        s: sortBy,
        d: dir,
        k: sortBy === "add_time" ? last.addTime : last.modifiedAt,
        i: last.seq,
      })
      : null;
    const key = customKeys ? customKeys.join(",") : "";
    const items = page.map((r) => cachedJson(r, key, () => v2Json(r, customKeys)));
    return jsonText(
      `{"success":true,"data":[${items.join(",")}],"additional_data":${
        JSON.stringify({ next_cursor: next })
      }}`,
    );
  };
}

function idParam(ctx: RequestContext): string {
  const id = ctx.params.id;
  if (!/^\d+$/.test(id)) throw bad("id: Expected number, received string");
  return String(Number(id));
}

export function registerV2Routes(pd: PipedriveEmulator): void {
  for (const entity of V2_ENTITIES) {
    const base = `/api/v2/${PLURAL[entity]}`;
    pd.route("GET", base, "v2List", listHandler(pd, entity));
    // Before `/:id`, which would take "search" for an id.
    pd.route("GET", `${base}/search`, "v2Search", searchHandler(pd, entity));
    pd.route("GET", `${base}/:id`, "v2Get", (ctx) => {
      const r = pd.store.get(entity, idParam(ctx));
      if (!r) throw PdError.notFound(entity);
      const keys = ctx.url.searchParams.get("custom_fields")?.split(",").map((s) => s.trim())
        .filter(Boolean);
      return json({ success: true, data: v2Json(r, keys) });
    });
    pd.route("POST", base, "v2Write", async (ctx, auth) => {
      const r = pd.store.create(entity, await pd.body(ctx), api(auth));
      return json({ success: true, data: v2Json(r) });
    });
    pd.route("PATCH", `${base}/:id`, "v2Write", async (ctx, auth) => {
      // A refused record (../common/refusals.ts) answers as Pipedrive's validation errors do.
      const refused = pd.refusals.check(idParam(ctx));
      if (refused !== null) throw bad(refused);
      const r = pd.store.update(entity, idParam(ctx), await pd.body(ctx), api(auth));
      return json({ success: true, data: v2Json(r) });
    });
    pd.route("DELETE", `${base}/:id`, "v2Delete", (ctx, auth) => {
      const r = pd.store.delete(entity, idParam(ctx), api(auth));
      return json({ success: true, data: { id: Number(r.id) } });
    });
  }

  const anchor = pdTime(Date.UTC(2023, 0, 1));
  pd.route(
    "GET",
    "/api/v2/pipelines",
    "v2List",
    () =>
      json({
        success: true,
        data: PIPELINES.map((p) => ({
          ...p,
          is_deleted: false,
          is_deal_probability_enabled: true,
          add_time: anchor,
          update_time: anchor,
        })),
        additional_data: { next_cursor: null },
      }),
  );
  pd.route("GET", "/api/v2/stages", "v2List", (ctx) => {
    const pipeline = ints(ctx.url, "pipeline_id")?.[0];
    const data = STAGES.filter((s) => pipeline === undefined || s.pipeline_id === pipeline)
      .map((s) => ({
        ...s,
        is_deleted: false,
        is_deal_rot_enabled: false,
        days_to_rotten: null,
        add_time: anchor,
        update_time: anchor,
      }));
    return json({ success: true, data, additional_data: { next_cursor: null } });
  });

  for (const entity of V2_ENTITIES) {
    pd.route("GET", `/api/v2/${entity}Fields`, "v2List", () => {
      const custom = pd.store.customFieldsOf(entity).map((f) => ({
        field_name: f.name,
        field_code: f.key,
        field_type: f.type,
        is_custom_field: true,
        is_optional_response_field: false,
        options: f.options?.map((o) => ({ id: o.id, label: o.label })) ?? null,
        subfields: null,
      }));
      const standard = ["name", "owner_id", "add_time", "update_time"].map((n) => ({
        field_name: n,
        field_code: n,
        field_type: n.endsWith("_id") ? "user" : n.endsWith("time") ? "date" : "varchar",
        is_custom_field: false,
        is_optional_response_field: false,
        options: null,
        subfields: null,
      }));
      return json({
        success: true,
        data: [...standard, ...custom],
        additional_data: { next_cursor: null },
      });
    });
  }
}
