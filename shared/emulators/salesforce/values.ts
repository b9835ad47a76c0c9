/**
 * Salesforce value formats and DML value validation.
 * Datetimes travel as `2024-01-09T10:15:03.000+0000` and have second
 * precision (so bulk changes share timestamps and delta queries need the Id
 * tiebreak); dates as `YYYY-MM-DD`.
 */
import { isoOffset } from "../common/time_format.ts";
import type { SfErrorItem } from "./errors.ts";
import type { FieldDef } from "./schema.ts";

export function truncSeconds(ms: number): number {
  return Math.floor(ms / 1000) * 1000;
}

export function sfDateTime(ms: number): string {
  return isoOffset(truncSeconds(ms));
}

export function sfDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** Parse a Salesforce/ISO datetime or date to epoch ms (null when invalid). */
export function parseSfTime(v: unknown): number | null {
  if (v === null || v === undefined) return null;
  if (typeof v === "number") return v;
  let s = String(v).trim();
  // "+0000" → "+00:00" so Date.parse accepts it.
  s = s.replace(/([+-]\d{2})(\d{2})$/, "$1:$2");
  const t = Date.parse(s);
  return Number.isNaN(t) ? null : t;
}

const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

export type Normalised = { ok: true; value: unknown } | { ok: false; error: SfErrorItem };

/** Validate and normalise one incoming field value for DML. */
export function normaliseField(def: FieldDef, raw: unknown): Normalised {
  const bad = (errorCode: string, message: string): Normalised => ({
    ok: false,
    error: { errorCode, message, fields: [def.name] },
  });
  if (raw === null || raw === undefined || raw === "") {
    if (def.type === "boolean") {
      return bad(
        "INVALID_TYPE_ON_FIELD_IN_RECORD",
        `${def.label}: value not of required type: ${raw}`,
      );
    }
    return { ok: true, value: null };
  }
  switch (def.type) {
    case "boolean":
      if (typeof raw === "boolean") return { ok: true, value: raw };
      if (raw === "true" || raw === "false") return { ok: true, value: raw === "true" };
      return bad(
        "INVALID_TYPE_ON_FIELD_IN_RECORD",
        `${def.label}: value not of required type: ${raw}`,
      );
    case "double":
    case "int":
    case "currency":
    case "percent": {
      const n = typeof raw === "number" ? raw : Number(String(raw).trim());
      if (!Number.isFinite(n) || (def.type === "int" && !Number.isInteger(n))) {
        return bad(
          "INVALID_TYPE_ON_FIELD_IN_RECORD",
          `${def.label}: value not of required type: ${raw}`,
        );
      }
      return { ok: true, value: n };
    }
    case "date": {
      const t = parseSfTime(raw);
      if (t === null) {
        return bad(
          "INVALID_TYPE_ON_FIELD_IN_RECORD",
          `${def.label}: value not of required type: ${raw}`,
        );
      }
      return { ok: true, value: sfDate(t) };
    }
    case "datetime": {
      const t = parseSfTime(raw);
      if (t === null) {
        return bad(
          "INVALID_TYPE_ON_FIELD_IN_RECORD",
          `${def.label}: value not of required type: ${raw}`,
        );
      }
      return { ok: true, value: sfDateTime(t) };
    }
    case "email": {
      const v = String(raw).trim();
      if (!EMAIL_RE.test(v)) {
        return bad("INVALID_EMAIL_ADDRESS", `${def.label}: invalid email address: ${raw}`);
      }
      return { ok: true, value: v };
    }
    case "picklist": {
      const v = String(raw);
      if (def.restrictedPicklist && def.picklistValues && !def.picklistValues.includes(v)) {
        return bad(
          "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
          `${def.label}: bad value for restricted picklist field: ${v}`,
        );
      }
      return { ok: true, value: v };
    }
    default: {
      const v = typeof raw === "object" ? JSON.stringify(raw) : String(raw);
      if (def.length && v.length > def.length) {
        return bad(
          "STRING_TOO_LONG",
          `${def.label}: data value too large: ${v.slice(0, 40)}... (max length=${def.length})`,
        );
      }
      return { ok: true, value: v };
    }
  }
}
