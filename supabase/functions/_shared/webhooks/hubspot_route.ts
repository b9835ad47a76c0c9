// Which secret authenticates a HubSpot batch, and so where its events go.
//  - The app's client secret (HUBSPOT_CLIENT_SECRET) is HubSpot's own word for every portal
//    the app is installed in: events are routed by portalId, and a portal no connection is
//    linked to is still stored, with connection_id NULL (SPEC13: kept, never processed).
//  - Otherwise the batch must name exactly one portal, and the signature must verify with that
//    portal's connection's own webhook_secret: a per-connection secret vouches for its own
//    portal only, so an unknown portal (no secret to check) is refused with 401.
// Only the named portal's connection is decrypted; the caller learns pass or fail, nothing else.
import {
  type HubSpotEventT,
  parseHubSpotBatch,
  portalsOf,
  type SignedRequest,
  verifyHubSpot,
} from "./hubspot.ts";
import { refuse } from "./limits.ts";

export interface HubSpotRouteDeps {
  appSecret: string | null;
  /** Connection ids of these portals (those that have one). */
  connectionsOf(portals: string[]): Promise<Map<string, string>>;
  /** The portal's connection whose own webhook secret verifies `ok`, else null. */
  connectionSecret(
    portal: string,
    ok: (secret: string) => Promise<boolean>,
  ): Promise<{ id: string } | null>;
}

export interface RoutedBatch {
  batch: HubSpotEventT[];
  route: (portal: string) => string | null;
  by: "app" | "connection";
}

export async function routeHubSpot(r: SignedRequest, deps: HubSpotRouteDeps): Promise<RoutedBatch> {
  const byApp = !!deps.appSecret && await verifyHubSpot(deps.appSecret, r);
  const batch = parseHubSpotBatch(r.body);
  const portals = portalsOf(batch);
  if (byApp) {
    const map = await deps.connectionsOf(portals);
    return { batch, route: (p) => map.get(p) ?? null, by: "app" };
  }
  if (portals.length !== 1) return refuse(401, "HubSpot signature does not match");
  const conn = await deps.connectionSecret(portals[0], (secret) => verifyHubSpot(secret, r));
  if (!conn) return refuse(401, "HubSpot signature does not match");
  return { batch, route: () => conn.id, by: "connection" };
}
