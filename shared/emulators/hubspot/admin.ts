/**
 * HubSpot-specific admin API: record operations "as a CRM user" (events
 * carry changeSource CRM_UI), webhook configuration, rate limits, restore,
 * GDPR delete and associations.
 */
import { z } from "zod";
import { AdminError, type AdminStore, type ModifiedSelection } from "../common/emulator.ts";
import { json } from "../common/http.ts";
import type { HubSpotEmulator } from "./emulator.ts";
import { HsError } from "./errors.ts";
import { type HsObjectType, OBJECT_TYPES, objectTypeFromPath } from "./properties.ts";
import { toApiObject } from "./serialize.ts";
import type { HsRecord } from "./store.ts";
import { HubSpotWebhookConfigSchema } from "./webhooks.ts";

function typeOf(object: string): HsObjectType {
  const t = objectTypeFromPath(object);
  if (!t) throw new AdminError(404, `unknown object ${object}`);
  return t;
}

/** HubSpot errors raised by the store become admin errors with the same text. */
function asAdmin<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof HsError) throw new AdminError(e.status, `${e.category}: ${e.message}`);
    throw e;
  }
}

function propsOf(data: Record<string, unknown>): Record<string, unknown> {
  return data.properties && typeof data.properties === "object"
    ? data.properties as Record<string, unknown>
    : data;
}

export class HubSpotAdminStore implements AdminStore {
  constructor(private hs: HubSpotEmulator) {}

  objects(): string[] {
    return [...OBJECT_TYPES];
  }

  full(r: HsRecord) {
    const s = this.hs.store;
    return {
      id: r.id,
      properties: { ...r.properties },
      createdAt: new Date(r.createdAt).toISOString(),
      updatedAt: new Date(r.modifiedAt).toISOString(),
      archived: r.archived,
      archivedAt: r.archivedAt === null ? null : new Date(r.archivedAt).toISOString(),
      mergedInto: r.mergedInto,
      // Who last changed each property (INTEGRATION + app id for API writes, CRM_UI for
      // admin edits): tests tell the engine's echoes from user edits by it.
      propertySources: Object.fromEntries(
        Object.entries(r.sources ?? {}).map(([k, v]) => [k, {
          source: v.source,
          sourceId: v.sourceId,
          at: new Date(v.at).toISOString(),
        }]),
      ),
      associations: s.associations(r.type, r.id).map((a) => ({
        type: a.type,
        id: a.id,
        primary: a.primary,
      })),
    };
  }

  dump(object?: string): unknown {
    const s = this.hs.store;
    if (object === "owners") return s.owners;
    if (object) return s.tables[typeOf(object)].bySeq.map((r) => this.full(r));
    return {
      portalId: this.hs.creds.portalId,
      owners: s.owners,
      contacts: s.tables.contacts.bySeq.map((r) => this.full(r)),
      companies: s.tables.companies.bySeq.map((r) => this.full(r)),
      deals: s.tables.deals.bySeq.map((r) => this.full(r)),
    };
  }

  get(object: string, id: string): unknown {
    const r = this.hs.store.tables[typeOf(object)].get(id);
    return r ? this.full(r) : undefined;
  }

  create(object: string, data: Record<string, unknown>): unknown {
    const t = typeOf(object);
    return asAdmin(() => {
      const r = this.hs.store.create(t, propsOf(data), "CRM_UI");
      return toApiObject(this.hs.store, r, { properties: Object.keys(r.properties) });
    });
  }

  update(object: string, id: string, data: Record<string, unknown>): unknown {
    const t = typeOf(object);
    return asAdmin(() => {
      const r = this.hs.store.update(t, id, propsOf(data), "CRM_UI");
      return toApiObject(this.hs.store, r, { properties: Object.keys(r.properties) });
    });
  }

  remove(object: string, id: string): unknown {
    const ok = this.hs.store.archive(typeOf(object), id, "CRM_UI");
    if (!ok) throw new AdminError(404, `no live ${object} ${id}`);
    return { archived: true, id };
  }

  merge(object: string, primaryId: string, mergedId: string): unknown {
    const t = typeOf(object);
    return asAdmin(() => this.full(this.hs.store.merge(t, primaryId, mergedId, "CRM_UI")));
  }

  setModified(object: string, selection: ModifiedSelection, modifiedAt: number): string[] {
    return this.hs.store.setModified(typeOf(object), selection, modifiedAt);
  }

  reseed(seed: number, records: number): void {
    this.hs.webhooks.cancel();
    this.hs.reseed(seed, records);
  }
}

const RateLimitSchema = z.object({
  tenSecondly: z.number().int().min(0).optional(),
  intervalMs: z.number().int().min(1).optional(),
  daily: z.number().int().min(0).optional(),
  searchPerSecond: z.number().int().min(0).optional(),
  searchMaxResults: z.number().int().min(1).optional(),
  searchLagMs: z.number().int().min(0).optional(),
  fault429Policy: z.enum(["TEN_SECONDLY_ROLLING", "SECONDLY"]).optional(),
}).strict();

const AssociationSchema = z.object({
  fromType: z.string(),
  fromId: z.union([z.string(), z.number()]).transform(String),
  toType: z.string(),
  toId: z.union([z.string(), z.number()]).transform(String),
  primary: z.boolean().default(false),
});

export function registerHubSpotAdmin(hs: HubSpotEmulator): void {
  const a = hs.admin;
  const body = (req: Request) => hs.adminBody(req);

  a.get(
    "/__admin/webhooks",
    () => json({ ...hs.webhooks.config, subscriptions: hs.webhooks.subscriptions }),
  );
  a.put(
    "/__admin/webhooks",
    async ({ req }) =>
      json(hs.webhooks.configure(HubSpotWebhookConfigSchema.parse(await body(req)))),
  );
  a.delete("/__admin/webhooks", () => json(hs.webhooks.configure({})));
  a.post("/__admin/webhooks/flush", () => {
    hs.webhooks.flush();
    return json({ ok: true, pending: hs.queue.pending });
  });

  a.get("/__admin/rate-limit", () =>
    json({
      tenSecondly: hs.limiter.max,
      intervalMs: hs.limiter.windowMs,
      daily: hs.daily.limit,
      searchPerSecond: hs.searchLimiter.max,
      searchMaxResults: hs.searchMaxResults,
      searchLagMs: hs.searchLagMs,
      fault429Policy: hs.fault429Policy,
    }));
  a.put("/__admin/rate-limit", async ({ req }) => {
    const b = RateLimitSchema.parse(await body(req));
    if (b.tenSecondly !== undefined || b.intervalMs !== undefined) {
      hs.limiter.configure(b.tenSecondly ?? hs.limiter.max, b.intervalMs ?? hs.limiter.windowMs);
    }
    if (b.daily !== undefined) {
      hs.daily.limit = b.daily;
      hs.daily.reset();
    }
    if (b.searchPerSecond !== undefined) hs.searchLimiter.configure(b.searchPerSecond, 1000);
    if (b.searchMaxResults !== undefined) hs.searchMaxResults = b.searchMaxResults;
    if (b.searchLagMs !== undefined) hs.searchLagMs = b.searchLagMs;
    if (b.fault429Policy !== undefined) hs.fault429Policy = b.fault429Policy;
    return json({ ok: true });
  });

  // Scopes the app lacks (e.g. crm.schemas.contacts.write: creating properties answers 403).
  a.get("/__admin/scopes", () => json({ denied: [...hs.deniedScopes] }));
  a.put("/__admin/scopes", async ({ req }) => {
    const b = z.object({ denied: z.array(z.string()) }).strict().parse(await body(req));
    hs.deniedScopes.clear();
    for (const s of b.denied) hs.deniedScopes.add(s);
    return json({ denied: [...hs.deniedScopes] });
  });

  // The next `count` requests matching `routeFilter` are applied but never answered.
  a.put("/__admin/lost-answers", async ({ req }) => {
    const b = z.object({
      routeFilter: z.string().min(1),
      count: z.number().int().min(0).default(1),
      holdMs: z.number().int().min(0).max(600_000).default(60_000),
    }).strict().parse(await body(req));
    hs.lostAnswers = b;
    return json(b);
  });

  a.post("/__admin/records/:object/:id/restore", ({ params }) => {
    const t = typeOf(params.object);
    return json(asAdmin(() => toApiObject(hs.store, hs.store.restore(t, params.id, "CRM_UI"))));
  });
  a.post("/__admin/records/:object/:id/gdpr-delete", ({ params }) => {
    const t = typeOf(params.object);
    if (t !== "contacts") throw new AdminError(400, "GDPR delete applies to contacts only");
    if (!hs.store.purge(t, params.id, "CRM_UI")) {
      throw new AdminError(404, `no contact ${params.id}`);
    }
    return json({ purged: true, id: params.id });
  });

  a.put("/__admin/associations", async ({ req }) => {
    const b = AssociationSchema.parse(await body(req));
    asAdmin(() =>
      hs.store.associate(
        typeOf(b.fromType),
        b.fromId,
        typeOf(b.toType),
        b.toId,
        b.primary,
        "CRM_UI",
      )
    );
    return json({ ok: true });
  });
  a.delete("/__admin/associations", async ({ req }) => {
    const b = AssociationSchema.parse(await body(req));
    return json({
      removed: hs.store.dissociate(
        typeOf(b.fromType),
        b.fromId,
        typeOf(b.toType),
        b.toId,
        "CRM_UI",
      ),
    });
  });
}
