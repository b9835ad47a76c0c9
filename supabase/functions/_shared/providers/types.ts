// The one interface every CRM adapter implements. Adapters speak the provider's API through
// its official SDK and return raw records (provider property names, flat); mapping to our
// canonical columns happens in one place (../mapping), driven by crm.field_mappings.
import { z } from "zod";

export const OBJECT_TYPES = ["contacts", "companies", "deals", "owners"] as const;
export type ObjectType = typeof OBJECT_TYPES[number];
export const ObjectTypeSchema = z.enum(OBJECT_TYPES);

export const PROVIDERS = ["hubspot", "salesforce", "pipedrive"] as const;
export type ProviderName = typeof PROVIDERS[number];

/** Resume point of an inbound walk: everything up to (modifiedAt, remoteId) has been read. */
export interface Watermark {
  modifiedAt: string;
  remoteId: string;
}

export interface RemoteRecord {
  remoteId: string;
  /** The provider's own type when one object maps to several (Salesforce Contact | Lead). */
  remoteType: string;
  /** ISO 8601, millisecond precision. */
  modifiedAt: string;
  properties: Record<string, unknown>;
  /** Archived/deleted on the provider side; becomes a tombstone. */
  deleted: boolean;
  /** Ids that were merged into this record (they become aliases of it). */
  mergedIds: string[];
  /** The survivor this record was merged into (it becomes an alias of that one). */
  mergedInto?: string;
}

/** A record the adapter could not parse: reported with its reason, never dropped silently. */
export interface RecordError {
  remoteId: string | null;
  reason: string;
  /** Read by id, and the provider has no such record (deleted, merged away, never existed). */
  missing?: true;
}

export interface ChangePage {
  records: RemoteRecord[];
  errors: RecordError[];
  /** Where the next call continues; persisted after the page is written. */
  checkpoint: unknown;
  watermark: Watermark | null;
  done: boolean;
  /** Records the walk still has to read from this page on, this page included, when the
   * provider says (HubSpot search `total`, a Salesforce count): each page is a re-query, so it
   * is what remains, and the walk's estimate is what it read before this page plus this.
   * Absent when the provider gives no total (Pipedrive, HubSpot list pages after the first). */
  total?: number;
}

/** One record's identity and modification time, as a drift check compares them. */
export interface Stamp {
  remoteId: string;
  /** ISO 8601, millisecond precision: the same time RemoteRecord.modifiedAt carries. */
  modifiedAt: string;
}

/** One page of a stamps walk (ProviderAdapter.stamps). */
export interface StampPage {
  stamps: Stamp[];
  /** The whole records of the page, when the provider's listing cannot leave fields out
   * (Pipedrive v2, every provider's owners): the drift check applies the differing ones from
   * here instead of reading them again by id. */
  records?: RemoteRecord[];
  /** Listed records the adapter could not read a stamp from (they are re-read by id when they
   * have one). */
  errors: RecordError[];
  /** Where the next call continues (null when done); kept in the job's state between runs. */
  checkpoint: unknown;
  done: boolean;
}

export interface ListOptions {
  pageSize?: number;
  /** Aborts every request of the call (the run stopped). */
  signal?: AbortSignal;
  /** Epoch ms, the run's budget: no request, rate-limit wait or retry that would end past it is
   * started, and a request still open then is aborted. */
  deadline?: number;
  /** Report ChangePage.total even where it costs a call of its own (a list walk's first page, a
   * count): walks showing progress ask, live reads do not. Totals that come free with a page
   * are reported either way. */
  countTotal?: boolean;
  /** readByIds: false leaves out what the provider keeps apart from the record and costs calls
   * of its own (HubSpot associations, the `associations.<type>` properties): the records then
   * do not carry those properties at all (never as empty). Default true. */
  relations?: boolean;
}

/** Tokens the adapter obtained by refreshing; the caller persists them encrypted. */
export interface TokenSet {
  accessToken: string;
  refreshToken?: string;
  expiresAt?: string;
  instanceUrl?: string;
}

export interface ProviderDeps {
  baseUrl: string;
  credentials: Record<string, string>;
  /** Awaited before every API call: the per-connection rate limiter. A wait that would end past
   * `deadline` rejects (BudgetExhaustedError) instead of sleeping. */
  beforeRequest: (kind: string, o?: { signal?: AbortSignal; deadline?: number }) => Promise<void>;
  /** Longest wait for one HTTP answer (default DEFAULT_CALL_TIMEOUT_MS in ./call.ts). */
  callTimeoutMs?: number;
  onTokens: (tokens: TokenSet) => Promise<void>;
  /**
   * Single-flight refresh (sync/token_refresh.ts): `refresh` runs with the stored credentials
   * under the connection's lock, unless the stored access token is no longer `stale` (another
   * caller refreshed): then the stored tokens come back without a call. What it returns is
   * already persisted. Absent: the adapter refreshes with its own copy and calls onTokens.
   */
  refreshTokens?: (
    stale: string | undefined,
    refresh: (credentials: Record<string, string>) => Promise<TokenSet>,
  ) => Promise<TokenSet>;
  /** Counts API calls made, for sync_log. */
  countCall: (n?: number) => void;
  /**
   * Called with every CRM response (success or error, 429s included) of every adapter call, with
   * the `kind` the call passed to beforeRequest (each adapter's header lists its kinds), the
   * response's headers (rate-limit headers: X-HubSpot-RateLimit-*, Sforce-Limit-Info,
   * x-ratelimit-*) and, for errors, the parsed body when there is one (HubSpot's 429 policyName).
   * Synchronous: an observer that throws is logged, the request goes on (./observe.ts).
   */
  observe?: (o: { kind: string; status: number; headers: Headers; body?: unknown }) => void;
  log: (msg: string, extra?: Record<string, unknown>) => void;
  /** What describe calls learned (the fields an object has), shared beyond this instance: a
   * hit spares the CRM call. Entries older than `maxAgeMs` are misses. */
  describes?: {
    get(key: string, maxAgeMs: number): Promise<string[] | null>;
    put(key: string, fields: string[]): Promise<void>;
  };
}

/**
 * What the engine must know about a provider's listings, declared by its adapter so the engine
 * holds no provider names.
 */
export interface ProviderCapabilities {
  /**
   * How deleted records are found:
   * - "in-walk": the change walk returns them (deleted = true), in deltas and full walks;
   * - "listed-on-full": only a separate listing (deletedSince) finds them, and it cannot be
   *   bounded by time (it costs O(all deleted records)), so the engine runs it after a complete
   *   full walk (a backfill), never after a delta; the drift check needs no listing (it
   *   confirms by id the ids its stamps walk did not list);
   * - "sweep-only": nothing lists them; the full walk's sweep finds them.
   */
  deletions: "in-walk" | "listed-on-full" | "sweep-only";
  /** Objects whose listing has no modified-since filter: always walked whole. */
  alwaysFull: readonly ObjectType[];
}

export interface ProviderAdapter {
  readonly provider: ProviderName;
  /** The write side (outbound push). */
  readonly writer: ProviderWriter;
  readonly capabilities: ProviderCapabilities;
  /**
   * Records of `object` changed at or after the watermark, oldest first. `checkpoint` is what
   * the previous page returned (null to start from the watermark). Deleted/archived records
   * are included with deleted = true when the provider exposes them in the same walk.
   */
  changesSince(
    object: ObjectType,
    from: Watermark | null,
    checkpoint: unknown,
    opts?: ListOptions,
  ): Promise<ChangePage>;
  /**
   * Every live record of `object` as (remote id, modification time), in the provider's id order
   * with the fewest properties it allows and its largest page, for the drift check. Deleted
   * records are not listed (the check finds them as missing). `checkpoint` is what the previous
   * page returned (null to start).
   */
  stamps(object: ObjectType, checkpoint: unknown, opts?: ListOptions): Promise<StampPage>;
  /** Records deleted since a time, for providers that list deletions separately. */
  deletedSince(object: ObjectType, since: string, opts?: ListOptions): Promise<RemoteRecord[]>;
  readByIds(
    object: ObjectType,
    ids: string[],
    opts?: ListOptions,
  ): Promise<{ records: RemoteRecord[]; errors: RecordError[] }>;
}

// ---- Write side (outbound push) ----------------------------------------------------------------

/**
 * One change to send. `ref` is the caller's key for matching results (the outbox entry id).
 * `properties` are provider property names with values already in the provider's wire form
 * (../mapping outbound transforms); special keys an adapter interprets:
 * - HubSpot `associations.<toObjectType>`: string[] of remote ids, the full set of default
 *   associations of that type after the write (missing ones are created with the v4 batch
 *   endpoint once the objects exist; others of that type are removed);
 * - Pipedrive `emails` / `phones`: `[{ value, primary: true, label }]`, the primary entry only:
 *   the adapter keeps the record's other entries.
 */
export type WriteOp =
  | {
    kind: "create";
    ref: string;
    remoteType: string;
    /** Our stable id (the local uuid), written into the external-id property. */
    externalId: string;
    properties: Record<string, unknown>;
    /** An earlier attempt's outcome is unknown (timeout, crash before completion): the record
     * may exist already. Adapters whose create is not an upsert look it up by externalId first. */
    uncertain?: boolean;
  }
  | {
    kind: "update";
    ref: string;
    remoteType: string;
    remoteId: string;
    properties: Record<string, unknown>;
  }
  | { kind: "delete"; ref: string; remoteType: string; remoteId: string };

/**
 * What to do about an item the CRM did not take:
 * - retry: transient (429, 5xx, timeout, lock contention); back off and send again;
 * - reauth: credentials refused; the connection needs reconnecting;
 * - fix_data: the CRM rejected the values (validation, required field, duplicate rule): a dead
 *   letter with the CRM's message until the row is fixed and replayed;
 * - gone: an update of a record the CRM no longer has (deleted or merged away);
 * - dead_letter: permanent for another reason (permissions, unknown object).
 */
export type WriteAction = "retry" | "reauth" | "fix_data" | "gone" | "dead_letter";

export type WriteResult =
  | {
    ref: string;
    ok: true;
    remoteId: string;
    /** The record's modification time the write produced (ISO 8601), when the answer has it. */
    remoteVersion: string | null;
    /** True when this write made a new record (false: updated, deleted, or linked to an
     * existing record, e.g. HubSpot's 409 "already exists" resolved to that record). */
    created: boolean;
  }
  | {
    ref: string;
    ok: false;
    action: WriteAction;
    /** The CRM's own message (and error code) for the item. */
    message: string;
    status?: number;
    retryAfterMs?: number;
  };

export type ExternalIdSetup =
  | { ok: true; property: string; created: boolean }
  | { ok: false; reason: string };

export interface ProviderWriter {
  /** Most items one API call of this provider takes (HubSpot 100, Salesforce 200, Pipedrive 1). */
  readonly maxBatch: number;
  /** Most ops the engine passes to one write() call (several API calls for Pipedrive). */
  readonly chunk: number;
  /** The property holding our external id on `remoteType` (HubSpot `crm_sync_id`, Salesforce
   * `Crm_Sync_Id__c`, Pipedrive the custom field's key once known). */
  externalIdProperty(remoteType: string): Promise<string>;
  /** Creates the external-id property on `remoteType` if it is missing (HubSpot unique-value
   * property, Salesforce external-id field through the Tooling API, Pipedrive custom field).
   * `ok: false` with the CRM's reason when it cannot (missing permission). */
  ensureExternalId(remoteType: string, opts?: ListOptions): Promise<ExternalIdSetup>;
  /**
   * Sends `ops` (one object, any mix of kinds and remote types) with the batch endpoints and
   * returns exactly one result per op, by ref, in any order. Creates are idempotent (upsert by
   * external id, or looked up when `uncertain`). Item-level rejections are results; a failure
   * of a whole call that leaves every item's outcome unknown (429 after retries, 5xx, timeout,
   * refused credentials) is thrown as ProviderError.
   */
  write(object: ObjectType, ops: WriteOp[], opts?: ListOptions): Promise<WriteResult[]>;
}

/** Errors adapters throw, typed by what the caller should do next. */
export class ProviderError extends Error {
  constructor(
    message: string,
    readonly action: "retry" | "reauth" | "revoked" | "fatal",
    readonly status?: number,
    readonly retryAfterMs?: number,
    /** ISO time before which the connection's rate budget grants nothing (a 429 until the
     * window clears, the daily limit spent, only the reserve left): defer the job until then. */
    readonly pausedUntil?: string,
  ) {
    super(message);
    this.name = "ProviderError";
  }
}
