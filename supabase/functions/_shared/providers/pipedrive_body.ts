// WriteOp properties → Pipedrive API v2 request bodies (pure; ./pipedrive_write.ts sends them).
// - Custom fields go under `custom_fields: {<40-hex key>: value}`: a property named
//   `custom_fields.<key>`, a bare 40-hex key, or a `custom_fields` object.
// - Relations and ids are numbers on the wire (org_id, person_id, owner_id, pipeline_id,
//   stage_id, visible_to, label_ids); value, probability and annual_revenue are numbers; expected_close_date
//   is YYYY-MM-DD. A string that is not a number is sent as it is: Pipedrive's 400 names it.
// - Persons: v2 bodies have `name` only (no first_name/last_name, AddPersonRequest), so
//   first/last names are joined into `name`; an update that changes one of them needs the
//   other from the stored record (the caller reads it). Pipedrive derives first/last from
//   `name` itself: a multi-word last name comes back split differently (a limit).
// - emails/phones: the mapper gives the primary entry only; a create sends it as given, an
//   update replaces the stored primary entry and keeps the others (mergePrimary).
// - Creates leave out null values (Pipedrive's defaults apply); updates send null to clear,
//   except owner_id: every Pipedrive record has an owner, so a cleared owner is not sent (the
//   record keeps its owner) rather than rejected.

export type PdEntity = "persons" | "organizations" | "deals";

export interface ListEntry {
  value: string;
  primary: boolean;
  label: string;
}

const CUSTOM_KEY = /^[0-9a-f]{40}$/;
const INT_FIELDS = new Set(["org_id", "person_id", "owner_id", "pipeline_id", "stage_id"]);
const NUMBER_FIELDS = new Set(["value", "probability", "visible_to", "annual_revenue"]);
const LIST_FIELDS = ["emails", "phones"] as const;

function toNumber(v: unknown, int: boolean): unknown {
  if (typeof v === "number") return v;
  if (typeof v !== "string") return v;
  const s = v.trim();
  if (s === "") return null;
  const n = Number(s);
  if (!Number.isFinite(n) || (int && !Number.isInteger(n))) return v;
  return n;
}

function wireValue(key: string, v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (INT_FIELDS.has(key)) return toNumber(v, true);
  if (NUMBER_FIELDS.has(key)) return toNumber(v, key === "visible_to");
  if (key === "label_ids" && Array.isArray(v)) return v.map((x) => toNumber(x, true));
  if (key === "expected_close_date" && typeof v === "string" && /^\d{4}-\d{2}-\d{2}T/.test(v)) {
    return v.slice(0, 10);
  }
  return v;
}

function entries(v: unknown): ListEntry[] {
  if (!Array.isArray(v)) return [];
  return v.flatMap((e) => {
    const o = e as Partial<ListEntry> | null;
    if (!o || typeof o !== "object") return [];
    return [{
      value: o.value === null || o.value === undefined ? "" : String(o.value),
      primary: o.primary === true,
      label: typeof o.label === "string" && o.label ? o.label : "",
    }];
  });
}

/** The stored list with its primary entry replaced by the wanted one (others kept; an entry
 * equal to the new primary value is dropped so it is not listed twice). An empty wanted value
 * removes the primary entry. */
export function mergePrimary(current: unknown, wanted: unknown): ListEntry[] {
  const now = entries(current);
  const want = entries(wanted);
  const w = want.find((e) => e.primary) ?? want[0];
  const oldPrimary = now.find((e) => e.primary);
  const others = now.filter((e) => e !== oldPrimary);
  if (!w || w.value === "") return others;
  const same = (e: ListEntry) => e.value.toLowerCase() === w.value.toLowerCase();
  return [
    { value: w.value, primary: true, label: w.label || oldPrimary?.label || "work" },
    ...others.filter((e) => !same(e)),
  ];
}

/** A create's list: the given entries with a value, a label where missing. */
function createList(v: unknown): ListEntry[] | undefined {
  const list = entries(v).filter((e) => e.value !== "").map((e, i) => ({
    value: e.value,
    primary: e.primary || i === 0,
    label: e.label || "work",
  }));
  return list.length ? list : undefined;
}

export interface BodyParts {
  body: Record<string, unknown>;
  /** Person fields the body cannot be finished without the stored record. */
  needs: {
    lists: Array<typeof LIST_FIELDS[number]>;
    /** One half of the name changed: the other comes from the stored record. */
    name: { part: "first" | "last"; value: unknown } | null;
  };
}

/** The v2 body of a create or update, and what an update still needs from the stored record. */
export function buildBody(
  entity: PdEntity,
  properties: Record<string, unknown>,
  mode: "create" | "update",
): BodyParts {
  const body: Record<string, unknown> = {};
  const custom: Record<string, unknown> = {};
  let first: unknown, last: unknown;
  let hasFirst = false, hasLast = false;
  const needs: BodyParts["needs"] = { lists: [], name: null };
  for (const [k, raw] of Object.entries(properties)) {
    if (raw === undefined) continue;
    if (k === "custom_fields" && raw && typeof raw === "object" && !Array.isArray(raw)) {
      Object.assign(custom, raw);
    } else if (k.startsWith("custom_fields.")) {
      custom[k.slice("custom_fields.".length)] = raw;
    } else if (CUSTOM_KEY.test(k)) {
      custom[k] = raw;
    } else if (entity === "persons" && k === "first_name") {
      first = raw;
      hasFirst = true;
    } else if (entity === "persons" && k === "last_name") {
      last = raw;
      hasLast = true;
    } else if (entity === "persons" && (LIST_FIELDS as readonly string[]).includes(k)) {
      const key = k as typeof LIST_FIELDS[number];
      if (mode === "create") {
        const list = createList(raw);
        if (list) body[key] = list;
      } else {
        body[key] = raw;
        needs.lists.push(key);
      }
    } else if (k.includes(".")) {
      // Another nested property (e.g. address.locality): an object with the given parts.
      const [head, ...rest] = k.split(".");
      const o = (body[head] ?? {}) as Record<string, unknown>;
      o[rest.join(".")] = raw;
      body[head] = o;
    } else if (!(k === "owner_id" && (raw === null || raw === ""))) {
      body[k] = wireValue(k, raw);
    }
  }
  if ((hasFirst || hasLast) && body.name === undefined) {
    if (mode === "create" || (hasFirst && hasLast)) {
      const name = joinName(first, last);
      if (name) body.name = name;
    } else {
      needs.name = hasFirst ? { part: "first", value: first } : { part: "last", value: last };
    }
  }
  if (Object.keys(custom).length) body.custom_fields = custom;
  if (mode === "create") {
    for (const [k, v] of Object.entries(body)) if (v === null) delete body[k];
    if (body.custom_fields) {
      const c = body.custom_fields as Record<string, unknown>;
      for (const [k, v] of Object.entries(c)) if (v === null) delete c[k];
      if (Object.keys(c).length === 0) delete body.custom_fields;
    }
  }
  return { body, needs };
}

function joinName(first: unknown, last: unknown): string {
  return [first, last].map((x) => (x === null || x === undefined ? "" : String(x).trim()))
    .filter(Boolean).join(" ");
}

/** Finishes an update body with the stored person (`GET /api/v2/persons/{id}` data). */
export function completeWithStored(
  parts: BodyParts,
  stored: Record<string, unknown>,
): Record<string, unknown> {
  const body = { ...parts.body };
  for (const k of parts.needs.lists) body[k] = mergePrimary(stored[k], body[k]);
  const n = parts.needs.name;
  if (n) {
    const name = n.part === "first"
      ? joinName(n.value, stored.last_name)
      : joinName(stored.first_name, n.value);
    if (name) body.name = name;
  }
  return body;
}

/** Whether an update must read the stored record first. */
export function needsStored(parts: BodyParts): boolean {
  return parts.needs.lists.length > 0 || parts.needs.name !== null;
}
