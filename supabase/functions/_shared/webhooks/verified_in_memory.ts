// Which deliveries the refusal limiter (refusal_limit.ts) must never answer 429: those that
// prove themselves from memory alone, without the database. The limiter's key is a header a
// sender can set (X-Forwarded-For), so a forger can charge a provider's address with refusals;
// if that were enough to 429 the provider's valid deliveries, one forger could delay every
// tenant's webhooks. A request that verifies here is served whatever its sender's count; only
// requests that would need the database (a route not in this isolate's cache, a signature that
// does not verify) are limited, which is what the limiter protects.
// Verified from memory:
//   Salesforce  the URL token's route is cached (route_cache.ts) and its webhook_token matches.
//   Pipedrive   the basic-auth user's route is cached and user + password match.
//   HubSpot     the signature verifies with the app's client secret (env), or the batch names
//               one portal whose cached route's webhook_secret verifies it. Needs the body: read
//               from a clone, bounded by readText's 1 MiB limit.
// Every check here is also made again by the normal path, so passing here only skips the 429.
import { type HubSpotSignature, parseHubSpotBatch, portalsOf, verifyHubSpot } from "./hubspot.ts";
import { readText, safeEqual } from "./limits.ts";
import { parseBasicAuth } from "./pipedrive.ts";
import type { RouteCache } from "./route_cache.ts";
import { credential, type RoutedConnection } from "./routes.ts";

export interface InMemoryDeps {
  routes: RouteCache<RoutedConnection>;
  /** HUBSPOT_CLIENT_SECRET, or null. */
  appSecret: string | null;
  /** The public URI HubSpot signed, for `subpath` (crm-webhook's publicUri). */
  publicUri: (req: Request, subpath: string) => string;
  now?: () => number;
}

/** The Salesforce listener token matches the connection's webhook_token. */
export function salesforceTokenOk(c: RoutedConnection, token: string): boolean {
  const expected = credential(c, "webhook_token");
  return !!expected && safeEqual(expected, token);
}

/** The basic-auth pair matches the connection's; both compared, always (no timing hint). */
export function pipedriveAuthOk(c: RoutedConnection, auth: { user: string; password: string }) {
  const user = credential(c, "webhook_user");
  const password = credential(c, "webhook_password");
  const userOk = safeEqual(user ?? "", auth.user);
  const passwordOk = safeEqual(password ?? "", auth.password);
  return !!user && !!password && userOk && passwordOk;
}

/** Whether `req` (a crm-webhook request) verifies without the database. Never throws. */
export async function verifiesInMemory(req: Request, d: InMemoryDeps): Promise<boolean> {
  try {
    if (req.method !== "POST") return false;
    const path = new URL(req.url).pathname.replace(/^.*?\/crm-webhook(?=\/|$)/, "");
    const m = path.match(/^\/(hubspot|pipedrive|salesforce\/([A-Za-z0-9_-]{16,128}))\/?$/);
    if (!m) return false;
    if (m[2]) {
      const c = d.routes.peek(`salesforce:${m[2]}`);
      return !!c && salesforceTokenOk(c, m[2]);
    }
    if (m[1] === "pipedrive") {
      const auth = parseBasicAuth(req.headers.get("authorization"));
      const c = auth ? d.routes.peek(`pipedrive:${auth.user}`) : null;
      return !!c && pipedriveAuthOk(c, auth!);
    }
    return await hubspotVerifies(req, d);
  } catch {
    return false;
  }
}

async function hubspotVerifies(req: Request, d: InMemoryDeps): Promise<boolean> {
  const h = (n: string) => req.headers.get(n)?.slice(0, 1024) ?? null;
  const sig: HubSpotSignature = {
    v3: h("x-hubspot-signature-v3"),
    timestamp: h("x-hubspot-request-timestamp"),
    legacy: h("x-hubspot-signature"),
    version: h("x-hubspot-signature-version"),
  };
  if (sig.v3 === null && sig.legacy === null) return false;
  // Without an app secret, only a cached route can vouch: skip reading the body otherwise.
  if (!d.appSecret && d.routes.size === 0) return false;
  const body = await readText(req.clone());
  const signed = {
    method: req.method,
    uri: d.publicUri(req, "/hubspot"),
    body,
    sig,
    now: (d.now ?? Date.now)(),
  };
  if (d.appSecret && await verifyHubSpot(d.appSecret, signed)) return true;
  const portals = portalsOf(parseHubSpotBatch(body));
  if (portals.length !== 1) return false;
  const c = d.routes.peek(`hubspot:${portals[0]}`);
  const secret = c ? credential(c, "webhook_secret") : null;
  return !!secret && await verifyHubSpot(secret, signed);
}
