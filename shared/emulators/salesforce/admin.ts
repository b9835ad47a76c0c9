/**
 * Salesforce-specific admin API: record operations as an org user (changes
 * fire outbound messages like any save; CreatedById/LastModifiedById name that
 * user, not the API user), outbound message configuration, API limits,
 * undelete, the API user's permissions (Customize Application, for the Tooling
 * API), validation rules, the org's custom fields and who the users are.
 */
import { z } from "zod";
import { AdminError, type AdminStore, type ModifiedSelection } from "../common/emulator.ts";
import { json } from "../common/http.ts";
import type { SalesforceEmulator } from "./emulator.ts";
import { SfError } from "./errors.ts";
import { objectName, type SfObject, SOBJECTS } from "./schema.ts";
import { recordJson } from "./sobjects.ts";
import type { SfRecord } from "./store.ts";
import { OutboundConfigSchema } from "./outbound.ts";
import { ValidationRulesSchema } from "./validation_rules.ts";

function typeOf(object: string): SfObject {
  const t = objectName(object);
  if (!t) throw new AdminError(404, `unknown object ${object}`);
  return t;
}

function asAdmin<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof SfError) throw new AdminError(e.status, e.message);
    throw e;
  }
}

export class SalesforceAdminStore implements AdminStore {
  constructor(private sf: SalesforceEmulator) {}

  objects(): string[] {
    return [...SOBJECTS];
  }

  full(r: SfRecord) {
    return {
      ...recordJson(this.sf.store.schema, r, "62.0"),
      IsDeleted: r.isDeleted,
      deletedDate: r.deletedAt === null ? null : new Date(r.deletedAt).toISOString(),
    };
  }

  dump(object?: string): unknown {
    const s = this.sf.store;
    if (object) return s.tables[typeOf(object)].bySeq.map((r) => this.full(r));
    return {
      orgId: this.sf.creds.orgId,
      ...Object.fromEntries(SOBJECTS.map((t) => [t, s.tables[t].bySeq.map((r) => this.full(r))])),
    };
  }

  get(object: string, id: string): unknown {
    const r = this.sf.store.find(typeOf(object), id);
    return r ? this.full(r) : undefined;
  }

  create(object: string, data: Record<string, unknown>): unknown {
    const t = typeOf(object);
    return asAdmin(() => this.full(this.sf.store.insert(t, data, "app")));
  }

  update(object: string, id: string, data: Record<string, unknown>): unknown {
    const t = typeOf(object);
    return asAdmin(() => this.full(this.sf.store.update(t, id, data, "app")));
  }

  remove(object: string, id: string): unknown {
    const t = typeOf(object);
    return asAdmin(() => this.full(this.sf.store.delete(t, id, "app")));
  }

  merge(object: string, primaryId: string, mergedId: string): unknown {
    const t = typeOf(object);
    return asAdmin(() => this.full(this.sf.store.merge(t, primaryId, mergedId, "app")));
  }

  setModified(object: string, selection: ModifiedSelection, modifiedAt: number): string[] {
    return this.sf.store.setModified(typeOf(object), selection, modifiedAt);
  }

  reseed(seed: number, records: number): void {
    this.sf.outbound.cancel();
    this.sf.reseed(seed, records);
  }
}

const LimitsSchema = z.object({
  dailyApiRequests: z.number().int().min(0).optional(),
  queryBatchSize: z.number().int().min(200).max(2000).optional(),
}).strict();

export function registerSalesforceAdmin(sf: SalesforceEmulator): void {
  const a = sf.admin;
  a.get(
    "/__admin/outbound",
    () => json({ ...sf.outbound.config, actionIds: sf.outbound.actionIds }),
  );
  a.put("/__admin/outbound", async ({ req }) => {
    const cfg = OutboundConfigSchema.parse(await sf.adminBody(req));
    try {
      return json(sf.outbound.configure(cfg));
    } catch (e) {
      throw new AdminError(400, (e as Error).message);
    }
  });
  a.delete("/__admin/outbound", () => json(sf.outbound.configure({})));
  a.post("/__admin/outbound/flush", () => {
    sf.outbound.flush();
    return json({ ok: true, pending: sf.queue.pending });
  });

  a.get(
    "/__admin/limits",
    () =>
      json({
        dailyApiRequests: sf.daily.limit,
        used: sf.daily.used(sf.creds.orgId, sf.now()),
        queryBatchSize: sf.queryBatchSize,
      }),
  );
  a.put("/__admin/limits", async ({ req }) => {
    const b = LimitsSchema.parse(await sf.adminBody(req));
    if (b.dailyApiRequests !== undefined) sf.daily.limit = b.dailyApiRequests;
    if (b.queryBatchSize !== undefined) sf.queryBatchSize = b.queryBatchSize;
    return json({ ok: true });
  });
  a.post("/__admin/limits/reset-usage", () => {
    sf.daily.reset();
    return json({ ok: true });
  });

  a.get(
    "/__admin/users",
    () => json({ apiUserId: sf.store.apiUserId, adminUserId: sf.store.adminUserId }),
  );

  const PermissionsSchema = z.object({ customizeApplication: z.boolean() }).strict();
  a.get("/__admin/permissions", () => json(sf.permissions));
  a.put("/__admin/permissions", async ({ req }) => {
    Object.assign(sf.permissions, PermissionsSchema.parse(await sf.adminBody(req)));
    return json(sf.permissions);
  });

  a.get("/__admin/validation-rules", () => json(sf.store.rules));
  a.put("/__admin/validation-rules", async ({ req }) => {
    sf.store.rules = ValidationRulesSchema.parse(await sf.adminBody(req));
    return json(sf.store.rules);
  });
  a.delete("/__admin/validation-rules", () => {
    sf.store.rules = [];
    return json([]);
  });

  a.get("/__admin/custom-fields", () =>
    json(
      sf.store.schema.custom().map((c) => ({
        object: c.object,
        name: c.field.name,
        length: c.field.length,
        externalId: !!c.field.externalId,
        unique: !!c.field.unique,
      })),
    ));

  a.post("/__admin/records/:object/:id/undelete", ({ params }) => {
    const t = typeOf(params.object);
    return json(
      asAdmin(() => recordJson(sf.store.schema, sf.store.undelete(t, params.id, "app"), "62.0")),
    );
  });
}
