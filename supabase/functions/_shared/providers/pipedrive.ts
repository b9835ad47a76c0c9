// Pipedrive API v2 (persons, organizations, deals) and v1 (users) through the `pipedrive` SDK.
// Incremental reads: `updated_since` (inclusive, second precision) with sort_by=update_time
// ascending and the API's own cursor, which has no depth cap; a finished walk saves the last
// (update_time, id) and the next run starts at that second again (re-reading only records of
// that second, which apply_inbound reports as unchanged). v2 lists never return deleted items,
// so deletions are found by full walks (their sweep) and the drift check (unlisted ids
// confirmed by id) rather than deltas.
// The SDK rejects with the bare error body (no status, no headers) and never retries; we replace
// its axios response interceptors so errors keep their status and Retry-After, and add a request
// interceptor that gives each request the call's AbortSignal and timeout (./call.ts callScope;
// the SDK's methods take no request options). The response interceptors also report every
// response (./observe.ts): status, headers (x-ratelimit-limit/-remaining/-reset, and the daily
// budget's headers when the account has one) and, for errors, the body (a 429's envelope).
// Call kinds (beforeRequest and observe): "list" (v2 list pages), "list-ids" (v2 lists by
// ids), "users" (v1 users); the writer's kinds are listed in ./pipedrive_write.ts. A token's daily budget charges list calls more than reads by id
// and v1 more than v2, so the kinds name the cost class.
// Stamps (drift checks): v2 lists carry whole records and take no field selection, so the
// stamps walk is the list itself at its largest page (500, by id, the API's cursor); the page's
// records travel with its stamps and the differing ones are applied from them, without a second
// read. The check therefore moves as many bytes as a full walk; it saves the writes and the
// reads by id, not the listing.
import * as v1 from "pipedrive/v1";
import * as v2 from "pipedrive/v2";
import { z } from "zod";
import type { Classification } from "../http/retry.ts";
import { parseRetryAfter } from "../http/retry.ts";
import type { RetryPolicy } from "../http/retry.ts";
import { callScope, guardedCall, isNetworkError } from "./call.ts";
import { observeResponse, observing } from "./observe.ts";
import { missingIds } from "./missing.ts";
import { pipedriveRefresher } from "./pipedrive_oauth.ts";
import { createPipedriveWriter } from "./pipedrive_write.ts";
import {
  type ChangePage,
  type ListOptions,
  type ObjectType,
  type ProviderAdapter,
  type ProviderDeps,
  type RecordError,
  type RemoteRecord,
  type StampPage,
  type Watermark,
} from "./types.ts";

const PAGE = 500;

export class PipedriveHttpError extends Error {
  constructor(
    readonly status: number,
    readonly headers: Record<string, string>,
    readonly body: unknown,
  ) {
    super(`${status} from Pipedrive: ${JSON.stringify(body).slice(0, 300)}`);
    this.name = "PipedriveHttpError";
  }
}

const RawItem = z.object({
  id: z.number().int(),
  update_time: z.string().nullable().optional(),
  is_deleted: z.boolean().optional(),
  // A merge loser's survivor, where an item reports it (webhook payloads name it; v2 lists
  // never return deleted items).
  merged_to_id: z.union([z.number(), z.string()]).nullable().optional(),
}).passthrough();

interface Walk {
  since: string | null;
  cursor: string | null;
}

export function isoOf(pd: string | null | undefined): string | null {
  if (!pd) return null;
  const d = new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(pd) ? pd : `${pd.replace(" ", "T")}Z`);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

/** Pipedrive wants RFC 3339 without milliseconds. */
function pdTime(iso: string): string {
  return new Date(iso).toISOString().replace(/\.\d{3}Z$/, "Z");
}

export function classifyPipedrive(e: unknown): Classification {
  if (e instanceof PipedriveHttpError) {
    if (e.status === 429) {
      return {
        kind: "retry",
        reason: "429 from Pipedrive",
        afterMs: parseRetryAfter(e.headers["retry-after"]) ?? 2000,
      };
    }
    if (e.status === 401) return { kind: "reauth", reason: "401 from Pipedrive" };
    if (e.status >= 500) return { kind: "retry", reason: `${e.status} from Pipedrive` };
    return { kind: "fatal", reason: e.message };
  }
  if (isNetworkError(e)) return { kind: "retry", reason: `network: ${(e as Error).message}` };
  return { kind: "fatal", reason: String((e as Error)?.message ?? e) };
}

// deno-lint-ignore no-explicit-any
type AnyApi = { axios: any };

/** axios response headers (AxiosHeaders) as plain name → value. */
function plainHeaders(h: unknown): Record<string, string> {
  const raw = (h as { toJSON?: () => unknown })?.toJSON?.() ?? h ?? {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (v !== undefined && v !== null) out[k] = Array.isArray(v) ? v.join(", ") : String(v);
  }
  return out;
}

interface AxiosAnswer {
  status: number;
  headers: unknown;
  data?: unknown;
}

/** Swap the SDK's interceptors for ones that keep status and headers on errors and report
 * every response (see the header). */
function withHttpErrors<T extends AnyApi>(api: T): T {
  api.axios.interceptors.request.use((config: Record<string, unknown>) => {
    const scope = callScope.getStore();
    return scope ? { ...config, signal: scope.signal, timeout: scope.timeoutMs } : config;
  });
  api.axios.interceptors.response.clear();
  api.axios.interceptors.response.use(
    (res: AxiosAnswer) => {
      if (res) observeResponse(res.status, plainHeaders(res.headers));
      return res?.data ?? res;
    },
    (err: { response?: AxiosAnswer }) => {
      if (!err.response) return Promise.reject(err);
      const headers = plainHeaders(err.response.headers);
      observeResponse(err.response.status, headers, err.response.data);
      return Promise.reject(
        new PipedriveHttpError(err.response.status, headers, err.response.data),
      );
    },
  );
  return api;
}

/** One v2 item or v1 user as a RemoteRecord (exported for tests). */
export function toRemoteRecord(object: ObjectType, raw: unknown): RemoteRecord | RecordError {
  const p = RawItem.safeParse(raw);
  if (!p.success) {
    return {
      remoteId: String((raw as { id?: unknown })?.id ?? "") || null,
      reason: `unexpected Pipedrive shape: ${p.error.message}`,
    };
  }
  const modifiedAt = isoOf(p.data.update_time ?? (p.data as { modified?: string }).modified) ??
    new Date(0).toISOString();
  const mergedInto = p.data.merged_to_id ? String(p.data.merged_to_id) : undefined;
  return {
    remoteId: String(p.data.id),
    remoteType: object,
    modifiedAt,
    properties: p.data,
    // A deactivated user (active_flag false) is still an owner: owners.active says so.
    // v1 items other than users used active_flag = false for deleted.
    deleted: Boolean(p.data.is_deleted) ||
      (object !== "owners" && (p.data as { active_flag?: boolean }).active_flag === false),
    mergedIds: [],
    ...(mergedInto ? { mergedInto } : {}),
  };
}

export function createPipedriveAdapter(deps: ProviderDeps): ProviderAdapter {
  const base = deps.baseUrl.replace(/\/$/, "");
  const c = deps.credentials;
  let access = c.accessToken;
  const auth = c.accessToken ? { accessToken: () => access } : { apiKey: c.apiToken };
  const refresh = pipedriveRefresher(deps, () => access, (t) => {
    access = t;
  });
  const cfg2 = new v2.Configuration({ ...auth, basePath: `${base}/api/v2` });
  const cfg1 = new v1.Configuration({ ...auth, basePath: `${base}/v1` });
  const apis = {
    contacts: withHttpErrors(new v2.PersonsApi(cfg2) as unknown as v2.PersonsApi & AnyApi),
    companies: withHttpErrors(
      new v2.OrganizationsApi(cfg2) as unknown as v2.OrganizationsApi & AnyApi,
    ),
    deals: withHttpErrors(new v2.DealsApi(cfg2) as unknown as v2.DealsApi & AnyApi),
    owners: withHttpErrors(new v1.UsersApi(cfg1) as unknown as v1.UsersApi & AnyApi),
  };

  const call = <T>(
    kind: string,
    fn: () => Promise<T>,
    o: ListOptions = {},
    policy?: RetryPolicy,
  ) =>
    guardedCall(deps, observing(deps, kind, fn), {
      kind,
      classify: classifyPipedrive,
      signal: o.signal,
      deadline: o.deadline,
      policy,
      refresh,
    });

  function split(object: ObjectType, raws: unknown[]) {
    const records: RemoteRecord[] = [];
    const errors: RecordError[] = [];
    for (const raw of raws) {
      const r = toRemoteRecord(object, raw);
      if ("reason" in r) errors.push(r);
      else records.push(r);
    }
    return { records, errors };
  }

  async function page(
    object: Exclude<ObjectType, "owners">,
    w: Walk,
    limit: number,
    opts: ListOptions,
  ) {
    const params = {
      sort_by: "update_time" as const,
      sort_direction: "asc" as const,
      limit,
      ...(w.since ? { updated_since: pdTime(w.since) } : {}),
      ...(w.cursor ? { cursor: w.cursor } : {}),
    };
    const fetchPage = (): Promise<
      { data?: unknown[] | null; additional_data?: { next_cursor?: string | null } | null }
    > =>
      object === "contacts"
        ? apis.contacts.getPersons(params)
        : object === "companies"
        ? apis.companies.getOrganizations(params)
        : apis.deals.getDeals(params);
    return await call("list", fetchPage, opts);
  }

  const writer = createPipedriveWriter({
    call,
    apis: {
      persons: apis.contacts,
      organizations: apis.companies,
      deals: apis.deals,
      personFields: withHttpErrors(
        new v1.PersonFieldsApi(cfg1) as unknown as v1.PersonFieldsApi & AnyApi,
      ),
      organizationFields: withHttpErrors(
        new v1.OrganizationFieldsApi(cfg1) as unknown as v1.OrganizationFieldsApi & AnyApi,
      ),
      dealFields: withHttpErrors(
        new v1.DealFieldsApi(cfg1) as unknown as v1.DealFieldsApi & AnyApi,
      ),
    },
    isHttpError: (e): e is PipedriveHttpError => e instanceof PipedriveHttpError,
    isoOf,
  });

  return {
    provider: "pipedrive",
    writer,
    // v2 lists never return deleted items and nothing lists them: the full walk's sweep does.
    capabilities: { deletions: "sweep-only", alwaysFull: ["owners"] },

    async changesSince(object, from, checkpoint, opts = {}) {
      if (object === "owners") {
        const res = await call("users", () => apis.owners.getUsers(), opts) as {
          data?: unknown[] | null;
        };
        const { records, errors } = split("owners", res.data ?? []);
        return { records, errors, checkpoint: null, watermark: null, done: true };
      }
      const size = Math.min(opts.pageSize ?? PAGE, PAGE);
      const w: Walk = (checkpoint as Walk | null) ??
        { since: from?.modifiedAt ?? null, cursor: null };
      const res = await page(object, w, size, opts);
      const { records, errors } = split(object, res.data ?? []);
      const next = res.additional_data?.next_cursor ?? null;
      const last = records.at(-1);
      const watermark: Watermark | null = next === null && last
        ? { modifiedAt: last.modifiedAt, remoteId: last.remoteId }
        : next === null && from
        ? from
        : null;
      return {
        records,
        errors,
        checkpoint: next === null ? null : { since: w.since, cursor: next },
        watermark,
        done: next === null,
      } satisfies ChangePage;
    },

    async stamps(object, checkpoint, opts = {}): Promise<StampPage> {
      let records: RemoteRecord[];
      let errors: RecordError[];
      let next: string | null = null;
      if (object === "owners") {
        const res = await call("users", () => apis.owners.getUsers(), opts) as {
          data?: unknown[] | null;
        };
        ({ records, errors } = split("owners", res.data ?? []));
      } else {
        const cursor = (checkpoint as { cursor?: unknown } | null)?.cursor;
        const params = { limit: PAGE, ...(typeof cursor === "string" ? { cursor } : {}) };
        const res = await call(
          "list",
          (): Promise<
            { data?: unknown[] | null; additional_data?: { next_cursor?: string | null } | null }
          > =>
            object === "contacts"
              ? apis.contacts.getPersons(params)
              : object === "companies"
              ? apis.companies.getOrganizations(params)
              : apis.deals.getDeals(params),
          opts,
        );
        ({ records, errors } = split(object, res.data ?? []));
        next = res.additional_data?.next_cursor ?? null;
      }
      return {
        stamps: records.map((r) => ({ remoteId: r.remoteId, modifiedAt: r.modifiedAt })),
        records,
        errors,
        checkpoint: next === null ? null : { cursor: next },
        done: next === null,
      };
    },

    deletedSince() {
      // API v2 lists omit deleted items; full walks and the drift check detect them instead.
      return Promise.resolve([]);
    },

    async readByIds(object, ids, opts = {}) {
      if (object === "owners") {
        const res = await call("users", () => apis.owners.getUsers(), opts) as {
          data?: unknown[] | null;
        };
        const all = split("owners", res.data ?? []);
        const want = new Set(ids);
        return { records: all.records.filter((r) => want.has(r.remoteId)), errors: all.errors };
      }
      const records: RemoteRecord[] = [];
      const errors: RecordError[] = [];
      for (let i = 0; i < ids.length; i += 100) {
        const chunk = ids.slice(i, i + 100).filter((id) => /^\d+$/.test(id));
        const params = { ids: chunk.join(","), limit: 100 };
        const res = await call(
          "list-ids",
          (): Promise<{ data?: unknown[] | null }> =>
            object === "contacts"
              ? apis.contacts.getPersons(params)
              : object === "companies"
              ? apis.companies.getOrganizations(params)
              : apis.deals.getDeals(params),
          opts,
        );
        const got = split(object, res.data ?? []);
        records.push(...got.records);
        errors.push(...got.errors);
      }
      errors.push(...missingIds("Pipedrive", ids, [...records, ...errors]));
      return { records, errors };
    },
  };
}
