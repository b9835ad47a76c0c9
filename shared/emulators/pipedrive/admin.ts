/**
 * Pipedrive-specific admin API: record operations as a user in the web app
 * (webhooks carry change_source "app"), webhook configuration and rate limits.
 * Record objects: person, organization, deal, lead (singular, as in webhooks).
 */
import { z } from "zod";
import { AdminError, type AdminStore, type ModifiedSelection } from "../common/emulator.ts";
import { json } from "../common/http.ts";
import type { PipedriveEmulator } from "./emulator.ts";
import { PdError } from "./errors.ts";
import type { PdEntity } from "./fields.ts";
import { leadJson, v2Json } from "./serialize.ts";
import type { PdRecord } from "./store.ts";
import { AdminWebhookSchema } from "./webhooks.ts";
import { RequestFaultsSchema } from "./request_faults.ts";

const ENTITIES: PdEntity[] = ["person", "organization", "deal", "lead"];

function entityOf(object: string): PdEntity {
  const e = ENTITIES.find((x) =>
    x === object || `${x}s` === object || (x === "person" && object === "persons")
  );
  if (!e) throw new AdminError(404, `unknown object ${object}`);
  return e;
}

function asAdmin<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof PdError) throw new AdminError(e.status, e.message);
    throw e;
  }
}

export class PipedriveAdminStore implements AdminStore {
  constructor(private pd: PipedriveEmulator) {}

  objects(): string[] {
    return [...ENTITIES];
  }

  full(r: PdRecord): Record<string, unknown> {
    const base = r.entity === "lead" ? leadJson(r) : v2Json(r);
    const c = r.lastChange;
    return {
      ...base,
      is_deleted: r.isDeleted,
      merged_to_id: r.mergedTo,
      // Who made the last change (null: seeded): "api" for API writes, "app" for admin edits.
      last_change: c
        ? {
          action: c.action,
          change_source: c.source,
          user_id: c.userId,
          at: new Date(c.at).toISOString(),
        }
        : null,
    };
  }

  dump(object?: string): unknown {
    const s = this.pd.store;
    if (object) return s.tables[entityOf(object)].bySeq.map((r) => this.full(r));
    return {
      companyId: this.pd.creds.companyId,
      users: s.users,
      customFields: s.fields,
      ...Object.fromEntries(ENTITIES.map((e) => [e, s.tables[e].bySeq.map((r) => this.full(r))])),
    };
  }

  get(object: string, id: string): unknown {
    const r = this.pd.store.get(entityOf(object), id);
    return r ? this.full(r) : undefined;
  }

  create(object: string, data: Record<string, unknown>): unknown {
    const e = entityOf(object);
    return asAdmin(() => this.full(this.pd.store.create(e, data, "app")));
  }

  update(object: string, id: string, data: Record<string, unknown>): unknown {
    const e = entityOf(object);
    return asAdmin(() => this.full(this.pd.store.update(e, id, data, "app")));
  }

  remove(object: string, id: string): unknown {
    const e = entityOf(object);
    return asAdmin(() => this.full(this.pd.store.delete(e, id, "app")));
  }

  merge(object: string, primaryId: string, mergedId: string): unknown {
    const e = entityOf(object);
    return asAdmin(() => this.full(this.pd.store.merge(e, primaryId, mergedId, "app")));
  }

  setModified(object: string, selection: ModifiedSelection, modifiedAt: number): string[] {
    return this.pd.store.setModified(entityOf(object), selection, modifiedAt);
  }

  reseed(seed: number, records: number): void {
    this.pd.reseed(seed, records);
  }
}

const PermissionsSchema = z.object({ customFields: z.boolean().optional() }).strict();

const RateLimitSchema = z.object({
  burst: z.number().int().min(0).optional(),
  windowMs: z.number().int().min(1).optional(),
  dailyTokens: z.number().int().min(0).optional(),
}).strict();

export function registerPipedriveAdmin(pd: PipedriveEmulator): void {
  const a = pd.admin;
  let adminHook: number | null = null;

  a.get(
    "/__admin/webhooks",
    () =>
      json({
        webhooks: pd.webhooks.list(),
        timeoutMs: pd.webhooks.timeoutMs,
        retryDelaysMs: pd.webhooks.retryDelaysMs,
      }),
  );
  a.put("/__admin/webhooks", async ({ req }) => {
    const b = AdminWebhookSchema.parse(await pd.adminBody(req));
    if (adminHook !== null) pd.webhooks.remove(adminHook);
    if (b.timeoutMs !== undefined) pd.webhooks.timeoutMs = b.timeoutMs;
    if (b.retryDelaysMs !== undefined) pd.webhooks.retryDelaysMs = b.retryDelaysMs;
    const w = asAdmin(() =>
      pd.webhooks.add({
        subscription_url: b.url,
        event_action: b.eventAction,
        event_object: b.eventObject,
        user_id: 1,
        http_auth_user: b.httpAuthUser,
        http_auth_password: b.httpAuthPassword,
        version: "2.0",
        name: "sandbox admin webhook",
      })
    );
    adminHook = w.id;
    return json(pd.webhooks.toJson(w));
  });
  a.delete("/__admin/webhooks", () => {
    pd.webhooks.clear();
    adminHook = null;
    return json({ ok: true });
  });

  // Every change since the last reset, oldest first: ?entity=person&id=12&source=api&since=<seq>.
  a.get("/__admin/changes", ({ url }) => {
    const q = url.searchParams;
    const entity = q.get("entity") ? entityOf(q.get("entity")!) : null;
    const id = q.get("id"), source = q.get("source");
    const since = Number(q.get("since") ?? 0);
    return json({
      changes: pd.store.changeLog.filter((c) =>
        c.seq > since && (entity === null || c.entity === entity) &&
        (id === null || c.id === id) && (source === null || c.source === source)
      ),
    });
  });

  a.get("/__admin/permissions", () => json(pd.permissions));
  a.put("/__admin/permissions", async ({ req }) => {
    const b = PermissionsSchema.parse(await pd.adminBody(req));
    if (b.customFields !== undefined) pd.permissions.customFields = b.customFields;
    return json(pd.permissions);
  });

  a.get(
    "/__admin/request-faults",
    () => json({ rules: pd.requestFaults.list(), injected: pd.requestFaults.injected }),
  );
  a.put("/__admin/request-faults", async ({ req }) => {
    const b = RequestFaultsSchema.parse(await pd.adminBody(req));
    pd.requestFaults.set(b.rules);
    return json({ rules: pd.requestFaults.list() });
  });
  a.delete("/__admin/request-faults", () => {
    pd.requestFaults.clear();
    return json({ ok: true });
  });

  a.get(
    "/__admin/rate-limit",
    () =>
      json({ burst: pd.limiter.max, windowMs: pd.limiter.windowMs, dailyTokens: pd.daily.limit }),
  );
  a.put("/__admin/rate-limit", async ({ req }) => {
    const b = RateLimitSchema.parse(await pd.adminBody(req));
    if (b.burst !== undefined || b.windowMs !== undefined) {
      pd.limiter.configure(b.burst ?? pd.limiter.max, b.windowMs ?? pd.limiter.windowMs);
    }
    if (b.dailyTokens !== undefined) {
      pd.daily.limit = b.dailyTokens;
      pd.daily.reset();
    }
    return json({ ok: true });
  });
}
