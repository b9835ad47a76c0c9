// Webhook registration against in-process sandboxes, without the stack: what each provider's
// registration creates, keeps, replaces and never touches; which calls spend the connection's
// rate budget; the timeout of a hung CRM; the configuration errors.
import assert from "node:assert/strict";
import { startHubSpot } from "../../shared/emulators/hubspot/mod.ts";
import { startPipedrive } from "../../shared/emulators/pipedrive/mod.ts";
import { connectionCredentials } from "../../shared/local/connections.ts";
import type { ProviderName } from "../../supabase/functions/_shared/providers/types.ts";
import { ProviderError } from "../../supabase/functions/_shared/providers/types.ts";
import type { Connection } from "../../supabase/functions/_shared/sync/connections.ts";
import type { WebhookSecretsPatch } from "../../supabase/functions/_shared/webhooks/credentials.ts";
import {
  registerWebhooks,
  SubscribeConfigError,
  type SubscribeDeps,
} from "../../supabase/functions/_shared/webhooks/subscribe.ts";
import { wantedSubscriptions } from "../../supabase/functions/_shared/webhooks/subscribe_hubspot.ts";

const BASE = "https://project.example/functions/v1/crm-webhook";
const opts = { sanitizeOps: false, sanitizeResources: false };

function conn(provider: ProviderName, url: string, creds: Record<string, string>): Connection {
  return {
    id: crypto.randomUUID(),
    accountId: crypto.randomUUID(),
    provider,
    name: null,
    status: "active",
    settings: {},
    baseUrl: url,
    credentials: connectionCredentials(provider, creds, url),
  };
}

/** Deps that record the budget's calls and apply stored secrets to the connection. */
function deps(c: Connection, extra: Partial<SubscribeDeps> = {}) {
  const budgeted: string[] = [];
  const patches: WebhookSecretsPatch[] = [];
  const d: SubscribeDeps = {
    conn: c,
    publicBase: BASE,
    budget: {
      beforeRequest: (kind) => {
        budgeted.push(kind);
        return Promise.resolve();
      },
      observe: () => {},
    },
    fields: { contacts: ["email", "firstname"], companies: ["name"], deals: ["amount"] },
    env: () => undefined,
    storeSecrets: (p) => {
      patches.push(p);
      for (const [k, v] of Object.entries(p.credentials)) {
        if (v === null) delete c.credentials[k];
        else c.credentials[k] = v;
      }
      return Promise.resolve();
    },
    log: () => {},
    ...extra,
  };
  return { d, budgeted, patches };
}

type Hook = { id: number; subscription_url: string; event_object: string; http_auth_user: string };

Deno.test({
  name: "pipedrive: creates one webhook per object, keeps them, rotates, never touches others'",
  ...opts,
  fn: async () => {
    const pd = await startPipedrive({ port: 0, seed: 5, records: 2, log: () => {} });
    const admin = (m: string, p: string, b?: unknown) =>
      fetch(`${pd.url}/__admin${p}`, { method: m, body: b ? JSON.stringify(b) : undefined })
        .then((r) => r.json());
    try {
      // Somebody else's webhook, and one of ours left with credentials we no longer have.
      await admin("PUT", "/webhooks", { url: "https://other.example/hook", eventObject: "deal" });
      const c = conn("pipedrive", pd.url, pd.credentials);
      const api = `${pd.url}/v1/webhooks?api_token=${pd.credentials.PIPEDRIVE_API_TOKEN}`;
      await fetch(api, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          subscription_url: `${BASE}/pipedrive`,
          event_action: "*",
          event_object: "person",
          http_auth_user: "lost",
          http_auth_password: "lost",
          version: "2.0",
        }),
      }).then((r) => r.body?.cancel());
      const hooks = async () => ((await admin("GET", "/webhooks")).webhooks as Hook[]);

      const first = deps(c);
      const r1 = await registerWebhooks(first.d);
      assert.equal(r1.action, "registered");
      assert.deepEqual(r1.details.created, ["person", "organization", "deal", "user"]);
      assert.equal((r1.details.removed as string[]).length, 1, "the lost one is replaced");
      const user = c.credentials.webhook_user;
      assert.match(user, /^[A-Za-z0-9_-]{32}$/);
      assert.match(c.credentials.webhook_password, /^[A-Za-z0-9_-]{43}$/);
      assert.equal(first.patches.at(-1)!.userHashOf, user, "the user's hash is stored with it");
      let all = await hooks();
      assert.ok(
        all.some((h) => h.subscription_url === "https://other.example/hook"),
        "foreign kept",
      );
      let ours = all.filter((h) => h.subscription_url === `${BASE}/pipedrive`);
      assert.deepEqual(ours.map((h) => h.event_object).sort(), [
        "deal",
        "organization",
        "person",
        "user",
      ]);
      assert.ok(ours.every((h) => h.http_auth_user === user));
      assert.deepEqual(
        first.budgeted,
        ["webhooks", "create", "create", "create", "create", "delete"],
        "every call on the connection's token spends its budget",
      );

      const again = deps(c);
      const r2 = await registerWebhooks(again.d);
      assert.equal(r2.action, "unchanged");
      assert.deepEqual(again.budgeted, ["webhooks"], "one listing, nothing created");
      assert.deepEqual((await hooks()).map((h) => h.id).sort(), all.map((h) => h.id).sort());

      // Credentials replaced (reconnect): a fresh pair, new webhooks, the old ones deleted.
      delete c.credentials.webhook_user;
      delete c.credentials.webhook_password;
      const r3 = await registerWebhooks(deps(c).d);
      assert.equal(r3.details.credentials, "generated");
      all = await hooks();
      ours = all.filter((h) => h.subscription_url === `${BASE}/pipedrive`);
      assert.equal(ours.length, 4, "still one webhook per object");
      assert.ok(ours.every((h) => h.http_auth_user === c.credentials.webhook_user));
      assert.notEqual(c.credentials.webhook_user, user);
    } finally {
      await pd.close();
    }
  },
});

Deno.test({
  name: "pipedrive: a hung CRM ends the registration at the timeout, as a retryable error",
  ...opts,
  fn: async () => {
    const pd = await startPipedrive({ port: 0, seed: 5, records: 2, log: () => {} });
    try {
      await fetch(`${pd.url}/__admin/faults`, {
        method: "PUT",
        body: JSON.stringify({ hangRate: 1 }),
      }).then((r) => r.body?.cancel());
      const c = conn("pipedrive", pd.url, pd.credentials);
      const t0 = Date.now();
      const err = await registerWebhooks(
        deps(c, { timeoutMs: 200, deadline: Date.now() + 1_000 }).d,
      ).catch((e) => e);
      assert.ok(err instanceof ProviderError, String(err));
      assert.equal(err.action, "retry");
      assert.ok(Date.now() - t0 < 12_000, `took ${Date.now() - t0} ms`);
    } finally {
      await pd.close();
    }
  },
});

Deno.test({
  name: "hubspot: app settings and missing subscriptions only, on the developer key, no budget",
  ...opts,
  fn: async () => {
    const hs = await startHubSpot({ port: 0, seed: 5, records: 2, log: () => {} });
    const admin = (m: string, p: string, b?: unknown) =>
      fetch(`${hs.url}/__admin${p}`, { method: m, body: b ? JSON.stringify(b) : undefined })
        .then((r) => r.json());
    try {
      // One wanted subscription exists but is inactive; one unrelated exists.
      await admin("PUT", "/webhooks", {
        targetUrl: null,
        subscriptions: [
          { subscriptionType: "contact.creation", active: false },
          { subscriptionType: "deal.propertyChange", propertyName: "dealname", active: true },
        ],
      });
      const c = conn("hubspot", hs.url, hs.credentials);
      const { d, budgeted, patches } = deps(c);
      const wanted = wantedSubscriptions(d.fields);
      const r1 = await registerWebhooks(d);
      assert.equal(r1.action, "registered");
      assert.equal(r1.details.activated, 1);
      assert.equal(r1.details.created, wanted.length - 1);
      assert.deepEqual(budgeted, [], "app-level calls do not spend the portal's budget");
      assert.equal(c.credentials.webhook_secret, hs.credentials.HUBSPOT_CLIENT_SECRET);
      assert.equal(patches.length, 1);
      const cfg = await admin("GET", "/webhooks");
      assert.equal(cfg.targetUrl, `${BASE}/hubspot`);
      assert.equal(cfg.subscriptions.length, wanted.length + 1, "the unrelated one is kept");
      assert.ok(cfg.subscriptions.every((s: { active: boolean }) => s.active));

      const r2 = await registerWebhooks(deps(c).d);
      assert.equal(r2.action, "unchanged");
      assert.equal((await admin("GET", "/webhooks")).subscriptions.length, wanted.length + 1);

      // A wrong developer key is a configuration error, not the connection's credentials.
      c.credentials.developerApiKey = "wrong";
      const err = await registerWebhooks(deps(c).d).catch((e) => e);
      assert.ok(err instanceof ProviderError && err.action === "fatal", String(err));
    } finally {
      await hs.close();
    }
  },
});

Deno.test("configuration errors: no public URL, no HubSpot app", async () => {
  const c = conn("hubspot", "http://127.0.0.1:9", {
    HUBSPOT_ACCESS_TOKEN: "a",
    HUBSPOT_REFRESH_TOKEN: "r",
    HUBSPOT_CLIENT_ID: "i",
    HUBSPOT_CLIENT_SECRET: "s",
  });
  await assert.rejects(
    registerWebhooks({ ...deps(c).d, publicBase: null }),
    SubscribeConfigError,
  );
  await assert.rejects(registerWebhooks(deps(c).d), /HUBSPOT_APP_ID/);
  const wanted = wantedSubscriptions({ contacts: ["email", "associations.companies"] });
  assert.ok(!wanted.some((w) => w.propertyName?.includes(".")), "only plain property names");
});

Deno.test("salesforce: the token is generated once, kept, and never shown", async () => {
  const c = conn("salesforce", "http://127.0.0.1:9", {
    SALESFORCE_ACCESS_TOKEN: "a",
    SALESFORCE_REFRESH_TOKEN: "r",
    SALESFORCE_CLIENT_ID: "i",
    SALESFORCE_CLIENT_SECRET: "s",
  });
  const { d, patches, budgeted } = deps(c);
  const r1 = await registerWebhooks(d);
  const token = c.credentials.webhook_token;
  assert.match(token, /^[A-Za-z0-9_-]{43}$/);
  assert.equal(r1.endpoint, `${BASE}/salesforce/${token}`);
  assert.ok(!r1.shown!.includes(token) && !JSON.stringify(r1.details).includes(token));
  assert.equal(patches[0].tokenHashOf, token);
  assert.deepEqual(budgeted, [], "no CRM call");
  const r2 = await registerWebhooks(deps(c).d);
  assert.equal(r2.details.token, "kept");
  assert.equal(c.credentials.webhook_token, token);
});
