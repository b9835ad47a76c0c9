// Signed HubSpot v3 deliveries sent at the receiver by concurrent senders, each waiting for its
// answer before the next (as a provider's delivery worker does), timed from the first byte sent
// to the answer's end. The batches are built here: HubSpot's shape, 100 events of distinct
// objects, ids unique per run so every event is stored (no duplicate short-cut).
import { signV3 } from "../../supabase/functions/_shared/webhooks/hubspot.ts";

export interface LoadOptions {
  /** The public URL of the HubSpot route (what the signature covers). */
  url: string;
  secret: string;
  portal: string;
  senders: number;
  /** Requests per sender. */
  requests: number;
  events: number;
  /** First object id; senders use disjoint ranges. */
  firstObjectId?: number;
  /** Extra headers (x-forwarded-for of a sender, say). */
  headers?: Record<string, string>;
}

export interface LoadResult {
  latenciesMs: number[];
  statuses: Record<string, number>;
  wallMs: number;
  events: number;
}

let eventSeq = Date.now() * 1000;

/** One HubSpot batch of property changes, `events` distinct objects from `firstId`. */
export function hubspotBatch(portal: string, firstId: number, events: number, at = Date.now()) {
  return Array.from({ length: events }, (_, i) => ({
    eventId: ++eventSeq,
    subscriptionId: 4242,
    portalId: Number(portal),
    appId: 1,
    occurredAt: at,
    subscriptionType: "contact.propertyChange",
    attemptNumber: 0,
    objectId: firstId + i,
    propertyName: "firstname",
    propertyValue: `bench ${firstId + i}`,
    changeSource: "CRM_UI",
  }));
}

export async function signedHubSpot(
  url: string,
  secret: string,
  body: string,
): Promise<Record<string, string>> {
  const ts = String(Date.now());
  return {
    "content-type": "application/json",
    "x-hubspot-request-timestamp": ts,
    "x-hubspot-signature-v3": await signV3(secret, "POST", url, body, ts),
  };
}

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const latenciesMs: number[] = [];
  const statuses: Record<string, number> = {};
  let nextId = o.firstObjectId ?? 1_000_000;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: o.senders }, async () => {
    for (let r = 0; r < o.requests; r++) {
      const first = nextId;
      nextId += o.events;
      const body = JSON.stringify(hubspotBatch(o.portal, first, o.events));
      const headers = { ...await signedHubSpot(o.url, o.secret, body), ...o.headers };
      const start = performance.now();
      let status: string;
      try {
        const res = await fetch(o.url, {
          method: "POST",
          headers,
          body,
          signal: AbortSignal.timeout(30_000),
        });
        await res.arrayBuffer();
        status = String(res.status);
      } catch (e) {
        status = (e as Error).name;
      }
      latenciesMs.push(performance.now() - start);
      statuses[status] = (statuses[status] ?? 0) + 1;
    }
  }));
  return {
    latenciesMs,
    statuses,
    wallMs: performance.now() - t0,
    events: o.senders * o.requests * o.events,
  };
}
