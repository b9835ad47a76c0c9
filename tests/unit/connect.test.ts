// crm-connect's pure parts: the redirect allow-list, the signed state, PKCE, the state key
// derivation and the Salesforce identity URL parsing.
import assert from "node:assert/strict";
import {
  allowedRedirect,
  connectConfigFromEnv,
  stateKey,
} from "../../supabase/functions/_shared/connect/config.ts";
import { CONNECT_PROVIDERS, orgIdOf } from "../../supabase/functions/_shared/connect/oauth.ts";
import {
  pkcePair,
  signState,
  verifyState,
} from "../../supabase/functions/_shared/connect/state.ts";

const env = (o: Record<string, string>) => ({ get: (k: string) => o[k] });
const KEY = btoa(String.fromCharCode(...new Uint8Array(32).fill(7)));

Deno.test("redirect allow-list: same origin and a path under an entry; the first entry is the default", () => {
  const cfg = connectConfigFromEnv(env({
    CRM_CONNECT_REDIRECT_ALLOW_LIST: "https://app.example/crm, not a url ,http://localhost:3000/",
  }));
  assert.equal(cfg.allowList.length, 2);
  assert.equal(allowedRedirect(cfg), "https://app.example/crm");
  assert.equal(allowedRedirect(cfg, "https://app.example/crm"), "https://app.example/crm");
  assert.equal(
    allowedRedirect(cfg, "https://app.example/crm/x?y=1"),
    "https://app.example/crm/x?y=1",
  );
  assert.equal(
    allowedRedirect(cfg, "http://localhost:3000/anything"),
    "http://localhost:3000/anything",
  );
  for (
    const bad of [
      "https://app.example/crmx",
      "https://app.example/",
      "http://app.example/crm",
      "https://app.example:444/crm",
      "https://app.example.evil.com/crm",
      "https://user:pw@app.example/crm",
      "javascript:alert(1)",
      "//evil.example",
      "",
    ]
  ) assert.equal(allowedRedirect(cfg, bad), null, bad);
  const none = connectConfigFromEnv(env({}));
  assert.equal(allowedRedirect(none), null);
  assert.equal(allowedRedirect(none, "https://app.example/crm"), null);
});

Deno.test("config: OAuth apps only with id and secret; callback defaults to the project URL", () => {
  const cfg = connectConfigFromEnv(env({
    SUPABASE_URL: "https://p.supabase.co/",
    CRM_HUBSPOT_CLIENT_ID: "id",
    CRM_HUBSPOT_CLIENT_SECRET: "secret",
    CRM_SALESFORCE_CLIENT_ID: "only-id",
  }));
  assert.deepEqual(Object.keys(cfg.apps), ["hubspot"]);
  assert.equal(cfg.callbackUrl, "https://p.supabase.co/functions/v1/crm-connect/callback");
  assert.equal(cfg.hubspot.sandbox, false);
  assert.equal(cfg.hubspot.apiUrl, "https://api.hubapi.com");
});

Deno.test("state: signed, bound claims, expiring; forged, tampered and expired ones are null", async () => {
  const key = await stateKey(env({ CRM_ENCRYPTION_KEY: KEY }));
  assert.equal(key.length, 32);
  assert.deepEqual(await stateKey(env({ CRM_ENCRYPTION_KEY: KEY })), key, "derivation is stable");
  const claims = {
    nonce: crypto.randomUUID(),
    userId: crypto.randomUUID(),
    accountId: crypto.randomUUID(),
    provider: "salesforce" as const,
  };
  const s = await signState(key, claims, 600);
  assert.deepEqual(await verifyState(key, s), claims);
  const other = await stateKey(env({ CRM_STATE_SECRET: "s".repeat(32) }));
  assert.equal(await verifyState(other, s), null);
  assert.equal(await verifyState(key, s.slice(0, -2) + "xx"), null);
  assert.equal(await verifyState(key, await signState(key, claims, 60, 1_000)), null);
  assert.equal(
    await verifyState(key, s, new Date(Date.now() + 11 * 60_000)),
    null,
    "ten minutes later",
  );
  const bad = await signState(key, { ...claims, provider: "zoho" as never }, 600);
  assert.equal(await verifyState(key, bad), null);
  await assert.rejects(() => stateKey(env({ CRM_STATE_SECRET: "short" })));
  await assert.rejects(() => stateKey(env({})));
});

Deno.test("PKCE: 64-character verifier, S256 challenge of 43 characters, fresh every time", async () => {
  const a = await pkcePair();
  const b = await pkcePair();
  assert.match(a.verifier, /^[A-Za-z0-9_-]{64}$/);
  assert.match(a.challenge, /^[A-Za-z0-9_-]{43}$/);
  assert.notEqual(a.verifier, b.verifier);
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(a.verifier)),
  );
  const expected = btoa(String.fromCharCode(...digest)).replace(/\+/g, "-").replace(/\//g, "_")
    .replace(/=+$/, "");
  assert.equal(a.challenge, expected);
});

Deno.test("Salesforce identity URL → org id", () => {
  assert.equal(
    orgIdOf("https://login.salesforce.com/id/00D000000000001AAA/005000000000001AAA"),
    "00D000000000001AAA",
  );
  assert.equal(orgIdOf("https://login.salesforce.com/id/00D/005"), null);
  assert.equal(orgIdOf("not a url"), null);
});

Deno.test("redirect allow-list: encoded slashes or backslashes, // and dot segments are refused", () => {
  const cfg = connectConfigFromEnv(
    env({ CRM_CONNECT_REDIRECT_ALLOW_LIST: "https://app.example/crm" }),
  );
  for (
    const bad of [
      "https://app.example/crm/..%2fadmin",
      "https://app.example/crm/%2F%2Fevil.example",
      "https://app.example/crm/%5cevil",
      "https://app.example/crm/%2e%2e/admin",
      "https://app.example/crm//evil.example",
      "https://app.example/crm/a%2f..%2f..",
      "https://app.example/crm/%E0%A4%A",
    ]
  ) assert.equal(allowedRedirect(cfg, bad), null, bad);
  assert.equal(
    allowedRedirect(cfg, "https://app.example/crm/done%20page?x=%2f"),
    "https://app.example/crm/done%20page?x=%2f",
    "an encoded slash in the query is not the path's",
  );
  // The URL parser resolves %2e segments itself: what is returned is the resolved URL.
  assert.equal(allowedRedirect(cfg, "https://app.example/crm/%2E/x"), "https://app.example/crm/x");
});

Deno.test("Salesforce authorize URL asks for consent every time", () => {
  const cfg = connectConfigFromEnv(env({
    SUPABASE_URL: "https://p.supabase.co",
    CRM_SALESFORCE_CLIENT_ID: "id",
    CRM_SALESFORCE_CLIENT_SECRET: "secret",
  }));
  const u = new URL(CONNECT_PROVIDERS.salesforce.authorizeUrl(cfg, "st", null));
  assert.equal(u.searchParams.get("prompt"), "consent");
});
