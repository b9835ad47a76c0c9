// The refusal limiter's bypass: which deliveries verify from memory (never answered 429).
import assert from "node:assert/strict";
import { signV3 } from "../../supabase/functions/_shared/webhooks/hubspot.ts";
import { RouteCache } from "../../supabase/functions/_shared/webhooks/route_cache.ts";
import type { RoutedConnection } from "../../supabase/functions/_shared/webhooks/routes.ts";
import { verifiesInMemory } from "../../supabase/functions/_shared/webhooks/verified_in_memory.ts";

const BASE = "http://edge.test/functions/v1/crm-webhook";
const publicUri = (_req: Request, sub: string) => `${BASE}${sub}`;

async function cache(entries: Record<string, Record<string, string>>) {
  const routes = new RouteCache<RoutedConnection>();
  for (const [k, credentials] of Object.entries(entries)) {
    await routes.get(k, () => Promise.resolve({ id: k, remoteAccountId: "1", credentials }));
  }
  return routes;
}

async function hubspotReq(secret: string, portal: number, tamper = false): Promise<Request> {
  const now = String(Date.now());
  const body = JSON.stringify([{
    eventId: 1,
    subscriptionId: 77,
    portalId: portal,
    occurredAt: Date.now(),
    subscriptionType: "contact.propertyChange",
    objectId: 5,
    propertyName: "firstname",
    changeSource: "CRM_UI",
  }]);
  const sig = await signV3(secret, "POST", `${BASE}/hubspot`, body, now);
  return new Request(`${BASE}/hubspot`, {
    method: "POST",
    headers: { "x-hubspot-signature-v3": sig, "x-hubspot-request-timestamp": now },
    body: tamper ? body.replace('"objectId":5', '"objectId":6') : body,
  });
}

Deno.test("in memory: a cached Salesforce route with the right token verifies, others not", async () => {
  const token = "t".repeat(43);
  const routes = await cache({ [`salesforce:${token}`]: { webhook_token: token } });
  const d = { routes, appSecret: null, publicUri };
  const req = (t: string, method = "POST") =>
    new Request(`${BASE}/salesforce/${t}`, { method, body: method === "POST" ? "<x/>" : null });
  assert.equal(await verifiesInMemory(req(token), d), true);
  assert.equal(await verifiesInMemory(req("u".repeat(43)), d), false, "not cached: the database");
  assert.equal(await verifiesInMemory(req(token, "PUT"), d), false);
  const stale = await cache({ [`salesforce:${token}`]: { webhook_token: "other".repeat(9) } });
  assert.equal(await verifiesInMemory(req(token), { ...d, routes: stale }), false);
});

Deno.test("in memory: a cached Pipedrive route verifies only with both user and password", async () => {
  const routes = await cache({ "pipedrive:u1": { webhook_user: "u1", webhook_password: "pw" } });
  const d = { routes, appSecret: null, publicUri };
  const req = (user: string, pw: string) =>
    new Request(`${BASE}/pipedrive`, {
      method: "POST",
      headers: { authorization: `Basic ${btoa(`${user}:${pw}`)}` },
      body: "{}",
    });
  assert.equal(await verifiesInMemory(req("u1", "pw"), d), true);
  assert.equal(await verifiesInMemory(req("u1", "wrong"), d), false);
  assert.equal(await verifiesInMemory(req("u2", "pw"), d), false);
});

Deno.test("in memory: HubSpot app-signed or cached-connection-signed verifies, forged not", async () => {
  const empty = new RouteCache<RoutedConnection>();
  const app = { routes: empty, appSecret: "app-secret", publicUri };
  assert.equal(await verifiesInMemory(await hubspotReq("app-secret", 7), app), true);
  assert.equal(await verifiesInMemory(await hubspotReq("forged", 7), app), false);
  assert.equal(await verifiesInMemory(await hubspotReq("app-secret", 7, true), app), false);
  const routes = await cache({ "hubspot:7": { webhook_secret: "conn-secret" } });
  const conn = { routes, appSecret: null, publicUri };
  assert.equal(await verifiesInMemory(await hubspotReq("conn-secret", 7), conn), true);
  assert.equal(await verifiesInMemory(await hubspotReq("conn-secret", 8), conn), false);
  assert.equal(await verifiesInMemory(await hubspotReq("forged", 7), conn), false);
  // The body is read from a clone: the request can still be served.
  const req = await hubspotReq("app-secret", 7);
  await verifiesInMemory(req, app);
  assert.match(await req.text(), /portalId/);
});
