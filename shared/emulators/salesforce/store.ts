/**
 * Salesforce org state: sObject tables with DML rules (required fields,
 * field-level createable/updateable, reference checks, unique external ids),
 * soft delete to the recycle bin (IsDeleted, visible to queryAll and
 * /deleted), undelete and merge (loser deleted with MasterRecordId).
 */
import { compactJson } from "../common/compact.ts";
import type { ModifiedSelection } from "../common/emulator.ts";
import type { Prng } from "../common/prng.ts";
import { type Row, Table, type TableSnapshot } from "../common/table.ts";
import { SfError, type SfErrorItem } from "./errors.ts";
import { KEY_PREFIX, makeId, prefixOf, to18 } from "./ids.ts";
import { type FieldDef, OrgSchema, type SfObject, SOBJECTS, STAGE_PROBABILITY } from "./schema.ts";
import { type ValidationRule, violated } from "./validation_rules.ts";
import { normaliseField, sfDateTime, truncSeconds } from "./values.ts";

export interface SfRecord extends Row {
  type: SfObject;
  /** Field values by canonical field name, in API JSON form. */
  fields: Record<string, unknown>;
  isDeleted: boolean;
  deletedAt: number | null;
}

export type SfChangeSource = "api" | "app";

export interface SfChange {
  kind: "create" | "update" | "delete" | "undelete";
  type: SfObject;
  id: string;
  source: SfChangeSource;
  changedFields?: string[];
}

export interface SalesforceStoreSnapshot {
  tables: Record<SfObject, TableSnapshot<SfRecord>>;
  custom: Array<{ object: SfObject; field: FieldDef }>;
  apiUserId: string;
  adminUserId: string;
  rules: ValidationRule[];
}

export class SalesforceStore {
  readonly tables: Record<SfObject, Table<SfRecord>> = {
    Account: new Table(),
    Contact: new Table(),
    Lead: new Table(),
    Opportunity: new Table(),
    User: new Table(),
  };
  /** type → external-id field → value → record. */
  #unique = new Map<string, Map<string, SfRecord>>();
  onChange: (c: SfChange) => void = () => {};
  /** User the API acts as (CreatedById / LastModifiedById of API writes). */
  apiUserId = "";
  /** User of admin edits (someone in the org's UI), so tests can tell API writes from them. */
  adminUserId = "";
  /** This org's fields: standard plus custom ones created through the Tooling API. */
  readonly schema = new OrgSchema();
  /** Custom fields the org starts with (sandbox option), restored by every reseed. */
  initialCustom: Array<{ object: SfObject; field: FieldDef }> = [];
  /** Active validation rules (admin API); they apply to API and admin saves alike. */
  rules: ValidationRule[] = [];

  constructor(readonly now: () => number, readonly prng: Prng) {}

  typeOfId(id: string): SfObject | undefined {
    const p = prefixOf(id);
    return SOBJECTS.find((t) => KEY_PREFIX[t] === p);
  }

  /** Record by id (15 or 18 chars), including recycle-bin records. */
  find(type: SfObject, id: string): SfRecord | undefined {
    const id18 = to18(id);
    return id18 ? this.tables[type].get(id18) : undefined;
  }

  live(type: SfObject, id: string): SfRecord | undefined {
    const r = this.find(type, id);
    return r && !r.isDeleted ? r : undefined;
  }

  byExternalId(type: SfObject, fieldName: string, value: string): SfRecord | undefined {
    return this.#unique.get(`${type}.${fieldName.toLowerCase()}`)?.get(value);
  }

  /** Live records whose (external-id) field has this value; scans when the field is not unique. */
  matching(type: SfObject, fieldName: string, value: string): SfRecord[] {
    const def = this.schema.field(type, fieldName);
    if (!def) return [];
    if (def.unique) {
      const r = this.byExternalId(type, def.name, value);
      return r && !r.isDeleted ? [r] : [];
    }
    return this.tables[type].bySeq.filter((r) =>
      !r.isDeleted && r.fields[def.name] !== null && r.fields[def.name] !== undefined &&
      String(r.fields[def.name]) === value
    );
  }

  userFor(source: SfChangeSource): string {
    return source === "api" ? this.apiUserId : this.adminUserId || this.apiUserId;
  }

  #uniqueFields(type: SfObject): string[] {
    return this.schema.fieldsOf(type).filter((d) => d.unique).map((d) => d.name);
  }

  #indexUnique(r: SfRecord, on: boolean): void {
    for (const name of this.#uniqueFields(r.type)) {
      const v = r.fields[name];
      if (v === null || v === undefined) continue;
      const k = `${r.type}.${name.toLowerCase()}`;
      let m = this.#unique.get(k);
      if (!m) this.#unique.set(k, m = new Map());
      if (on) m.set(String(v), r);
      else if (m.get(String(v)) === r) m.delete(String(v));
    }
  }

  /**
   * Validate a DML payload. Returns normalised values or the per-record
   * errors Salesforce would report (sObject Collections report them per record).
   */
  validate(
    type: SfObject,
    input: Record<string, unknown>,
    mode: "insert" | "update",
    self?: SfRecord,
  ):
    | { ok: true; values: Record<string, unknown> }
    | { ok: false; errors: SfErrorItem[] } {
    const values: Record<string, unknown> = {};
    const errors: SfErrorItem[] = [];
    for (const [rawName, raw] of Object.entries(input)) {
      if (rawName === "attributes" || (rawName === "Id" && mode === "update")) continue;
      const def = this.schema.field(type, rawName);
      if (!def) {
        errors.push({
          errorCode: "INVALID_FIELD",
          message: `No such column '${rawName}' on sobject of type ${type}`,
          fields: [rawName],
        });
        continue;
      }
      if ((mode === "insert" && !def.createable) || (mode === "update" && !def.updateable)) {
        errors.push({
          errorCode: "INVALID_FIELD_FOR_INSERT_UPDATE",
          message:
            `Unable to create/update fields: ${def.name}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.`,
          fields: [def.name],
        });
        continue;
      }
      const n = normaliseField(def, raw);
      if (!n.ok) {
        errors.push(n.error);
        continue;
      }
      let v = n.value;
      if (def.type === "reference" && v !== null) {
        const id18 = to18(String(v));
        const target = def.referenceTo?.find((t) => id18 && KEY_PREFIX[t] === prefixOf(id18));
        if (!id18) {
          errors.push({
            errorCode: "MALFORMED_ID",
            message: `${def.label}: id value of incorrect type: ${v}`,
            fields: [def.name],
          });
          continue;
        }
        if (!target || !this.live(target, id18)) {
          errors.push({
            errorCode: "INVALID_CROSS_REFERENCE_KEY",
            message: `invalid cross reference id`,
            fields: [def.name],
          });
          continue;
        }
        v = id18;
      }
      if (def.unique && v !== null) {
        const other = this.byExternalId(type, def.name, String(v));
        if (other && other !== self) {
          errors.push({
            errorCode: "DUPLICATE_VALUE",
            message:
              `duplicate value found: ${def.name} duplicates value on record with id: ${other.id}`,
            fields: [def.name],
          });
          continue;
        }
      }
      values[def.name] = v;
    }
    if (mode === "insert") {
      for (const def of this.schema.fieldsOf(type)) {
        if (!(def.name in values) && def.defaultValue !== undefined && def.createable) {
          values[def.name] = def.defaultValue;
        }
      }
      const failed = new Set(errors.flatMap((e) => e.fields ?? []));
      const missing = this.schema.fieldsOf(type).filter((d) =>
        !d.nillable && d.createable && d.type !== "boolean" &&
        (values[d.name] === null || values[d.name] === undefined)
      )
        .map((d) => d.name).filter((n) => n !== "OwnerId" && !failed.has(n));
      if (missing.length) {
        errors.push({
          errorCode: "REQUIRED_FIELD_MISSING",
          message: `Required fields are missing: [${missing.join(", ")}]`,
          fields: missing,
        });
      }
    } else {
      for (const def of this.schema.fieldsOf(type)) {
        if (
          def.name in values && !def.nillable && def.type !== "boolean" && values[def.name] === null
        ) {
          errors.push({
            errorCode: "REQUIRED_FIELD_MISSING",
            message: `Required fields are missing: [${def.name}]`,
            fields: [def.name],
          });
        }
      }
    }
    if (errors.length === 0) {
      const after = mode === "update" && self ? { ...self.fields, ...values } : values;
      const broken = violated(this.rules, type, after);
      if (broken.length) return { ok: false, errors: broken };
    }
    return errors.length ? { ok: false, errors } : { ok: true, values };
  }

  #derive(r: SfRecord, changed: Set<string>): void {
    const f = r.fields;
    if (
      (r.type === "Contact" || r.type === "Lead") &&
      (changed.has("FirstName") || changed.has("LastName"))
    ) {
      f.Name = [f.FirstName, f.LastName].filter((x) => x !== null && x !== undefined && x !== "")
        .join(" ");
    }
    if (r.type === "Opportunity" && changed.has("StageName")) {
      const stage = String(f.StageName);
      f.IsClosed = stage.startsWith("Closed");
      f.IsWon = stage === "Closed Won";
      if (!changed.has("Probability")) {
        f.Probability = STAGE_PROBABILITY[stage] ?? f.Probability ?? null;
      }
    }
  }

  /** Insert validated values. Throws SfError on validation failure. */
  insert(
    type: SfObject,
    input: Record<string, unknown>,
    source: SfChangeSource,
    opts: { silent?: boolean } = {},
  ): SfRecord {
    if (type === "User") {
      throw SfError.one(400, "INVALID_TYPE", "sObject type 'User' is not writable in this sandbox");
    }
    const v = this.validate(type, input, "insert");
    if (!v.ok) throw new SfError(400, v.errors);
    const table = this.tables[type];
    const seq = table.takeSeq();
    const id = makeId(KEY_PREFIX[type], seq);
    const now = truncSeconds(this.now());
    const stamp = sfDateTime(now);
    const fields: Record<string, unknown> = {};
    for (const def of this.schema.fieldsOf(type)) {
      fields[def.name] = def.type === "boolean" ? false : null;
    }
    Object.assign(fields, v.values, {
      Id: id,
      IsDeleted: false,
      CreatedDate: stamp,
      CreatedById: this.userFor(source),
      LastModifiedDate: stamp,
      LastModifiedById: this.userFor(source),
      SystemModstamp: stamp,
    });
    if ("OwnerId" in fields && !fields.OwnerId) fields.OwnerId = this.userFor(source);
    const r: SfRecord = {
      id,
      seq,
      modifiedAt: now,
      type,
      fields,
      isDeleted: false,
      deletedAt: null,
    };
    this.#derive(r, new Set(Object.keys(v.values).concat(["StageName", "FirstName", "LastName"])));
    table.insert(r);
    this.#indexUnique(r, true);
    if (!opts.silent) {
      this.onChange({ kind: "create", type, id, source, changedFields: Object.keys(v.values) });
    }
    return r;
  }

  update(
    type: SfObject,
    id: string,
    input: Record<string, unknown>,
    source: SfChangeSource,
  ): SfRecord {
    const r = this.find(type, id);
    if (!r) throw SfError.one(404, "NOT_FOUND", "The requested resource does not exist");
    if (r.isDeleted) throw SfError.one(400, "ENTITY_IS_DELETED", "entity is deleted");
    const v = this.validate(type, input, "update", r);
    if (!v.ok) throw new SfError(400, v.errors);
    this.#apply(r, v.values, source);
    return r;
  }

  #apply(r: SfRecord, values: Record<string, unknown>, source: SfChangeSource): void {
    const changed = Object.keys(values).filter((k) => r.fields[k] !== values[k]);
    this.#indexUnique(r, false);
    Object.assign(r.fields, values);
    this.#derive(r, new Set(changed));
    this.#indexUnique(r, true);
    // Salesforce stamps a save even when no value changed.
    const now = truncSeconds(this.now());
    r.fields.LastModifiedDate = sfDateTime(now);
    r.fields.LastModifiedById = this.userFor(source);
    r.fields.SystemModstamp = sfDateTime(now);
    this.tables[r.type].touch(r, now);
    this.onChange({ kind: "update", type: r.type, id: r.id, source, changedFields: changed });
  }

  /** Update without re-validating (values already validated). */
  applyValidated(r: SfRecord, values: Record<string, unknown>, source: SfChangeSource): void {
    this.#apply(r, values, source);
  }

  delete(type: SfObject, id: string, source: SfChangeSource, masterRecordId?: string): SfRecord {
    const r = this.find(type, id);
    if (!r) throw SfError.one(404, "NOT_FOUND", "The requested resource does not exist");
    if (r.isDeleted) throw SfError.one(400, "ENTITY_IS_DELETED", "entity is deleted");
    const now = truncSeconds(this.now());
    this.#indexUnique(r, false);
    r.isDeleted = true;
    r.deletedAt = now;
    r.fields.IsDeleted = true;
    if (masterRecordId && "MasterRecordId" in r.fields) r.fields.MasterRecordId = masterRecordId;
    r.fields.SystemModstamp = sfDateTime(now);
    this.tables[type].touch(r, now);
    this.onChange({ kind: "delete", type, id: r.id, source });
    return r;
  }

  undelete(type: SfObject, id: string, source: SfChangeSource): SfRecord {
    const r = this.find(type, id);
    if (!r || !r.isDeleted) {
      throw SfError.one(400, "UNDELETE_FAILED", "Entity is not in the recycle bin");
    }
    const now = truncSeconds(this.now());
    r.isDeleted = false;
    r.deletedAt = null;
    r.fields.IsDeleted = false;
    r.fields.SystemModstamp = sfDateTime(now);
    r.fields.LastModifiedDate = sfDateTime(now);
    this.#indexUnique(r, true);
    this.tables[type].touch(r, now);
    this.onChange({ kind: "undelete", type, id: r.id, source });
    return r;
  }

  /** Merge `loserId` into `masterId` (Account, Contact, Lead): children move, loser is deleted. */
  merge(type: SfObject, masterId: string, loserId: string, source: SfChangeSource): SfRecord {
    if (!["Account", "Contact", "Lead"].includes(type)) {
      throw SfError.one(400, "INVALID_TYPE", `merge is not supported for ${type}`);
    }
    const master = this.live(type, masterId);
    const loser = this.live(type, loserId);
    if (!master || !loser) {
      throw SfError.one(404, "NOT_FOUND", "The requested resource does not exist");
    }
    if (master === loser) {
      throw SfError.one(400, "INVALID_OPERATION", "Cannot merge a record with itself");
    }
    const fill: Record<string, unknown> = {};
    for (const def of this.schema.fieldsOf(type)) {
      if (!def.updateable) continue;
      if (
        (master.fields[def.name] === null || master.fields[def.name] === undefined) &&
        loser.fields[def.name] !== null && loser.fields[def.name] !== undefined
      ) {
        fill[def.name] = loser.fields[def.name];
      }
    }
    // Re-parent children.
    const refField = type === "Account" ? "AccountId" : type === "Contact" ? "ContactId" : null;
    if (refField) {
      for (const child of ["Contact", "Opportunity"] as SfObject[]) {
        if (!this.schema.field(child, refField)) continue;
        for (const c of this.tables[child].bySeq) {
          if (!c.isDeleted && c.fields[refField] === loser.id) {
            this.#apply(c, { [refField]: master.id }, source);
          }
        }
      }
    }
    this.delete(type, loser.id, source, master.id);
    if (Object.keys(fill).length) this.#apply(master, fill, source);
    return master;
  }

  /** Seed a trusted record (no validation, no events, index sorted later). */
  seed(
    type: SfObject,
    values: Record<string, unknown>,
    createdAt: number,
    modifiedAt: number,
    deletedAt: number | null = null,
  ): SfRecord {
    const table = this.tables[type];
    const seq = table.takeSeq();
    const id = makeId(KEY_PREFIX[type], seq);
    const created = truncSeconds(createdAt);
    const modified = truncSeconds(deletedAt ?? modifiedAt);
    const fields: Record<string, unknown> = {};
    for (const def of this.schema.fieldsOf(type)) {
      fields[def.name] = def.type === "boolean" ? false : null;
    }
    Object.assign(fields, values, {
      Id: id,
      CreatedDate: sfDateTime(created),
      CreatedById: this.apiUserId || id,
      LastModifiedDate: sfDateTime(truncSeconds(modifiedAt)),
      LastModifiedById: this.apiUserId || id,
      SystemModstamp: sfDateTime(modified),
    });
    if (type !== "User") fields.IsDeleted = deletedAt !== null;
    for (const name of this.#uniqueFields(type)) {
      const v = fields[name];
      if (v !== null && v !== undefined && this.byExternalId(type, name, String(v))) {
        fields[name] = null;
      }
    }
    const r: SfRecord = {
      id,
      seq,
      modifiedAt: modified,
      type,
      fields,
      isDeleted: deletedAt !== null,
      deletedAt,
    };
    this.#derive(r, new Set(["FirstName", "LastName", "StageName", "Probability"]));
    table.insert(r, true);
    if (!r.isDeleted) this.#indexUnique(r, true);
    return r;
  }

  finishSeeding(): void {
    for (const t of SOBJECTS) {
      for (const r of this.tables[t].bySeq) r.fields = compactJson(r.fields);
      this.tables[t].reindex();
    }
  }

  setModified(type: SfObject, sel: ModifiedSelection, at: number): string[] {
    const table = this.tables[type];
    const ms = truncSeconds(at);
    let rows: SfRecord[];
    if (sel.ids) rows = sel.ids.map((id) => this.live(type, id)).filter((r): r is SfRecord => !!r);
    else {
      const live = table.byModified.filter((r) => !r.isDeleted);
      if (sel.pick === "newest") live.reverse();
      if (sel.pick === "random") this.prng.fork(`set-modified:${at}`).shuffle(live);
      rows = sel.count === undefined ? live : live.slice(0, sel.count);
    }
    const stamp = sfDateTime(ms);
    table.bulkSetModified(rows, (r) => {
      r.fields.SystemModstamp = stamp;
      r.fields.LastModifiedDate = stamp;
      return ms;
    });
    return rows.map((r) => r.id);
  }

  /** Records, custom fields, users and validation rules as plain data (../common/snapshot.ts). */
  snapshot(): SalesforceStoreSnapshot {
    return {
      tables: Object.fromEntries(SOBJECTS.map((t) => [t, this.tables[t].snapshot()])),
      custom: this.schema.custom(),
      apiUserId: this.apiUserId,
      adminUserId: this.adminUserId,
      rules: this.rules,
    } as SalesforceStoreSnapshot;
  }

  load(s: SalesforceStoreSnapshot): void {
    this.clear();
    this.schema.clear();
    for (const c of s.custom) this.schema.add(c.object, c.field);
    for (const t of SOBJECTS) if (s.tables[t]) this.tables[t].load(s.tables[t]);
    this.apiUserId = s.apiUserId;
    this.adminUserId = s.adminUserId;
    this.rules = s.rules;
    this.#unique.clear();
    for (const t of SOBJECTS) {
      for (const r of this.tables[t].bySeq) if (!r.isDeleted) this.#indexUnique(r, true);
    }
  }

  /** Changes with every write to a table. */
  get version(): number {
    return SOBJECTS.reduce((n, t) => n + this.tables[t].version, this.schema.custom().length);
  }

  clear(): void {
    for (const t of SOBJECTS) this.tables[t].clear();
    this.#unique.clear();
    this.schema.clear();
    for (const c of this.initialCustom) this.schema.add(c.object, c.field);
    this.rules = [];
  }
}
