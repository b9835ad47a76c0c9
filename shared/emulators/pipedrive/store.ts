/**
 * Pipedrive company state: persons, organizations, deals, leads, users,
 * pipelines/stages and custom fields. Deletes are soft (`is_deleted`,
 * permanently gone after 30 days in Pipedrive); merges delete the loser with
 * `merged_to_id`. Every change is reported through `onChange` with the
 * previous values of the changed fields (what webhooks v2 send as `previous`).
 */
import { compactJson } from "../common/compact.ts";
import type { ModifiedSelection } from "../common/emulator.ts";
import { isoSeconds } from "../common/time_format.ts";
import type { Prng } from "../common/prng.ts";
import { type Row, Table, type TableSnapshot } from "../common/table.ts";
import {
  checkCustomValue,
  type CustomField,
  customFields,
  type PdEntity,
  WRITABLE_FIELDS,
} from "./fields.ts";
import { PdError } from "./errors.ts";

export interface PdRecord extends Row {
  entity: PdEntity;
  /** Standard field values (v2 names), excluding id/add_time/update_time/is_deleted. */
  data: Record<string, unknown>;
  custom: Record<string, unknown>;
  addTime: number;
  isDeleted: boolean;
  deletedAt: number | null;
  mergedTo: string | null;
  /** The last change: who made it and how (webhooks' meta.change_source / user_id). */
  lastChange?: { action: PdChange["action"]; source: PdSource; userId: number; at: number };
}

export interface PdUser {
  id: number;
  name: string;
  email: string;
  active: boolean;
  isAdmin: boolean;
  created: number;
  modified: number;
}

export interface Pipeline {
  id: number;
  name: string;
  order_nr: number;
}
export interface Stage {
  id: number;
  name: string;
  pipeline_id: number;
  order_nr: number;
  deal_probability: number;
}

export const PIPELINES: Pipeline[] = [{ id: 1, name: "Sales Pipeline", order_nr: 1 }, {
  id: 2,
  name: "Renewals",
  order_nr: 2,
}];
export const STAGES: Stage[] = [
  { id: 1, name: "Qualified", pipeline_id: 1, order_nr: 1, deal_probability: 10 },
  { id: 2, name: "Contact Made", pipeline_id: 1, order_nr: 2, deal_probability: 20 },
  { id: 3, name: "Proposal Made", pipeline_id: 1, order_nr: 3, deal_probability: 40 },
  { id: 4, name: "Negotiations Started", pipeline_id: 1, order_nr: 4, deal_probability: 80 },
  { id: 5, name: "Renewal upcoming", pipeline_id: 2, order_nr: 1, deal_probability: 50 },
  { id: 6, name: "Renewal quoted", pipeline_id: 2, order_nr: 2, deal_probability: 70 },
];

export type PdSource = "app" | "api";

/** Who made a change: API writes ("api", the token's user) or the web app ("app"). */
export interface PdActor {
  source: PdSource;
  userId: number;
}

/** A bare source is a change by the company's first user (id 1). */
export function actorOf(by: PdSource | PdActor): PdActor {
  return typeof by === "string" ? { source: by, userId: 1 } : by;
}

/** One entry of the change log the admin API shows (`GET /__admin/changes`). */
export interface PdLoggedChange {
  seq: number;
  action: PdChange["action"];
  entity: PdEntity;
  id: string;
  source: PdSource;
  userId: number;
  at: string;
  /** Changed fields (change), null otherwise. */
  fields: string[] | null;
}

/** The change log keeps the newest entries only. */
const CHANGE_LOG_MAX = 100_000;

export interface PdChange {
  action: "create" | "change" | "delete";
  entity: PdEntity;
  id: string;
  source: PdSource;
  userId: number;
  /** Previous values of changed fields (change), the whole record (delete) or null. */
  previous: Record<string, unknown> | null;
  mergedToId?: string;
  isBulkEdit?: boolean;
}

/** What the sandbox accepts as an email address (one @, a dot in the domain, no spaces). */
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

export function truncSeconds(ms: number): number {
  return Math.floor(ms / 1000) * 1000;
}

/** Pipedrive API v2 timestamp: RFC 3339 with second precision. */
export function pdTime(ms: number): string {
  return isoSeconds(ms);
}

export interface PipedriveStoreSnapshot {
  tables: Record<PdEntity, TableSnapshot<PdRecord>>;
  users: PdUser[];
  fields: CustomField[];
  changeSeq: number;
}

export class PipedriveStore {
  readonly tables: Record<PdEntity, Table<PdRecord>> = {
    person: new Table(),
    organization: new Table(),
    deal: new Table(),
    lead: new Table(),
  };
  users: PdUser[] = [];
  fields: CustomField[];
  onChange: (c: PdChange) => void = () => {};
  changeLog: PdLoggedChange[] = [];
  #changeSeq = 0;

  readonly #seededFields: number;
  #fieldsPrng: Prng;

  constructor(readonly now: () => number, readonly prng: Prng, fieldsPrng: Prng) {
    this.fields = customFields(fieldsPrng);
    this.#seededFields = this.fields.length;
    this.#fieldsPrng = fieldsPrng;
  }

  /** A custom field added through the API (POST /v1/{entity}Fields): a new 40-hex key, and an
   * empty value on every existing record of the entity. */
  addCustomField(
    entity: PdEntity,
    name: string,
    type: CustomField["type"],
    options?: Array<{ label: string }>,
  ): CustomField {
    let optionId = 100 + this.fields.length * 100;
    const f: CustomField = {
      key: this.#fieldsPrng.hex(40),
      entity,
      name,
      type,
      ...(options ? { options: options.map((o) => ({ id: ++optionId, label: o.label })) } : {}),
      addTime: this.now(),
    };
    this.fields.push(f);
    for (const r of this.tables[entity].bySeq) {
      r.custom[f.key] = null;
      r.rev = (r.rev ?? 0) + 1;
    }
    return f;
  }

  #emit(r: PdRecord, c: PdChange): void {
    const at = this.now();
    r.lastChange = { action: c.action, source: c.source, userId: c.userId, at };
    this.changeLog.push({
      seq: ++this.#changeSeq,
      action: c.action,
      entity: c.entity,
      id: c.id,
      source: c.source,
      userId: c.userId,
      at: new Date(at).toISOString(),
      fields: c.action === "change" && c.previous ? Object.keys(c.previous) : null,
    });
    if (this.changeLog.length > CHANGE_LOG_MAX) {
      this.changeLog.splice(0, this.changeLog.length - CHANGE_LOG_MAX);
    }
    this.onChange(c);
  }

  customFieldsOf(entity: PdEntity): CustomField[] {
    return this.fields.filter((f) => f.entity === entity);
  }

  get(entity: PdEntity, id: string): PdRecord | undefined {
    return this.tables[entity].get(String(id));
  }

  live(entity: PdEntity, id: string | number): PdRecord | undefined {
    const r = this.tables[entity].get(String(id));
    return r && !r.isDeleted ? r : undefined;
  }

  user(id: unknown): PdUser | undefined {
    return this.users.find((u) => u.id === Number(id));
  }

  #idFor(entity: PdEntity, seq: number): string {
    return entity === "lead" ? this.prng.fork(`lead:${seq}`).uuid() : String(seq);
  }

  /** Validate a v2 (or v1 lead) request body; throws PdError 400. */
  validate(
    entity: PdEntity,
    input: Record<string, unknown>,
    mode: "create" | "update",
  ): { data: Record<string, unknown>; custom: Record<string, unknown> } {
    const allowed = new Set(WRITABLE_FIELDS[entity]);
    const data: Record<string, unknown> = {};
    let custom: Record<string, unknown> = {};
    const bad = (msg: string) =>
      new PdError(400, `Validation failed: ${msg}`, { code: "ERR_SCHEMA_VALIDATION_FAILED" });
    for (const [k, v] of Object.entries(input)) {
      if (k === "custom_fields") {
        if (!v || typeof v !== "object" || Array.isArray(v)) {
          throw bad("custom_fields: Expected object");
        }
        custom = v as Record<string, unknown>;
        continue;
      }
      if (!allowed.has(k)) throw bad(`body: Parameter '${k}' is not allowed for this request`);
      data[k] = v;
    }
    for (const [k, v] of Object.entries(custom)) {
      const f = this.customFieldsOf(entity).find((x) => x.key === k);
      if (!f) throw bad(`custom_fields: Unknown custom field '${k}'`);
      const err = checkCustomValue(f, v);
      if (err) throw bad(`custom_fields.${k}: ${err}`);
    }
    const required = entity === "person" ? "name" : entity === "organization" ? "name" : "title";
    if (
      mode === "create" &&
      (typeof data[required] !== "string" || !(data[required] as string).trim())
    ) {
      if (!(entity === "person" && (data.first_name || data.last_name))) {
        throw bad(`body: ${required} is required`);
      }
    }
    if (data.owner_id !== undefined && data.owner_id !== null && !this.user(data.owner_id)) {
      throw bad(`owner_id: User ${data.owner_id} not found`);
    }
    for (
      const [k, target] of [["org_id", "organization"], ["organization_id", "organization"], [
        "person_id",
        "person",
      ]] as const
    ) {
      if (data[k] !== undefined && data[k] !== null && !this.live(target, String(data[k]))) {
        throw new PdError(400, `${target === "person" ? "Person" : "Organization"} not found`, {
          code: "ERR_ENTITY_NOT_FOUND",
        });
      }
    }
    if (entity === "deal") {
      if (data.stage_id !== undefined && !STAGES.some((s) => s.id === data.stage_id)) {
        throw bad(`stage_id: Stage ${data.stage_id} not found`);
      }
      if (data.pipeline_id !== undefined && !PIPELINES.some((p) => p.id === data.pipeline_id)) {
        throw bad(`pipeline_id: Pipeline ${data.pipeline_id} not found`);
      }
      if (data.status !== undefined && !["open", "won", "lost"].includes(String(data.status))) {
        throw bad(`status: must be one of open, won, lost`);
      }
      if (data.value !== undefined && data.value !== null && typeof data.value !== "number") {
        throw bad(`value: Expected number, received ${typeof data.value}`);
      }
    }
    if (entity === "lead" && mode === "create" && !data.person_id && !data.organization_id) {
      throw new PdError(400, "A lead must be linked to a person or an organization");
    }
    for (const k of ["emails", "phones"]) {
      if (data[k] === undefined) continue;
      if (!Array.isArray(data[k])) throw bad(`${k}: Expected array`);
      (data[k] as unknown[]).forEach((e, i) => {
        const v = (e as { value?: unknown } | null)?.value;
        if (!e || typeof e !== "object" || typeof v !== "string") {
          throw bad(`${k}[${i}].value: Expected string`);
        }
        if (k === "emails" && v !== "" && !EMAIL.test(v)) {
          throw bad(`${k}[${i}].value: Invalid email address`);
        }
      });
    }
    return { data, custom };
  }

  #normalise(entity: PdEntity, data: Record<string, unknown>, existing?: PdRecord): void {
    if (entity === "person") {
      const first = (data.first_name ?? existing?.data.first_name ?? null) as string | null;
      const last = (data.last_name ?? existing?.data.last_name ?? null) as string | null;
      if (
        data.name === undefined && (data.first_name !== undefined || data.last_name !== undefined)
      ) {
        data.name = [first, last].filter(Boolean).join(" ");
      } else if (
        typeof data.name === "string" && data.first_name === undefined &&
        data.last_name === undefined
      ) {
        const parts = data.name.trim().split(/\s+/);
        data.first_name = parts.length > 1 ? parts.slice(0, -1).join(" ") : parts[0];
        data.last_name = parts.length > 1 ? parts[parts.length - 1] : null;
      }
      for (const k of ["emails", "phones"]) {
        if (Array.isArray(data[k])) {
          data[k] = (data[k] as Array<Record<string, unknown>>).map((e, i) => ({
            value: String(e.value ?? ""),
            primary: e.primary ?? i === 0,
            label: e.label ?? "work",
          }));
        }
      }
    }
    if (entity === "deal") {
      if (data.stage_id !== undefined && data.pipeline_id === undefined) {
        data.pipeline_id = STAGES.find((s) => s.id === data.stage_id)!.pipeline_id;
      }
      if (data.status !== undefined && data.status !== existing?.data.status) {
        const now = pdTime(this.now());
        if (data.status === "won") data.won_time = now;
        if (data.status === "lost") data.lost_time = now;
        if (data.status !== "open") data.close_time = now;
      }
    }
  }

  #defaults(entity: PdEntity): Record<string, unknown> {
    switch (entity) {
      case "person":
        return {
          name: null,
          first_name: null,
          last_name: null,
          owner_id: this.users[0]?.id ?? 1,
          org_id: null,
          emails: [],
          phones: [],
          visible_to: 3,
          label_ids: [],
          picture_id: null,
          job_title: null,
          notes: null,
          postal_address: null,
        };
      case "organization":
        return {
          name: null,
          owner_id: this.users[0]?.id ?? 1,
          visible_to: 3,
          label_ids: [],
          address: null,
          website: null,
          industry: null,
          annual_revenue: null,
          employee_count: null,
        };
      case "deal":
        return {
          title: null,
          owner_id: this.users[0]?.id ?? 1,
          person_id: null,
          org_id: null,
          pipeline_id: 1,
          stage_id: 1,
          value: 0,
          currency: "USD",
          stage_change_time: null,
          is_archived: false,
          status: "open",
          probability: null,
          lost_reason: null,
          visible_to: 3,
          close_time: null,
          won_time: null,
          lost_time: null,
          expected_close_date: null,
          label_ids: [],
        };
      case "lead":
        return {
          title: null,
          owner_id: this.users[0]?.id ?? 1,
          creator_id: this.users[0]?.id ?? 1,
          label_ids: [],
          person_id: null,
          organization_id: null,
          source_name: "API",
          origin: "API",
          origin_id: null,
          channel: null,
          channel_id: null,
          is_archived: false,
          was_seen: false,
          value: null,
          expected_close_date: null,
          next_activity_id: null,
          visible_to: "3",
          cc_email: "leads@sandbox.pipedrive.test",
        };
    }
  }

  create(entity: PdEntity, input: Record<string, unknown>, by: PdSource | PdActor): PdRecord {
    const { source, userId } = actorOf(by);
    const { data, custom } = this.validate(entity, input, "create");
    this.#normalise(entity, data);
    const table = this.tables[entity];
    const seq = table.takeSeq();
    const now = truncSeconds(this.now());
    const r: PdRecord = {
      id: this.#idFor(entity, seq),
      seq,
      modifiedAt: now,
      entity,
      data: { ...this.#defaults(entity), ...data },
      custom: Object.fromEntries(
        this.customFieldsOf(entity).map((f) => [f.key, custom[f.key] ?? null]),
      ),
      addTime: now,
      isDeleted: false,
      deletedAt: null,
      mergedTo: null,
    };
    table.insert(r);
    this.#emit(r, { action: "create", entity, id: r.id, source, userId, previous: null });
    return r;
  }

  update(
    entity: PdEntity,
    id: string,
    input: Record<string, unknown>,
    by: PdSource | PdActor,
    opts: { bulk?: boolean } = {},
  ): PdRecord {
    const { source, userId } = actorOf(by);
    const r = this.live(entity, id);
    if (!r) throw PdError.notFound(entity);
    const { data, custom } = this.validate(entity, input, "update");
    this.#normalise(entity, data, r);
    const previous: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(data)) {
      if (JSON.stringify(r.data[k] ?? null) !== JSON.stringify(v)) {
        previous[k] = r.data[k] ?? null;
        r.data[k] = v;
      }
    }
    const prevCustom: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(custom)) {
      if (JSON.stringify(r.custom[k] ?? null) !== JSON.stringify(v)) {
        prevCustom[k] = r.custom[k] ?? null;
        r.custom[k] = v;
      }
    }
    if (Object.keys(prevCustom).length) previous.custom_fields = prevCustom;
    if (entity === "deal" && "stage_id" in previous) r.data.stage_change_time = pdTime(this.now());
    if (Object.keys(previous).length === 0) return r;
    this.tables[entity].touch(r, truncSeconds(this.now()));
    this.#emit(r, {
      action: "change",
      entity,
      id: r.id,
      source,
      userId,
      previous,
      isBulkEdit: opts.bulk,
    });
    return r;
  }

  delete(
    entity: PdEntity,
    id: string,
    by: PdSource | PdActor,
    mergedToId?: string,
  ): PdRecord {
    const { source, userId } = actorOf(by);
    const r = this.live(entity, id);
    if (!r) throw PdError.notFound(entity);
    const now = truncSeconds(this.now());
    r.isDeleted = true;
    r.deletedAt = now;
    r.mergedTo = mergedToId ?? null;
    this.tables[entity].touch(r, now);
    this.#emit(r, {
      action: "delete",
      entity,
      id: r.id,
      source,
      userId,
      previous: null,
      mergedToId,
    });
    return r;
  }

  /** Merge `mergeId` into `keepId`: empty fields are filled, links move, the loser is deleted. */
  merge(
    entity: PdEntity,
    keepId: string,
    mergeId: string,
    source: PdSource | PdActor,
  ): PdRecord {
    const keep = this.live(entity, keepId), lose = this.live(entity, mergeId);
    if (!keep || !lose) throw PdError.notFound(entity);
    if (keep === lose) throw new PdError(400, "Cannot merge an item with itself");
    const fill: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(lose.data)) {
      const cur = keep.data[k];
      if (
        (cur === null || cur === undefined || (Array.isArray(cur) && cur.length === 0)) &&
        v !== null && !(Array.isArray(v) && v.length === 0)
      ) fill[k] = v;
    }
    if (entity === "person") {
      for (const k of ["emails", "phones"]) {
        const a = (keep.data[k] as Array<{ value: string }>) ?? [];
        const b = (lose.data[k] as Array<{ value: string }>) ?? [];
        const merged = [
          ...a,
          ...b.filter((x) => !a.some((y) => y.value === x.value)).map((x) => ({
            ...x,
            primary: false,
          })),
        ];
        if (merged.length !== a.length) fill[k] = merged;
      }
    }
    const linkField = entity === "person"
      ? ["person_id"]
      : entity === "organization"
      ? ["org_id", "organization_id"]
      : [];
    for (const child of ["person", "deal", "lead"] as PdEntity[]) {
      for (const lf of linkField) {
        for (const c of this.tables[child].bySeq) {
          if (!c.isDeleted && String(c.data[lf]) === lose.id && c !== lose) {
            this.update(child, c.id, { [lf]: Number(keep.id) }, source);
          }
        }
      }
    }
    this.delete(entity, lose.id, source, keep.id);
    if (Object.keys(fill).length) this.update(entity, keep.id, fill, source);
    return keep;
  }

  /** Seed a trusted record (no validation, no events; index sorted in finishSeeding). */
  seed(
    entity: PdEntity,
    data: Record<string, unknown>,
    custom: Record<string, unknown>,
    addTime: number,
    updateTime: number,
    deletedAt: number | null = null,
  ): PdRecord {
    const table = this.tables[entity];
    const seq = table.takeSeq();
    const r: PdRecord = {
      id: this.#idFor(entity, seq),
      seq,
      modifiedAt: truncSeconds(deletedAt ?? updateTime),
      entity,
      data: { ...this.#defaults(entity), ...data },
      custom: Object.fromEntries(
        this.customFieldsOf(entity).map((f) => [f.key, custom[f.key] ?? null]),
      ),
      addTime: truncSeconds(addTime),
      isDeleted: deletedAt !== null,
      deletedAt,
      mergedTo: null,
    };
    table.insert(r, true);
    return r;
  }

  finishSeeding(): void {
    for (const t of Object.values(this.tables)) {
      for (const r of t.bySeq) {
        r.data = compactJson(r.data);
        r.custom = compactJson(r.custom);
      }
      t.reindex();
    }
  }

  setModified(entity: PdEntity, sel: ModifiedSelection, at: number): string[] {
    const table = this.tables[entity];
    const ms = truncSeconds(at);
    let rows: PdRecord[];
    if (sel.ids) {
      rows = sel.ids.map((id) => this.live(entity, id)).filter((r): r is PdRecord => !!r);
    } else {
      const live = table.byModified.filter((r) => !r.isDeleted);
      if (sel.pick === "newest") live.reverse();
      if (sel.pick === "random") this.prng.fork(`set-modified:${at}`).shuffle(live);
      rows = sel.count === undefined ? live : live.slice(0, sel.count);
    }
    table.bulkSetModified(rows, () => ms);
    return rows.map((r) => r.id);
  }

  /** Records, users and custom fields as plain data (../common/snapshot.ts). The change log
   * (an admin diagnostic) is not kept; its numbering goes on. */
  snapshot(): PipedriveStoreSnapshot {
    return {
      tables: Object.fromEntries(
        Object.entries(this.tables).map(([e, t]) => [e, t.snapshot()]),
      ) as PipedriveStoreSnapshot["tables"],
      users: this.users,
      fields: this.fields,
      changeSeq: this.#changeSeq,
    };
  }

  load(s: PipedriveStoreSnapshot): void {
    this.clear();
    for (const [e, t] of Object.entries(this.tables)) {
      const rows = s.tables[e as PdEntity];
      if (rows) t.load(rows);
    }
    this.users = s.users;
    this.fields = s.fields;
    this.#changeSeq = s.changeSeq;
    // The seeded stream would make the keys of the fields added before the snapshot again.
    this.#fieldsPrng = this.#fieldsPrng.fork(`after-restore:${this.fields.length}:${this.now()}`);
  }

  /** Changes with every write to a table or a custom field. */
  get version(): number {
    return Object.values(this.tables).reduce((n, t) => n + t.version, this.fields.length);
  }

  clear(): void {
    for (const t of Object.values(this.tables)) t.clear();
    this.fields = this.fields.slice(0, this.#seededFields);
    this.changeLog = [];
    this.users = [];
  }
}
