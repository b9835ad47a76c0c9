// Value transforms named by crm.field_mappings.transform. Each direction is a pure function
// from one value to one value plus optional warnings: a value that cannot be normalised is
// kept (raw where there is a raw column) and reported, never a reason to drop the record.
// Transforms named in TAKES_LIST read several remote properties (the mapping's comma list) and
// get their values as an array, in list order.
import type { CountryCode } from "libphonenumber-js/max";
import { decimalText, shiftDecimal } from "./decimal.ts";
import { toE164 } from "./phone.ts";

export interface TransformContext {
  /** ISO 3166 region used for national-format phone numbers (connection setting). */
  defaultRegion?: string;
  /** Enum maps by name: remote value -> canonical value (outbound uses the reverse). */
  enumMaps?: Record<string, Record<string, string>>;
  /**
   * The mapping row's options: `map` (an enum map, preferred over enumMaps) and `raw` (for
   * primary_phone: the unnormalised text, for phone_raw columns).
   */
  options?: Record<string, unknown>;
}

export interface Transformed {
  value: unknown;
  warning?: string;
  /** Outbound only: the canonical value cannot be written through this mapping. */
  skip?: boolean;
}

type Fn = (value: unknown, ctx: TransformContext, arg?: string) => Transformed;

const blank = (v: unknown) =>
  v === null || v === undefined || (typeof v === "string" && v.trim() === "");

function text(v: unknown): Transformed {
  if (blank(v)) return { value: null };
  if (v instanceof Date) return { value: v.toISOString() };
  if (typeof v === "object") {
    return {
      value: null,
      warning: `expected a single value, got ${JSON.stringify(v).slice(0, 200)}`,
    };
  }
  return { value: String(v).trim() };
}

function phoneE164(v: unknown, ctx: TransformContext): Transformed {
  if (blank(v)) return { value: null };
  const raw = String(v).trim();
  const region = (ctx.defaultRegion?.toUpperCase() || undefined) as CountryCode | undefined;
  const e164 = toE164(raw, region);
  if (e164 !== null) return { value: e164 };
  return {
    value: null,
    warning: `invalid phone number ${JSON.stringify(raw)} (region ${region ?? "none"})`,
  };
}

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
function emailLower(v: unknown): Transformed {
  if (blank(v)) return { value: null };
  const email = String(v).trim().toLowerCase();
  return EMAIL.test(email)
    ? { value: email }
    : { value: email, warning: `malformed email ${JSON.stringify(email)}` };
}

function number(v: unknown): Transformed {
  if (blank(v)) return { value: null };
  const n = typeof v === "number" ? v : Number(String(v).trim().replace(/,/g, ""));
  return Number.isFinite(n)
    ? { value: n }
    : { value: null, warning: `not a number: ${JSON.stringify(v)}` };
}

/** Money stays a decimal string end to end so no amount ever passes through a float. */
function currency(v: unknown): Transformed {
  if (blank(v)) return { value: null };
  const s = typeof v === "number"
    ? String(v)
    : String(v).trim().replace(/[,\s]/g, "").replace(/^[$€£]/, "");
  if (!/^-?\d+(\.\d+)?(e[-+]?\d+)?$/i.test(s)) {
    return { value: null, warning: `not an amount: ${JSON.stringify(v)}` };
  }
  return { value: /e/i.test(s) ? String(Number(s)) : s };
}

function toDate(v: unknown): Date | null {
  if (blank(v)) return null;
  if (v instanceof Date) return v;
  const s = String(v).trim();
  // HubSpot sends dates and datetimes as epoch milliseconds in some places (v1, webhooks).
  const d = /^\d{11,}$/.test(s)
    ? new Date(Number(s))
    : new Date(/^\d{4}-\d{2}-\d{2}$/.test(s) ? `${s}T00:00:00Z` : s);
  return Number.isNaN(d.getTime()) ? null : d;
}

function timestamp(v: unknown): Transformed {
  if (blank(v)) return { value: null };
  const d = toDate(v);
  return d
    ? { value: d.toISOString() }
    : { value: null, warning: `not a timestamp: ${JSON.stringify(v)}` };
}

function date(v: unknown): Transformed {
  if (blank(v)) return { value: null };
  const d = toDate(v);
  return d
    ? { value: d.toISOString().slice(0, 10) }
    : { value: null, warning: `not a date: ${JSON.stringify(v)}` };
}

function boolean(v: unknown): Transformed {
  if (blank(v)) return { value: null };
  if (typeof v === "boolean") return { value: v };
  const s = String(v).trim().toLowerCase();
  if (["true", "1", "yes", "y", "on"].includes(s)) return { value: true };
  if (["false", "0", "no", "n", "off"].includes(s)) return { value: false };
  return { value: null, warning: `not a boolean: ${JSON.stringify(v)}` };
}

function enumMap(ctx: TransformContext, name?: string): Record<string, string> | undefined {
  const fromRow = ctx.options?.map;
  if (fromRow && typeof fromRow === "object") return fromRow as Record<string, string>;
  return ctx.enumMaps?.[name ?? ""];
}

function enumIn(v: unknown, ctx: TransformContext, name?: string): Transformed {
  if (blank(v)) return { value: null };
  const map = enumMap(ctx, name);
  const key = String(v).trim();
  if (!map) return { value: key, warning: `unknown enum map ${JSON.stringify(name)}` };
  const hit = map[key] ?? map[key.toLowerCase()];
  return hit !== undefined
    ? { value: hit }
    : { value: key, warning: `unmapped ${name} value ${JSON.stringify(key)}` };
}

function enumOut(v: unknown, ctx: TransformContext, name?: string): Transformed {
  if (blank(v)) return { value: null };
  const map = enumMap(ctx, name) ?? {};
  const key = String(v);
  const hit = Object.entries(map).find(([, canonical]) => canonical === key)?.[0];
  return hit !== undefined
    ? { value: hit }
    : { value: key, warning: `unmapped ${name} value ${JSON.stringify(key)}` };
}

function lower(v: unknown): Transformed {
  const t = text(v);
  return typeof t.value === "string" ? { ...t, value: t.value.toLowerCase() } : t;
}

function integer(v: unknown): Transformed {
  if (blank(v)) return { value: null };
  const s = decimalText(typeof v === "string" ? v.replace(/,/g, "") : v);
  if (s === null) return { value: null, warning: `not an integer: ${JSON.stringify(v)}` };
  const whole = /^-?\d+$/.test(s);
  const n = whole ? Number(s) : Math.round(Number(s));
  // Beyond 2^53 the digits stay text so nothing is rounded on the way to a bigint column.
  const value = whole && !Number.isSafeInteger(n) ? s : n;
  return whole ? { value } : { value, warning: `rounded ${s} to the integer ${n}` };
}

/**
 * Remote percent (0..100) <-> canonical fraction (0..1): the decimal point moves in the text,
 * so 57.7 becomes 0.577 rather than 57.7 / 100 = 0.5770000000000001. Out of range is null: the
 * column's check constraint would reject the whole page.
 */
function percentShift(v: unknown, places: number, max: number): Transformed {
  if (blank(v)) return { value: null };
  const s = decimalText(typeof v === "string" ? v.replace(/%\s*$/, "") : v);
  if (s === null) return { value: null, warning: `not a percentage: ${JSON.stringify(v)}` };
  if (Number(s) < 0 || Number(s) > max) {
    return { value: null, warning: `percentage ${s} out of range 0..${max}` };
  }
  return { value: Number(shiftDecimal(s, places)) };
}

function not(v: unknown): Transformed {
  const b = boolean(v);
  return typeof b.value === "boolean" ? { value: !b.value } : b;
}

/** [closed, won] flags -> open | won | lost. */
function dealStatus(v: unknown): Transformed {
  const [closedRaw, wonRaw] = Array.isArray(v) ? v : [v];
  const closed = boolean(closedRaw);
  if (closed.warning) return { value: null, warning: `deal closed flag: ${closed.warning}` };
  if (closed.value === null) return { value: null };
  if (closed.value === false) return { value: "open" };
  const won = boolean(wonRaw);
  if (won.value === null) {
    return { value: null, warning: `deal is closed but its won flag is ${JSON.stringify(wonRaw)}` };
  }
  return { value: won.value ? "won" : "lost" };
}

/** First associated id: a list of ids (or {id} objects), or a ";"-separated string. */
function association(v: unknown): Transformed {
  if (blank(v)) return { value: null };
  const list = Array.isArray(v) ? v : typeof v === "string" ? v.split(";") : [v];
  for (const item of list) {
    const id = item && typeof item === "object" ? (item as { id?: unknown }).id : item;
    if (!blank(id) && (typeof id === "string" || typeof id === "number")) {
      return { value: String(id).trim() };
    }
  }
  return { value: null };
}

/** Pipedrive v2 labelled list [{value, primary, label}]: the primary entry, else the first. */
function primaryValue(v: unknown): unknown {
  if (!Array.isArray(v)) return v;
  const entries = v.map((e) => (e && typeof e === "object" ? e : { value: e })) as {
    value?: unknown;
    primary?: unknown;
  }[];
  const usable = entries.filter((e) => !blank(e.value));
  return (usable.find((e) => e.primary === true) ?? usable[0])?.value ?? null;
}

function primaryPhone(v: unknown, ctx: TransformContext): Transformed {
  const value = primaryValue(v);
  return ctx.options?.raw === true ? text(value) : phoneE164(value, ctx);
}

/** One entry marked primary; the outbound writer decides how it merges with the others. */
function labelled(t: Transformed): Transformed {
  if (blank(t.value)) return t;
  return { ...t, value: [{ value: t.value, primary: true, label: "work" }] };
}

function nameSplit(v: unknown, _ctx: TransformContext, part?: string): Transformed {
  if (part !== "first" && part !== "last") {
    return { value: null, warning: `name_split needs :first or :last, got ${part}` };
  }
  return { value: splitName(Array.isArray(v) ? v[0] : v)[part] };
}

function nameJoin(v: unknown): Transformed {
  return { value: joinName(...(Array.isArray(v) ? v : [v])) };
}

const notWritable = (): Transformed => ({ value: null, skip: true });

const INBOUND: Record<string, Fn> = {
  text,
  lower,
  phone_e164: phoneE164,
  email_lower: emailLower,
  primary_email: (v) => emailLower(primaryValue(v)),
  primary_phone: primaryPhone,
  number,
  integer,
  percent: (v) => percentShift(v, -2, 100),
  currency,
  date,
  timestamp,
  boolean,
  not,
  deal_status: dealStatus,
  association,
  name_split: nameSplit,
  name_join: nameJoin,
  enum: enumIn,
};

const OUTBOUND: Record<string, Fn> = {
  text,
  lower,
  phone_e164: (v) => text(v),
  email_lower: emailLower,
  primary_email: (v) => labelled(emailLower(v)),
  primary_phone: (v) => labelled(text(v)),
  number,
  integer,
  percent: (v) => percentShift(v, 2, 1),
  currency,
  date,
  timestamp,
  boolean,
  not,
  // Derived from flags the CRM sets itself (HubSpot from the stage, Salesforce IsClosed/IsWon).
  deal_status: notWritable,
  // Associations are written through association endpoints, not as a property.
  association: (v) => (blank(v) ? { value: null } : { value: [String(v).trim()] }),
  // Half a name cannot be written back without the other half.
  name_split: notWritable,
  // Splitting a joined name back into several properties would be a guess.
  name_join: notWritable,
  enum: enumOut,
};

/** Transforms that take the values of every property in the mapping's comma list. */
export const TAKES_LIST: ReadonlySet<string> = new Set(["deal_status", "name_join"]);

/** Parses "enum:lifecycle_stage" into ["enum", "lifecycle_stage"]. */
export function parseTransform(spec: string | null | undefined): [string, string | undefined] {
  if (!spec) return ["text", undefined];
  const i = spec.indexOf(":");
  return i < 0 ? [spec, undefined] : [spec.slice(0, i), spec.slice(i + 1)];
}

export function isKnownTransform(spec: string | null | undefined): boolean {
  return parseTransform(spec)[0] in INBOUND;
}

function apply(
  table: Record<string, Fn>,
  spec: string | null | undefined,
  v: unknown,
  ctx: TransformContext,
): Transformed {
  const [name, arg] = parseTransform(spec);
  const fn = table[name];
  if (!fn) return { value: v, warning: `unknown transform ${JSON.stringify(spec)}` };
  return fn(v, ctx, arg);
}

export function applyInbound(
  spec: string | null | undefined,
  v: unknown,
  ctx: TransformContext,
): Transformed {
  return apply(INBOUND, spec, v, ctx);
}

/** applyInbound with the spec resolved once, for callers that apply it to many values. */
export function inboundTransform(
  spec: string | null | undefined,
): (v: unknown, ctx: TransformContext) => Transformed {
  const [name, arg] = parseTransform(spec);
  const fn = INBOUND[name];
  if (!fn) return (v, ctx) => apply(INBOUND, spec, v, ctx);
  return (v, ctx) => fn(v, ctx, arg);
}

export function applyOutbound(
  spec: string | null | undefined,
  v: unknown,
  ctx: TransformContext,
): Transformed {
  return apply(OUTBOUND, spec, v, ctx);
}

/** "Ada King Lovelace" -> first "Ada King", last "Lovelace" (Salesforce/HubSpot keep two fields). */
export function splitName(full: unknown): { first: string | null; last: string | null } {
  if (blank(full)) return { first: null, last: null };
  const parts = String(full).trim().split(/\s+/);
  if (parts.length === 1) return { first: null, last: parts[0] };
  return { first: parts.slice(0, -1).join(" "), last: parts.at(-1)! };
}

/** Non-blank parts joined with one space; null when nothing is left. */
export function joinName(...parts: unknown[]): string | null {
  const s = parts.filter((p) => !blank(p)).map((p) => String(p).trim()).join(" ");
  return s || null;
}
