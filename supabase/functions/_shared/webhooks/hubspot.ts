// HubSpot webhooks: request signatures (v3, and v2/v1 for older apps) and the events of a
// verified batch as inbox rows.
// Docs: https://developers.hubspot.com/docs/api/webhooks/validating-requests
//  - v3: X-HubSpot-Signature-v3 = base64 HMAC-SHA256(secret, method + uri + body + timestamp),
//    X-HubSpot-Request-Timestamp in epoch ms; refused when older than 5 minutes. The uri is the
//    one HubSpot called, after decoding the escapes HubSpot lists (see V3_DECODED).
//  - v2: X-HubSpot-Signature = hex SHA-256(secret + method + uri + body), version header "v2".
//  - v1: hex SHA-256(secret + body), version header "v1".
// The body is the raw text as received; it is never re-serialised before hashing.
import { z } from "zod";
import type { InboxEvent, InboxEventType, InboxObject, Normalized } from "./event.ts";
import { MAX_EVENTS_PER_REQUEST, refuse, safeEqual } from "./limits.ts";

export const MAX_V3_AGE_MS = 5 * 60 * 1000;

/** The escapes HubSpot decodes in the request URI before signing v3 (its documented list). */
const V3_DECODED: Record<string, string> = {
  "3A": ":",
  "2F": "/",
  "3F": "?",
  "40": "@",
  "21": "!",
  "24": "$",
  "27": "'",
  "28": "(",
  "29": ")",
  "2A": "*",
  "2C": ",",
  "3B": ";",
};

export function decodeV3Uri(uri: string): string {
  return uri.replace(/%([0-9A-Fa-f]{2})/g, (m, hex: string) => V3_DECODED[hex.toUpperCase()] ?? m);
}

const enc = new TextEncoder();

function hex(buf: ArrayBuffer): string {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");
}

function base64(buf: ArrayBuffer): string {
  return btoa(String.fromCharCode(...new Uint8Array(buf)));
}

export async function signV1(secret: string, body: string): Promise<string> {
  return hex(await crypto.subtle.digest("SHA-256", enc.encode(secret + body)));
}

export async function signV2(
  secret: string,
  method: string,
  uri: string,
  body: string,
): Promise<string> {
  return hex(await crypto.subtle.digest("SHA-256", enc.encode(secret + method + uri + body)));
}

export async function signV3(
  secret: string,
  method: string,
  uri: string,
  body: string,
  timestamp: string,
): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    enc.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const source = method + decodeV3Uri(uri) + body + timestamp;
  return base64(await crypto.subtle.sign("HMAC", key, enc.encode(source)));
}

/** The signature headers of a request, as HubSpot names them. */
export interface HubSpotSignature {
  v3: string | null;
  timestamp: string | null;
  legacy: string | null;
  version: string | null;
}

export interface SignedRequest {
  method: string;
  /** The public URI HubSpot called (CRM_WEBHOOK_PUBLIC_URL + route + query). */
  uri: string;
  body: string;
  sig: HubSpotSignature;
  now: number;
}

/**
 * Whether `secret` signed the request. v3 wins when its header is present (HubSpot sends it to
 * every app now); otherwise X-HubSpot-Signature-Version picks v2 or v1. A v3 timestamp older
 * than 5 minutes, or more than 5 minutes ahead, fails: replays of a captured request are
 * refused after that, and repeats inside the window are deduped by the inbox.
 */
export async function verifyHubSpot(secret: string, r: SignedRequest): Promise<boolean> {
  const { sig } = r;
  if (sig.v3 !== null) {
    if (sig.timestamp === null || !/^\d{1,16}$/.test(sig.timestamp)) return false;
    if (Math.abs(r.now - Number(sig.timestamp)) > MAX_V3_AGE_MS) return false;
    return safeEqual(await signV3(secret, r.method, r.uri, r.body, sig.timestamp), sig.v3);
  }
  if (sig.legacy === null) return false;
  if (sig.version === "v2") {
    return safeEqual(await signV2(secret, r.method, r.uri, r.body), sig.legacy.toLowerCase());
  }
  if (sig.version === "v1") {
    return safeEqual(await signV1(secret, r.body), sig.legacy.toLowerCase());
  }
  return false;
}

const Id = z.union([
  z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  z.string().regex(/^\d{1,20}$/),
]);

/** The fields every HubSpot event carries (the rest is kept as the raw payload). */
const HubSpotEvent = z.looseObject({
  eventId: Id,
  subscriptionId: Id,
  portalId: Id,
  occurredAt: z.number().int().nonnegative().max(8.64e15),
  subscriptionType: z.string().max(200),
  objectId: Id.optional(),
  objectTypeId: z.string().max(50).optional(),
  propertyName: z.string().max(500).optional(),
  primaryObjectId: Id.optional(),
});
export const HubSpotBatch = z.array(HubSpotEvent).max(MAX_EVENTS_PER_REQUEST);
export type HubSpotEventT = z.infer<typeof HubSpotEvent>;

/** The batch's events (400 when the body is not a batch of HubSpot events). */
export function parseHubSpotBatch(body: string): HubSpotEventT[] {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return refuse(400, "body is not valid JSON");
  }
  if (Array.isArray(json) && json.length > MAX_EVENTS_PER_REQUEST) {
    refuse(400, `more than ${MAX_EVENTS_PER_REQUEST} events in one request`);
  }
  const parsed = HubSpotBatch.safeParse(json);
  if (!parsed.success) return refuse(400, "body is not a batch of HubSpot events");
  return parsed.data;
}

/** Distinct portals named by a batch. */
export function portalsOf(events: HubSpotEventT[]): string[] {
  return [...new Set(events.map((e) => String(e.portalId)))];
}

const OBJECTS: Record<string, InboxObject> = {
  contact: "contacts",
  company: "companies",
  deal: "deals",
  // Generic subscriptions (object.*) name the type by id: 0-1 contacts, 0-2 companies, 0-3 deals.
  "0-1": "contacts",
  "0-2": "companies",
  "0-3": "deals",
};

const TYPES: Record<string, InboxEventType> = {
  creation: "upsert",
  propertyChange: "upsert",
  restore: "upsert",
  associationChange: "upsert",
  deletion: "delete",
  privacyDeletion: "delete",
  merge: "merge",
};

/**
 * Inbox rows of a verified batch. `route` gives each portal's connection (null: no connection,
 * kept and never processed). Other object types and subscription types are skipped (still 2xx).
 */
export function normalizeHubSpot(
  events: HubSpotEventT[],
  route: (portalId: string) => string | null,
): Normalized<InboxEvent> {
  const out: InboxEvent[] = [];
  let skipped = 0;
  for (const e of events) {
    const [kind, action] = e.subscriptionType.split(".", 2);
    const object = OBJECTS[kind === "object" ? e.objectTypeId ?? "" : kind];
    const type = TYPES[action ?? ""];
    const remote = e.subscriptionType.endsWith(".merge")
      ? e.primaryObjectId ?? e.objectId
      : e.objectId;
    if (!object || !type || remote === undefined) {
      skipped++;
      continue;
    }
    out.push({
      provider: "hubspot",
      connection_id: route(String(e.portalId)),
      object,
      remote_id: String(remote),
      event_type: type,
      occurred_at: new Date(e.occurredAt).toISOString(),
      dedupe_key: `${e.eventId}:${e.subscriptionId}:${e.portalId}:${e.occurredAt}:${
        e.objectId ?? ""
      }:${e.propertyName ?? ""}`,
      payload: e,
    });
  }
  return { events: out, skipped };
}
