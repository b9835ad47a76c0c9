// Value transforms named by crm.field_mappings.transform. Each direction is a pure function
// from one value to one value plus optional warnings: a value that cannot be normalised is
// kept (raw where there is a raw column) and reported, never a reason to drop the record.
import { type CountryCode, parsePhoneNumberFromString } from "libphonenumber-js/max";

export interface TransformContext {
  /** ISO 3166 region used for national-format phone numbers (connection setting). */
  defaultRegion?: string;
  /** Enum maps by name: remote value -> canonical value (outbound uses the reverse). */
  enumMaps?: Record<string, Record<string, string>>;
}

export interface Transformed {
  value: unknown;
  warning?: string;
}

type Fn = (value: unknown, ctx: TransformContext, arg?: string) => Transformed;

const blank = (v: unknown) =>
  v === null || v === undefined || (typeof v === "string" && v.trim() === "");

function text(v: unknown): Transformed {
  if (blank(v)) return { value: null };
  return { value: String(v).trim() };
}

function phoneE164(v: unknown, ctx: TransformContext): Transformed {
  if (blank(v)) return { value: null };
  const raw = String(v).trim();
  const region = (ctx.defaultRegion?.toUpperCase() || undefined) as CountryCode | undefined;
  const parsed = parsePhoneNumberFromString(raw.replace(/^00/, "+"), region);
  if (parsed?.isValid()) return { value: parsed.number };
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

function enumIn(v: unknown, ctx: TransformContext, name?: string): Transformed {
  if (blank(v)) return { value: null };
  const map = ctx.enumMaps?.[name ?? ""];
  const key = String(v).trim();
  if (!map) return { value: key, warning: `unknown enum map ${JSON.stringify(name)}` };
  const hit = map[key] ?? map[key.toLowerCase()];
  return hit !== undefined
    ? { value: hit }
    : { value: key, warning: `unmapped ${name} value ${JSON.stringify(key)}` };
}

function enumOut(v: unknown, ctx: TransformContext, name?: string): Transformed {
  if (blank(v)) return { value: null };
  const map = ctx.enumMaps?.[name ?? ""] ?? {};
  const key = String(v);
  const hit = Object.entries(map).find(([, canonical]) => canonical === key)?.[0];
  return hit !== undefined
    ? { value: hit }
    : { value: key, warning: `unmapped ${name} value ${JSON.stringify(key)}` };
}

const INBOUND: Record<string, Fn> = {
  text,
  phone_e164: phoneE164,
  email_lower: emailLower,
  number,
  currency,
  date,
  timestamp,
  boolean,
  enum: enumIn,
};

const OUTBOUND: Record<string, Fn> = {
  text,
  phone_e164: (v) => text(v),
  email_lower: emailLower,
  number,
  currency,
  date,
  timestamp,
  boolean,
  enum: enumOut,
};

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

export function joinName(first: unknown, last: unknown): string | null {
  const s = [first, last].filter((p) => !blank(p)).map((p) => String(p).trim()).join(" ");
  return s || null;
}
