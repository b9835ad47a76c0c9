// ProviderDeps.observe against the three sandboxes: every CRM response an adapter gets, success
// or error, is reported once, with the kind the call passed to beforeRequest, the provider's
// rate-limit headers, and for a rate-limit refusal its status and parsed body (HubSpot's
// policyName, Salesforce's REQUEST_LIMIT_EXCEEDED, Pipedrive's envelope). Token refreshes are
// reported as "oauth-token".
import assert from "node:assert/strict";
import { admin, walkChanges } from "./_support.ts";
import { startHubSpot } from "../../shared/emulators/hubspot/mod.ts";
import { startPipedrive } from "../../shared/emulators/pipedrive/mod.ts";
import { startSalesforce } from "../../shared/emulators/salesforce/mod.ts";
import { createHubSpotAdapter } from "../../supabase/functions/_shared/providers/hubspot.ts";
import { createPipedriveAdapter } from "../../supabase/functions/_shared/providers/pipedrive.ts";
import { createSalesforceAdapter } from "../../supabase/functions/_shared/providers/salesforce.ts";
import {
  type ProviderDeps,
  ProviderError,
} from "../../supabase/functions/_shared/providers/types.ts";

interface Seen {
  kind: string;
  status: number;
  headers: Headers;
  body?: unknown;
}

/** Deps that record the kinds asked of beforeRequest and everything observed. */
function recorder(baseUrl: string, credentials: Record<string, string>) {
  const asked: string[] = [];
  const seen: Seen[] = [];
  const deps: ProviderDeps = {
    baseUrl,
    credentials,
    beforeRequest: (kind) => {
      asked.push(kind);
      return Promise.resolve();
    },
    observe: (o) => {
      assert.ok(o.headers instanceof Headers);
      seen.push(o);
    },
    onTokens: () => Promise.resolve(),
    countCall: () => {},
    log: () => {},
  };
  return { deps, asked, seen };
}

/** Total API requests the sandbox answered (admin routes are not counted). */
async function served(url: string): Promise<number> {
  const c = await admin(url, "GET", "/__admin/counters");
  return Object.values(c.byStatus as Record<string, number>).reduce((a, b) => a + b, 0);
}

const hubspotDeps = (sb: Awaited<ReturnType<typeof startHubSpot>>) => ({
  accessToken: sb.credentials.HUBSPOT_ACCESS_TOKEN,
  refreshToken: sb.credentials.HUBSPOT_REFRESH_TOKEN,
  clientId: sb.credentials.HUBSPOT_CLIENT_ID,
  clientSecret: sb.credentials.HUBSPOT_CLIENT_SECRET,
});

Deno.test({
  name: "observe, hubspot: every response with its call's kind and X-HubSpot-RateLimit-* headers",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const sb = await startHubSpot({
      port: 0,
      seed: 21,
      records: 250,
      rateLimit: { tenSecondly: 1000, daily: 50_000, searchPerSecond: 50 },
    });
    try {
      const { deps, asked, seen } = recorder(sb.url, hubspotDeps(sb));
      const adapter = createHubSpotAdapter(deps, {
        deals: ["dealname", "associations.companies"],
        contacts: ["email"],
      });
      const full = await walkChanges(adapter, "deals");
      await walkChanges(adapter, "deals", full.watermark);
      await adapter.readByIds("contacts", ["1", "2"]);
      await adapter.changesSince("owners", null, null);
      await adapter.deletedSince("contacts", new Date(0).toISOString());

      assert.deepEqual(seen.map((o) => o.kind), asked, "one observation per request, same kind");
      assert.equal(seen.length, await served(sb.url), "every answered request was observed");
      assert.deepEqual(
        new Set(asked),
        new Set(["list", "associations", "search", "batch-read", "owners", "list-archived"]),
      );
      assert.ok(seen.every((o) => o.status === 200 || o.status === 207));
      assert.ok(seen.every((o) => o.body === undefined), "no body for successes");
      for (const o of seen.filter((o) => o.kind !== "search")) {
        assert.equal(o.headers.get("x-hubspot-ratelimit-max"), "1000", o.kind);
        assert.equal(o.headers.get("x-hubspot-ratelimit-interval-milliseconds"), "10000");
        assert.equal(o.headers.get("x-hubspot-ratelimit-daily"), "50000");
        assert.match(o.headers.get("x-hubspot-ratelimit-remaining") ?? "", /^\d+$/);
        assert.match(o.headers.get("x-hubspot-ratelimit-daily-remaining") ?? "", /^\d+$/);
      }
      // Search has its own limit and no rate-limit headers (as HubSpot).
      const searches = seen.filter((o) => o.kind === "search");
      assert.ok(searches.length > 0);
      assert.ok(searches.every((o) => o.headers.get("x-hubspot-ratelimit-max") === null));
      // Remaining counts down request by request within the window.
      const lists = seen.filter((o) => o.kind === "list").map((o) =>
        Number(o.headers.get("x-hubspot-ratelimit-remaining"))
      );
      assert.ok(lists.every((n, i) => i === 0 || n < lists[i - 1]), lists.join(","));
    } finally {
      await sb.close();
    }
  },
});

Deno.test({
  name:
    "observe, hubspot: 429s (10-second, secondly, daily) with status, headers and policyName; a refresh as oauth-token",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const sb = await startHubSpot({
      port: 0,
      seed: 22,
      records: 60,
      rateLimit: { tenSecondly: 2, intervalMs: 1000, searchPerSecond: 1 },
    });
    try {
      const { deps, asked, seen } = recorder(sb.url, hubspotDeps(sb));
      const adapter = createHubSpotAdapter(deps, { contacts: ["email"] });
      // The sandbox's own limit: the third call in a second is refused, then retried.
      for (let i = 0; i < 3; i++) await adapter.readByIds("contacts", ["1"]);
      const burst = seen.find((o) => o.status === 429);
      assert.ok(burst, seen.map((o) => o.status).join(","));
      assert.equal(burst.kind, "batch-read");
      assert.equal((burst.body as { policyName?: string }).policyName, "TEN_SECONDLY_ROLLING");
      assert.equal(burst.headers.get("x-hubspot-ratelimit-remaining"), "0");
      assert.equal(burst.headers.get("x-hubspot-ratelimit-max"), "2");
      // 207: id 1 is not a contact (per-input errors), an answer all the same.
      assert.equal(seen.at(-1)!.status, 207, "the retry after the window got through");

      // Search: 1 a second here; the second search in a row is refused (SECONDLY).
      await admin(sb.url, "PUT", "/__admin/rate-limit", { tenSecondly: 1000 });
      const from = { modifiedAt: new Date(0).toISOString(), remoteId: "" };
      await adapter.changesSince("contacts", from, null);
      await adapter.changesSince("contacts", from, null);
      const secondly = seen.find((o) => o.kind === "search" && o.status === 429);
      assert.ok(secondly, "a refused search was observed");
      assert.equal((secondly.body as { policyName?: string }).policyName, "SECONDLY");

      // Daily: the answer that ends the run is observed too.
      await admin(sb.url, "PUT", "/__admin/rate-limit", { daily: 1 });
      await adapter.readByIds("contacts", ["1"]);
      await assert.rejects(adapter.readByIds("contacts", ["1"]), (e: ProviderError) => {
        assert.equal(e.action, "fatal");
        return true;
      });
      const daily = seen.at(-1)!;
      assert.equal(daily.status, 429);
      assert.equal((daily.body as { policyName?: string }).policyName, "DAILY");
      assert.equal(daily.headers.get("x-hubspot-ratelimit-daily"), "1");
      assert.deepEqual(seen.map((o) => o.kind), asked);

      // An expired token: the 401 under the call's kind, the refresh, the retried call.
      await admin(sb.url, "PUT", "/__admin/rate-limit", { daily: 0 });
      await admin(sb.url, "POST", "/__admin/tokens/expire");
      const n = seen.length;
      await adapter.readByIds("contacts", ["1"]);
      assert.deepEqual(
        seen.slice(n).map((o) => `${o.kind} ${o.status}`),
        ["batch-read 401", "oauth-token 200", "batch-read 207"],
      );
      assert.equal(
        (seen[n].body as { category?: string }).category,
        "EXPIRED_AUTHENTICATION",
        "the 401's body",
      );
    } finally {
      await sb.close();
    }
  },
});

Deno.test({
  name:
    "observe, salesforce: every response with Sforce-Limit-Info; the org limit's 403 with its body; a refresh as oauth-token",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const sf = await startSalesforce({ port: 0, seed: 23, records: 120 });
    try {
      const { deps, asked, seen } = recorder(sf.url, {
        accessToken: sf.credentials.SALESFORCE_ACCESS_TOKEN,
        refreshToken: sf.credentials.SALESFORCE_REFRESH_TOKEN,
        clientId: sf.credentials.SALESFORCE_CLIENT_ID,
        clientSecret: sf.credentials.SALESFORCE_CLIENT_SECRET,
        instanceUrl: sf.url,
        loginUrl: sf.url,
      });
      // Fields no other test asks for: the describe cache is per process.
      const adapter = createSalesforceAdapter(deps, {
        Contact: ["LastName", "Title"],
        Lead: ["LastName", "Title"],
      });
      const { seen: rows } = await walkChanges(adapter, "contacts", null, 50);
      await adapter.readByIds("contacts", [rows[0].remoteId]);
      assert.deepEqual(seen.map((o) => o.kind), asked);
      assert.equal(seen.length, await served(sf.url));
      assert.deepEqual(new Set(asked), new Set(["describe", "query"]));
      const usage = seen.map((o) => {
        const m = /^api-usage=(\d+)\/(\d+)$/.exec(o.headers.get("sforce-limit-info") ?? "");
        assert.ok(m, o.headers.get("sforce-limit-info") ?? "no Sforce-Limit-Info");
        return Number(m[1]);
      });
      assert.ok(usage.every((u, i) => i === 0 || u > usage[i - 1]), usage.join(","));

      // The org's daily allocation runs out: 403 REQUEST_LIMIT_EXCEEDED (Salesforce has no 429).
      const { used } = await admin(sf.url, "GET", "/__admin/limits");
      // A read by id queries only the type its id can be of (key prefix): one call.
      await admin(sf.url, "PUT", "/__admin/limits", { dailyApiRequests: used + 1 });
      await adapter.readByIds("contacts", [rows[0].remoteId]);
      await assert.rejects(adapter.readByIds("contacts", [rows[0].remoteId]));
      const refused = seen.at(-1)!;
      assert.equal(refused.kind, "query");
      assert.equal(refused.status, 403);
      assert.equal(
        (refused.body as { errorCode: string }[])[0].errorCode,
        "REQUEST_LIMIT_EXCEEDED",
      );
      assert.match(refused.headers.get("sforce-limit-info") ?? "", /^api-usage=\d+\/\d+$/);

      // An expired session: 401 and the retried query under "query", the token call apart.
      await admin(sf.url, "PUT", "/__admin/limits", { dailyApiRequests: 1_000_000 });
      await admin(sf.url, "POST", "/__admin/tokens/expire");
      await new Promise((r) => setTimeout(r, 5));
      const n = seen.length;
      await adapter.readByIds("contacts", [rows[0].remoteId]);
      assert.deepEqual(
        seen.slice(n).map((o) => `${o.kind} ${o.status}`),
        ["query 401", "oauth-token 200", "query 200"],
      );
      assert.equal((seen[n].body as { errorCode: string }[])[0].errorCode, "INVALID_SESSION_ID");
    } finally {
      await sf.close();
    }
  },
});

Deno.test({
  name:
    "observe, pipedrive: every response with x-ratelimit-*; a burst 429 and a daily-budget 429 with their bodies",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const pd = await startPipedrive({ port: 0, seed: 24, records: 150 });
    try {
      const { deps, asked, seen } = recorder(pd.url, {
        apiToken: pd.credentials.PIPEDRIVE_API_TOKEN,
      });
      const adapter = createPipedriveAdapter(deps);
      const { seen: rows } = await walkChanges(adapter, "contacts", null, 50);
      await adapter.readByIds("contacts", [rows[0].remoteId]);
      await adapter.changesSince("owners", null, null);
      assert.deepEqual(seen.map((o) => o.kind), asked);
      assert.equal(seen.length, await served(pd.url));
      assert.deepEqual(new Set(asked), new Set(["list", "list-ids", "users"]));
      for (const o of seen) {
        assert.equal(o.status, 200);
        assert.equal(o.headers.get("x-ratelimit-limit"), "80");
        assert.match(o.headers.get("x-ratelimit-remaining") ?? "", /^\d+$/);
        assert.match(o.headers.get("x-ratelimit-reset") ?? "", /^\d+$/);
      }

      // Burst: 2 per 2 s; the third call is refused and, past the call's deadline, not retried.
      await admin(pd.url, "PUT", "/__admin/rate-limit", { burst: 2, windowMs: 2000 });
      const ids = [rows[0].remoteId];
      await adapter.readByIds("contacts", ids);
      await adapter.readByIds("contacts", ids);
      await assert.rejects(adapter.readByIds("contacts", ids, { deadline: Date.now() + 300 }));
      const burst = seen.at(-1)!;
      assert.equal(burst.kind, "list-ids");
      assert.equal(burst.status, 429);
      assert.equal(burst.headers.get("x-ratelimit-limit"), "2");
      assert.equal(burst.headers.get("x-ratelimit-remaining"), "0");
      assert.deepEqual(
        { success: (burst.body as { success: boolean }).success },
        { success: false },
      );
      assert.match(String((burst.body as { error: string }).error), /over limit/i);

      // Daily token budget used up: a 429 with its own message.
      await admin(pd.url, "PUT", "/__admin/rate-limit", {
        burst: 80,
        windowMs: 2000,
        dailyTokens: 1,
      });
      await assert.rejects(adapter.readByIds("contacts", ids, { deadline: Date.now() + 300 }));
      const daily = seen.at(-1)!;
      assert.equal(daily.status, 429);
      assert.match(String((daily.body as { error: string }).error), /daily token budget/i);
      assert.deepEqual(seen.map((o) => o.kind), asked);
    } finally {
      await pd.close();
    }
  },
});

Deno.test({
  name: "observe: an observer that throws is logged and the call goes on",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const pd = await startPipedrive({ port: 0, seed: 25, records: 20 });
    try {
      const logs: string[] = [];
      const { deps } = recorder(pd.url, { apiToken: pd.credentials.PIPEDRIVE_API_TOKEN });
      const adapter = createPipedriveAdapter({
        ...deps,
        observe: () => {
          throw new Error("budget table gone");
        },
        log: (msg, extra) => logs.push(`${msg} ${JSON.stringify(extra)}`),
      });
      const page = await adapter.changesSince("contacts", null, null);
      assert.ok(page.records.length > 0);
      assert.equal(logs.length, 1);
      assert.match(logs[0], /observe failed.*"kind":"list".*budget table gone/);
    } finally {
      await pd.close();
    }
  },
});
