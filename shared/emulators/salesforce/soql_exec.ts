/**
 * SOQL execution against the in-memory org.
 *
 * Planning: when the WHERE clause bounds SystemModstamp (or LastModifiedDate,
 * which is never later) from below, rows are read from the modification index
 * starting at that bound; when ORDER BY is `SystemModstamp [ASC][, Id [ASC]]`
 * the index order is the result order and LIMIT stops the scan early. That is
 * the delta-sync pattern (`SystemModstamp > :wm OR (SystemModstamp = :wm AND
 * Id > :id) ORDER BY SystemModstamp, Id LIMIT n`), so it costs O(log n + n_page).
 */
import { SfError } from "./errors.ts";
import { to18 } from "./ids.ts";
import { type Cond, type Literal, parseSoql, type Query } from "./soql.ts";
import {
  field,
  type FieldDef,
  objectName,
  type OrgSchema,
  relationship,
  type SfObject,
} from "./schema.ts";
import type { SalesforceStore, SfRecord } from "./store.ts";
import { parseSfTime } from "./values.ts";

interface SelectItem {
  /** Canonical field (or relationship + field). */
  def: FieldDef;
  via?: FieldDef;
  viaType?: SfObject;
}

export interface CompiledQuery {
  query: Query;
  type: SfObject;
  select: SelectItem[];
  predicate: (r: SfRecord) => boolean;
  plan: { lower: number | null; upper: number | null; indexOrdered: boolean; descending: boolean };
  compare: ((a: SfRecord, b: SfRecord) => number) | null;
}

const invalidField = (msg: string) => SfError.one(400, "INVALID_FIELD", msg);

function resolveField(s: OrgSchema, type: SfObject, name: string): FieldDef {
  const d = s.field(type, name);
  if (!d) {
    throw invalidField(
      `No such column '${name}' on entity '${type}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.`,
    );
  }
  return d;
}

function resolveSelect(s: OrgSchema, type: SfObject, name: string): SelectItem {
  const parts = name.split(".");
  if (parts.length === 1) return { def: resolveField(s, type, name) };
  if (parts.length > 2) {
    throw SfError.one(
      400,
      "MALFORMED_QUERY",
      `relationship paths deeper than one level are not supported by this sandbox: ${name}`,
    );
  }
  const via = relationship(type, parts[0]);
  if (!via || !via.referenceTo?.length) {
    throw invalidField(
      `Didn't understand relationship '${
        parts[0]
      }' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name.`,
    );
  }
  const viaType = via.referenceTo[0];
  return { def: resolveField(s, viaType, parts[1]), via, viaType };
}

function isTextual(d: FieldDef): boolean {
  return !["datetime", "date", "boolean", "double", "int", "currency", "percent"].includes(d.type);
}

/** Comparable value of a record field (ms for dates, lower-case for text). */
function valueOf(r: SfRecord, d: FieldDef): unknown {
  if (d.name === "SystemModstamp") return r.modifiedAt;
  const v = r.fields[d.name];
  if (v === null || v === undefined) return null;
  if (d.type === "datetime" || d.type === "date") return parseSfTime(v);
  if (d.type === "id" || d.type === "reference") return v;
  if (isTextual(d)) return String(v).toLowerCase();
  return v;
}

function literalFor(d: FieldDef, lit: Literal): unknown {
  if (lit.kind === "null") return null;
  switch (d.type) {
    case "datetime":
      if (lit.kind === "datetime" || lit.kind === "date") return lit.value;
      throw invalidField(
        `value of filter criterion for field '${d.name}' must be of type dateTime and should not be enclosed in quotes`,
      );
    case "date":
      if (lit.kind === "date") return lit.value;
      throw invalidField(
        `value of filter criterion for field '${d.name}' must be of type date and should not be enclosed in quotes`,
      );
    case "boolean":
      if (lit.kind === "boolean") return lit.value;
      throw invalidField(
        `value of filter criterion for field '${d.name}' must be of type boolean and should not be enclosed in quotes`,
      );
    case "double":
    case "int":
    case "currency":
    case "percent":
      if (lit.kind === "number") return lit.value;
      throw invalidField(
        `value of filter criterion for field '${d.name}' must be of type ${
          d.type === "int" ? "integer" : "double"
        } and should not be enclosed in quotes`,
      );
    case "id":
    case "reference": {
      if (lit.kind !== "string") {
        throw invalidField(
          `value of filter criterion for field '${d.name}' must be of type id and should be enclosed in quotes`,
        );
      }
      const id = to18(lit.value);
      if (!id && lit.value !== "") {
        throw SfError.one(400, "INVALID_QUERY_FILTER_OPERATOR", `invalid ID field: ${lit.value}`);
      }
      return id ?? "";
    }
    default:
      if (lit.kind !== "string") {
        throw invalidField(
          `value of filter criterion for field '${d.name}' must be of type string and should be enclosed in quotes`,
        );
      }
      return lit.value.toLowerCase();
  }
}

function compileCond(s: OrgSchema, type: SfObject, c: Cond): (r: SfRecord) => boolean {
  switch (c.kind) {
    case "and": {
      const fs = c.items.map((i) => compileCond(s, type, i));
      return (r) => fs.every((f) => f(r));
    }
    case "or": {
      const fs = c.items.map((i) => compileCond(s, type, i));
      return (r) => fs.some((f) => f(r));
    }
    case "not": {
      const f = compileCond(s, type, c.item);
      return (r) => !f(r);
    }
    case "like": {
      const d = resolveField(s, type, c.field);
      if (!isTextual(d)) throw invalidField(`invalid operator on field '${d.name}': LIKE`);
      const re = new RegExp(
        "^" +
          c.pattern.toLowerCase().replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/%/g, ".*")
            .replace(/_/g, ".") +
          "$",
        "s",
      );
      return (r) => {
        const v = r.fields[d.name];
        return v !== null && v !== undefined && re.test(String(v).toLowerCase());
      };
    }
    case "in": {
      const d = resolveField(s, type, c.field);
      const set = new Set(c.values.map((v) => literalFor(d, v)));
      return (r) => {
        const v = valueOf(r, d);
        return c.negate ? !set.has(v) : set.has(v);
      };
    }
    case "cmp": {
      const d = resolveField(s, type, c.field);
      const lit = literalFor(d, c.value);
      if (lit === null && c.op !== "=" && c.op !== "!=") {
        throw invalidField(`invalid operator on null value for field '${d.name}'`);
      }
      if (d.type === "boolean" && c.op !== "=" && c.op !== "!=") {
        throw invalidField(`invalid operator on field '${d.name}': ${c.op}`);
      }
      return (r) => {
        const v = valueOf(r, d);
        switch (c.op) {
          case "=":
            return v === lit;
          case "!=":
            return v !== lit;
        }
        if (v === null || lit === null) return false;
        const x = v as number | string, y = lit as number | string;
        switch (c.op) {
          case "<":
            return x < y;
          case "<=":
            return x <= y;
          case ">":
            return x > y;
          case ">=":
            return x >= y;
        }
        return false;
      };
    }
  }
}

/** Lower/upper bound on SystemModstamp implied by a condition (ms), if any. */
function bounds(type: SfObject, c: Cond | null): { lower: number | null; upper: number | null } {
  if (!c) return { lower: null, upper: null };
  switch (c.kind) {
    case "cmp": {
      const d = field(type, c.field);
      if (!d || (c.value.kind !== "datetime" && c.value.kind !== "date")) {
        return { lower: null, upper: null };
      }
      const v = c.value.value;
      if (d.name === "SystemModstamp" || d.name === "LastModifiedDate") {
        // LastModifiedDate <= SystemModstamp, so only lower bounds carry over.
        const lower = c.op === ">" || c.op === ">=" || c.op === "=" ? v : null;
        const upper = d.name === "SystemModstamp" && (c.op === "<" || c.op === "<=" || c.op === "=")
          ? v
          : null;
        return { lower, upper };
      }
      return { lower: null, upper: null };
    }
    case "and": {
      let lower: number | null = null, upper: number | null = null;
      for (const i of c.items) {
        const b = bounds(type, i);
        if (b.lower !== null) lower = lower === null ? b.lower : Math.max(lower, b.lower);
        if (b.upper !== null) upper = upper === null ? b.upper : Math.min(upper, b.upper);
      }
      return { lower, upper };
    }
    case "or": {
      const bs = c.items.map((i) => bounds(type, i));
      const lower = bs.every((b) => b.lower !== null) ? Math.min(...bs.map((b) => b.lower!)) : null;
      const upper = bs.every((b) => b.upper !== null) ? Math.max(...bs.map((b) => b.upper!)) : null;
      return { lower, upper };
    }
    default:
      return { lower: null, upper: null };
  }
}

export function compileQuery(soql: string, now: number, schema: OrgSchema): CompiledQuery {
  const query = parseSoql(soql, now);
  const type = objectName(query.object);
  if (!type) {
    throw SfError.one(
      400,
      "INVALID_TYPE",
      `sObject type '${query.object}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.`,
    );
  }
  const select = query.fields.map((f) => resolveSelect(schema, type, f));
  const seen = new Set<string>();
  for (const s of select) {
    const k = (s.via ? s.via.relationshipName + "." : "") + s.def.name;
    if (seen.has(k.toLowerCase())) {
      throw SfError.one(400, "MALFORMED_QUERY", `duplicate field selected: ${k}`);
    }
    seen.add(k.toLowerCase());
  }
  if (query.offset !== null && query.offset > 2000) {
    throw SfError.one(400, "NUMBER_OUTSIDE_VALID_RANGE", `Maximum SOQL offset allowed is 2000`);
  }
  const predicate = query.where ? compileCond(schema, type, query.where) : () => true;
  const order = query.orderBy.map((o) => {
    if (o.field.includes(".")) {
      throw SfError.one(
        400,
        "MALFORMED_QUERY",
        `ORDER BY on relationship fields is not supported by this sandbox: ${o.field}`,
      );
    }
    return { ...o, def: resolveField(schema, type, o.field) };
  });
  const b = bounds(type, query.where);
  // Index order = (SystemModstamp, Id); usable when ORDER BY is a prefix of it, all one direction.
  const names = order.map((o) => o.def.name);
  const dirs = new Set(order.map((o) => o.desc));
  const indexOrdered = dirs.size <= 1 &&
    (names.length === 0 ||
      (names[0] === "SystemModstamp" &&
        (names.length === 1 || (names.length === 2 && names[1] === "Id"))));
  const compare = order.length === 0 || indexOrdered ? null : (a: SfRecord, z: SfRecord) => {
    for (const o of order) {
      const x = valueOf(a, o.def), y = valueOf(z, o.def);
      if (x === y) continue;
      if (x === null) return o.nullsLast ? 1 : -1;
      if (y === null) return o.nullsLast ? -1 : 1;
      const c = (x as number) < (y as number) ? -1 : 1;
      return o.desc ? -c : c;
    }
    return a.seq - z.seq;
  };
  return {
    query,
    type,
    select,
    predicate,
    plan: {
      lower: b.lower,
      upper: b.upper,
      indexOrdered,
      descending: order.length > 0 && order[0].desc,
    },
    compare,
  };
}

/** Run a compiled query: matching rows in result order (LIMIT/OFFSET applied). */
export function runQuery(
  store: SalesforceStore,
  q: CompiledQuery,
  includeDeleted: boolean,
): SfRecord[] {
  const table = store.tables[q.type];
  const wanted = q.query.limit === null ? Infinity : (q.query.offset ?? 0) + q.query.limit;
  const ok = (r: SfRecord) => (includeDeleted || !r.isDeleted) && q.predicate(r);
  let rows: SfRecord[] = [];
  const useModIndex = q.plan.lower !== null || q.plan.upper !== null ||
    (q.query.orderBy.length > 0 && q.plan.indexOrdered);
  if (useModIndex) {
    const arr = table.byModified;
    const from = q.plan.lower === null ? 0 : table.modifiedLowerBound(q.plan.lower);
    const to = q.plan.upper === null ? arr.length : table.modifiedUpperBound(q.plan.upper);
    const early = q.plan.indexOrdered && q.query.orderBy.length > 0;
    if (early && q.plan.descending) {
      for (let i = to - 1; i >= from && rows.length < wanted; i--) {
        if (ok(arr[i])) rows.push(arr[i]);
      }
    } else {
      for (let i = from; i < to && (!early || rows.length < wanted); i++) {
        if (ok(arr[i])) rows.push(arr[i]);
      }
    }
    if (!early && q.query.orderBy.length === 0) rows.sort((a, b) => a.seq - b.seq);
  } else {
    for (const r of table.bySeq) if (ok(r)) rows.push(r);
  }
  if (q.compare) rows.sort(q.compare);
  const offset = q.query.offset ?? 0;
  if (offset > 0 || wanted !== Infinity) rows = rows.slice(offset, wanted);
  return rows;
}

/** Serialise one row for a query result / retrieve. */
export function serializeRow(
  store: SalesforceStore,
  r: SfRecord,
  select: SelectItem[],
  version: string,
): Record<string, unknown> {
  const out: Record<string, unknown> = {
    attributes: { type: r.type, url: `/services/data/v${version}/sobjects/${r.type}/${r.id}` },
  };
  for (const s of select) {
    if (!s.via) {
      out[s.def.name] = r.fields[s.def.name] ?? null;
      continue;
    }
    const relName = s.via.relationshipName!;
    const refId = r.fields[s.via.name] as string | null;
    const target = refId ? store.find(s.viaType!, refId) : undefined;
    if (!target) {
      out[relName] = null;
      continue;
    }
    const existing = out[relName] as Record<string, unknown> | undefined;
    const obj = existing ??
      {
        attributes: {
          type: target.type,
          url: `/services/data/v${version}/sobjects/${target.type}/${target.id}`,
        },
      };
    obj[s.def.name] = target.fields[s.def.name] ?? null;
    out[relName] = obj;
  }
  return out;
}
