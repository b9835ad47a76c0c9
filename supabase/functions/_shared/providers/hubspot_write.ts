// HubSpot write side (outbound push) through @hubspot/api-client, over the adapter's guarded
// call (budget, count, observe, timeout, retries: ./call.ts) and SDK client.
// Endpoints (≤ 100 inputs a call): creates POST /crm/v3/objects/{type}/batch/upsert with
// idProperty crm_sync_id (our uuid, a unique-value property), so a create repeated after an
// unknown outcome updates the record the first attempt made; updates batch/update; deletes
// batch/archive (a missing id is already gone: ok). N creates cost ⌈N/100⌉ calls; association
// calls are made only for ops that carry `associations.<toType>`.
// Call kinds: "batch-upsert", "batch-update", "batch-archive", "batch-read" (contacts by email
// while resolving a 409), "associations" (v4 batch read of current pairs),
// "associations-create" (v4 batch/associate/default; v4 batch/create with the primary type
// for a contact's associatedcompanyid), "associations-archive" (v4 batch/archive),
// "property-read" / "property-create" (ensureExternalId).
// Decisions:
// - Batches are all or nothing on HubSpot for values (400 VALIDATION_ERROR) and for a contact
//   whose email another contact has (409 "Contact already exists. Existing ID: N", also from
//   batch/upsert when the upsert would create: HubSpot matches by the idProperty only). A 409
//   is resolved: the batch's emails are read (one batch read by idProperty email), each create
//   whose email belongs to a contact becomes an update of that contact carrying our external
//   id (created: false, never a duplicate), and the rest is sent again. Any other 400/409 of a
//   batch of several is bisected until the rejected inputs are alone; each then gets the CRM's
//   message (fix_data): about 2·log2(n) calls per bad input, and 3 calls in all when both
//   halves are refused with the batch's very message (a cause common to every input).
// - Which HubSpot does for an upsert whose email belongs to a contact without our id is not
//   stated in its docs; we take it to behave as batch create (whole batch 409, first conflict
//   named), which the sandbox does. Resolving by the email read works for either answer.
// - A create the upsert answered `new: false` is reported created: false, also when an earlier
//   attempt whose answer was lost made the record.
// - Inputs that resolve to one record in one batch (same remote id; same external id or same
//   contact email for creates) are merged before sending (HubSpot refuses a batch naming one
//   record twice): later ops' properties win, the first op's external id is kept, every ref
//   gets the result.
// - A whole call that fails for every item (429 after retries, 5xx, timeout, 401) is thrown as
//   ProviderError by the call helper, also after earlier calls of this write succeeded: the
//   engine sends everything again, which the upsert and plain updates make harmless.
// - Associations are written after the objects exist. A failed association makes its op a
//   fix_data result with HubSpot's message (the object's own write stays).
// - Property values travel as text; null clears (HubSpot clears with "").
import type { Client } from "@hubspot/api-client";
import { timed } from "./hubspot_http.ts";
import type {
  ExternalIdSetup,
  ListOptions,
  ObjectType,
  ProviderWriter,
  WriteAction,
  WriteOp,
  WriteResult,
} from "./types.ts";

export const EXTERNAL_ID_PROPERTY = "crm_sync_id";
const MAX_BATCH = 100;
const ASSOCIATIONS = "associations.";
const PRIMARY_COMPANY = "associatedcompanyid";
// HUBSPOT_DEFINED association type ids (v4) of the pairs written as primary: the labeled
// "primary company" type, sent with the unlabeled type of the pair. HubSpot keeps one primary
// per record and target type: writing a new one demotes the old to unlabeled.
const PRIMARY_TYPES: Record<string, { primary: number; unlabeled: number }> = {
  "contacts>companies": { primary: 1, unlabeled: 279 },
};
type AssocCategory = Parameters<
  Client["crm"]["associations"]["v4"]["batchApi"]["create"]
>[2]["inputs"][number]["types"][number]["associationCategory"];
const HUBSPOT_DEFINED = "HUBSPOT_DEFINED" as AssocCategory;
const GROUP: Record<string, string> = {
  contacts: "contactinformation",
  companies: "companyinformation",
  deals: "dealinformation",
};

type PropertyCreate = Parameters<Client["crm"]["properties"]["coreApi"]["create"]>[1];

type Call = <T>(kind: string, fn: () => Promise<T>, o?: ListOptions) => Promise<T>;

export interface HubSpotWriterDeps {
  /** The adapter's SDK client (replaced after a token refresh). */
  sdk: () => Client;
  /** The adapter's guarded call. */
  call: Call;
}

/** A HubSpot error body as the SDK hands it over (its Error / StandardError models). */
interface HsErrorBody {
  message?: string;
  category?: string;
  subCategory?: unknown;
  context?: Record<string, unknown>;
  errors?: Array<{ message?: string; context?: unknown }>;
}

type Outcome<T> = { ok: true; value: T } | { ok: false; status: number; body: HsErrorBody };

/** One record's write: one or more ops merged. */
interface Unit {
  refs: string[];
  remoteId?: string;
  externalId?: string;
  email?: string;
  properties: Record<string, string>;
  /** Wanted associations by target type (the full set of that type). */
  assoc: Map<string, string[]>;
  /** Target types whose wanted association is the record's primary one (associatedcompanyid). */
  primary?: Set<string>;
  /** The upsert made the record (it has no associations yet). */
  created?: boolean;
}

type Done = Map<string, WriteResult>;

function text(v: unknown): string {
  if (v === null || v === undefined) return "";
  return typeof v === "string" ? v : String(v);
}

function split(props: Record<string, unknown>) {
  const properties: Record<string, string> = {};
  const assoc = new Map<string, string[]>();
  const primary = new Set<string>();
  for (const [k, v] of Object.entries(props)) {
    // A contact's associatedcompanyid is HubSpot's view of its primary company, derived from
    // the associations: writing it means setting the company association.
    const to = k === PRIMARY_COMPANY
      ? "companies"
      : k.startsWith(ASSOCIATIONS)
      ? k.slice(ASSOCIATIONS.length)
      : null;
    if (to !== null) {
      const ids = Array.isArray(v) ? v.map(String) : v == null || v === "" ? [] : [String(v)];
      assoc.set(to, [...new Set(ids)]);
      if (k === PRIMARY_COMPANY) primary.add(to);
      else primary.delete(to);
    } else properties[k] = text(v);
  }
  return { properties, assoc, primary };
}

/** A later op's wanted set of a target type replaces the earlier one, primary-ness with it. */
function setAssoc(u: Unit, to: string, ids: string[], primary: boolean): void {
  u.assoc.set(to, ids);
  u.primary ??= new Set();
  if (primary) u.primary.add(to);
  else u.primary.delete(to);
}

function bodyOf(e: unknown): HsErrorBody {
  const b = (e as { body?: unknown }).body;
  if (b && typeof b === "object") return b as HsErrorBody;
  if (typeof b === "string") {
    try {
      const parsed = JSON.parse(b);
      if (parsed && typeof parsed === "object") return parsed as HsErrorBody;
    } catch { /* plain text */ }
    return { message: b };
  }
  return { message: String((e as Error)?.message ?? e) };
}

function describe(b: HsErrorBody): string {
  const msg = b.message ?? "no message";
  return b.category ? `${b.category}: ${msg}` : msg;
}

/** What to do about an input HubSpot rejected, by status and category. */
function actionFor(status: number, b: HsErrorBody, kind: "create" | "update"): WriteAction {
  const cat = b.category ?? "";
  if (cat === "OBJECT_NOT_FOUND" || status === 404) return kind === "update" ? "gone" : "fix_data";
  if (status === 403 || cat === "MISSING_SCOPES") return "dead_letter";
  if (status === 400 || status === 409 || /VALIDATION|CONFLICT|INVALID|DUPLICATE/.test(cat)) {
    return "fix_data";
  }
  return "dead_letter";
}

const EXISTING_ID = /Existing ID:\s*(\d+)/i;

function iso(v: unknown): string | null {
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? null : v.toISOString();
  if (typeof v === "string" && !Number.isNaN(Date.parse(v))) return new Date(v).toISOString();
  return null;
}

/** Ids an error of a batch response names (context.ids, or any digits-only context list). */
function idsOf(b: HsErrorBody): string[] {
  const out: string[] = [];
  for (const v of Object.values(b.context ?? {})) {
    if (Array.isArray(v)) { for (const x of v) out.push(String(x)); }
  }
  return out;
}

function chunks<T>(xs: T[], n = MAX_BATCH): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

export function createHubSpotWriter(w: HubSpotWriterDeps): ProviderWriter {
  const ensured = new Set<string>();

  /** A call whose 4xx answers (other than 401/429, which the call helper handles) come back
   * as values: they are item outcomes, not failures of the call. */
  async function attempt<T>(
    kind: string,
    fn: () => Promise<T>,
    o: ListOptions,
  ): Promise<Outcome<T>> {
    return await w.call(kind, async (): Promise<Outcome<T>> => {
      try {
        return { ok: true, value: await fn() };
      } catch (e) {
        const code = (e as { code?: unknown }).code;
        if (typeof code === "number" && code >= 400 && code < 500 && code !== 401 && code !== 429) {
          return { ok: false, status: code, body: bodyOf(e) };
        }
        throw e;
      }
    }, o);
  }

  const batchApi = (object: ObjectType) => {
    const crm = w.sdk().crm;
    const o = object as "contacts" | "companies" | "deals";
    return timed(crm[o].batchApi);
  };

  function fail(done: Done, u: Unit, action: WriteAction, message: string, status?: number) {
    for (const ref of u.refs) {
      done.set(ref, { ref, ok: false, action, message, ...(status ? { status } : {}) });
    }
  }

  function succeed(
    done: Done,
    u: Unit,
    remoteId: string,
    version: string | null,
    created: boolean,
  ) {
    u.remoteId = remoteId;
    for (const ref of u.refs) {
      done.set(ref, { ref, ok: true, remoteId, remoteVersion: version, created });
    }
  }

  /**
   * Sends `units` with `send` (≤ 100 a call). `onReject` may take a rejection itself (409
   * resolution, ids named as missing) and answers the units still to send, or null. Otherwise
   * a rejected batch of several (400/409) is halved and both halves are sent: when both are
   * refused with the parent's very message, the cause is common to every input (a property
   * that does not exist, the id property missing) and all get it (3 calls, not 2n); else each
   * half is settled the same way, so a lone bad input costs about 2·log2(n) calls.
   */
  async function sendAll<T>(
    units: Unit[],
    send: (part: Unit[]) => Promise<Outcome<T>>,
    onOk: (part: Unit[], value: T) => void,
    onReject: (part: Unit[], status: number, body: HsErrorBody) => Promise<Unit[] | null>,
    kind: "create" | "update",
    done: Done,
  ): Promise<void> {
    const failAll = (part: Unit[], status: number, body: HsErrorBody) => {
      for (const u of part) fail(done, u, actionFor(status, body, kind), describe(body), status);
    };
    // Every step sends fewer units or removes some, so the recursion ends.
    const settle = async (part: Unit[], out: Outcome<T>): Promise<void> => {
      if (out.ok) return onOk(part, out.value);
      const rest = await onReject(part, out.status, out.body);
      if (rest !== null) {
        for (const c of chunks(rest)) await settle(c, await send(c));
        return;
      }
      if (part.length < 2 || (out.status !== 400 && out.status !== 409)) {
        return failAll(part, out.status, out.body);
      }
      const half = Math.ceil(part.length / 2);
      const a = part.slice(0, half), b = part.slice(half);
      const outA = await send(a), outB = await send(b);
      const msg = describe(out.body);
      const same = (o: Outcome<T>) => !o.ok && describe(o.body) === msg;
      if (same(outA) && same(outB)) return failAll(part, out.status, out.body);
      await settle(a, outA);
      await settle(b, outB);
    };
    for (const part of chunks(units)) await settle(part, await send(part));
  }

  // ---- creates ---------------------------------------------------------------------------

  function mergeCreates(object: ObjectType, ops: Extract<WriteOp, { kind: "create" }>[]): Unit[] {
    const units: Unit[] = [];
    const byKey = new Map<string, Unit>();
    for (const op of ops) {
      const { properties, assoc, primary } = split(op.properties);
      const email = object === "contacts" && properties.email
        ? properties.email.trim().toLowerCase()
        : undefined;
      const keys = [`x:${op.externalId}`, ...(email ? [`e:${email}`] : [])];
      const u = keys.map((k) => byKey.get(k)).find(Boolean);
      if (u) {
        u.refs.push(op.ref);
        Object.assign(u.properties, properties);
        for (const [t, ids] of assoc) setAssoc(u, t, ids, primary.has(t));
        if (email) u.email = email;
        for (const k of keys) if (!byKey.has(k)) byKey.set(k, u);
        continue;
      }
      const unit: Unit = {
        refs: [op.ref],
        externalId: op.externalId,
        email,
        properties,
        assoc,
        primary,
      };
      units.push(unit);
      for (const k of keys) byKey.set(k, unit);
    }
    for (const u of units) u.properties[EXTERNAL_ID_PROPERTY] = u.externalId!;
    return units;
  }

  /** Contacts holding the units' emails: email → { id, external id }. */
  async function contactsByEmail(units: Unit[], o: ListOptions) {
    const found = new Map<string, { id: string; externalId: string | null }>();
    const emails = [...new Set(units.map((u) => u.email).filter((e): e is string => !!e))];
    for (const part of chunks(emails)) {
      const res = await w.call(
        "batch-read",
        () =>
          batchApi("contacts").read({
            idProperty: "email",
            inputs: part.map((id) => ({ id })),
            properties: ["email", EXTERNAL_ID_PROPERTY],
            propertiesWithHistory: [],
          }, false),
        o,
      );
      for (const r of res.results) {
        const email = r.properties?.email?.trim().toLowerCase();
        if (email) {
          found.set(email, { id: r.id, externalId: r.properties?.[EXTERNAL_ID_PROPERTY] ?? null });
        }
      }
    }
    return found;
  }

  async function writeCreates(
    object: ObjectType,
    units: Unit[],
    done: Done,
    resolved: Unit[],
    o: ListOptions,
  ): Promise<void> {
    const created = new Set<Unit>();
    await sendAll(
      units,
      (part) =>
        attempt("batch-upsert", () =>
          batchApi(object).upsert({
            inputs: part.map((u) => ({
              id: u.externalId!,
              idProperty: EXTERNAL_ID_PROPERTY,
              properties: u.properties,
            })),
          }), o),
      (part, res) => {
        const byExt = new Map(part.map((u) => [u.externalId!, u]));
        const left = new Set(part);
        const unmatched: typeof res.results = [];
        for (const r of res.results) {
          const u = byExt.get(r.properties?.[EXTERNAL_ID_PROPERTY] ?? "");
          if (!u || !left.has(u)) {
            unmatched.push(r);
            continue;
          }
          left.delete(u);
          succeed(done, u, r.id, iso(r.updatedAt), Boolean(r._new));
          if (r._new) created.add(u);
        }
        const errors = (res as { errors?: HsErrorBody[] }).errors ?? [];
        for (const e of errors) {
          for (const id of idsOf(e)) {
            const u = byExt.get(id);
            if (u && left.delete(u)) fail(done, u, actionFor(400, e, "create"), describe(e));
          }
        }
        // Results that did not echo the id property: matched in order when the counts agree.
        const rest = [...left];
        if (rest.length === unmatched.length) {
          rest.forEach((u, i) => {
            const r = unmatched[i];
            succeed(done, u, r.id, iso(r.updatedAt), Boolean(r._new));
            if (r._new) created.add(u);
          });
        } else {
          const why = errors.length ? errors.map(describe).join("; ") : "no result for the input";
          for (const u of rest) fail(done, u, "retry", `HubSpot batch upsert: ${why}`);
        }
      },
      async (part, status, body) => {
        if (status !== 409 || object !== "contacts") return null;
        // The batch's emails tell which creates are contacts that exist already.
        const existing = await contactsByEmail(part, o);
        const rest: Unit[] = [];
        for (const u of part) {
          const hit = u.email ? existing.get(u.email) : undefined;
          if (hit && hit.externalId !== u.externalId) {
            u.remoteId = hit.id;
            resolved.push(u);
          } else rest.push(u);
        }
        if (rest.length < part.length) return rest;
        // Not found by email (a secondary email): alone, the input is the one HubSpot named.
        const named = (body.message ?? "").match(EXISTING_ID)?.[1] ??
          body.errors?.map((e) => e.message?.match(EXISTING_ID)?.[1]).find(Boolean);
        if (part.length === 1 && named) {
          part[0].remoteId = named;
          resolved.push(part[0]);
          return [];
        }
        return null;
      },
      "create",
      done,
    );
    for (const u of created) u.created = true;
  }

  // ---- updates and deletes -----------------------------------------------------------------

  function mergeById(units: Unit[]): Unit[] {
    const byId = new Map<string, Unit>();
    const out: Unit[] = [];
    for (const u of units) {
      const prev = byId.get(u.remoteId!);
      if (!prev) {
        byId.set(u.remoteId!, u);
        out.push(u);
        continue;
      }
      prev.refs.push(...u.refs);
      Object.assign(prev.properties, u.properties);
      for (const [t, ids] of u.assoc) setAssoc(prev, t, ids, u.primary?.has(t) ?? false);
    }
    return out;
  }

  async function writeUpdates(object: ObjectType, units: Unit[], done: Done, o: ListOptions) {
    await sendAll(
      units,
      (part) =>
        attempt("batch-update", () =>
          batchApi(object).update({
            inputs: part.map((u) => ({ id: u.remoteId!, properties: u.properties })),
          }), o),
      (part, res) => {
        const byId = new Map(part.map((u) => [u.remoteId!, u]));
        const left = new Set(part);
        for (const r of res.results) {
          const u = byId.get(r.id);
          if (u && left.delete(u)) succeed(done, u, r.id, iso(r.updatedAt), false);
        }
        const errors = (res as { errors?: HsErrorBody[] }).errors ?? [];
        for (const e of errors) {
          for (const id of idsOf(e)) {
            const u = byId.get(id);
            if (u && left.delete(u)) fail(done, u, actionFor(207, e, "update"), describe(e));
          }
        }
        for (const u of left) {
          const why = errors.length ? errors.map(describe).join("; ") : "no result for the input";
          fail(done, u, "retry", `HubSpot batch update: ${why}`);
        }
      },
      (part, status, body) => {
        // A batch refused for ids it names as missing: those are gone, the rest is sent again.
        const missing = new Set(idsOf(body));
        if ((status !== 404 && body.category !== "OBJECT_NOT_FOUND") || missing.size === 0) {
          return Promise.resolve(null);
        }
        const rest = part.filter((u) => !missing.has(u.remoteId!));
        if (rest.length === part.length) return Promise.resolve(null);
        for (const u of part) {
          if (missing.has(u.remoteId!)) fail(done, u, "gone", describe(body), status);
        }
        return Promise.resolve(rest);
      },
      "update",
      done,
    );
  }

  async function writeDeletes(object: ObjectType, units: Unit[], done: Done, o: ListOptions) {
    await sendAll(
      units,
      (part) =>
        attempt(
          "batch-archive",
          () => batchApi(object).archive({ inputs: part.map((u) => ({ id: u.remoteId! })) }),
          o,
        ),
      (part) => {
        for (const u of part) succeed(done, u, u.remoteId!, null, false);
      },
      () => Promise.resolve(null),
      "update",
      done,
    );
  }

  // ---- associations --------------------------------------------------------------------------

  async function writeAssociations(
    object: ObjectType,
    units: Unit[],
    done: Done,
    o: ListOptions,
  ): Promise<void> {
    const targets = new Set<string>();
    for (const u of units) for (const t of u.assoc.keys()) targets.add(t);
    for (const to of targets) {
      const mine = units.filter((u) => u.assoc.has(to));
      const types = PRIMARY_TYPES[`${object}>${to}`];
      const current = new Map<string, Set<string>>();
      // Per record, the targets its primary association points at (at most one on HubSpot).
      const primaryOf = new Map<string, Set<string>>();
      // New records have none: only records that existed are read.
      const existing = mine.filter((u) => !u.created);
      for (const part of chunks(existing)) {
        const res = await w.call(
          "associations",
          () =>
            timed(w.sdk().crm.associations.v4.batchApi).getPage(object, to, {
              inputs: part.map((u) => ({ id: u.remoteId! })),
            }),
          o,
        );
        for (const row of res.results) {
          current.set(String(row._from.id), new Set(row.to.map((t) => String(t.toObjectId))));
          if (types) {
            primaryOf.set(
              String(row._from.id),
              new Set(
                row.to.filter((t) => t.associationTypes.some((a) => a.typeId === types.primary))
                  .map((t) => String(t.toObjectId)),
              ),
            );
          }
        }
      }
      const add: Array<{ u: Unit; to: string }> = [];
      // The primary company (associatedcompanyid): written labeled, also when the pair exists
      // unlabeled; an unlabeled pair would leave HubSpot's associatedcompanyid unchanged.
      const addPrimary: Array<{ u: Unit; to: string }> = [];
      const drop: Array<{ u: Unit; to: string[] }> = [];
      for (const u of mine) {
        const want = new Set(u.assoc.get(to)!);
        const have = current.get(u.remoteId!) ?? new Set<string>();
        if (types && u.primary?.has(to)) {
          const prim = primaryOf.get(u.remoteId!) ?? new Set<string>();
          for (const id of want) if (!prim.has(id)) addPrimary.push({ u, to: id });
        } else {
          for (const id of want) if (!have.has(id)) add.push({ u, to: id });
        }
        const gone = [...have].filter((id) => !want.has(id));
        if (gone.length) drop.push({ u, to: gone });
      }
      const creates = [
        ...chunks(add).map((part) => ({
          part,
          send: () =>
            timed(w.sdk().crm.associations.v4.batchApi).createDefault(object, to, {
              inputs: part.map((p) => ({ _from: { id: p.u.remoteId! }, to: { id: p.to } })),
            }) as Promise<unknown>,
        })),
        ...chunks(addPrimary).map((part) => ({
          part,
          send: () =>
            timed(w.sdk().crm.associations.v4.batchApi).create(object, to, {
              inputs: part.map((p) => ({
                _from: { id: p.u.remoteId! },
                to: { id: p.to },
                types: [
                  { associationCategory: HUBSPOT_DEFINED, associationTypeId: types!.primary },
                  { associationCategory: HUBSPOT_DEFINED, associationTypeId: types!.unlabeled },
                ],
              })),
            }) as Promise<unknown>,
        })),
      ];
      for (const { part, send } of creates) {
        const out = await attempt("associations-create", send, o);
        const errors = out.ok
          ? ((out.value as { errors?: HsErrorBody[] }).errors ?? [])
          : [out.body];
        for (const e of errors) {
          const msg = `associations.${to}: ${describe(e)}`;
          const text = `${e.message ?? ""} ${idsOf(e).join(" ")}`;
          // An error names the pair's ids in its context or message; unnamed, the whole call's.
          const hit = part.filter((p) => text.includes(p.to) || text.includes(p.u.remoteId!));
          for (const p of hit.length ? hit : part) fail(done, p.u, "fix_data", msg);
        }
      }
      for (const part of chunks(drop)) {
        const out = await attempt(
          "associations-archive",
          () =>
            timed(w.sdk().crm.associations.v4.batchApi).archive(object, to, {
              inputs: part.map((p) => ({
                _from: { id: p.u.remoteId! },
                to: p.to.map((id) => ({ id })),
              })),
            }),
          o,
        );
        if (!out.ok) {
          for (const p of part) {
            fail(done, p.u, "fix_data", `associations.${to}: ${describe(out.body)}`, out.status);
          }
        }
      }
    }
  }

  // ---- the writer --------------------------------------------------------------------------

  return {
    maxBatch: MAX_BATCH,
    chunk: MAX_BATCH,

    externalIdProperty: () => Promise.resolve(EXTERNAL_ID_PROPERTY),

    async ensureExternalId(remoteType, opts = {}): Promise<ExternalIdSetup> {
      if (ensured.has(remoteType)) {
        return { ok: true, property: EXTERNAL_ID_PROPERTY, created: false };
      }
      const core = () => timed(w.sdk().crm.properties.coreApi);
      const got = await attempt(
        "property-read",
        () => core().getByName(remoteType, EXTERNAL_ID_PROPERTY),
        opts,
      );
      if (got.ok) {
        if (!got.value.hasUniqueValue) {
          return {
            ok: false,
            reason:
              `HubSpot ${remoteType} property ${EXTERNAL_ID_PROPERTY} exists without unique values; ` +
              "it cannot serve as the upsert id (delete it or give it unique values)",
          };
        }
        ensured.add(remoteType);
        return { ok: true, property: EXTERNAL_ID_PROPERTY, created: false };
      }
      if (got.status !== 404) return { ok: false, reason: describe(got.body) };
      const made = await attempt(
        "property-create",
        () =>
          core().create(remoteType, {
            name: EXTERNAL_ID_PROPERTY,
            label: "CRM sync ID",
            description: "The id of this record in the app database (set by crm-sync).",
            // The SDK's enums hold exactly these texts.
            type: "string" as PropertyCreate["type"],
            fieldType: "text" as PropertyCreate["fieldType"],
            groupName: GROUP[remoteType] ?? `${remoteType}information`,
            hasUniqueValue: true,
          }),
        opts,
      );
      if (made.ok) {
        ensured.add(remoteType);
        return { ok: true, property: EXTERNAL_ID_PROPERTY, created: true };
      }
      // Created meanwhile by another worker.
      if (made.status === 409) {
        ensured.add(remoteType);
        return { ok: true, property: EXTERNAL_ID_PROPERTY, created: false };
      }
      return { ok: false, reason: describe(made.body) };
    },

    async write(object, ops, opts = {}) {
      const done: Done = new Map();
      if (object === "owners") {
        for (const op of ops) {
          done.set(op.ref, {
            ref: op.ref,
            ok: false,
            action: "dead_letter",
            message: "HubSpot owners are read-only",
          });
        }
        return [...done.values()];
      }
      const creates = ops.filter((op): op is Extract<WriteOp, { kind: "create" }> =>
        op.kind === "create"
      );
      const updates: Unit[] = ops.filter((op) => op.kind === "update").map((op) => {
        const { properties, assoc, primary } = split(
          (op as { properties: Record<string, unknown> }).properties,
        );
        return {
          refs: [op.ref],
          remoteId: (op as { remoteId: string }).remoteId,
          properties,
          assoc,
          primary,
        };
      });
      const deletes: Unit[] = ops.filter((op) => op.kind === "delete").map((op) => ({
        refs: [op.ref],
        remoteId: (op as { remoteId: string }).remoteId,
        properties: {},
        assoc: new Map(),
      }));

      const resolved: Unit[] = [];
      const createUnits = mergeCreates(object, creates);
      await writeCreates(object, createUnits, done, resolved, opts);
      // Creates resolved to existing contacts are updates of them (with our external id),
      // merged with any update of the same record.
      const updateUnits = mergeById([...updates, ...resolved]);
      await writeUpdates(object, updateUnits, done, opts);
      await writeDeletes(object, mergeById(deletes), done, opts);

      // One unit per record: a create resolved to a contact may have merged into an update.
      const byRecord = new Map<string, Unit>();
      for (const u of [...updateUnits, ...createUnits]) {
        if (u.remoteId && !byRecord.has(u.remoteId)) byRecord.set(u.remoteId, u);
      }
      const written = [...byRecord.values()].filter((u) =>
        u.assoc.size > 0 && u.refs.every((r) => done.get(r)?.ok)
      );
      if (written.length) await writeAssociations(object, written, done, opts);

      for (const op of ops) {
        if (!done.has(op.ref)) {
          done.set(op.ref, {
            ref: op.ref,
            ok: false,
            action: "retry",
            message: "HubSpot answered nothing for this op",
          });
        }
      }
      return ops.map((op) => done.get(op.ref)!);
    },
  };
}
