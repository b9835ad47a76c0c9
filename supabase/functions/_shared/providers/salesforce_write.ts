// Salesforce write side (outbound push) through jsforce 3.10.16 and sObject Collections:
// - creates: upsert by our external-id field, PATCH /composite/sobjects/{SObject}/Crm_Sync_Id__c
//   (jsforce's upsert of an array, API ≥ 46), so a create sent twice (a retry after a timeout,
//   a crash before completion) finds the record the first one made: creates never duplicate;
// - updates: PATCH /composite/sobjects; deletes: DELETE /composite/sobjects?ids=… .
// Every call takes ≤ 200 records of one sObject with allOrNone false (jsforce sends
// allOrNone: false in the bodies; for the DELETE it leaves the parameter out, and Salesforce's
// default is false), and answers one result per record in request order. So N ops of one kind
// and sObject cost ⌈N / 200⌉ calls; ops of one write() may mix Contact and Lead (one call per
// sObject and kind, creates before updates before deletes).
// Ops that would meet in one request are merged first (later properties win, both refs get the
// result): two creates with one external id would fail both with DUPLICATE_VALUE, two updates
// of one id are one save.
// Per-record errors become results by statusCode (see actionFor); deleting a record that is
// already deleted or missing is ok. Whole-call failures are ProviderErrors from ./call.ts
// (retries within the run's budget, then `retry`; `revoked` on refused credentials); the org's
// REQUEST_LIMIT_EXCEEDED (403) is thrown as `retry` (nothing was applied; the budget's observer
// pauses the connection), not `fatal` as on the read side. A ProviderError may follow calls of
// the same write() that were applied: every kind here is safe to send again (an upsert finds its
// record, a PATCH sets the same values, a delete of a deleted record is ok). After such a
// resend, or a timed-out upsert retried inside the call, `created` is false for a record the
// first attempt made.
// remoteVersion is null: collections results carry no SystemModstamp (the ledger learns the
// record time from the next inbound read).
// ensureExternalId: a describe shows whether Crm_Sync_Id__c exists (and is an External ID);
// if not, the Tooling API creates it (Text(36), External ID, Unique). Without "Customize
// Application" Salesforce refuses (INSUFFICIENT_ACCESS…): ok false with its message. A field
// that is there but not an External ID is ok false too (upserts by it would fail every call).
// Limit: a field created through the Tooling API carries no field-level security; in a real org
// the integration user's profile or permission set must be granted edit access to it (the
// sandbox does not model FLS).
// Call kinds (beforeRequest and observe): "write" (collections DML), "describe", "tooling".
import type {
  ExternalIdSetup,
  ListOptions,
  ObjectType,
  ProviderDeps,
  ProviderWriter,
  WriteAction,
  WriteOp,
  WriteResult,
} from "./types.ts";
import { ProviderError } from "./types.ts";

export const EXTERNAL_ID_FIELD = "Crm_Sync_Id__c";
const MAX_BATCH = 200;
const DESCRIBE_TTL_MS = 10 * 60_000;

/** The part of jsforce's Connection the writer uses. */
export interface WriteConnection {
  upsert(
    type: string,
    records: Record<string, unknown>[],
    extIdField: string,
    options: { allOrNone: boolean },
  ): Promise<unknown>;
  update(
    type: string,
    records: Record<string, unknown>[],
    options: { allOrNone: boolean },
  ): Promise<unknown>;
  destroy(type: string, ids: string[], options: { allOrNone: boolean }): Promise<unknown>;
  requestPost(url: string, body: unknown): Promise<unknown>;
  sobject(type: string): { describe(): Promise<{ fields: SfFieldInfo[] }> };
}

interface SfFieldInfo {
  name: string;
  externalId?: boolean;
  unique?: boolean;
}

export type Call = <T>(kind: string, fn: () => Promise<T>, o?: ListOptions) => Promise<T>;

export interface WriterInputs {
  conn: WriteConnection;
  call: Call;
  deps: ProviderDeps;
  /** The org's instance URL: the describe cache key's prefix. */
  org: string;
  /** sObjects per object (salesforce.ts SOBJECTS). */
  sobjects: Record<ObjectType, string[]>;
  /** Drops this process's cached read-side describes of an sObject (a field was added). */
  forgetDescribes: (sobject: string) => void;
}

interface ItemError {
  statusCode?: string;
  errorCode?: string;
  message?: string;
  fields?: string[];
}

interface ItemResult {
  id?: string | null;
  success?: boolean;
  created?: boolean;
  errors?: ItemError[];
}

type Kind = WriteOp["kind"];

/** What to do about one record's errors (SPEC.md §1 Salesforce). */
export function actionFor(kind: Kind, e: ItemError): WriteAction | "ok" {
  const code = e.statusCode ?? e.errorCode ?? "";
  const onRecord = !e.fields?.length || e.fields.includes("Id");
  const missing = code === "ENTITY_IS_DELETED" || code === "NOT_FOUND" ||
    (code === "INVALID_CROSS_REFERENCE_KEY" && onRecord);
  if (missing && kind === "delete") return "ok";
  if (missing && kind === "update") return "gone";
  // A converted Lead lives on as a Contact: the Lead we know is gone.
  if (code === "CANNOT_UPDATE_CONVERTED_LEAD" && kind === "update") return "gone";
  if (
    code === "UNABLE_TO_LOCK_ROW" || code === "SERVER_UNAVAILABLE" ||
    code === "UNKNOWN_EXCEPTION" || code === "REQUEST_LIMIT_EXCEEDED" ||
    code === "ALL_OR_NONE_OPERATION_ROLLED_BACK"
  ) return "retry";
  if (code === "INVALID_SESSION_ID") return "reauth";
  if (
    code === "REQUIRED_FIELD_MISSING" || code === "FIELD_CUSTOM_VALIDATION_EXCEPTION" ||
    code === "DUPLICATES_DETECTED" || code === "DUPLICATE_VALUE" ||
    code === "DUPLICATE_EXTERNAL_ID" || code === "STRING_TOO_LONG" ||
    code === "FIELD_INTEGRITY_EXCEPTION" || code === "FIELD_FILTER_VALIDATION_EXCEPTION" ||
    code === "NUMBER_OUTSIDE_VALID_RANGE" || code.startsWith("INVALID_") ||
    (code === "MALFORMED_ID" && !onRecord)
  ) return "fix_data";
  return "dead_letter";
}

function describeErrors(errors: ItemError[]): string {
  return errors.map((e) =>
    `${e.statusCode ?? e.errorCode ?? "ERROR"}: ${e.message ?? ""}${
      e.fields?.length ? ` [${e.fields.join(", ")}]` : ""
    }`
  ).join("; ");
}

/** One request's worth of records and the refs each answers. */
interface Item {
  refs: string[];
  remoteId?: string;
  record: Record<string, unknown>;
}

function chunks<T>(xs: T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

/** Properties as sent: no Id or attributes from the caller (the writer sets what identifies). */
function clean(props: Record<string, unknown>): Record<string, unknown> {
  const { Id: _i, id: _j, attributes: _a, ...rest } = props;
  return rest;
}

/** Jsforce errors carry the code as errorCode (or name) and the status as statusCode. */
function errorCode(e: unknown): string {
  const err = e as { errorCode?: string; name?: string };
  return err?.errorCode ?? err?.name ?? "";
}

export function createSalesforceWriter(w: WriterInputs): ProviderWriter {
  const { conn, deps } = w;
  const ensured = new Map<string, Promise<ExternalIdSetup>>();

  /** One DML call; the org limit comes out as a retryable ProviderError (see the header). */
  const dml = <T>(fn: () => Promise<T>, opts: ListOptions) =>
    w.call("write", async () => {
      try {
        return await fn();
      } catch (e) {
        if (errorCode(e) === "REQUEST_LIMIT_EXCEEDED") {
          throw new ProviderError(
            `Salesforce REQUEST_LIMIT_EXCEEDED: ${(e as Error).message}`,
            "retry",
            403,
          );
        }
        throw e;
      }
    }, opts);

  function answer(
    kind: Kind,
    items: Item[],
    raw: unknown,
    out: WriteResult[],
  ): void {
    const results = raw as ItemResult[];
    if (!Array.isArray(results) || results.length !== items.length) {
      throw new ProviderError(
        `Salesforce answered ${
          Array.isArray(results) ? results.length : "no"
        } results for ${items.length} records`,
        "retry",
      );
    }
    items.forEach((item, i) => {
      const r = results[i];
      const errors = r.errors ?? [];
      const action = r.success ? "ok" : actionFor(kind, errors[0] ?? {});
      const remoteId = r.id ?? item.remoteId;
      for (const ref of item.refs) {
        if (action === "ok" && remoteId) {
          out.push({
            ref,
            ok: true,
            remoteId,
            remoteVersion: null,
            created: kind === "create" && r.success === true && r.created === true,
          });
        } else {
          out.push({
            ref,
            ok: false,
            action: action === "ok" ? "dead_letter" : action,
            message: errors.length ? describeErrors(errors) : "Salesforce returned no id",
          });
        }
      }
    });
  }

  async function creates(
    type: string,
    ops: Extract<WriteOp, { kind: "create" }>[],
    opts: ListOptions,
    out: WriteResult[],
  ) {
    const byExt = new Map<string, Item>();
    for (const op of ops) {
      if (!op.externalId) {
        out.push({
          ref: op.ref,
          ok: false,
          action: "dead_letter",
          message: "a create needs its external id",
        });
        continue;
      }
      const item = byExt.get(op.externalId);
      if (item) {
        item.refs.push(op.ref);
        Object.assign(item.record, clean(op.properties), { [EXTERNAL_ID_FIELD]: op.externalId });
      } else {
        byExt.set(op.externalId, {
          refs: [op.ref],
          record: { ...clean(op.properties), [EXTERNAL_ID_FIELD]: op.externalId },
        });
      }
    }
    for (const batch of chunks([...byExt.values()], MAX_BATCH)) {
      const raw = await dml(
        () =>
          conn.upsert(type, batch.map((b) => b.record), EXTERNAL_ID_FIELD, { allOrNone: false }),
        opts,
      );
      answer("create", batch, raw, out);
    }
  }

  /** One call per 200 records whatever their sObject types: a Collections PATCH names each
   * record's type in its `attributes` (jsforce takes them from there when no type is given).
   * Salesforce processes a request in chunks of consecutive records of one type, at most 10 a
   * request, so records are sent grouped by type. */
  async function updates(
    ops: Extract<WriteOp, { kind: "update" }>[],
    opts: ListOptions,
    out: WriteResult[],
  ) {
    const byId = new Map<string, Item>();
    const grouped = [...ops].sort((a, b) =>
      a.remoteType < b.remoteType ? -1 : a.remoteType > b.remoteType ? 1 : 0
    );
    for (const op of grouped) {
      const item = byId.get(op.remoteId);
      if (item) {
        item.refs.push(op.ref);
        Object.assign(item.record, clean(op.properties));
      } else {
        byId.set(op.remoteId, {
          refs: [op.ref],
          remoteId: op.remoteId,
          record: {
            ...clean(op.properties),
            Id: op.remoteId,
            attributes: { type: op.remoteType },
          },
        });
      }
    }
    for (const batch of chunks([...byId.values()], MAX_BATCH)) {
      const raw = await dml(
        () =>
          conn.update(
            undefined as unknown as string,
            batch.map((b) => b.record),
            { allOrNone: false },
          ),
        opts,
      );
      answer("update", batch, raw, out);
    }
  }

  /** Collections DELETE takes ids of any sObject type in one call. */
  async function deletes(
    ops: Extract<WriteOp, { kind: "delete" }>[],
    opts: ListOptions,
    out: WriteResult[],
  ) {
    const byId = new Map<string, Item>();
    for (const op of ops) {
      const item = byId.get(op.remoteId);
      if (item) item.refs.push(op.ref);
      else byId.set(op.remoteId, { refs: [op.ref], remoteId: op.remoteId, record: {} });
    }
    for (const batch of chunks([...byId.values()], MAX_BATCH)) {
      const raw = await dml(
        () =>
          conn.destroy(
            undefined as unknown as string,
            batch.map((b) => b.remoteId!),
            { allOrNone: false },
          ),
        opts,
      );
      answer("delete", batch, raw, out);
    }
  }

  /** Crm_Sync_Id__c on `type` as the org describes it: absent, or there (External ID or not). */
  async function described(type: string, key: string, opts: ListOptions) {
    const d = await w.call("describe", () => conn.sobject(type).describe(), opts);
    const f = d.fields.find((x) => x.name.toLowerCase() === EXTERNAL_ID_FIELD.toLowerCase());
    if (f?.externalId) await deps.describes?.put(key, [EXTERNAL_ID_FIELD]).catch(() => {});
    return f;
  }

  async function ensure(type: string, opts: ListOptions): Promise<ExternalIdSetup> {
    const key = `${w.org}|${type}|${EXTERNAL_ID_FIELD}`;
    // Only "present" is trusted from the shared cache; absence is always checked.
    const cached = await deps.describes?.get(key, DESCRIBE_TTL_MS).catch(() => null);
    if (cached?.includes(EXTERNAL_ID_FIELD)) {
      return { ok: true, property: EXTERNAL_ID_FIELD, created: false };
    }
    const f = await described(type, key, opts);
    if (f) {
      return f.externalId ? { ok: true, property: EXTERNAL_ID_FIELD, created: false } : {
        ok: false,
        reason:
          `${type}.${EXTERNAL_ID_FIELD} exists but is not an External ID field: mark it External ID and Unique`,
      };
    }
    const body = {
      FullName: `${type}.${EXTERNAL_ID_FIELD}`,
      Metadata: {
        type: "Text",
        label: "Crm Sync Id",
        length: 36,
        externalId: true,
        unique: true,
        caseSensitive: false,
        description:
          "The crm-sync record id (uuid): creates upsert by it, so they never duplicate.",
      },
    };
    const made = await w.call("tooling", async () => {
      try {
        await conn.requestPost("/tooling/sobjects/CustomField", body);
        return { created: true } as const;
      } catch (e) {
        const code = errorCode(e);
        const status = (e as { statusCode?: number }).statusCode;
        // Created meanwhile by someone else (another worker, an admin): it is there.
        if (code === "DUPLICATE_DEVELOPER_NAME") return { created: false } as const;
        if (
          /^INSUFFICIENT_ACCESS/.test(code) || (status === 403 && code !== "REQUEST_LIMIT_EXCEEDED")
        ) {
          return { denied: `${code || status}: ${(e as Error).message}` } as const;
        }
        throw e;
      }
    }, opts);
    if ("denied" in made) {
      return {
        ok: false,
        reason:
          `cannot create ${type}.${EXTERNAL_ID_FIELD} (the integration user needs the Customize Application permission, or an admin creates the field: Text(36), External ID, Unique): ${made.denied}`,
      };
    }
    w.forgetDescribes(type);
    await deps.describes?.put(key, [EXTERNAL_ID_FIELD]).catch(() => {});
    return { ok: true, property: EXTERNAL_ID_FIELD, created: made.created };
  }

  return {
    maxBatch: MAX_BATCH,
    chunk: MAX_BATCH,

    externalIdProperty: () => Promise.resolve(EXTERNAL_ID_FIELD),

    ensureExternalId(remoteType, opts = {}) {
      let p = ensured.get(remoteType);
      if (!p) {
        p = ensure(remoteType, opts);
        ensured.set(remoteType, p);
        // Only a success is remembered (as there, not created by the next caller); a refusal
        // or failure is asked again next time.
        p.then((r) => {
          if (r.ok) ensured.set(remoteType, Promise.resolve({ ...r, created: false }));
          else ensured.delete(remoteType);
        }, () => ensured.delete(remoteType));
      }
      return p;
    },

    async write(object, ops, opts = {}) {
      const out: WriteResult[] = [];
      const allowed = new Set(w.sobjects[object].filter((t) => t !== "User"));
      const types: string[] = [];
      for (const op of ops) {
        if (!allowed.has(op.remoteType)) {
          out.push({
            ref: op.ref,
            ok: false,
            action: "dead_letter",
            message: `remote type ${op.remoteType} is not one of ${object}'s (${
              [...allowed].join(", ")
            })`,
          });
        } else if (!types.includes(op.remoteType)) types.push(op.remoteType);
      }
      const valid = ops.filter((o) => allowed.has(o.remoteType));
      // Upserts name their sObject in the URL: one call per type. Updates and deletes mix types.
      for (const type of types) {
        await creates(
          type,
          valid.filter((o) => o.kind === "create").filter((o) => o.remoteType === type),
          opts,
          out,
        );
      }
      await updates(valid.filter((o) => o.kind === "update"), opts, out);
      await deletes(valid.filter((o) => o.kind === "delete"), opts, out);
      return out;
    },
  };
}
