// Token refresh is single-flight per connection: two workers whose access token expired at the
// same time make one refresh call between them and both proceed; with a provider that rotates
// refresh tokens the rotated one is what is stored (the next refresh works); a refresh the
// provider refuses puts the connection in `error` with a "reconnect" message, visible in the
// connect status.
import assert from "node:assert/strict";
import { startHubSpot } from "../../shared/emulators/hubspot/mod.ts";
import { startPipedrive } from "../../shared/emulators/pipedrive/mod.ts";
import { startSalesforce } from "../../shared/emulators/salesforce/mod.ts";
import { decryptJson, encryptJson, importKey } from "../../supabase/functions/_shared/crypto.ts";
import { loadConnections } from "../../supabase/functions/_shared/sync/connections.ts";
import { createSyncContext } from "../../supabase/functions/_shared/sync/context.ts";
import { need } from "../_support/env.ts";
import { connect, db, type Sandbox, triggerSync } from "./_harness.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const log = () => {};

type Started =
  | Awaited<ReturnType<typeof startHubSpot>>
  | Awaited<ReturnType<typeof startSalesforce>>
  | Awaited<ReturnType<typeof startPipedrive>>;
type Provider = "hubspot" | "salesforce" | "pipedrive";
const sandboxOf = (provider: Provider, e: Started): Sandbox => ({
  provider,
  url: e.url,
  credentials: e.credentials,
  close: () => e.close(),
});
const liveRefresh = (e: Started) =>
  e.emulator.tokens.list().filter((t) => t.kind === "refresh" && !t.revoked).map((t) => t.token);

async function concurrentRefresh(
  provider: Provider,
  e: Started,
  route: string,
  oauthCredentials?: Record<string, string>,
) {
  const sql = db();
  const key = await importKey(need("CRM_ENCRYPTION_KEY"));
  try {
    e.emulator.oauth.set({ rotateRefreshTokens: true });
    const id = await connect(sql, sandboxOf(provider, e));
    if (oauthCredentials) {
      const text = await encryptJson(key, oauthCredentials, id);
      await sql`update crm.connections set credentials = convert_to(${text}, 'UTF8') where id = ${id}`;
    }
    const twoWorkers = async () => {
      const [a, b] = await Promise.all([1, 2].map(async () => {
        const { connections } = await loadConnections(sql, key, { connectionId: id });
        return await createSyncContext(sql, key, connections[0], log);
      }));
      e.emulator.tokens.expireAccessTokens(Date.now());
      const before = e.counters.count(route);
      const pages = await Promise.all(
        [a, b].map((ctx) => ctx.adapter.changesSince("contacts", null, null, { pageSize: 5 })),
      );
      for (const p of pages) assert.ok(p.records.length > 0);
      return e.counters.count(route) - before;
    };
    assert.equal(await twoWorkers(), 1, "one refresh call for two workers");
    const [row] = await sql`select convert_from(credentials, 'UTF8') as c from crm.connections
                            where id = ${id}`;
    const stored = await decryptJson<Record<string, string>>(key, row.c, id);
    assert.deepEqual(liveRefresh(e), [stored.refreshToken], "the rotated refresh token is stored");
    assert.notEqual(stored.refreshToken, e.credentials[`${provider.toUpperCase()}_REFRESH_TOKEN`]);
    // The next expiry refreshes with the rotated token: again once, and it works.
    assert.equal(await twoWorkers(), 1);
    await sql`delete from crm.connections where id = ${id}`;
  } finally {
    await sql.end();
    await e.close();
  }
}

Deno.test(
  "hubspot: two concurrent refreshes → one refresh call, both proceed, rotation kept",
  opts,
  async () => {
    await concurrentRefresh(
      "hubspot",
      await startHubSpot({ seed: 51, records: 5, log }),
      "POST /oauth/v1/token",
    );
  },
);

Deno.test(
  "salesforce: two concurrent refreshes → one refresh call, both proceed, rotation kept",
  opts,
  async () => {
    await concurrentRefresh(
      "salesforce",
      await startSalesforce({ seed: 52, records: 5, log }),
      "POST /services/oauth2/token",
    );
  },
);

Deno.test(
  "pipedrive (OAuth grant): two concurrent refreshes → one refresh call, both proceed, rotation kept",
  opts,
  async () => {
    const pd = await startPipedrive({ seed: 54, records: 5, log, rateLimit: { burst: 100_000 } });
    const c = pd.credentials;
    await concurrentRefresh("pipedrive", pd, "POST /oauth/token", {
      accessToken: c.PIPEDRIVE_ACCESS_TOKEN,
      refreshToken: c.PIPEDRIVE_REFRESH_TOKEN,
      clientId: c.PIPEDRIVE_CLIENT_ID,
      clientSecret: c.PIPEDRIVE_CLIENT_SECRET,
      tokenUrl: `${pd.url}/oauth/token`,
    });
  },
);

Deno.test(
  "a refused refresh puts the connection in error with a reconnect message",
  opts,
  async () => {
    const sql = db();
    const hs = await startHubSpot({ seed: 53, records: 5, log });
    try {
      const id = await connect(sql, sandboxOf("hubspot", hs));
      hs.emulator.tokens.revoke((t) => t.kind === "refresh");
      hs.emulator.tokens.expireAccessTokens(Date.now());
      const r = await triggerSync(sql, "contacts", id);
      assert.equal(r.ok, false);
      const [row] = await sql`select status, last_error from crm.connect_status(
                              (select account_id from crm.connections where id = ${id}))`;
      assert.equal(row.status, "error");
      assert.match(row.last_error, /reconnect/);
      await sql`delete from crm.connections where id = ${id}`;
    } finally {
      await sql.end();
      await hs.close();
    }
  },
);

/** A refresh the token endpoint answers 5xx (the sandbox's fault on that route only) is
 * transient: the run fails, the connection stays active, and the next run refreshes. */
async function transientRefresh(
  provider: Provider,
  e: Started,
  route: string,
  oauthCredentials?: Record<string, string>,
) {
  const sql = db();
  const key = await importKey(need("CRM_ENCRYPTION_KEY"));
  try {
    const id = await connect(sql, sandboxOf(provider, e));
    if (oauthCredentials) {
      const text = await encryptJson(key, oauthCredentials, id);
      await sql`update crm.connections set credentials = convert_to(${text}, 'UTF8') where id = ${id}`;
    }
    e.emulator.faults.update({ error5xxRate: 1, routeFilter: route });
    e.emulator.tokens.expireAccessTokens(Date.now());
    const before = e.counters.count(route);
    const failed = await triggerSync(sql, "contacts", id);
    assert.equal(failed.ok, false, JSON.stringify(failed));
    assert.ok(e.counters.count(route) > before, "the token endpoint was asked");
    const [row] = await sql`select status, last_error from crm.connections where id = ${id}`;
    assert.equal(row.status, "active", `a ${provider} token endpoint 5xx is transient`);
    assert.doesNotMatch(row.last_error ?? "", /reconnect/);
    e.emulator.faults.update({ error5xxRate: 0, routeFilter: null });
    const ok = await triggerSync(sql, "contacts", id);
    assert.equal(ok.ok, true, JSON.stringify(ok));
    await sql`delete from crm.connections where id = ${id}`;
  } finally {
    await sql.end();
    await e.close();
  }
}

Deno.test("hubspot: a 5xx from the token endpoint leaves the connection active", opts, async () => {
  await transientRefresh(
    "hubspot",
    await startHubSpot({ seed: 55, records: 5, log }),
    "POST /oauth/v1/token",
  );
});

Deno.test(
  "salesforce: a 5xx from the token endpoint leaves the connection active",
  opts,
  async () => {
    await transientRefresh(
      "salesforce",
      await startSalesforce({ seed: 56, records: 5, log }),
      "POST /services/oauth2/token",
    );
  },
);

Deno.test(
  "pipedrive (OAuth grant): a 5xx from the token endpoint leaves the connection active",
  opts,
  async () => {
    const pd = await startPipedrive({ seed: 57, records: 5, log, rateLimit: { burst: 100_000 } });
    const c = pd.credentials;
    await transientRefresh("pipedrive", pd, "POST /oauth/token", {
      accessToken: c.PIPEDRIVE_ACCESS_TOKEN,
      refreshToken: c.PIPEDRIVE_REFRESH_TOKEN,
      clientId: c.PIPEDRIVE_CLIENT_ID,
      clientSecret: c.PIPEDRIVE_CLIENT_SECRET,
      tokenUrl: `${pd.url}/oauth/token`,
    });
  },
);
