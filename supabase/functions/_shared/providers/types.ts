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
}

export interface ListOptions {
  pageSize?: number;
  /** Aborts every request of the call (the run stopped). */
  signal?: AbortSignal;
  /** Epoch ms, the run's budget: no request, rate-limit wait or retry that would end past it is
   * started, and a request still open then is aborted. */
  deadline?: number;
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
   *   full walk (the hourly drift check), never after a delta;
   * - "sweep-only": nothing lists them; the full walk's sweep finds them.
   */
  deletions: "in-walk" | "listed-on-full" | "sweep-only";
  /** Objects whose listing has no modified-since filter: always walked whole. */
  alwaysFull: readonly ObjectType[];
}

export interface ProviderAdapter {
  readonly provider: ProviderName;
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
  /** Records deleted since a time, for providers that list deletions separately. */
  deletedSince(object: ObjectType, since: string, opts?: ListOptions): Promise<RemoteRecord[]>;
  readByIds(
    object: ObjectType,
    ids: string[],
    opts?: ListOptions,
  ): Promise<{ records: RemoteRecord[]; errors: RecordError[] }>;
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
