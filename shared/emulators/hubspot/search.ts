/**
 * POST /crm/v3/objects/{type}/search
 * Docs: https://developers.hubspot.com/docs/api/crm/search
 * - filterGroups are OR'ed, filters inside a group AND'ed (≤ 5 groups,
 *   ≤ 6 filters per group, ≤ 18 filters);
 * - one sort; `limit` ≤ 200; `after` is an offset;
 * - at most 10,000 results per query: `total` reports the real count, but
 *   paging to `after` ≥ 10,000 is a 400, so delta sync must restart the query
 *   from a new watermark (GTE + hs_object_id tiebreak) before the cap;
 * - separate 5 requests/s limit and no X-HubSpot-RateLimit-* headers;
 * - optional index lag (`searchLagMs`): very recent writes are not found yet.
 */
import { z } from "zod";
import { json } from "../common/http.ts";
import type { HubSpotEmulator } from "./emulator.ts";
import { typeParam } from "./objects.ts";
import { type HsObjectType, modifiedProperty, toMillis } from "./properties.ts";
import { toApiObject } from "./serialize.ts";
import type { Table } from "../common/table.ts";
import { type HsRecord, ID_BASE } from "./store.ts";

const Scalar = z.union([z.string(), z.number(), z.boolean()]).transform(String);
const Filter = z.object({
  propertyName: z.string(),
  operator: z.enum([
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "BETWEEN",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN",
    "NOT_CONTAINS_TOKEN",
  ]),
  value: Scalar.optional(),
  highValue: Scalar.optional(),
  values: z.array(Scalar).optional(),
});
type FilterT = z.infer<typeof Filter>;

const Sort = z.union([
  z.string().transform((s) =>
    s.startsWith("-")
      ? { propertyName: s.slice(1), direction: "DESCENDING" as const }
      : { propertyName: s, direction: "ASCENDING" as const }
  ),
  z.object({
    propertyName: z.string(),
    direction: z.enum(["ASCENDING", "DESCENDING"]).default("ASCENDING"),
  }),
]);

const SearchBody = z.object({
  filterGroups: z.array(z.object({ filters: z.array(Filter) })).default([]),
  sorts: z.array(Sort).default([]),
  query: z.string().optional(),
  properties: z.array(z.string()).optional(),
  limit: z.number().int().default(10),
  after: z.union([z.string(), z.number()]).optional(),
});

const QUERY_PROPS: Record<HsObjectType, string[]> = {
  contacts: ["email", "firstname", "lastname", "phone", "company", "hs_additional_emails"],
  companies: ["name", "domain", "website", "phone"],
  deals: ["dealname"],
};

type Kind = "id" | "modified" | "created" | "number" | "date" | "string";

function kindOf(hs: HubSpotEmulator, type: HsObjectType, prop: string): Kind {
  if (prop === "hs_object_id") return "id";
  if (prop === modifiedProperty(type)) return "modified";
  if (prop === "createdate") return "created";
  const def = hs.store.props.get(type, prop);
  if (!def) return "string";
  if (def.type === "number") return "number";
  if (def.type === "date" || def.type === "datetime") return "date";
  return "string";
}

function numericValue(r: HsRecord, prop: string, kind: Kind): number | null {
  switch (kind) {
    case "id":
      return ID_BASE[r.type] + r.seq;
    case "modified":
      return r.modifiedAt;
    case "created":
      return r.createdAt;
    case "number": {
      const v = r.properties[prop];
      return v === null || v === undefined ? null : Number(v);
    }
    case "date":
      return toMillis(r.properties[prop]);
    default:
      return null;
  }
}

function compile(hs: HubSpotEmulator, type: HsObjectType, f: FilterT): (r: HsRecord) => boolean {
  const kind = kindOf(hs, type, f.propertyName);
  const prop = f.propertyName;
  if (f.operator === "HAS_PROPERTY") return (r) => kind === "id" || !!r.properties[prop];
  if (f.operator === "NOT_HAS_PROPERTY") return (r) => kind !== "id" && !r.properties[prop];
  if (kind !== "string") {
    const num = (
      v: string | undefined,
    ) => (kind === "number" || kind === "id"
      ? (v === undefined ? NaN : Number(v))
      : toMillis(v) ?? NaN);
    const a = num(f.value);
    const b = num(f.highValue);
    const set = new Set((f.values ?? []).map((v) => num(v)));
    return (r) => {
      const x = numericValue(r, prop, kind);
      switch (f.operator) {
        case "EQ":
          return x === a;
        case "NEQ":
          return x !== a;
        case "LT":
          return x !== null && x < a;
        case "LTE":
          return x !== null && x <= a;
        case "GT":
          return x !== null && x > a;
        case "GTE":
          return x !== null && x >= a;
        case "BETWEEN":
          return x !== null && x >= a && x <= b;
        case "IN":
          return x !== null && set.has(x);
        case "NOT_IN":
          return x === null || !set.has(x);
        default:
          return false;
      }
    };
  }
  const a = (f.value ?? "").toLowerCase();
  const b = (f.highValue ?? "").toLowerCase();
  const set = new Set((f.values ?? []).map((v) => v.toLowerCase()));
  const token = a.replace(/\*/g, "");
  return (r) => {
    const raw = r.properties[prop];
    const x = raw === null || raw === undefined ? null : raw.toLowerCase();
    switch (f.operator) {
      case "EQ":
        return x === a;
      case "NEQ":
        return x !== a;
      case "LT":
        return x !== null && x < a;
      case "LTE":
        return x !== null && x <= a;
      case "GT":
        return x !== null && x > a;
      case "GTE":
        return x !== null && x >= a;
      case "BETWEEN":
        return x !== null && x >= a && x <= b;
      case "IN":
        return x !== null && set.has(x);
      case "NOT_IN":
        return x === null || !set.has(x);
      case "CONTAINS_TOKEN":
        return x !== null && x.includes(token);
      case "NOT_CONTAINS_TOKEN":
        return x === null || !x.includes(token);
      default:
        return false;
    }
  };
}

/**
 * Per index array: prefix[i] = rows of arr[0, i) that are neither archived nor merged away,
 * valid for one Table.version (every archive, restore and merge also moves a row in the
 * index, so it bumps the version). Lets a search count the rows past its page in O(1)
 * instead of visiting each of them on every page of a walk.
 */
const LIVE_PREFIX = new WeakMap<
  HsRecord[],
  { version: number; prefix: Int32Array; wholeMs: boolean }
>();

/** Live rows in arr[from, to); null when some modification time is not whole milliseconds. */
function liveBetween(
  table: Table<HsRecord>,
  arr: HsRecord[],
  from: number,
  to: number,
): number | null {
  let c = LIVE_PREFIX.get(arr);
  if (!c || c.version !== table.version || c.prefix.length !== arr.length + 1) {
    const prefix = new Int32Array(arr.length + 1);
    let wholeMs = true;
    for (let i = 0; i < arr.length; i++) {
      const r = arr[i];
      prefix[i + 1] = prefix[i] + (r.archived || r.mergedInto ? 0 : 1);
      if (!Number.isInteger(r.modifiedAt)) wholeMs = false;
    }
    c = { version: table.version, prefix, wholeMs };
    LIVE_PREFIX.set(arr, c);
  }
  if (!c.wholeMs) return null;
  return from < to ? c.prefix[to] - c.prefix[from] : 0;
}

/** Operators rangeOf turns into index bounds. */
const RANGE_OPS = new Set(["GT", "GTE", "LT", "LTE", "EQ", "BETWEEN"]);

/** Range [lo, hi] (inclusive) a single filter group imposes on one numeric kind. */
function rangeOf(filters: FilterT[], kindFor: (p: string) => Kind, want: Kind): [number, number] {
  let lo = -Infinity, hi = Infinity;
  for (const f of filters) {
    if (kindFor(f.propertyName) !== want) continue;
    const v = want === "id" ? Number(f.value) : toMillis(f.value) ?? NaN;
    if (Number.isNaN(v)) continue;
    if (f.operator === "GT") lo = Math.max(lo, v + (want === "id" ? 1 : 0.001));
    else if (f.operator === "GTE") lo = Math.max(lo, v);
    else if (f.operator === "LT") hi = Math.min(hi, v - (want === "id" ? 1 : 0.001));
    else if (f.operator === "LTE") hi = Math.min(hi, v);
    else if (f.operator === "EQ") {
      lo = Math.max(lo, v);
      hi = Math.min(hi, v);
    } else if (f.operator === "BETWEEN") {
      lo = Math.max(lo, v);
      const h = want === "id" ? Number(f.highValue) : toMillis(f.highValue) ?? NaN;
      if (!Number.isNaN(h)) hi = Math.min(hi, h);
    }
  }
  return [lo, hi];
}

export function registerSearchRoutes(hs: HubSpotEmulator): void {
  hs.route("POST", "/crm/v3/objects/:objectType/search", async (ctx) => {
    const type = typeParam(hs, ctx);
    const body = await hs.body(ctx, SearchBody);
    if (body.limit < 0 || body.limit > 200) {
      hs.fail(400, "VALIDATION_ERROR", `limit must be between 0 and 200 (got ${body.limit})`);
    }
    if (body.filterGroups.length > 5) {
      hs.fail(400, "VALIDATION_ERROR", "Too many filter groups (max 5)");
    }
    let nFilters = 0;
    for (const g of body.filterGroups) {
      if (g.filters.length > 6) {
        hs.fail(400, "VALIDATION_ERROR", "Too many filters in a filter group (max 6)");
      }
      nFilters += g.filters.length;
    }
    if (nFilters > 18) hs.fail(400, "VALIDATION_ERROR", "Too many filters (max 18)");
    if (body.sorts.length > 1) hs.fail(400, "VALIDATION_ERROR", "Only one sort is supported");
    const after = body.after === undefined || body.after === "" ? 0 : Number(body.after);
    if (!Number.isInteger(after) || after < 0) {
      hs.fail(400, "VALIDATION_ERROR", `Invalid after: ${body.after}`);
    }
    if (after >= hs.searchMaxResults) {
      hs.fail(
        400,
        "VALIDATION_ERROR",
        `Paging beyond ${hs.searchMaxResults} results is not supported. Narrow the query (e.g. a GTE filter on ${
          modifiedProperty(type)
        }) and start again.`,
      );
    }

    const kindFor = (p: string) => kindOf(hs, type, p);
    const groups = body.filterGroups.map((g) => g.filters.map((f) => compile(hs, type, f)));
    const q = body.query?.trim().toLowerCase();
    const qProps = QUERY_PROPS[type];
    const lagCut = hs.searchLagMs > 0 ? hs.now() - hs.searchLagMs : Infinity;
    const visible = (r: HsRecord): boolean => {
      if (r.archived || r.mergedInto || r.modifiedAt > lagCut) return false;
      return !q || qProps.some((p) => r.properties[p]?.toLowerCase().includes(q));
    };
    const matches = (r: HsRecord): boolean => {
      if (!visible(r)) return false;
      if (groups.length === 0) return true;
      return groups.some((fs) => fs.every((f) => f(r)));
    };

    const sort = body.sorts[0] ?? { propertyName: "hs_object_id", direction: "ASCENDING" as const };
    const sortKind = kindFor(sort.propertyName);
    const desc = sort.direction === "DESCENDING";
    const table = hs.store.tables[type];

    // The requested page is collected in result order; past it, matches are only counted
    // (`total`), so paging a 100k-row walk does not copy every remaining row on every page.
    const cap = Math.min(after + body.limit, hs.searchMaxResults);
    const page: HsRecord[] = [];
    let total = 0;
    const take = (r: HsRecord) => {
      if (total >= after && total < cap) page.push(r);
      total++;
    };

    // Pick an index whose order matches the sort, narrowed by a range filter
    // when there is a single filter group.
    if (sortKind === "modified" || sortKind === "id") {
      const arr = sortKind === "modified" ? table.byModified : table.bySeq;
      let from = 0, to = arr.length;
      // When every filter is a range on the sort key with whole-number bounds, the index range
      // is exactly the filter (modification times and ids are whole numbers): rows past the
      // page are counted on visibility alone.
      let rangeOnly = false;
      if (body.filterGroups.length === 1) {
        const filters = body.filterGroups[0].filters;
        const [lo, hi] = rangeOf(filters, kindFor, sortKind);
        if (sortKind === "modified") {
          if (lo > -Infinity) from = table.modifiedLowerBound(Math.ceil(lo));
          if (hi < Infinity) to = table.modifiedUpperBound(Math.floor(hi));
        } else {
          if (lo > -Infinity) from = table.seqLowerBound(Math.ceil(lo) - ID_BASE[type]);
          if (hi < Infinity) to = table.seqLowerBound(Math.floor(hi) - ID_BASE[type] + 1);
        }
        const bound = (v: string | undefined) => sortKind === "id" ? Number(v) : toMillis(v) ?? NaN;
        rangeOnly = filters.every((f) =>
          kindFor(f.propertyName) === sortKind && RANGE_OPS.has(f.operator) &&
          Number.isInteger(bound(f.value)) &&
          (f.operator !== "BETWEEN" || Number.isInteger(bound(f.highValue)))
        );
      } else rangeOnly = body.filterGroups.length === 0;
      // Without a text query or index lag, visible = neither archived nor merged away.
      const countLive = rangeOnly && !q && lagCut === Infinity;
      if (!desc) {
        let i = from;
        for (; i < to && total < cap; i++) if (matches(arr[i])) take(arr[i]);
        const rest = countLive ? liveBetween(table, arr, i, to) : null;
        if (rest !== null) total += rest;
        else for (; i < to; i++) if (matches(arr[i])) total++;
      } else {
        let i = to - 1;
        for (; i >= from && total < cap; i--) if (matches(arr[i])) take(arr[i]);
        const rest = countLive ? liveBetween(table, arr, from, i + 1) : null;
        if (rest !== null) total += rest;
        else for (; i >= from; i--) if (matches(arr[i])) total++;
      }
    } else {
      const ordered = table.bySeq.filter(matches);
      const val = (r: HsRecord) =>
        sortKind === "string"
          ? (r.properties[sort.propertyName] ?? "")
          : numericValue(r, sort.propertyName, sortKind) ?? -Infinity;
      ordered.sort((a, b) => {
        const x = val(a), y = val(b);
        const c = x < y ? -1 : x > y ? 1 : a.seq - b.seq;
        return desc ? -c : c;
      });
      for (const r of ordered) take(r);
    }

    const end = Math.min(total, cap);
    const res: Record<string, unknown> = {
      total,
      results: page.map((r) => toApiObject(hs.store, r, { properties: body.properties })),
    };
    if (end < total && body.limit > 0) res.paging = { next: { after: String(end) } };
    return json(res);
  }, "search");
}
