// Pipedrive write side (outbound push) through the `pipedrive` SDK: API v2 has no batch
// endpoint, so every op is its own call: POST /api/v2/{entity}, PATCH /api/v2/{entity}/{id},
// DELETE /api/v2/{entity}/{id} (maxBatch 1). One write() sends its ops with a small bounded
// concurrency, each call through the adapter's call helper (budget, counter, observe, timeout,
// retries of 429/5xx/timeouts), so one item's failure is that item's result only.
// Call kinds (beforeRequest / observe, priced by crm._rate_costs): "create", "update",
// "delete", "read" (GET a person before an email/phone/name update, and again before each retry
// of its PATCH: see updateJoined), "search" (v2 search of an
// uncertain create), "fields" (v1 field list), "fields-create" (v1 POST field).
// External id: a varchar custom field named `crm_sync_id` per entity, found by name in
// /v1/{person,organization,deal}Fields or created there (ensureExternalId); its 40-hex key is
// remembered per writer. Creates write our uuid into it; an `uncertain` create first searches
// /api/v2/{entity}/search?term=<uuid>&fields=custom_fields&exact_match=true and updates the
// hit (lowest id) instead. Limit: Pipedrive's search index lags writes by seconds, so a create
// retried within that lag can still duplicate; the engine's backoff before a retry covers it.
// Item errors: 400 → fix_data (Pipedrive's message), 404 on update → gone, 404 on delete →
// ok (already gone), 403 → dead_letter, 429/5xx/timeout after the retries → retry. Rejected
// credentials (401 after the refresh) throw ProviderError "revoked" for the whole write, as the
// read side does.
import * as v1 from "pipedrive/v1";
import * as v2 from "pipedrive/v2";
import {
  type Classification,
  DEFAULT_RETRY,
  parseRetryAfter,
  RetryExhaustedError,
  type RetryPolicy,
  sleep,
  withRetry,
} from "../http/retry.ts";
import { buildBody, completeWithStored, needsStored, type PdEntity } from "./pipedrive_body.ts";
import {
  type ExternalIdSetup,
  type ListOptions,
  type ObjectType,
  ProviderError,
  type ProviderWriter,
  type WriteOp,
  type WriteResult,
} from "./types.ts";

/** A create is sent once per write() (see create). */
const ONE_ATTEMPT: RetryPolicy = { ...DEFAULT_RETRY, maxAttempts: 1 };

export const EXTERNAL_ID_FIELD = "crm_sync_id";
/** Field types our uuid can live in and the search endpoints look into. */
const USABLE_TYPES = new Set(["varchar", "text", "varchar_auto"]);
const DEFAULT_CONCURRENCY = 4;

/** An HTTP error answer as the adapter's axios interceptor rejects it. */
export interface HttpAnswerError {
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

/** What the writer borrows from the adapter (./pipedrive.ts). */
export interface PipedriveWriterParts {
  /** The adapter's guarded call (budget, count, observe, timeout, retries, classify). */
  call: <T>(
    kind: string,
    fn: () => Promise<T>,
    o?: ListOptions,
    policy?: RetryPolicy,
  ) => Promise<T>;
  /** SDK API objects wired with the adapter's interceptors. */
  apis: {
    persons: v2.PersonsApi;
    organizations: v2.OrganizationsApi;
    deals: v2.DealsApi;
    personFields: v1.PersonFieldsApi;
    organizationFields: v1.OrganizationFieldsApi;
    dealFields: v1.DealFieldsApi;
  };
  isHttpError: (e: unknown) => e is HttpAnswerError;
  isoOf: (pd: string | null | undefined) => string | null;
}

type Answer<T> = { ok: true; data: T } | { ok: false; error: HttpAnswerError };

interface Item {
  id?: number;
  update_time?: string | null;
}

const OBJECT_ENTITY: Record<string, PdEntity> = {
  persons: "persons",
  person: "persons",
  contacts: "persons",
  organizations: "organizations",
  organization: "organizations",
  companies: "organizations",
  deals: "deals",
  deal: "deals",
};

function entityOf(remoteType: string | undefined, object?: ObjectType): PdEntity | null {
  return OBJECT_ENTITY[remoteType ?? ""] ?? (object ? OBJECT_ENTITY[object] ?? null : null);
}

/** Pipedrive's message of an error answer: `error` (and `code`) of the envelope. */
function messageOf(e: HttpAnswerError): string {
  const b = e.body as { error?: unknown; code?: unknown; error_info?: unknown } | undefined;
  const text = typeof b?.error === "string" ? b.error : JSON.stringify(e.body ?? null);
  const code = typeof b?.code === "string" ? ` (${b.code})` : "";
  return `${e.status} from Pipedrive: ${text}${code}`;
}

export function createPipedriveWriter(
  parts: PipedriveWriterParts,
  o: { concurrency?: number } = {},
): ProviderWriter {
  const { apis, isHttpError } = parts;
  const keys = new Map<PdEntity, string>();
  const concurrency = Math.max(1, o.concurrency ?? DEFAULT_CONCURRENCY);

  /** A call whose 4xx answers (other than 401 and 429, which the call helper handles) come
   * back as values; `last` keeps the last error answer a retried call saw. */
  async function answer<T>(
    kind: string,
    fn: () => Promise<T>,
    opts: ListOptions,
    last: { error?: HttpAnswerError },
    policy?: RetryPolicy,
  ): Promise<Answer<T>> {
    return await parts.call(
      kind,
      async () => {
        try {
          const data = await fn();
          last.error = undefined;
          return { ok: true as const, data };
        } catch (e) {
          if (isHttpError(e)) {
            last.error = e;
            if (e.status >= 400 && e.status < 500 && e.status !== 401 && e.status !== 429) {
              return { ok: false as const, error: e };
            }
          }
          throw e;
        }
      },
      opts,
      policy,
    );
  }

  // ---- external id ----------------------------------------------------------------------

  async function listFields(entity: PdEntity, opts: ListOptions) {
    const out: Array<{ key?: string; name?: string; field_type?: string }> = [];
    for (let start = 0, pages = 0; pages < 50; pages++) {
      const req = { start, limit: 500 };
      const res = await parts.call(
        "fields",
        () =>
          entity === "persons"
            ? apis.personFields.getPersonFields(req)
            : entity === "organizations"
            ? apis.organizationFields.getOrganizationFields(req)
            : apis.dealFields.getDealFields(req),
        opts,
      ) as {
        data?: Array<{ key?: string; name?: string; field_type?: string }> | null;
        additional_data?: {
          pagination?: { more_items_in_collection?: boolean; next_start?: number };
        };
      };
      out.push(...(res.data ?? []));
      const p = res.additional_data?.pagination;
      if (!p?.more_items_in_collection || p.next_start === undefined) break;
      start = p.next_start;
    }
    return out;
  }

  function findField(fields: Array<{ key?: string; name?: string; field_type?: string }>) {
    return fields.find((f) => f.name === EXTERNAL_ID_FIELD) ??
      fields.find((f) => f.name?.trim().toLowerCase() === EXTERNAL_ID_FIELD);
  }

  async function lookupKey(entity: PdEntity, opts: ListOptions): Promise<string | null> {
    const known = keys.get(entity);
    if (known) return known;
    const f = findField(await listFields(entity, opts));
    if (!f?.key || !USABLE_TYPES.has(f.field_type ?? "")) return null;
    keys.set(entity, f.key);
    return f.key;
  }

  async function ensureExternalId(
    remoteType: string,
    opts: ListOptions = {},
  ): Promise<ExternalIdSetup> {
    const entity = entityOf(remoteType);
    if (!entity) return { ok: false, reason: `unknown Pipedrive type ${remoteType}` };
    const known = keys.get(entity);
    if (known) return { ok: true, property: known, created: false };
    const existing = findField(await listFields(entity, opts));
    if (existing?.key) {
      if (!USABLE_TYPES.has(existing.field_type ?? "")) {
        return {
          ok: false,
          reason: `the ${entity} field ${EXTERNAL_ID_FIELD} has type ${existing.field_type}; ` +
            `it must be varchar (text) to hold and search the external id`,
        };
      }
      keys.set(entity, existing.key);
      return { ok: true, property: existing.key, created: false };
    }
    const req = {
      CreateFieldRequest: { name: EXTERNAL_ID_FIELD, field_type: "varchar" as const },
    };
    const res = await answer(
      "fields-create",
      (): Promise<{ data?: { key?: string } }> =>
        entity === "persons"
          ? apis.personFields.addPersonField(req)
          : entity === "organizations"
          ? apis.organizationFields.addOrganizationField(req)
          : apis.dealFields.addDealField(req),
      opts,
      {},
    );
    if (!res.ok) {
      return {
        ok: false,
        reason: `cannot create the ${entity} custom field ${EXTERNAL_ID_FIELD}: ${
          messageOf(res.error)
        }`,
      };
    }
    const made = res.data.data?.key;
    if (!made) {
      return { ok: false, reason: `Pipedrive created ${EXTERNAL_ID_FIELD} without a key` };
    }
    // Two runs that both found no field both create one: every writer settles on the first
    // field of that name in the list, so all of them write the same key.
    const key = findField(await listFields(entity, opts))?.key ?? made;
    keys.set(entity, key);
    return { ok: true, property: key, created: key === made };
  }

  // ---- one op ------------------------------------------------------------------------------

  const send = {
    create: (e: PdEntity, body: Record<string, unknown>): Promise<{ data?: Item }> =>
      e === "persons"
        ? apis.persons.addPerson({ AddPersonRequest: body as v2.AddPersonRequest })
        : e === "organizations"
        ? apis.organizations.addOrganization({
          AddOrganizationRequest: body as unknown as v2.AddOrganizationRequest,
        })
        : apis.deals.addDeal({ AddDealRequest: body as unknown as v2.AddDealRequest }),
    update: (e: PdEntity, id: number, body: Record<string, unknown>): Promise<{ data?: Item }> =>
      e === "persons"
        ? apis.persons.updatePerson({ id, UpdatePersonRequest: body as v2.UpdatePersonRequest })
        : e === "organizations"
        ? apis.organizations.updateOrganization({
          id,
          UpdateOrganizationRequest: body as v2.UpdateOrganizationRequest,
        })
        : apis.deals.updateDeal({ id, UpdateDealRequest: body as v2.UpdateDealRequest }),
    delete: (e: PdEntity, id: number): Promise<unknown> =>
      e === "persons"
        ? apis.persons.deletePerson({ id })
        : e === "organizations"
        ? apis.organizations.deleteOrganization({ id })
        : apis.deals.deleteDeal({ id }),
    search: (
      e: PdEntity,
      term: string,
    ): Promise<
      { data?: { items?: Array<{ item?: { id?: number; custom_fields?: string[] } }> } }
    > =>
      e === "persons"
        ? apis.persons.searchPersons({ term, fields: "custom_fields", exact_match: true })
        : e === "organizations"
        ? apis.organizations.searchOrganization({
          term,
          fields: "custom_fields",
          exact_match: true,
        })
        : apis.deals.searchDeals({ term, fields: "custom_fields", exact_match: true }),
  };

  function okResult(ref: string, item: Item | undefined, created: boolean, id?: string) {
    return {
      ref,
      ok: true as const,
      remoteId: String(item?.id ?? id),
      remoteVersion: parts.isoOf(item?.update_time),
      created,
    };
  }

  function rejected(ref: string, e: HttpAnswerError, kind: WriteOp["kind"]): WriteResult {
    const action = e.status === 400 || e.status === 422
      ? "fix_data"
      : e.status === 404 || e.status === 410
      ? (kind === "update" ? "gone" : "dead_letter")
      : "dead_letter";
    return { ref, ok: false, action, message: messageOf(e), status: e.status };
  }

  /** The record holding our external id, found by the v2 search (lowest id of exact hits). */
  async function findByExternalId(
    entity: PdEntity,
    externalId: string,
    opts: ListOptions,
  ): Promise<number | null | HttpAnswerError> {
    const res = await answer("search", () => send.search(entity, externalId), opts, {});
    if (!res.ok) return res.error;
    const want = externalId.toLowerCase();
    const ids = (res.data.data?.items ?? [])
      .filter((h) => (h.item?.custom_fields ?? []).some((v) => String(v).toLowerCase() === want))
      .map((h) => h.item?.id)
      .filter((id): id is number => typeof id === "number");
    return ids.length ? Math.min(...ids) : null;
  }

  const readPerson = (id: number, opts: ListOptions, last: { error?: HttpAnswerError }) =>
    answer(
      "read",
      async () => (await apis.persons.getPerson({ id })) as { data?: Record<string, unknown> },
      opts,
      last,
    );

  /**
   * A person update joined with the CRM's stored values (the other half of the name, the other
   * emails/phones). The PATCH is sent once per attempt, and a retried one (429, 5xx, timeout)
   * reads the person again first: the call helper's own retries resent the body joined from the
   * first read, after a backoff of up to seconds, and so overwrote a half a CRM user had changed
   * meanwhile (the chaos harness saw a PATCH retried after a 503 undo a last-name edit made
   * between the two attempts). The window left is one read's distance from its write.
   */
  async function updateJoined(
    op: Extract<WriteOp, { kind: "update" }>,
    id: number,
    parts_: ReturnType<typeof buildBody>,
    prefetched: Record<string, unknown> | undefined,
    opts: ListOptions,
    last: { error?: HttpAnswerError },
  ): Promise<WriteResult> {
    // Each attempt is one read (but the first, when the chunk's read found the person) and one
    // PATCH, each sent once; the attempts are retried by withRetry with the waits the call
    // helper makes (classifyPipedrive's 2 s for a 429 without Retry-After) and its caps.
    const attempt = async (n: number): Promise<WriteResult> => {
      let current = n === 1 ? prefetched : undefined;
      if (!current) {
        const got = await readPerson(id, opts, last);
        if (!got.ok) return rejected(op.ref, got.error, "update");
        current = got.data.data ?? {};
      }
      const body = completeWithStored(parts_, current);
      const res = await answer(
        "update",
        () => send.update("persons", id, body),
        opts,
        last,
        ONE_ATTEMPT,
      );
      return res.ok
        ? okResult(op.ref, res.data.data, false, op.remoteId)
        : rejected(op.ref, res.error, "update");
    };
    let failed: unknown;
    const classify = (e: unknown): Classification => {
      failed = e;
      if (!(e instanceof ProviderError) || e.action !== "retry" || e.pausedUntil) {
        return { kind: "fatal", reason: String(e) };
      }
      const afterMs = parseRetryAfter(last.error?.headers["retry-after"]) ??
        (last.error?.status === 429 ? 2000 : undefined);
      return { kind: "retry", reason: e.message, afterMs };
    };
    try {
      return await withRetry(attempt, classify, {
        // Aborted while waiting: the item's error stands, as the call helper's own abort does.
        sleep: (ms, signal) =>
          sleep(ms, signal).catch(() => {
            throw failed;
          }),
        signal: opts.signal,
        deadline: opts.deadline,
      });
    } catch (e) {
      // As the call helper does: the item's own error, retried later by the engine.
      if (e instanceof RetryExhaustedError && e.lastError instanceof ProviderError) {
        throw e.lastError;
      }
      throw e;
    }
  }

  async function one(
    op: WriteOp,
    entity: PdEntity,
    key: string | null,
    opts: ListOptions,
    last: { error?: HttpAnswerError },
    stored: ReadonlyMap<string, Record<string, unknown>>,
  ): Promise<WriteResult> {
    if (op.kind === "delete") {
      const id = Number(op.remoteId);
      const res = await answer("delete", () => send.delete(entity, id), opts, last);
      if (res.ok || res.error.status === 404 || res.error.status === 410) {
        return {
          ref: op.ref,
          ok: true,
          remoteId: op.remoteId,
          remoteVersion: null,
          created: false,
        };
      }
      return rejected(op.ref, res.error, "delete");
    }
    if (op.kind === "update") {
      const id = Number(op.remoteId);
      const parts_ = buildBody(entity, op.properties, "update");
      if (entity === "persons" && needsStored(parts_)) {
        return await updateJoined(op, id, parts_, stored.get(op.remoteId), opts, last);
      }
      const res = await answer("update", () => send.update(entity, id, parts_.body), opts, last);
      return res.ok ? okResult(op.ref, res.data.data, false, op.remoteId) : rejected(
        op.ref,
        res.error,
        "update",
      );
    }
    if (!key) {
      return {
        ref: op.ref,
        ok: false,
        action: "retry",
        message: `the ${entity} custom field ${EXTERNAL_ID_FIELD} is missing: creates wait ` +
          `until ensureExternalId has made it`,
      };
    }
    const { body } = buildBody(entity, op.properties, "create");
    body.custom_fields = { ...(body.custom_fields as object ?? {}), [key]: op.externalId };
    if (op.uncertain) {
      const hit = await findByExternalId(entity, op.externalId, opts);
      if (typeof hit === "object" && hit !== null) return rejected(op.ref, hit, "create");
      if (typeof hit === "number") {
        // Update the record the earlier attempt made, with the create's values (nulls left out
        // as on a create).
        const res = await answer("update", () => send.update(entity, hit, body), opts, last);
        if (res.ok) return okResult(op.ref, res.data.data, false, String(hit));
        if (res.error.status !== 404) return rejected(op.ref, res.error, "create");
        // Deleted since the search: create anew.
      }
    }
    // Not retried within the call: a POST that timed out or got a 5xx may have been applied,
    // and sending it again would make a second record. The item fails as retryable instead,
    // and its next attempt (an uncertain create) looks the record up first.
    const res = await answer("create", () => send.create(entity, body), opts, last, ONE_ATTEMPT);
    return res.ok ? okResult(op.ref, res.data.data, true) : rejected(op.ref, res.error, "create");
  }

  /**
   * Reads those persons 100 at a time by id (v2 `ids`) before the updates are sent: one call per
   * 100 updates instead of one each. The row's own other half is never sent: it may be older
   * than a CRM user's edit of it (found by the chaos harness). A person the listing does not
   * return, or a listing that failed, is read alone by the update itself.
   */
  async function prefetchPersons(
    ops: WriteOp[],
    entities: (PdEntity | null)[],
    opts: ListOptions,
  ): Promise<Map<string, Record<string, unknown>>> {
    const ids: string[] = [];
    for (const [i, op] of ops.entries()) {
      if (entities[i] !== "persons" || op.kind !== "update" || !/^\d+$/.test(op.remoteId)) continue;
      if (needsStored(buildBody("persons", op.properties, "update"))) ids.push(op.remoteId);
    }
    const found = new Map<string, Record<string, unknown>>();
    for (let k = 0; k < ids.length; k += 100) {
      const chunk = ids.slice(k, k + 100);
      try {
        const got = await answer(
          "read",
          async () =>
            (await apis.persons.getPersons({ ids: chunk.join(","), limit: 100 })) as {
              data?: Record<string, unknown>[] | null;
            },
          opts,
          {},
        );
        if (!got.ok) continue;
        for (const p of got.data.data ?? []) found.set(String(p.id), p);
      } catch (e) {
        if (!(e instanceof ProviderError) || e.action === "revoked" || e.action === "reauth") {
          throw e;
        }
      }
    }
    return found;
  }

  async function write(
    object: ObjectType,
    ops: WriteOp[],
    opts: ListOptions = {},
  ): Promise<WriteResult[]> {
    const results: WriteResult[] = new Array(ops.length);
    const entities = ops.map((op) => entityOf(op.remoteType, object));
    const keyOf = new Map<PdEntity, string | null>();
    for (const [i, op] of ops.entries()) {
      const e = entities[i];
      if (op.kind === "create" && e && !keyOf.has(e)) keyOf.set(e, await lookupKey(e, opts));
    }
    // The persons of this call's updates that need the CRM's stored values (the other half of
    // the name, the email and phone lists), as the CRM holds them now.
    const stored = await prefetchPersons(ops, entities, opts);
    let stopped: { message: string; retryAfterMs?: number } | null = null;
    let next = 0;
    let fatal: unknown = null;

    async function worker() {
      while (fatal === null) {
        const i = next++;
        if (i >= ops.length) return;
        const op = ops[i];
        const entity = entities[i];
        if (!entity) {
          results[i] = {
            ref: op.ref,
            ok: false,
            action: "dead_letter",
            message: `unknown Pipedrive type ${op.remoteType} for ${object}`,
          };
          continue;
        }
        if (op.kind !== "create" && !/^\d+$/.test(op.remoteId)) {
          results[i] = {
            ref: op.ref,
            ok: false,
            action: "dead_letter",
            message: `${op.remoteId} is not a Pipedrive id (a positive integer)`,
          };
          continue;
        }
        if (stopped) {
          results[i] = { ref: op.ref, ok: false, action: "retry", ...stopped };
          continue;
        }
        const last: { error?: HttpAnswerError } = {};
        try {
          results[i] = await one(op, entity, keyOf.get(entity) ?? null, opts, last, stored);
        } catch (e) {
          if (!(e instanceof ProviderError) || e.action === "revoked" || e.action === "reauth") {
            fatal = e;
            return;
          }
          const status = e.status ?? last.error?.status;
          const retryAfterMs = e.pausedUntil
            ? Math.max(0, Date.parse(e.pausedUntil) - Date.now())
            : e.retryAfterMs ?? parseRetryAfter(last.error?.headers["retry-after"]);
          results[i] = {
            ref: op.ref,
            ok: false,
            action: e.action === "retry" ? "retry" : "dead_letter",
            message: e.message,
            ...(status ? { status } : {}),
            ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
          };
          // Out of budget or time: the ops not started yet are not sent in this call.
          const outOfTime = opts.signal?.aborted ||
            (opts.deadline !== undefined && Date.now() >= opts.deadline);
          if (e.pausedUntil || outOfTime) {
            stopped = {
              message: `not sent: ${e.message}`,
              ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
            };
          }
        }
      }
    }

    await Promise.all(
      Array.from({ length: Math.min(concurrency, ops.length) }, () => worker()),
    );
    if (fatal !== null) throw fatal;
    return results;
  }

  return {
    maxBatch: 1,
    // 100: one v2 list by ids reads every person of a chunk that needs its stored values (the
    // list's page size); 100 PATCHes at the documented 80 requests / 2 s take 2.5 s.
    chunk: 100,
    // Persons' first and last name: sending the row's other half (to spare
    // the read) overwrote a concurrent CRM edit of that half, a field the app never changed
    // (found by the chaos harness, tests/chaos/regressions/pipedrive-*.json). An update of one
    // half reads the person and joins the CRM's current other half (completeWithStored).
    async externalIdProperty(remoteType) {
      const entity = entityOf(remoteType);
      if (!entity) throw new ProviderError(`unknown Pipedrive type ${remoteType}`, "fatal");
      const key = await lookupKey(entity, {});
      if (!key) {
        throw new ProviderError(
          `Pipedrive ${entity} have no custom field ${EXTERNAL_ID_FIELD} (ensureExternalId creates it)`,
          "fatal",
        );
      }
      return key;
    },
    ensureExternalId,
    write,
  };
}
