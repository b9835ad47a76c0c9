/**
 * API v2 search: `GET /api/v2/{persons|organizations|deals}/search`.
 * Docs: https://developers.pipedrive.com/docs/api/v1/Persons#searchPersons (v2 section)
 * - `term` required, at least 2 characters (1 with `exact_match=true`);
 * - `fields`: comma-separated subset of the entity's searchable fields (persons: custom_fields,
 *   email, notes, phone, name; organizations: address, custom_fields, notes, name; deals:
 *   custom_fields, notes, title); custom fields count only when their type is searchable
 *   (address, varchar, text, varchar_auto, double, monetary, phone);
 * - `exact_match`: the whole value equals the term, not case sensitive; otherwise a
 *   case-insensitive substring match;
 * - answer `{success, data: {items: [{result_score, item}]}, additional_data: {next_cursor}}`,
 *   the item a compact summary (custom_fields as the matching values' strings); deleted records
 *   are never found.
 * Limits: Pipedrive's index lags writes by a few seconds and ranks by relevance; the sandbox
 * finds a record as soon as it is written and orders hits by score, then id.
 */
import { json } from "../common/http.ts";
import type { RequestContext } from "../common/router.ts";
import { PdError } from "./errors.ts";
import type { PipedriveEmulator } from "./emulator.ts";
import { SEARCHABLE_TYPES, type V2Entity } from "./fields.ts";
import type { PdRecord } from "./store.ts";

const FIELDS: Record<V2Entity, readonly string[]> = {
  person: ["custom_fields", "email", "notes", "phone", "name"],
  organization: ["address", "custom_fields", "notes", "name"],
  deal: ["custom_fields", "notes", "title"],
};

const bad = (msg: string) =>
  new PdError(400, `Validation failed: ${msg}`, { code: "ERR_SCHEMA_VALIDATION_FAILED" });

function text(v: unknown): string[] {
  if (v === null || v === undefined) return [];
  if (Array.isArray(v)) return v.flatMap((x) => text((x as { value?: unknown })?.value ?? x));
  if (typeof v === "object") {
    const o = v as Record<string, unknown>;
    return text(o.value ?? o.formatted_address ?? null);
  }
  return [String(v)];
}

function valuesOf(pd: PipedriveEmulator, r: PdRecord, field: string): string[] {
  switch (field) {
    case "name":
    case "title":
    case "notes":
      return text(r.data[field]);
    case "email":
      return text(r.data.emails);
    case "phone":
      return text(r.data.phones);
    case "address":
      return text(r.data.address);
    case "custom_fields":
      return pd.store.customFieldsOf(r.entity)
        .filter((f) => SEARCHABLE_TYPES.has(f.type))
        .flatMap((f) => text(r.custom[f.key]));
  }
  return [];
}

function summary(pd: PipedriveEmulator, r: PdRecord, customHits: string[]) {
  const d = r.data;
  const owner = { id: d.owner_id ?? null };
  const org = (id: unknown) => {
    const o = id === null || id === undefined
      ? undefined
      : pd.store.live("organization", String(id));
    return o
      ? { id: Number(o.id), name: o.data.name, address: text(o.data.address)[0] ?? null }
      : null;
  };
  const base = { id: Number(r.id), type: r.entity, visible_to: d.visible_to ?? 3, owner };
  if (r.entity === "person") {
    return {
      ...base,
      name: d.name,
      phones: text(d.phones),
      emails: text(d.emails),
      organization: org(d.org_id),
      custom_fields: customHits,
      notes: text(d.notes),
    };
  }
  if (r.entity === "organization") {
    return {
      ...base,
      name: d.name,
      address: text(d.address)[0] ?? null,
      custom_fields: customHits,
      notes: text(d.notes),
    };
  }
  const person = d.person_id ? pd.store.live("person", String(d.person_id)) : undefined;
  return {
    ...base,
    title: d.title,
    value: d.value,
    currency: d.currency,
    status: d.status,
    stage: { id: d.stage_id, name: null },
    person: person ? { id: Number(person.id), name: person.data.name } : null,
    organization: org(d.org_id),
    custom_fields: customHits,
    notes: text(d.notes),
  };
}

export function searchHandler(pd: PipedriveEmulator, entity: V2Entity) {
  return (ctx: RequestContext) => {
    const q = ctx.url.searchParams;
    const term = q.get("term") ?? "";
    const exact = q.get("exact_match") === "true";
    if (term.length < (exact ? 1 : 2)) {
      throw bad(
        `term: String must contain at least ${exact ? 1 : 2} character(s)`,
      );
    }
    const allowed = FIELDS[entity];
    const fields = q.get("fields")?.split(",").map((s) => s.trim()).filter(Boolean) ?? [
      ...allowed,
    ];
    for (const f of fields) {
      if (!allowed.includes(f)) {
        throw bad(
          `fields: Invalid enum value. Expected ${allowed.map((a) => `'${a}'`).join(" | ")}`,
        );
      }
    }
    const limit = q.has("limit") ? Number(q.get("limit")) : 100;
    if (!Number.isInteger(limit) || limit < 1 || limit > 500) {
      throw bad("limit: Number must be between 1 and 500");
    }
    const cursor = q.get("cursor");
    const start = cursor ? Number(atob(cursor)) : 0;
    if (!Number.isInteger(start) || start < 0) throw bad("cursor: Invalid cursor");

    const needle = term.toLowerCase();
    const hit = (v: string) =>
      exact ? v.toLowerCase() === needle : v.toLowerCase().includes(needle);
    const found: Array<{ score: number; r: PdRecord; custom: string[] }> = [];
    for (const r of pd.store.tables[entity].bySeq) {
      if (r.isDeleted) continue;
      let score = 0;
      let custom: string[] = [];
      for (const f of fields) {
        const vals = valuesOf(pd, r, f).filter(hit);
        if (vals.length === 0) continue;
        if (f === "custom_fields") custom = vals;
        const whole = vals.some((v) => v.toLowerCase() === needle);
        score = Math.max(score, whole ? 1 : 0.5);
      }
      if (score > 0) found.push({ score, r, custom });
    }
    found.sort((a, b) => b.score - a.score || a.r.seq - b.r.seq);
    const page = found.slice(start, start + limit);
    const next = start + limit < found.length ? btoa(String(start + limit)) : null;
    return json({
      success: true,
      data: {
        items: page.map((h) => ({ result_score: h.score, item: summary(pd, h.r, h.custom) })),
      },
      additional_data: { next_cursor: next },
    });
  };
}
