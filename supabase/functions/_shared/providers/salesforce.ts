// Salesforce REST through jsforce 3.10.16 (newer versions crash on Deno 2.1).
// Incremental reads are keyset SOQL on (SystemModstamp, Id) through queryAll, so deleted
// rows (IsDeleted = true) arrive in the same walk as changes; SystemModstamp has second
// precision, so the Id tiebreak is what makes bulk updates safe. Contacts are two sObjects
// (Contact and Lead), walked one after the other. jsforce refreshes the session on 401 by
// itself and would retry forever if the 401 persists, so refresh goes through our own
// refreshFn, which allows one refresh per call, persists the new token before it is used and
// reports revoked credentials.
// SOQL fails the whole query on one unknown field, and orgs differ (CurrencyIsoCode exists only
// with multi-currency, admins delete custom fields), so the selected fields are checked against
// one describe per sObject per connection and 10 minutes (shared, see DESCRIBED); fields the org
// lacks are logged and not read, and the
// mapper then leaves their columns alone.
// Timeouts: jsforce takes a request timeout only as a transport option (default 30 min) and
// retries 429/5xx/network errors itself up to 5 times for GETs with its own backoff, outside any
// budget. `timed` wraps the connection's and OAuth2's transports so every request gets the
// call's timeout (./call.ts callScope) and no jsforce retries: ./call.ts retries within the
// run's budget.
// jsforce's core only (Connection, OAuth2, query, sobject): the package entry point also loads
// the bulk, metadata, streaming, tooling, ... APIs, ~14 MB of RSS a walk never uses.
// Observe: the same transport wrapper reports every response (./observe.ts) as jsforce's
// transport hands it over (status, headers with Sforce-Limit-Info: api-usage=N/M, the body
// parsed for errors), before jsforce turns an error status into an exception. jsforce's own
// HttpApi 'response' event would not do: HttpApi objects are created per request inside
// Connection. Salesforce has no 429: its org limit answers 403 REQUEST_LIMIT_EXCEEDED.
// Call kinds (beforeRequest and observe): "query" (SOQL pages, reads by id, deletion listings),
// "describe" (field checks, one per sObject per 10 minutes). A 401 refreshed inside a call
// reports the 401 and the retried answer under the call's kind, and the token endpoint's answer
// as "oauth-token" (observe only, not gated by beforeRequest).
// Stamps (drift checks): `SELECT Id, SystemModstamp FROM <sObject> ORDER BY Id` with queryMore
// batches of 2000 (one call each), per sObject of the object (Contact then Lead). The checkpoint
// keeps the locator and the last Id: a locator expires after 15 idle minutes (and with the
// session), so a continuation that finds it gone (INVALID_QUERY_LOCATOR) asks again from
// `WHERE Id > last`. `query`, not queryAll: deleted rows are not listed, so the check finds them
// as missing and confirms them by id.
// Totals (ChangePage.total, the walk's estimate): a query with LIMIT answers a totalSize of at
// most the LIMIT (the rows it returns), so a page tells what remains only when it is short and
// its sObject the object's last: then it is exact. A walk's first page that is full asks
// `SELECT COUNT() ... WHERE <its keyset bound>` per sObject of the object (one call each, only
// for walks longer than a page, so an idle delta pays nothing, and only when the caller asks:
// ListOptions.countTotal). Other pages report none; a failed count leaves the total unknown and
// the walk goes on.
import jsforce from "jsforce/core";
import { z } from "zod";
import type { Classification } from "../http/retry.ts";
import { callScope, DEFAULT_CALL_TIMEOUT_MS, guardedCall, isNetworkError } from "./call.ts";
import { refreshSdkError } from "./token_errors.ts";
import { observeResponse, observing, parseErrorBody } from "./observe.ts";
import { missingIds } from "./missing.ts";
import { isoFromSalesforce } from "./iso.ts";
import { createSalesforceWriter, type WriteConnection } from "./salesforce_write.ts";
import {
  type ChangePage,
  type ListOptions,
  type ObjectType,
  type ProviderAdapter,
  type ProviderDeps,
  ProviderError,
  type RecordError,
  type RemoteRecord,
  type Stamp,
  type StampPage,
  type TokenSet,
  type Watermark,
} from "./types.ts";

export const API_VERSION = "62.0";
const PAGE = 2000;

export const SOBJECTS: Record<ObjectType, string[]> = {
  contacts: ["Contact", "Lead"],
  companies: ["Account"],
  deals: ["Opportunity"],
  owners: ["User"],
};

const SF_ID = /^[a-zA-Z0-9]{15}([a-zA-Z0-9]{3})?$/;
/** Key prefixes of the standard objects (the first three characters of every record id, the
 * same in every org): a read by id queries a type only for the ids that can be of it. */
const KEY_PREFIX: Record<string, string> = {
  Contact: "003",
  Lead: "00Q",
  Account: "001",
  Opportunity: "006",
  User: "005",
};
const KNOWN_PREFIXES = new Set(Object.values(KEY_PREFIX));
/** The ids of `ids` a record of `type` can have (an id of no known prefix: every type). */
function idsOfType(type: string, ids: string[]): string[] {
  const prefix = KEY_PREFIX[type];
  if (!prefix) return ids;
  return ids.filter((id) => id.startsWith(prefix) || !KNOWN_PREFIXES.has(id.slice(0, 3)));
}
/** The fields the walk relies on; the row's other fields are the properties, as they come. */
const RawRow = z.object({
  Id: z.string().regex(SF_ID),
  SystemModstamp: z.string(),
  IsDeleted: z.boolean().optional(),
  MasterRecordId: z.string().nullable().optional(),
});

interface Position {
  t: string;
  id: string;
}

interface WalkState {
  type: number;
  pos: Record<string, Position | null>;
  /** Last position of each finished type in this walk, for the final watermark. */
  ends: Record<string, Position | null>;
}

/** SOQL datetime literal (no quotes, second precision, UTC). */
function soqlDateTime(iso: string): string {
  return new Date(iso).toISOString().replace(/\.\d{3}Z$/, "Z");
}

function soqlString(s: string): string {
  return `'${s.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

const isoOf = isoFromSalesforce;

export function classifySalesforce(e: unknown): Classification {
  const err = e as { errorCode?: string; name?: string; statusCode?: number; message?: string };
  const code = err.errorCode ?? err.name ?? "";
  if (code === "REQUEST_LIMIT_EXCEEDED") {
    return { kind: "fatal", reason: "Salesforce org API limit reached" };
  }
  if (code === "INVALID_SESSION_ID") return { kind: "reauth", reason: "session expired" };
  if (/invalid_grant|INVALID_AUTH|expired access\/refresh token/i.test(`${code} ${err.message}`)) {
    return { kind: "reauth", reason: err.message ?? code };
  }
  // jsforce's errors carry Salesforce's errorCode but not the HTTP status: a 500 arrives as
  // UNKNOWN_EXCEPTION ("An unexpected error occurred…"), the one code a 500 answer has.
  if (
    code === "SERVER_UNAVAILABLE" || code === "UNABLE_TO_LOCK_ROW" ||
    code === "UNKNOWN_EXCEPTION" ||
    /^5\d\d$/.test(String(err.statusCode ?? ""))
  ) {
    return { kind: "retry", reason: code || "5xx" };
  }
  if (/ERROR_HTTP_5\d\d|ERROR_HTTP_503|ERROR_HTTP_502|ERROR_HTTP_500/.test(code)) {
    return { kind: "retry", reason: code };
  }
  if (isNetworkError(e)) return { kind: "retry", reason: `network: ${err.message}` };
  return { kind: "fatal", reason: `${code}: ${err.message ?? ""}`.slice(0, 300) };
}

interface Transport {
  httpRequest(req: unknown, options?: Record<string, unknown>): unknown;
}

/** What jsforce's transport resolves to (its request.js): headers lower-cased, body as text. */
interface SfResponse {
  statusCode: number;
  headers: Record<string, string>;
  body?: string;
}

/**
 * The transport with the call's timeout and jsforce's own retries off, reporting each response
 * (see the header); `own` gives the token endpoint's transport its own observe kind. The
 * StreamPromise jsforce expects is returned as it is: the report hangs off it.
 */
function timed(
  inner: Transport,
  fallbackMs: number,
  own?: Parameters<typeof observeResponse>[3],
): Transport {
  return {
    httpRequest: (req, options = {}) => {
      const p = inner.httpRequest(req, {
        ...options,
        timeout: callScope.getStore()?.timeoutMs ?? fallbackMs,
        retry: { maxRetries: 0 },
      }) as Promise<SfResponse | undefined>;
      p.then((res) => {
        if (!res) return;
        const error = res.statusCode >= 400 ? parseErrorBody(res.body ?? "") : undefined;
        observeResponse(res.statusCode, res.headers ?? {}, error, own);
      }, () => {});
      return p;
    },
  };
}

/**
 * Describe results per org, object and field selection, shared by the adapters of one function
 * instance, and beyond it through deps.describes (crm.provider_describes): a backfill spanning
 * many requests and workers describes each object once, and a field added in the org is picked
 * up within the TTL.
 */
const DESCRIBED = new Map<string, { at: number; fields: Promise<string[]> }>();
const DESCRIBE_TTL_MS = 10 * 60_000;

/** Forgets this process's describes of `sobject` in the org at `org` (a field was added). */
function forgetDescribed(org: string, sobject: string): void {
  for (const key of DESCRIBED.keys()) {
    if (key.startsWith(`${org}|${sobject}|`)) DESCRIBED.delete(key);
  }
}

export function createSalesforceAdapter(
  deps: ProviderDeps,
  fields: Record<string, string[]>,
): ProviderAdapter {
  const c = deps.credentials;
  let refreshesThisCall = 0;

  const conn = new jsforce.Connection({
    instanceUrl: c.instanceUrl ?? deps.baseUrl,
    loginUrl: c.loginUrl ?? deps.baseUrl,
    accessToken: c.accessToken,
    refreshToken: c.refreshToken,
    version: API_VERSION,
    oauth2: c.clientId
      ? { clientId: c.clientId, clientSecret: c.clientSecret, loginUrl: c.loginUrl ?? deps.baseUrl }
      : undefined,
    // One refresh per API call; a 401 that survives it means the grant is gone.
    refreshFn: (_conn, callback) => {
      if (refreshesThisCall++ > 0 || !c.refreshToken || !c.clientId) {
        return callback(
          new ProviderError("Salesforce rejected the session after a refresh", "revoked", 401),
        );
      }
      deps.countCall();
      const oauth2 = new jsforce.OAuth2({
        clientId: c.clientId,
        clientSecret: c.clientSecret,
        loginUrl: c.loginUrl ?? deps.baseUrl,
      });
      (oauth2 as unknown as { _transport: Transport })._transport = timed(
        (oauth2 as unknown as { _transport: Transport })._transport,
        deps.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS,
        deps.observe ? { kind: "oauth-token", deps } : undefined,
      );
      // The new token is persisted before jsforce may use it: jsforce's own "refresh" event
      // fires asynchronously, so a call could finish (and the function exit) first. A rotated
      // refresh token (a connected-app setting) comes back in the answer and is kept.
      const requestTokens = async (creds: Record<string, string>): Promise<TokenSet> => {
        const res = await oauth2.refreshToken(creds.refreshToken ?? c.refreshToken!);
        return {
          accessToken: res.access_token,
          refreshToken: (res as { refresh_token?: string }).refresh_token ??
            creds.refreshToken ?? c.refreshToken,
          instanceUrl: res.instance_url,
        };
      };
      const stale = (_conn as unknown as { accessToken?: string }).accessToken;
      (deps.refreshTokens
        ? deps.refreshTokens(stale, requestTokens)
        : requestTokens(c).then(async (t) => {
          await deps.onTokens(t);
          return t;
        }))
        .then((t) => {
          if (t.refreshToken) {
            (_conn as unknown as { refreshToken?: string }).refreshToken = t.refreshToken;
          }
          callback(undefined, t.accessToken, {
            access_token: t.accessToken,
            instance_url: t.instanceUrl ?? c.instanceUrl,
          } as never);
        })
        .catch((e: Error) => callback(refreshSdkError("Salesforce", e)));
    },
  });

  function withTimeouts(holder: { _transport: Transport }) {
    holder._transport = timed(holder._transport, deps.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS);
  }
  withTimeouts(conn as unknown as { _transport: Transport });

  const call = <T>(kind: string, fn: () => Promise<T>, o: ListOptions = {}) =>
    guardedCall(
      deps,
      observing(deps, kind, () => {
        refreshesThisCall = 0;
        return fn();
      }),
      { kind, classify: classifySalesforce, signal: o.signal, deadline: o.deadline },
    );

  type Rows = { records: unknown[]; totalSize?: number };
  // jsforce's Query is a thenable, not a Promise: await it inside an async function.
  const query = (soql: string, o: Record<string, unknown>, opts: ListOptions) =>
    call("query", async (): Promise<Rows> => await conn.query(soql, o) as unknown as Rows, opts);

  /** Rows of `types` matching `where`, as the walk reads them (queryAll but for User); undefined
   * when a count fails (see Totals in the header). */
  async function countRows(
    types: string[],
    where: string,
    opts: ListOptions,
  ): Promise<number | undefined> {
    try {
      let n = 0;
      for (const type of types) {
        const soql = `SELECT COUNT() FROM ${type}${where}`;
        const res = await query(soql, { scanAll: type !== "User" }, opts);
        if (typeof res.totalSize !== "number") return undefined;
        n += res.totalSize;
      }
      return n;
    } catch (e) {
      if (opts.signal?.aborted) throw e;
      return undefined;
    }
  }

  /** The selected fields of `type` the org has (`Rel.Field` when the relationship exists). */
  function selectable(type: string, opts: ListOptions): Promise<string[]> {
    const wanted = fields[type] ?? [];
    if (wanted.length === 0) return Promise.resolve([]);
    const key = `${c.instanceUrl ?? deps.baseUrl}|${type}|${wanted.join(",")}`;
    const hit = DESCRIBED.get(key);
    let p = hit && Date.now() - hit.at < DESCRIBE_TTL_MS ? hit.fields : undefined;
    if (!p) {
      p = described(type, key, wanted, opts);
      // A failed describe is retried by the next call instead of being cached.
      p.catch(() => DESCRIBED.delete(key));
      DESCRIBED.set(key, { at: Date.now(), fields: p });
    }
    return p;
  }

  /** The selected fields the org has: from deps.describes when another instance described the
   * object lately, else one describe call (then shared). */
  async function described(
    type: string,
    key: string,
    wanted: string[],
    opts: ListOptions,
  ): Promise<string[]> {
    const shared = await deps.describes?.get(key, DESCRIBE_TTL_MS).catch(() => null);
    if (shared) return shared;
    const ok = await call("describe", () => conn.sobject(type).describe(), opts).then((d) => {
      const names = new Set(d.fields.map((f) => f.name.toLowerCase()));
      const rels = new Set(
        d.fields.flatMap((f) => (f.relationshipName ? [f.relationshipName.toLowerCase()] : [])),
      );
      const ok = wanted.filter((w) => {
        const [head, ...rest] = w.toLowerCase().split(".");
        return rest.length === 0 ? names.has(head) : rels.has(head);
      });
      const missing = wanted.filter((w) => !ok.includes(w));
      if (missing.length > 0) deps.log(`${type} fields not in this org, not read`, { missing });
      return ok;
    });
    // Sharing is an optimisation: a failure to store only costs the next instance a describe.
    await deps.describes?.put(key, ok).catch(() => {});
    return ok;
  }

  async function fieldList(type: string, opts: ListOptions): Promise<string> {
    const set = new Set(["Id", "SystemModstamp", ...await selectable(type, opts)]);
    if (type !== "User") {
      set.add("IsDeleted");
      if (type !== "Opportunity") set.add("MasterRecordId");
    }
    return [...set].join(", ");
  }

  function toRecord(type: string, raw: unknown): RemoteRecord | RecordError {
    const p = RawRow.safeParse(raw);
    if (!p.success) {
      return {
        remoteId: (raw as { Id?: string })?.Id ?? null,
        reason: `unexpected ${type} shape: ${p.error.message}`,
      };
    }
    const modifiedAt = isoOf(p.data.SystemModstamp);
    if (!modifiedAt) {
      return { remoteId: p.data.Id, reason: `unparseable SystemModstamp ${p.data.SystemModstamp}` };
    }
    const { attributes: _a, ...properties } = raw as Record<string, unknown>;
    const deleted = Boolean(p.data.IsDeleted);
    // A merge loser sits in the recycle bin with MasterRecordId naming the survivor.
    const mergedInto = deleted && p.data.MasterRecordId ? p.data.MasterRecordId : undefined;
    return {
      remoteId: p.data.Id,
      remoteType: type,
      modifiedAt,
      properties,
      deleted,
      mergedIds: [],
      ...(mergedInto ? { mergedInto } : {}),
    };
  }

  type StampRows = { records: unknown[]; done?: boolean; nextRecordsUrl?: string };
  interface StampWalk {
    type: number;
    next: string | null;
    lastId: string | null;
  }

  async function stampPage(
    object: ObjectType,
    checkpoint: unknown,
    opts: ListOptions,
  ): Promise<StampPage> {
    const types = SOBJECTS[object];
    const s: StampWalk = (checkpoint as StampWalk | null) ?? { type: 0, next: null, lastId: null };
    const type = types[s.type];
    let res: StampRows | null = null;
    if (s.next) {
      const locator = s.next;
      res = await call(
        "query",
        async () => await conn.queryMore(locator) as unknown as StampRows,
        opts,
      ).catch((e) => {
        if (/invalid.query.locator/i.test(String((e as Error)?.message ?? e))) return null;
        throw e;
      });
    }
    if (!res) {
      const where = s.lastId ? ` WHERE Id > ${soqlString(s.lastId)}` : "";
      const soql = `SELECT Id, SystemModstamp FROM ${type}${where} ORDER BY Id ASC`;
      res = await call(
        "query",
        async () =>
          await conn.query(soql, { autoFetch: false, maxFetch: PAGE }) as unknown as StampRows,
        opts,
      );
    }
    const stamps: Stamp[] = [];
    const errors: RecordError[] = [];
    let lastId = s.lastId;
    for (const raw of res.records as Array<{ Id?: unknown; SystemModstamp?: unknown }>) {
      const id = typeof raw?.Id === "string" && SF_ID.test(raw.Id) ? raw.Id : null;
      const at = typeof raw?.SystemModstamp === "string" ? isoOf(raw.SystemModstamp) : null;
      if (id) lastId = id;
      if (id && at) stamps.push({ remoteId: id, modifiedAt: at });
      else errors.push({ remoteId: id, reason: `${type} listed without an Id or SystemModstamp` });
    }
    const more = !res.done && typeof res.nextRecordsUrl === "string";
    const next: StampWalk = more
      ? { type: s.type, next: res.nextRecordsUrl!, lastId }
      : { type: s.type + 1, next: null, lastId: null };
    const done = next.type >= types.length;
    return { stamps, errors, checkpoint: done ? null : next, done };
  }

  const org = c.instanceUrl ?? deps.baseUrl;
  const writer = createSalesforceWriter({
    conn: conn as unknown as WriteConnection,
    call,
    deps,
    org,
    sobjects: SOBJECTS,
    forgetDescribes: (sobject) => forgetDescribed(org, sobject),
  });

  return {
    provider: "salesforce",
    writer,
    // queryAll returns recycle-bin rows (IsDeleted) in the same keyset walk. User has no
    // deletions but is kept whole like every provider's owners (the daily owners job).
    capabilities: { deletions: "in-walk", alwaysFull: ["owners"] },

    async changesSince(object, from, checkpoint, opts = {}) {
      const types = SOBJECTS[object];
      const start: Position | null = from ? { t: from.modifiedAt, id: from.remoteId } : null;
      const s: WalkState = (checkpoint as WalkState | null) ??
        { type: 0, pos: Object.fromEntries(types.map((t) => [t, start])), ends: {} };
      const type = types[s.type];
      const pos = s.pos[type];
      const size = Math.min(opts.pageSize ?? PAGE, PAGE);
      const where = pos
        ? ` WHERE (SystemModstamp > ${soqlDateTime(pos.t)} OR (SystemModstamp = ${
          soqlDateTime(pos.t)
        } AND Id > ${soqlString(pos.id)}))`
        : "";
      const select = await fieldList(type, opts);
      const soql =
        `SELECT ${select} FROM ${type}${where} ORDER BY SystemModstamp ASC, Id ASC LIMIT ${size}`;
      const res = await query(
        soql,
        { scanAll: type !== "User", autoFetch: false, maxFetch: size },
        opts,
      );
      const records: RemoteRecord[] = [];
      const errors: RecordError[] = [];
      for (const raw of res.records) {
        const r = toRecord(type, raw);
        if ("reason" in r) errors.push(r);
        else records.push(r);
      }
      const lastRaw = res.records.at(-1) as { Id?: string; SystemModstamp?: string } | undefined;
      const lastPos = lastRaw?.Id && lastRaw.SystemModstamp
        ? {
          t: isoOf(lastRaw.SystemModstamp) ?? pos?.t ?? new Date(0).toISOString(),
          id: lastRaw.Id,
        }
        : pos;
      const next: WalkState = { ...s, pos: { ...s.pos, [type]: lastPos } };
      const typeDone = res.records.length < size;
      if (typeDone) {
        next.ends = { ...s.ends, [type]: lastPos };
        next.type = s.type + 1;
      }
      const done = next.type >= types.length;
      const total = typeDone && done
        ? res.totalSize ?? res.records.length
        : checkpoint == null && !typeDone && opts.countTotal
        ? await countRows(types, where, opts)
        : undefined;
      let watermark: Watermark | null = null;
      if (done) {
        // One cursor per object: the earliest end over its sObjects, so no type is skipped.
        const ends = types.map((t) => next.ends[t]).filter((p): p is Position =>
          p !== null && p !== undefined
        );
        const min = ends.sort((a, b) => a.t.localeCompare(b.t) || a.id.localeCompare(b.id))[0];
        watermark = min ? { modifiedAt: min.t, remoteId: min.id } : null;
      }
      return {
        records,
        errors,
        checkpoint: done ? null : next,
        watermark,
        done,
        ...(total === undefined ? {} : { total }),
      } satisfies ChangePage;
    },

    stamps(object, checkpoint, opts = {}) {
      return stampPage(object, checkpoint, opts);
    },

    async deletedSince(object, since, opts = {}) {
      // Deletions already arrive through queryAll in changesSince; this serves callers that
      // want only them.
      const out: RemoteRecord[] = [];
      for (const type of SOBJECTS[object].filter((t) => t !== "User")) {
        const select = await fieldList(type, opts);
        const soql = `SELECT ${select} FROM ${type} WHERE IsDeleted = true AND SystemModstamp >= ${
          soqlDateTime(since)
        } ORDER BY SystemModstamp ASC, Id ASC`;
        const res = await query(
          soql,
          { scanAll: true, autoFetch: true, maxFetch: 50_000 },
          opts,
        );
        for (const raw of res.records) {
          const r = toRecord(type, raw);
          if (!("reason" in r)) out.push(r);
        }
      }
      return out;
    },

    async readByIds(object, ids, opts = {}) {
      const records: RemoteRecord[] = [];
      const errors: RecordError[] = [];
      const wanted = ids.filter((id) => SF_ID.test(id));
      for (const id of ids) {
        if (!SF_ID.test(id)) errors.push({ remoteId: id, reason: "not a Salesforce id" });
      }
      for (const type of SOBJECTS[object]) {
        const ofType = idsOfType(type, wanted);
        for (let i = 0; i < ofType.length; i += 200) {
          const chunk = ofType.slice(i, i + 200);
          const select = await fieldList(type, opts);
          const soql = `SELECT ${select} FROM ${type} WHERE Id IN (${
            chunk.map(soqlString).join(", ")
          })`;
          // queryAll: a record in the recycle bin is returned deleted, at the SystemModstamp of
          // its deletion (or merge, with MasterRecordId). Missing, its tombstone would carry the
          // engine's clock (sync/retry.ts), later than an undelete within the same second, which
          // then never restored it (chaos, Salesforce seed 2 crm_wins). Only a record purged
          // from the recycle bin (or never there) is missing.
          const res = await query(
            soql,
            { scanAll: type !== "User", autoFetch: true, maxFetch: 200 },
            opts,
          );
          for (const raw of res.records) {
            const r = toRecord(type, raw);
            if ("reason" in r) errors.push(r);
            else records.push(r);
          }
        }
      }
      errors.push(...missingIds("Salesforce", wanted, [...records, ...errors]));
      return { records, errors };
    },
  };
}

export { ProviderError };
