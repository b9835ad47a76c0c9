/**
 * HubSpot portal state: CRM objects, owners and associations, with the
 * write rules the API enforces (unique email, read-only system properties,
 * merges, archive/restore, GDPR purge). Every change is reported through
 * `onChange`, which the webhook module turns into HubSpot events.
 */
import { compactJson } from "../common/compact.ts";
import type { Prng } from "../common/prng.ts";
import { type Row, Table, type TableSnapshot } from "../common/table.ts";
import type { ModifiedSelection } from "../common/emulator.ts";
import { HsError, notFoundError, validationError } from "./errors.ts";
import {
  type HsObjectType,
  modifiedProperty,
  normaliseValue,
  OBJECT_TYPES,
  type PropertyDef,
  type PropertyIssue,
  PropertyRegistry,
} from "./properties.ts";
import { pairTypes } from "./association_types.ts";

export interface HsRecord extends Row {
  type: HsObjectType;
  properties: Record<string, string | null>;
  createdAt: number;
  archived: boolean;
  archivedAt: number | null;
  /** Set when merged into another record (then hidden from lists). */
  mergedInto: string | null;
  /** The last change of each property written through the API or the admin API (seeded
   * values have none). */
  sources?: Record<string, PropertySource>;
}

export interface HsOwner {
  id: string;
  email: string;
  firstName: string;
  lastName: string;
  userId: number;
  createdAt: number;
  updatedAt: number;
  archived: boolean;
}

/** Who made a change, as HubSpot's webhooks (`changeSource`) and property histories
 * (`sourceType`) name it: API writes of an app are INTEGRATION (sourceId the app id), edits in
 * HubSpot's UI are CRM_UI (sourceId `userId:N`). */
export type ChangeSource = "CRM_UI" | "INTEGRATION" | "IMPORT";

/** The last change of one property: who made it and when. */
export interface PropertySource {
  source: ChangeSource;
  sourceId: string;
  at: number;
}

export type HsChange =
  | {
    kind: "creation";
    type: HsObjectType;
    id: string;
    source: ChangeSource;
    properties: Record<string, string | null>;
  }
  | {
    kind: "propertyChange";
    type: HsObjectType;
    id: string;
    source: ChangeSource;
    property: string;
    value: string | null;
  }
  | { kind: "deletion"; type: HsObjectType; id: string; source: ChangeSource }
  | { kind: "restore"; type: HsObjectType; id: string; source: ChangeSource }
  | { kind: "privacyDeletion"; type: HsObjectType; id: string; source: ChangeSource }
  | {
    kind: "merge";
    type: HsObjectType;
    primaryId: string;
    mergedIds: string[];
    newObjectId: string;
    propertiesMoved: number;
    source: ChangeSource;
  }
  | {
    kind: "associationChange";
    fromType: HsObjectType;
    fromId: string;
    toType: HsObjectType;
    toId: string;
    removed: boolean;
    primary: boolean;
    source: ChangeSource;
  };

/** First numeric id per object type (ids are base + creation number). */
export const ID_BASE: Record<HsObjectType, number> = {
  contacts: 10_000_000,
  companies: 20_000_000,
  deals: 30_000_000,
};

const SYSTEM_PROPS = new Set([
  "hs_object_id",
  "createdate",
  "lastmodifieddate",
  "hs_lastmodifieddate",
  "hs_merged_object_ids",
  "hs_is_closed",
  "hs_is_closed_won",
]);

type EdgeMap = Map<string, Map<string, { primary: boolean }>>;

const key = (type: HsObjectType, id: string) => `${type}:${id}`;

export interface HubSpotStoreSnapshot {
  tables: Record<HsObjectType, TableSnapshot<HsRecord>>;
  props: Record<string, PropertyDef[]>;
  owners: HsOwner[];
  edges: Array<[string, Array<[string, { primary: boolean }]>]>;
}

export class HubSpotStore {
  readonly tables: Record<HsObjectType, Table<HsRecord>> = {
    contacts: new Table(),
    companies: new Table(),
    deals: new Table(),
  };
  readonly props = new PropertyRegistry();
  readonly owners: HsOwner[] = [];
  readonly ownersById = new Map<string, HsOwner>();
  /** Associations, stored in both directions. */
  readonly edges: EdgeMap = new Map();
  /** type → property → value → record, for hasUniqueValue properties. */
  #unique = new Map<HsObjectType, Map<string, Map<string, HsRecord>>>();
  onChange: (c: HsChange) => void = () => {};
  /** The sourceId HubSpot reports with a change source (the emulator knows the app id). */
  sourceIdOf: (source: ChangeSource) => string = (s) => s;

  constructor(readonly now: () => number, readonly prng: Prng) {
    this.#resetUnique();
  }

  // ---- reading -------------------------------------------------------------

  /** Live or archived record by id; merged ids resolve to the surviving record. */
  find(type: HsObjectType, id: string): HsRecord | undefined {
    let r = this.tables[type].get(id);
    for (let hops = 0; r?.mergedInto && hops < 10; hops++) r = this.tables[type].get(r.mergedInto);
    return r;
  }

  live(type: HsObjectType, id: string): HsRecord | undefined {
    const r = this.find(type, id);
    return r && !r.archived ? r : undefined;
  }

  byUnique(type: HsObjectType, prop: string, value: string): HsRecord | undefined {
    const v = prop === "email" ? value.trim().toLowerCase() : value;
    return this.#unique.get(type)?.get(prop)?.get(v);
  }

  associations(
    type: HsObjectType,
    id: string,
    toType?: HsObjectType,
  ): Array<{ type: HsObjectType; id: string; primary: boolean }> {
    const m = this.edges.get(key(type, id));
    if (!m) return [];
    const out: Array<{ type: HsObjectType; id: string; primary: boolean }> = [];
    for (const [k, v] of m) {
      const i = k.indexOf(":");
      const t = k.slice(0, i) as HsObjectType;
      if (toType && t !== toType) continue;
      out.push({ type: t, id: k.slice(i + 1), primary: v.primary });
    }
    out.sort((a, b) => Number(a.id) - Number(b.id));
    return out;
  }

  // ---- writing -------------------------------------------------------------

  /** Validate and normalise an input property map. */
  normalise(
    type: HsObjectType,
    input: Record<string, unknown>,
    system = false,
  ): Record<string, string | null> {
    const out: Record<string, string | null> = {};
    const issues: PropertyIssue[] = [];
    for (const [name, raw] of Object.entries(input)) {
      const def = this.props.get(type, name);
      if (!def) {
        issues.push({
          isValid: false,
          message: `Property "${name}" does not exist`,
          error: "PROPERTY_DOESNT_EXIST",
          name,
        });
        continue;
      }
      if (!system && (def.readOnly || SYSTEM_PROPS.has(name))) {
        issues.push({
          isValid: false,
          message: `"${name}" is a read only property; its value cannot be set.`,
          error: "READ_ONLY_VALUE",
          name,
        });
        continue;
      }
      if (
        name === "hubspot_owner_id" && raw !== null && raw !== "" && raw !== undefined &&
        !this.ownersById.has(String(raw))
      ) {
        issues.push({
          isValid: false,
          message: `${raw} is not a valid owner id`,
          error: "INVALID_OWNER_ID",
          name,
        });
        continue;
      }
      const v = normaliseValue(def, raw);
      if (v !== null && typeof v === "object") issues.push(v);
      else out[name] = v;
    }
    if (issues.length) throw validationError(issues);
    return out;
  }

  /** Throws what HubSpot answers when `values` would give a unique value a second record:
   * 409 "Contact already exists. Existing ID: N" for a contact's email, 400 otherwise. */
  checkUnique(type: HsObjectType, values: Record<string, string | null>, self?: HsRecord): void {
    const idx = this.#unique.get(type)!;
    for (const [prop, m] of idx) {
      const v = values[prop];
      if (v === null || v === undefined) continue;
      const other = m.get(v);
      if (other && other !== self) {
        if (type === "contacts" && prop === "email") {
          throw new HsError(409, "CONFLICT", `Contact already exists. Existing ID: ${other.id}`);
        }
        throw new HsError(
          400,
          "VALIDATION_ERROR",
          `Property values were not valid: ${
            JSON.stringify([{
              isValid: false,
              message: `${v} already has that value on ${other.id}`,
              error: "DUPLICATE_VALUE",
              name: prop,
            }])
          }`,
        );
      }
    }
  }

  #index(r: HsRecord, on: boolean): void {
    const idx = this.#unique.get(r.type)!;
    for (const [prop, m] of idx) {
      const v = r.properties[prop];
      if (v === null || v === undefined) continue;
      if (on) m.set(v, r);
      else if (m.get(v) === r) m.delete(v);
    }
  }

  #noteSources(r: HsRecord, names: string[], source: ChangeSource, at: number): void {
    if (names.length === 0) return;
    const sourceId = this.sourceIdOf(source);
    r.sources ??= {};
    for (const n of names) r.sources[n] = { source, sourceId, at };
  }

  #stamp(r: HsRecord, at: number): void {
    const iso = new Date(at).toISOString();
    r.properties[modifiedProperty(r.type)] = iso;
    this.tables[r.type].touch(r, at);
  }

  /** Create a record. `system` allows read-only properties (seeding). */
  create(
    type: HsObjectType,
    input: Record<string, unknown>,
    source: ChangeSource,
    opts: { system?: boolean; at?: number; createdAt?: number; silent?: boolean } = {},
  ): HsRecord {
    const values = this.normalise(type, input, opts.system);
    this.checkUnique(type, values);
    const table = this.tables[type];
    const seq = table.takeSeq();
    const id = String(ID_BASE[type] + seq);
    const at = opts.at ?? this.now();
    const createdAt = opts.createdAt ?? at;
    const r: HsRecord = {
      id,
      seq,
      modifiedAt: at,
      type,
      createdAt,
      archived: false,
      archivedAt: null,
      mergedInto: null,
      properties: {
        ...values,
        hs_object_id: id,
        createdate: new Date(createdAt).toISOString(),
        [modifiedProperty(type)]: new Date(at).toISOString(),
      },
    };
    if (type === "deals") this.#dealFlags(r);
    if (!opts.system) this.#noteSources(r, Object.keys(values), source, at);
    table.insert(r);
    this.#index(r, true);
    if (!opts.silent) {
      this.onChange({ kind: "creation", type, id, source, properties: { ...r.properties } });
    }
    return r;
  }

  /**
   * Insert a trusted, pre-normalised record (seeding). Skips validation and
   * events; unique values that are already taken are dropped, as HubSpot
   * would never hold two contacts with one email.
   */
  seedRecord(
    type: HsObjectType,
    values: Record<string, string | null>,
    createdAt: number,
    modifiedAt: number,
    archivedAt: number | null = null,
  ): HsRecord {
    const table = this.tables[type];
    const seq = table.takeSeq();
    const id = String(ID_BASE[type] + seq);
    const idx = this.#unique.get(type)!;
    for (const [prop, m] of idx) {
      const v = values[prop];
      if (v !== null && v !== undefined && m.has(v)) values[prop] = null;
    }
    values.hs_object_id = id;
    values.createdate = new Date(createdAt).toISOString();
    values[modifiedProperty(type)] = new Date(modifiedAt).toISOString();
    const r: HsRecord = {
      id,
      seq,
      modifiedAt: archivedAt ?? modifiedAt,
      type,
      createdAt,
      archived: archivedAt !== null,
      archivedAt,
      mergedInto: null,
      properties: values,
    };
    if (type === "deals") this.#dealFlags(r);
    table.insert(r, true);
    if (!r.archived) this.#index(r, true);
    return r;
  }

  /** Sort the modification indexes after seeding. */
  finishSeeding(): void {
    for (const t of OBJECT_TYPES) {
      for (const r of this.tables[t].bySeq) r.properties = compactJson(r.properties);
      this.tables[t].reindex();
    }
  }

  /** Link two seeded records without events or timestamp changes. */
  seedLink(
    aType: HsObjectType,
    aId: string,
    bType: HsObjectType,
    bId: string,
    primary: boolean,
  ): void {
    this.#link(aType, aId, bType, bId, primary);
  }

  #dealFlags(r: HsRecord): void {
    const stage = r.properties.dealstage ?? "";
    const won = stage === "closedwon" || stage === "renewalwon";
    const lost = stage === "closedlost" || stage === "renewallost";
    r.properties.hs_is_closed = String(won || lost);
    r.properties.hs_is_closed_won = String(won);
  }

  /** Update properties; returns the record (unchanged values emit nothing). */
  update(
    type: HsObjectType,
    id: string,
    input: Record<string, unknown>,
    source: ChangeSource,
  ): HsRecord {
    const r = this.live(type, id);
    if (!r) throw notFoundError(id);
    const values = this.normalise(type, input);
    this.checkUnique(type, values, r);
    const changed: Array<[string, string | null]> = [];
    for (const [k, v] of Object.entries(values)) {
      if ((r.properties[k] ?? null) !== v) changed.push([k, v]);
    }
    if (changed.length === 0) return r;
    this.#index(r, false);
    for (const [k, v] of changed) r.properties[k] = v;
    if (type === "deals") this.#dealFlags(r);
    this.#index(r, true);
    const at = this.now();
    this.#stamp(r, at);
    this.#noteSources(r, changed.map(([k]) => k), source, at);
    for (const [k, v] of changed) {
      this.onChange({ kind: "propertyChange", type, id: r.id, source, property: k, value: v });
    }
    return r;
  }

  archive(type: HsObjectType, id: string, source: ChangeSource): boolean {
    const r = this.live(type, id);
    if (!r) return false;
    const at = this.now();
    this.#index(r, false);
    r.archived = true;
    r.archivedAt = at;
    this.tables[type].touch(r, at);
    this.onChange({ kind: "deletion", type, id: r.id, source });
    return true;
  }

  restore(type: HsObjectType, id: string, source: ChangeSource): HsRecord {
    const r = this.tables[type].get(id);
    if (!r || !r.archived || r.mergedInto) throw notFoundError(id);
    this.checkUnique(type, r.properties, r);
    r.archived = false;
    r.archivedAt = null;
    this.#index(r, true);
    this.#stamp(r, this.now());
    this.onChange({ kind: "restore", type, id: r.id, source });
    return r;
  }

  /** GDPR delete: the record disappears completely (not even archived). */
  purge(type: HsObjectType, id: string, source: ChangeSource): boolean {
    const r = this.find(type, id);
    if (!r) return false;
    this.#index(r, false);
    for (const a of this.associations(type, r.id)) this.#unlink(type, r.id, a.type, a.id);
    this.tables[type].remove(r);
    this.onChange({ kind: "privacyDeletion", type, id: r.id, source });
    return true;
  }

  /**
   * Merge `mergedId` into `primaryId`: empty primary properties take the
   * merged record's values, associations move over, the merged id resolves to
   * the primary from now on.
   */
  merge(type: HsObjectType, primaryId: string, mergedId: string, source: ChangeSource): HsRecord {
    const primary = this.live(type, primaryId);
    const merged = this.live(type, mergedId);
    if (!primary || !merged) throw notFoundError(!primary ? primaryId : mergedId);
    if (primary === merged) {
      throw new HsError(400, "VALIDATION_ERROR", "Cannot merge an object with itself");
    }
    this.#index(merged, false);
    this.#index(primary, false);
    let moved = 0;
    for (const [k, v] of Object.entries(merged.properties)) {
      if (SYSTEM_PROPS.has(k) || v === null) continue;
      if (primary.properties[k] === null || primary.properties[k] === undefined) {
        primary.properties[k] = v;
        moved++;
      }
    }
    const mergedIds = [
      merged.id,
      ...(merged.properties.hs_merged_object_ids?.split(";").filter(Boolean) ?? []),
    ];
    const prior = primary.properties.hs_merged_object_ids?.split(";").filter(Boolean) ?? [];
    primary.properties.hs_merged_object_ids = [...prior, ...mergedIds].join(";");
    if (type === "contacts" && merged.properties.email) {
      const extra = primary.properties.hs_additional_emails?.split(";").filter(Boolean) ?? [];
      if (merged.properties.email !== primary.properties.email) extra.push(merged.properties.email);
      primary.properties.hs_additional_emails = extra.length ? extra.join(";") : null;
    }
    for (const a of this.associations(type, merged.id)) {
      this.#unlink(type, merged.id, a.type, a.id);
      if (!(a.type === type && a.id === primary.id)) {
        this.#link(
          type,
          primary.id,
          a.type,
          a.id,
          a.primary && !this.#hasPrimary(type, primary.id, a.type),
        );
      }
    }
    merged.mergedInto = primary.id;
    this.#index(primary, true);
    this.#stamp(primary, this.now());
    this.onChange({
      kind: "merge",
      type,
      primaryId: primary.id,
      mergedIds: [merged.id],
      newObjectId: primary.id,
      propertiesMoved: moved,
      source,
    });
    return primary;
  }

  // ---- associations ------------------------------------------------------------

  #hasPrimary(type: HsObjectType, id: string, toType: HsObjectType): boolean {
    return this.associations(type, id, toType).some((a) => a.primary);
  }

  #link(
    aType: HsObjectType,
    aId: string,
    bType: HsObjectType,
    bId: string,
    primary: boolean,
  ): boolean {
    const ka = key(aType, aId), kb = key(bType, bId);
    let ma = this.edges.get(ka);
    if (!ma) this.edges.set(ka, ma = new Map());
    let mb = this.edges.get(kb);
    if (!mb) this.edges.set(kb, mb = new Map());
    const existed = ma.has(kb);
    const prev = ma.get(kb)?.primary ?? false;
    ma.set(kb, { primary: primary || prev });
    mb.set(ka, { primary: primary || prev });
    return !existed || (primary && !prev);
  }

  #unlink(aType: HsObjectType, aId: string, bType: HsObjectType, bId: string): boolean {
    const ka = key(aType, aId), kb = key(bType, bId);
    const had = this.edges.get(ka)?.delete(kb) ?? false;
    this.edges.get(kb)?.delete(ka);
    return had;
  }

  /**
   * Associate two records. `primary` marks the primary company of a contact
   * or deal (only one primary per record and target type).
   */
  associate(
    fromType: HsObjectType,
    fromId: string,
    toType: HsObjectType,
    toId: string,
    primary: boolean,
    source: ChangeSource,
    opts: { silent?: boolean } = {},
  ): void {
    const from = this.live(fromType, fromId);
    const to = this.live(toType, toId);
    if (!from) throw notFoundError(fromId);
    if (!to) throw notFoundError(toId);
    if (!pairTypes(fromType, toType)) {
      throw new HsError(
        400,
        "VALIDATION_ERROR",
        `Association ${fromType} -> ${toType} is not supported by this sandbox`,
      );
    }
    if (primary) {
      // A record has at most one primary association per target type.
      for (const a of this.associations(fromType, from.id, toType)) {
        if (a.primary && a.id !== to.id) {
          this.edges.get(key(fromType, from.id))!.get(key(toType, a.id))!.primary = false;
          this.edges.get(key(toType, a.id))!.get(key(fromType, from.id))!.primary = false;
        }
      }
    }
    const changed = this.#link(fromType, from.id, toType, to.id, primary);
    if (primary && fromType === "contacts" && toType === "companies") {
      from.properties.associatedcompanyid = to.id;
      if (!opts.silent) this.#stamp(from, this.now());
    }
    if (changed && !opts.silent) {
      this.onChange({
        kind: "associationChange",
        fromType,
        fromId: from.id,
        toType,
        toId: to.id,
        removed: false,
        primary,
        source,
      });
    }
  }

  dissociate(
    fromType: HsObjectType,
    fromId: string,
    toType: HsObjectType,
    toId: string,
    source: ChangeSource,
  ): boolean {
    const had = this.#unlink(fromType, fromId, toType, toId);
    if (had) {
      const from = this.live(fromType, fromId);
      if (
        from && fromType === "contacts" && toType === "companies" &&
        from.properties.associatedcompanyid === toId
      ) {
        from.properties.associatedcompanyid = null;
        this.#stamp(from, this.now());
      }
      this.onChange({
        kind: "associationChange",
        fromType,
        fromId,
        toType,
        toId,
        removed: true,
        primary: false,
        source,
      });
    }
    return had;
  }

  // ---- bulk / admin ----------------------------------------------------------------

  /** Set modification time of selected live records (bulk edit simulation). */
  setModified(type: HsObjectType, sel: ModifiedSelection, at: number): string[] {
    const table = this.tables[type];
    let rows: HsRecord[];
    if (sel.ids) {
      rows = sel.ids.map((id) => this.live(type, id)).filter((r): r is HsRecord => !!r);
    } else {
      const live = table.byModified.filter((r) => !r.archived && !r.mergedInto);
      if (sel.pick === "newest") live.reverse();
      if (sel.pick === "random") this.prng.fork(`set-modified:${at}`).shuffle(live);
      rows = sel.count === undefined ? live : live.slice(0, sel.count);
    }
    const iso = new Date(at).toISOString();
    const prop = modifiedProperty(type);
    table.bulkSetModified(rows, (r) => {
      r.properties[prop] = iso;
      return at;
    });
    return rows.map((r) => r.id);
  }

  addOwner(o: Omit<HsOwner, "id" | "userId"> & { id?: string; userId?: number }): HsOwner {
    const n = this.owners.length + 1;
    const owner: HsOwner = {
      id: o.id ?? String(100_000_000 + n),
      userId: o.userId ?? 200_000_000 + n,
      ...o,
    } as HsOwner;
    this.owners.push(owner);
    this.ownersById.set(owner.id, owner);
    return owner;
  }

  /** Records, properties, owners and associations as plain data (../common/snapshot.ts). */
  snapshot(): HubSpotStoreSnapshot {
    return {
      tables: Object.fromEntries(OBJECT_TYPES.map((t) => [t, this.tables[t].snapshot()])),
      props: this.props.snapshot(),
      owners: this.owners.map((o) => ({ ...o })),
      edges: [...this.edges].map(([k, m]) => [k, [...m]]),
    } as HubSpotStoreSnapshot;
  }

  load(s: HubSpotStoreSnapshot): void {
    this.clear();
    this.props.load(s.props);
    for (const t of OBJECT_TYPES) if (s.tables[t]) this.tables[t].load(s.tables[t]);
    for (const o of s.owners) {
      this.owners.push(o);
      this.ownersById.set(o.id, o);
    }
    for (const [k, list] of s.edges) this.edges.set(k, new Map(list));
    this.#resetUnique();
    for (const t of OBJECT_TYPES) {
      for (const prop of this.props.unique(t)) this.addUniqueIndex(t, prop);
    }
  }

  /** Changes with every write to a table or a property definition. */
  get version(): number {
    return OBJECT_TYPES.reduce((n, t) => n + this.tables[t].version, this.props.version);
  }

  clear(): void {
    for (const t of OBJECT_TYPES) this.tables[t].clear();
    this.owners.length = 0;
    this.ownersById.clear();
    this.edges.clear();
    this.props.reset();
    this.#resetUnique();
  }

  #resetUnique(): void {
    this.#unique.clear();
    for (const t of OBJECT_TYPES) {
      this.#unique.set(t, new Map(this.props.unique(t).map((p) => [p, new Map()])));
    }
  }

  /** Register a newly created unique property. */
  addUniqueIndex(type: HsObjectType, prop: string): void {
    const m = new Map<string, HsRecord>();
    for (const r of this.tables[type].bySeq) {
      const v = r.properties[prop];
      if (v && !r.archived && !r.mergedInto) m.set(v, r);
    }
    this.#unique.get(type)!.set(prop, m);
  }
}
