// HubSpot CRM v3 through @hubspot/api-client.
// Limits (developers.hubspot.com/docs/api/usage-details): 100-190 requests / 10 s per private
// app, search 5 requests / s, ≤ 200 results per search page, paging past 10,000 results of a
// query answers 400, batch endpoints take ≤ 100 inputs. Search filters contacts on
// `lastmodifieddate` and other objects on `hs_lastmodifieddate`.
// Walks: a walk from nothing (full walks, a stream's first delta) reads the list
// endpoint (GET /crm/v3/objects/{type}, ≤ 100 a page, by id, `after` cursor): no 10,000 cap and
// only the 10-second burst limit, so 100-190 requests × 100 records / 10 s, where search is
// 5/s × 200 and its own class. Deltas search by modification time (keyset, ./keyset.ts), the
// one thing the list cannot do. The list is not ordered by time, so its pages carry no
// watermark: a mid-walk watermark would let the next delta skip changes on pages not read yet.
// The last page's watermark is the earlier of the walk's start on HubSpot's clock (the first
// answer's Date header, whole seconds, ≤ the time that page was read) and the newest
// modification the walk listed. Every change before the start was read, since each record's
// page was read after it; a change after it on a page already read is what the next delta
// (from the watermark, less SEARCH_OVERLAP_MS) reads. Any earlier watermark is as safe, and the
// newest modification listed costs the delta nothing more (nothing else is modified between it
// and the start) while also catching a write whose modification time HubSpot set earlier than
// it became visible (search index lag, imports) when the walk ran on an idle portal.
// advance_cursor never moves the cursor back, so a later delta watermark stays.
// Call kinds (beforeRequest and observe): "list" (the walk's list pages), "search" (delta
// pages; its own 5/s class, without X-HubSpot-RateLimit-* headers), "associations" (v4 batch
// reads), "owners" (owner pages), "owner" (one owner by id), "batch-read" (records by id),
// "list-archived" (the archive listing); the writer's kinds are listed in ./hubspot_write.ts.
// Token refreshes are reported to observe only, as
// "oauth-token" (not gated by beforeRequest).
// The SDK's own retry and Bottleneck limiter are process-wide singletons, so we disable its
// retries and do limiting and retrying per connection in ./call.ts.
// Every request carries the call's timeout and signal (./hubspot_http.ts: the SDK has no option
// for either).
// Deletions: search never returns archived records, and the archived listing
// (GET /crm/v3/objects/{type}?archived=true) pages by id with no sort and no filter on archivedAt,
// so any "since" can only be applied after reading the whole archive. Listing it after every
// 5-minute delta made each delta cost O(archive); the adapter therefore declares deletions
// "listed-on-full": the engine lists the archive once per complete full walk (a backfill), and
// deltas cost nothing for deletions. The hourly drift check lists no archive either: it confirms
// the ids its stamps walk did not list by id (see Stamps). Between those, deletion webhooks carry
// them when subscribed.
// Stamps (drift checks): the list endpoint asking for the modification property alone (no
// associations, no other properties), 100 a page by id, through apiRequest so no SDK model is
// built per record. Archived and merged-away records are not listed: the drift check finds
// them as missing and confirms them by id (a batch read does not return them), so a drift check
// needs no archive listing.
// Associations are not properties: a field selection naming `associations.<toObject>` gets the
// ids inline on list pages (`associations=`: the walk stays at one call per 100 records, the
// burst ceiling) and one v4 batch read per target type on search and by-id pages (search has
// no `associations`), and they arrive as properties["associations.<toObject>"] = ["123", ...]
// (numeric order; [] when none).
// Totals (ChangePage.total, the walk's estimate): a forward search page reports its `total`,
// the records matching from its lower bound on (a re-query, so what remains; the overlap and
// the ties already seen make it a slight overcount); a tie page's total counts one instant only
// and is not reported. The list has no total: a list walk's first page asks search for it
// (limit 1, no filter: one search call per walk) when the caller asks (ListOptions.countTotal),
// later list pages report none. A failed total leaves it unknown and the walk goes on.
import { Client } from "@hubspot/api-client";
import { z } from "zod";
import type { Classification } from "../http/retry.ts";
import { parseRetryAfter } from "../http/retry.ts";
import { DEFAULT_CALL_TIMEOUT_MS, guardedCall, isNetworkError } from "./call.ts";
import { refreshAnswerError, refreshTransportError } from "./token_errors.ts";
import { missingIds } from "./missing.ts";
import { apiRequest, timed } from "./hubspot_http.ts";
import { createHubSpotWriter } from "./hubspot_write.ts";
import { observeResponse, observing, parseErrorBody } from "./observe.ts";
import { isoFromText } from "./iso.ts";
import { advance, initialState, type KeysetState, nextQuery } from "./keyset.ts";
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

const MODIFIED: Record<Exclude<ObjectType, "owners">, string> = {
  contacts: "lastmodifieddate",
  companies: "hs_lastmodifieddate",
  deals: "hs_lastmodifieddate",
};
const SEARCH_PAGE = 200;
const ASSOCIATIONS = "associations.";
/** Search lags recent writes by seconds; every delta re-reads this much before the watermark. */
export const SEARCH_OVERLAP_MS = 30_000;
/** The list endpoint's largest page. */
const LIST_PAGE = 100;

/** A list walk's checkpoint: the next page's cursor, the walk's start and the newest
 * modification listed so far (see the header). */
interface ListWalk {
  walk: "list";
  after: string;
  startedAt: string;
  newest: string | null;
}

function isListWalk(c: unknown): c is ListWalk {
  const w = c as ListWalk | null;
  return w?.walk === "list" && typeof w.after === "string" && typeof w.startedAt === "string";
}

/** HubSpot's time of an answer (its Date header), else ours when the request was made. */
function answeredAt(date: string | undefined, askedMs: number): string {
  const ms = date ? Date.parse(date) : NaN;
  return new Date(Number.isNaN(ms) ? askedMs : ms).toISOString();
}

/** Property values are text or null; checked in place (z.record copied every page's objects). */
function isPropertyMap(v: unknown): v is Record<string, string | null> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  for (const k in v) {
    const x = (v as Record<string, unknown>)[k];
    if (x !== null && typeof x !== "string") return false;
  }
  return true;
}

const RawObject = z.object({
  id: z.string().regex(/^\d+$/),
  properties: z.custom<Record<string, string | null>>(isPropertyMap, {
    message: "properties must map names to text or null",
  }),
  updatedAt: z.union([z.date(), z.string()]).optional(),
  archived: z.boolean().optional(),
  archivedAt: z.union([z.date(), z.string()]).optional().nullable(),
});

const RawOwner = z.object({
  id: z.string(),
  email: z.string().nullable().optional(),
  firstName: z.string().nullable().optional(),
  lastName: z.string().nullable().optional(),
  userId: z.number().nullable().optional(),
  archived: z.boolean().optional(),
  updatedAt: z.union([z.date(), z.string()]).optional(),
});

const ErrorBody = z.object({ policyName: z.string().optional(), category: z.string().optional() })
  .passthrough();

/** What the SDK's typed calls throw for a status outside 2xx (its ApiException). */
class HubSpotApiError extends Error {
  constructor(
    readonly code: number,
    readonly body: unknown,
    readonly headers: Record<string, string>,
  ) {
    super(
      `HTTP-Code: ${code}\nMessage: An error occurred.\nBody: ${JSON.stringify(body)}\nHeaders: ${
        JSON.stringify(headers)
      }`,
    );
  }
}

/** The SDK's ObjectSerializer.parse: JSON and text media types, anything else an error. */
function parseLikeSdk(text: string, contentType: string | undefined): unknown {
  const media = contentType?.split(";")[0].trim().toLowerCase();
  if (media === undefined) throw new Error("Cannot parse content. No Content-Type defined.");
  const [type = "", subtype = ""] = media.split("/");
  if (type === "text") return text;
  if (type === "application" && subtype.split("+").includes("json")) return JSON.parse(text);
  throw new Error(`The mediaType ${media} is not supported by ObjectSerializer.parse.`);
}

function iso(v: Date | string | undefined | null): string | null {
  if (!v) return null;
  if (typeof v === "string" && !/^\d+$/.test(v)) return isoFromText(v);
  const d = v instanceof Date ? v : new Date(Number(v));
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

export function classifyHubSpot(e: unknown): Classification {
  const code = (e as { code?: number }).code;
  if (typeof code !== "number") {
    return isNetworkError(e) ? { kind: "retry", reason: `network: ${(e as Error).message}` } : {
      kind: "fatal",
      reason: String((e as Error)?.message ?? e),
    };
  }
  const headers = (e as { headers?: Record<string, string> }).headers ?? {};
  const body = ErrorBody.safeParse((e as { body?: unknown }).body);
  if (code === 429) {
    const policy = body.success ? body.data.policyName : undefined;
    // TEN_SECONDLY_ROLLING clears within the window; DAILY will not clear during this run.
    if (policy === "DAILY") return { kind: "fatal", reason: "HubSpot daily API limit reached" };
    // HubSpot sends no Retry-After; the rolling windows (10 s app, 1 s search) clear
    // gradually, so a one-second pause followed by exponential backoff is enough.
    const after = parseRetryAfter(headers["retry-after"]) ?? 1000;
    return { kind: "retry", reason: `429 ${policy ?? "rate limited"}`, afterMs: after };
  }
  if (code === 401) return { kind: "reauth", reason: "401 from HubSpot" };
  if (code >= 500 || code === 0) return { kind: "retry", reason: `${code} from HubSpot` };
  return { kind: "fatal", reason: `${code} from HubSpot: ${(e as Error).message?.slice(0, 300)}` };
}

export interface HubSpotCredentials {
  accessToken: string;
  refreshToken?: string;
  clientId?: string;
  clientSecret?: string;
}

export function createHubSpotAdapter(
  deps: ProviderDeps,
  properties: Partial<Record<ObjectType, string[]>>,
): ProviderAdapter {
  let accessToken = deps.credentials.accessToken;
  const client = () =>
    new Client({
      accessToken,
      basePath: deps.baseUrl.replace(/\/$/, ""),
      numberOfApiCallRetries: 0,
    });
  let hs = client();

  // One refresh with the given credentials (the stored ones under deps.refreshTokens).
  async function requestTokens(c: Record<string, string>): Promise<TokenSet> {
    const { refreshToken, clientId, clientSecret } = c;
    if (!refreshToken || !clientId || !clientSecret) {
      throw new ProviderError(
        "HubSpot rejected the access token and no refresh token is stored",
        "revoked",
        401,
      );
    }
    deps.countCall();
    let res: Response;
    try {
      res = await fetch(`${deps.baseUrl.replace(/\/$/, "")}/oauth/v1/token`, {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({
          grant_type: "refresh_token",
          refresh_token: refreshToken,
          client_id: clientId,
          client_secret: clientSecret,
        }),
        signal: AbortSignal.timeout(deps.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS),
      });
    } catch (e) {
      throw refreshTransportError("HubSpot", e);
    }
    const text = await res.text().catch(() => "");
    // Reported under its own kind: the token endpoint is not an API call beforeRequest gates.
    observeResponse(res.status, res.headers, res.ok ? undefined : parseErrorBody(text), {
      kind: "oauth-token",
      deps,
    });
    const body = (() => {
      try {
        return JSON.parse(text) ?? {};
      } catch {
        return {};
      }
    })();
    if (!res.ok || typeof body.access_token !== "string") {
      throw refreshAnswerError("HubSpot", res.status, body);
    }
    return {
      accessToken: body.access_token,
      refreshToken: body.refresh_token ?? refreshToken,
      expiresAt: typeof body.expires_in === "number"
        ? new Date(Date.now() + body.expires_in * 1000).toISOString()
        : undefined,
    };
  }

  async function refresh() {
    const tokens = deps.refreshTokens
      ? await deps.refreshTokens(accessToken, requestTokens)
      : await requestTokens(deps.credentials).then(async (t) => {
        await deps.onTokens(t);
        return t;
      });
    accessToken = tokens.accessToken;
    hs = client();
  }

  const call = <T>(kind: string, fn: () => Promise<T>, o: ListOptions = {}) =>
    guardedCall(deps, observing(deps, kind, fn), {
      kind,
      classify: classifyHubSpot,
      refresh,
      signal: o.signal,
      deadline: o.deadline,
    });

  function toRecord(object: ObjectType, raw: unknown): RemoteRecord | RecordError {
    const parsed = RawObject.safeParse(raw);
    if (!parsed.success) {
      return {
        remoteId: (raw as { id?: string })?.id ?? null,
        reason: `unexpected HubSpot shape: ${parsed.error.message}`,
      };
    }
    const o = parsed.data;
    const mod = object === "owners" ? null : o.properties[MODIFIED[object]];
    const modifiedAt = iso(mod) ?? iso(o.updatedAt as string | Date | undefined);
    if (!modifiedAt) return { remoteId: o.id, reason: "record has no modification time" };
    const merged = o.properties.hs_merged_object_ids;
    return {
      remoteId: o.id,
      remoteType: object,
      modifiedAt,
      properties: o.properties,
      deleted: Boolean(o.archived),
      mergedIds: merged ? merged.split(";").map((s) => s.trim()).filter(Boolean) : [],
    };
  }

  function split(object: ObjectType, raws: unknown[]) {
    const records: RemoteRecord[] = [];
    const errors: RecordError[] = [];
    for (const raw of raws) {
      const r = toRecord(object, raw);
      if ("reason" in r) errors.push(r);
      else records.push(r);
    }
    return { records, errors };
  }

  function api(object: Exclude<ObjectType, "owners">) {
    return hs.crm[object];
  }

  /**
   * One search page through the SDK's apiRequest rather than the typed searchApi, which turns
   * every result into model instances (a type lookup per property, Date objects): ~10 µs a
   * record that RawObject validates again anyway (sent as apiRequest would, with the call's
   * signal: ./hubspot_http.ts). Outcomes keep the typed call's shapes: the
   * parsed body, and for any other status an ApiException-shaped error (code, parsed body,
   * headers, same message); bodies the SDK cannot parse fail the same way.
   */
  async function search(object: Exclude<ObjectType, "owners">, body: unknown) {
    const res = await apiRequest(hs, {
      method: "POST",
      path: `/crm/v3/objects/${object}/search`,
      body: body as Record<string, unknown>,
    });
    const data = parseLikeSdk(res.text, res.headers.get("content-type") ?? undefined);
    if (res.status < 200 || res.status > 299) {
      const headers: Record<string, string> = {};
      res.headers.forEach((v, k) => headers[k] = v);
      throw new HubSpotApiError(res.status, data, headers);
    }
    const results = (data as { results?: unknown } | null)?.results;
    if (!Array.isArray(results)) throw new Error("HubSpot search answered without results");
    const total = (data as { total?: unknown }).total;
    return { results, total: typeof total === "number" && total >= 0 ? total : undefined };
  }

  /** Every live record of `object` as search counts them (see Totals in the header). */
  async function countAll(
    object: Exclude<ObjectType, "owners">,
    opts: ListOptions,
  ): Promise<number | undefined> {
    try {
      const body = { properties: ["hs_object_id"], limit: 1 };
      return (await call("search", () => search(object, body), opts)).total;
    } catch (e) {
      if (opts.signal?.aborted) throw e;
      return undefined;
    }
  }

  function propsFor(object: Exclude<ObjectType, "owners">): string[] {
    return [
      ...new Set([
        ...(properties[object] ?? []).filter((p) => !p.startsWith(ASSOCIATIONS)),
        MODIFIED[object],
        "hs_object_id",
        "hs_merged_object_ids",
      ]),
    ];
  }

  const associationTargets = (object: ObjectType): string[] => [
    ...new Set(
      (properties[object] ?? []).filter((p) => p.startsWith(ASSOCIATIONS)).map((p) =>
        p.slice(ASSOCIATIONS.length)
      ),
    ),
  ];

  /**
   * Adds the associated ids of each target type to the records of one page (≤ 200 inputs per
   * call). A record's own `paging` (very many associations) is not followed: the list holds the
   * first page, enough for the `association` transform's single id.
   */
  async function addAssociations(
    object: Exclude<ObjectType, "owners">,
    records: RemoteRecord[],
    opts: ListOptions,
  ): Promise<void> {
    if (records.length === 0) return;
    for (const to of associationTargets(object)) {
      const res = await call(
        "associations",
        () =>
          timed(hs.crm.associations.v4.batchApi).getPage(object, to, {
            inputs: records.map((r) => ({ id: r.remoteId })),
          }),
        opts,
      );
      const byId = new Map<string, string[]>();
      for (const row of res.results) {
        const ids = row.to.map((t) => String(t.toObjectId));
        // Numeric order on digit strings: shorter first, then lexical (no float parsing).
        byId.set(
          String(row._from.id),
          ids.sort((a, b) => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0)),
        );
      }
      // Records without any come back as per-input errors (207): no association.
      for (const r of records) r.properties[ASSOCIATIONS + to] = byId.get(r.remoteId) ?? [];
    }
  }

  /** Sets each record's associations from a list page's inline ones; returns the records whose
   * inline list has more pages. */
  function inlineAssociations(
    records: RemoteRecord[],
    raws: unknown[],
    targets: string[],
  ): RemoteRecord[] {
    if (targets.length === 0) return [];
    type Inline = { results?: Array<{ id: unknown }>; paging?: { next?: unknown } };
    const byId = new Map<string, Record<string, Inline | undefined>>();
    for (const raw of raws as Array<{ id?: unknown; associations?: Record<string, Inline> }>) {
      byId.set(String(raw.id), raw.associations ?? {});
    }
    const paged: RemoteRecord[] = [];
    for (const r of records) {
      const inline = byId.get(r.remoteId) ?? {};
      for (const to of targets) {
        const a = inline[to];
        if (a?.paging?.next) paged.push(r);
        // Labelled and unlabelled types list the same id twice.
        const ids = [...new Set((a?.results ?? []).map((x) => String(x.id)))];
        r.properties[ASSOCIATIONS + to] = ids.sort((x, y) =>
          x.length - y.length || (x < y ? -1 : x > y ? 1 : 0)
        );
      }
    }
    return [...new Set(paged)];
  }

  /** One page of a list walk (see the header): properties and associations as search pages. */
  async function listPage(
    object: Exclude<ObjectType, "owners">,
    walk: ListWalk | null,
    opts: ListOptions,
  ): Promise<ChangePage> {
    const size = Math.min(opts.pageSize ?? LIST_PAGE, LIST_PAGE);
    const askedMs = Date.now();
    const targets = associationTargets(object);
    const [res, total] = await Promise.all([
      call(
        "list",
        () =>
          timed(api(object).basicApi).getPageWithHttpInfo(
            size,
            walk?.after,
            propsFor(object),
            undefined,
            targets.length ? targets : undefined,
          ),
        opts,
      ),
      walk === null && opts.countTotal ? countAll(object, opts) : Promise.resolve(undefined),
    ]);
    const startedAt = walk?.startedAt ?? answeredAt(res.headers["date"], askedMs);
    const { records, errors } = split(object, res.data.results);
    // The list answers associated ids inline (`associations=`), so a list page costs one call
    // where the v4 batch read costs one more per target type; a record whose inline list is
    // paged (very many associations) is read again through the batch endpoint.
    const paged = inlineAssociations(records, res.data.results, targets);
    if (paged.length) await addAssociations(object, paged, opts);
    // ISO 8601 UTC with milliseconds (iso()): text order is time order.
    const newest = records.reduce<string | null>(
      (n, r) => (n === null || r.modifiedAt > n ? r.modifiedAt : n),
      walk?.newest ?? null,
    );
    const after = res.data.paging?.next?.after;
    if (after) {
      return {
        records,
        errors,
        checkpoint: { walk: "list", after, startedAt, newest } satisfies ListWalk,
        watermark: null,
        done: false,
        ...(total === undefined ? {} : { total }),
      };
    }
    // remoteId "": nothing at that instant is claimed read (ids sort after "").
    const at = newest !== null && newest < startedAt ? newest : startedAt;
    return {
      records,
      errors,
      checkpoint: null,
      watermark: { modifiedAt: at, remoteId: "" },
      done: true,
      ...(total === undefined ? {} : { total }),
    };
  }

  /** One stamps page (see the header): `{ after }` is the list's cursor. */
  async function stampPage(
    object: Exclude<ObjectType, "owners">,
    checkpoint: unknown,
    opts: ListOptions,
  ): Promise<StampPage> {
    const after = (checkpoint as { after?: unknown } | null)?.after;
    const size = Math.min(opts.pageSize ?? LIST_PAGE, LIST_PAGE);
    const qs = new URLSearchParams({ limit: String(size), properties: MODIFIED[object] });
    if (typeof after === "string") qs.set("after", after);
    const res = await call("list", async () => {
      const r = await apiRequest(hs, { method: "GET", path: `/crm/v3/objects/${object}?${qs}` });
      const data = parseLikeSdk(r.text, r.headers.get("content-type") ?? undefined);
      if (r.status < 200 || r.status > 299) {
        const headers: Record<string, string> = {};
        r.headers.forEach((v, k) => headers[k] = v);
        throw new HubSpotApiError(r.status, data, headers);
      }
      return data as { results?: unknown; paging?: { next?: { after?: unknown } } } | null;
    }, opts);
    if (!Array.isArray(res?.results)) throw new Error("HubSpot list answered without results");
    const stamps: Stamp[] = [];
    const errors: RecordError[] = [];
    for (const raw of res.results as Array<Record<string, unknown>>) {
      const id = typeof raw?.id === "string" && /^\d+$/.test(raw.id) ? raw.id : null;
      const props = raw?.properties as Record<string, unknown> | undefined;
      const mod = props?.[MODIFIED[object]];
      const at = iso(typeof mod === "string" ? mod : null) ??
        iso(typeof raw?.updatedAt === "string" ? raw.updatedAt : null);
      if (id && at) stamps.push({ remoteId: id, modifiedAt: at });
      else errors.push({ remoteId: id, reason: "listed without an id or a modification time" });
    }
    const next = res.paging?.next?.after;
    return typeof next === "string"
      ? { stamps, errors, checkpoint: { after: next }, done: false }
      : { stamps, errors, checkpoint: null, done: true };
  }

  async function owners(checkpoint: unknown, opts: ListOptions): Promise<ChangePage> {
    const after = typeof checkpoint === "string" ? checkpoint : undefined;
    const page = await call(
      "owners",
      () => timed(hs.crm.owners.ownersApi).getPage(undefined, after, 500, false),
      opts,
    );
    const records: RemoteRecord[] = [];
    const errors: RecordError[] = [];
    for (const raw of page.results) {
      const p = RawOwner.safeParse(raw);
      if (!p.success) {
        errors.push({
          remoteId: (raw as { id?: string }).id ?? null,
          reason: `unexpected owner shape: ${p.error.message}`,
        });
        continue;
      }
      records.push({
        remoteId: p.data.id,
        remoteType: "owners",
        modifiedAt: iso(p.data.updatedAt as string | Date | undefined) ?? new Date(0).toISOString(),
        properties: {
          email: p.data.email ?? null,
          firstName: p.data.firstName ?? null,
          lastName: p.data.lastName ?? null,
          userId: p.data.userId ?? null,
          archived: Boolean(p.data.archived),
        },
        // An archived owner is a deactivated user (owners.active), not a deleted record.
        deleted: false,
        mergedIds: [],
      });
    }
    const next = page.paging?.next?.after ?? null;
    return { records, errors, checkpoint: next, watermark: null, done: next === null };
  }

  return {
    provider: "hubspot",
    writer: createHubSpotWriter({ sdk: () => hs, call }),
    capabilities: { deletions: "listed-on-full", alwaysFull: ["owners"] },

    async changesSince(object, from, checkpoint, opts = {}) {
      if (object === "owners") return await owners(checkpoint, opts);
      // A walk from nothing lists; a list walk continues as one. A search checkpoint (a delta's,
      // or a full walk saved before walks listed) continues its search.
      if (isListWalk(checkpoint)) return await listPage(object, checkpoint, opts);
      if (checkpoint == null && from === null) return await listPage(object, null, opts);
      const size = Math.min(opts.pageSize ?? SEARCH_PAGE, SEARCH_PAGE);
      const state: KeysetState = (checkpoint as KeysetState | null) ??
        initialState(from ? Math.max(0, Date.parse(from.modifiedAt) - SEARCH_OVERLAP_MS) : 0);
      const q = nextQuery(state);
      const mod = MODIFIED[object];
      const request = q.kind === "tie"
        ? {
          filterGroups: [{
            filters: [
              { propertyName: mod, operator: "EQ", value: String(q.t) },
              { propertyName: "hs_object_id", operator: "GT", value: q.afterId },
            ],
          }],
          sorts: [{ propertyName: "hs_object_id", direction: "ASCENDING" }],
        }
        : {
          filterGroups: [{
            filters: [{
              propertyName: mod,
              operator: q.op === "gt" ? "GT" : "GTE",
              value: String(q.t),
            }],
          }],
          sorts: [{ propertyName: mod, direction: "ASCENDING" }],
        };
      const res = await call(
        "search",
        () => search(object, { ...request, properties: propsFor(object), limit: size }),
        opts,
      );
      const { records, errors } = split(object, res.results);
      const keyed = records.map((r) => ({
        id: r.remoteId,
        modifiedMs: Date.parse(r.modifiedAt),
        r,
      }));
      const step = advance(state, keyed, size);
      const fresh = step.fresh.map((k) => k.r);
      await addAssociations(object, fresh, opts);
      const last = fresh.at(-1);
      const watermark: Watermark | null = last
        ? { modifiedAt: last.modifiedAt, remoteId: last.remoteId }
        : null;
      const total = q.kind === "forward" ? res.total : undefined;
      return {
        records: fresh,
        errors,
        checkpoint: step.state,
        watermark,
        done: step.done,
        ...(total === undefined ? {} : { total }),
      };
    },

    async stamps(object, checkpoint, opts = {}) {
      if (object !== "owners") return await stampPage(object, checkpoint, opts);
      // Owners are few and listed whole: the page's records are its stamps.
      const page = await owners(checkpoint, opts);
      return {
        stamps: page.records.map((r) => ({ remoteId: r.remoteId, modifiedAt: r.modifiedAt })),
        records: page.records,
        errors: page.errors,
        checkpoint: page.checkpoint,
        done: page.done,
      };
    },

    async deletedSince(object, since, opts = {}) {
      if (object === "owners") return [];
      const out: RemoteRecord[] = [];
      const sinceMs = Date.parse(since);
      let after: string | undefined;
      do {
        const page = await call(
          "list-archived",
          () =>
            timed(api(object).basicApi).getPage(
              100,
              after,
              [MODIFIED[object]],
              undefined,
              undefined,
              true,
            ),
          opts,
        );
        for (const raw of page.results) {
          const r = toRecord(object, { ...raw, archived: true });
          const at = iso((raw as { archivedAt?: Date }).archivedAt) ??
            ("modifiedAt" in r ? r.modifiedAt : null);
          if ("reason" in r || !at || Date.parse(at) < sinceMs) continue;
          out.push({ ...r, modifiedAt: at, deleted: true });
        }
        after = page.paging?.next?.after;
      } while (after);
      return out;
    },

    async readByIds(object, ids, opts = {}) {
      if (object === "owners") {
        const records: RemoteRecord[] = [];
        for (const id of ids) {
          const o = await call(
            "owner",
            () => timed(hs.crm.owners.ownersApi).getById(Number(id)),
            opts,
          );
          records.push({
            remoteId: String(o.id),
            remoteType: "owners",
            modifiedAt: iso(o.updatedAt) ?? new Date(0).toISOString(),
            properties: {
              email: o.email ?? null,
              firstName: o.firstName ?? null,
              lastName: o.lastName ?? null,
              userId: o.userId ?? null,
              archived: Boolean(o.archived),
            },
            deleted: false,
            mergedIds: [],
          });
        }
        return { records, errors: [] };
      }
      const records: RemoteRecord[] = [];
      const errors: RecordError[] = [];
      for (let i = 0; i < ids.length; i += 100) {
        const chunk = ids.slice(i, i + 100);
        const res = await call(
          "batch-read",
          () =>
            timed(api(object).batchApi).read(
              {
                inputs: chunk.map((id) => ({ id })),
                properties: propsFor(object),
                propertiesWithHistory: [],
              },
              false,
            ),
          opts,
        );
        const got = split(object, res.results);
        if (opts.relations !== false) await addAssociations(object, got.records, opts);
        records.push(...got.records);
        errors.push(...got.errors);
        errors.push(...missingIds("HubSpot", chunk, [...got.records, ...got.errors]));
      }
      return { records, errors };
    },
  };
}
