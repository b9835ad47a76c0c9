// Pipedrive webhooks v2: HTTP basic auth (the only authentication Pipedrive offers) and the
// delivery (one event: {data, previous, meta}) as an inbox row.
// Docs: https://pipedrive.readme.io/docs/guide-for-webhooks-v2
// A merge arrives as a delete of the merged record with meta.merged_to_id, plus a change of the
// survivor: the delete becomes a "merge" row whose payload keeps merged_to_id.
import { z } from "zod";
import type { InboxEvent, InboxObject, Normalized } from "./event.ts";
import { refuse } from "./limits.ts";

export interface BasicAuth {
  user: string;
  password: string;
}

/** The Authorization header's basic credentials, or null (absent, malformed, not UTF-8). */
export function parseBasicAuth(h: string | null): BasicAuth | null {
  const m = h?.match(/^Basic ([A-Za-z0-9+/]{1,700}={0,2})$/i);
  if (!m) return null;
  let decoded: string;
  try {
    const bin = atob(m[1]);
    decoded = new TextDecoder("utf-8", { fatal: true }).decode(
      Uint8Array.from(bin, (c) => c.charCodeAt(0)),
    );
  } catch {
    return null;
  }
  const at = decoded.indexOf(":");
  if (at <= 0) return null;
  return { user: decoded.slice(0, at), password: decoded.slice(at + 1) };
}

const Meta = z.looseObject({
  id: z.string().min(1).max(100),
  action: z.string().max(50),
  entity: z.string().max(50),
  entity_id: z.union([z.string().regex(/^\d{1,20}$/), z.number().int().nonnegative()]),
  company_id: z.union([z.string().regex(/^\d{1,20}$/), z.number().int().nonnegative()]),
  timestamp: z.string().max(64).optional(),
  version: z.string().max(10).optional(),
  merged_to_id: z.union([z.string().max(20), z.number()]).optional(),
});

const Delivery = z.looseObject({
  meta: Meta,
  data: z.record(z.string(), z.unknown()).nullable().optional(),
  previous: z.record(z.string(), z.unknown()).nullable().optional(),
});
export type PipedriveDelivery = z.infer<typeof Delivery>;

export function parsePipedriveDelivery(body: string): PipedriveDelivery {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return refuse(400, "body is not valid JSON");
  }
  const parsed = Delivery.safeParse(json);
  if (!parsed.success) return refuse(400, "body is not a Pipedrive webhooks v2 delivery");
  if (parsed.data.meta.version !== undefined && parsed.data.meta.version !== "2.0") {
    refuse(400, "only Pipedrive webhooks v2 are accepted");
  }
  return parsed.data;
}

const OBJECTS: Record<string, InboxObject> = {
  person: "contacts",
  organization: "companies",
  deal: "deals",
  user: "owners",
};

export function normalizePipedrive(
  d: PipedriveDelivery,
  connectionId: string,
): Normalized<InboxEvent> {
  const m = d.meta;
  const object = OBJECTS[m.entity];
  const type = m.action === "create" || m.action === "change"
    ? "upsert"
    : m.action === "delete"
    ? (m.merged_to_id !== undefined ? "merge" : "delete")
    : null;
  if (!object || !type) return { events: [], skipped: 1 };
  const t = m.timestamp ? Date.parse(m.timestamp) : NaN;
  return {
    events: [{
      provider: "pipedrive",
      connection_id: connectionId,
      object,
      remote_id: String(m.entity_id),
      event_type: type,
      occurred_at: Number.isFinite(t) ? new Date(t).toISOString() : null,
      // Scoped by company, as Salesforce's by org: no connection's key can match another's.
      dedupe_key: `${m.company_id}:${m.id}`,
      payload: d,
    }],
    skipped: 0,
  };
}
