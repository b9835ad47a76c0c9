// crm-connect end to end: each provider connected through the flow against its sandbox
// (start → authorize → callback → encrypted credentials → first backfill through the workers),
// token connect, status, disconnect, and the security tests.
import assert from "node:assert/strict";
import { startHubSpot } from "../../shared/emulators/hubspot/mod.ts";
import { startPipedrive } from "../../shared/emulators/pipedrive/mod.ts";
import { startSalesforce } from "../../shared/emulators/salesforce/mod.ts";
import { stateKey } from "../../supabase/functions/_shared/connect/config.ts";
import { signState } from "../../supabase/functions/_shared/connect/state.ts";
import { mintKey } from "../../shared/local/jwt.ts";
import { need } from "../_support/env.ts";
import { awaitJobs, db } from "./_harness.ts";
import {
  type Answer,
  APP,
  type ConnectGateway,
  freePort,
  newUser,
  req,
  startConnectGateway,
  type TestUser,
} from "./_connect.ts";

const sql = db();
const port = freePort();
const callback = `http://127.0.0.1:${port}/functions/v1/crm-connect/callback`;
const log = () => {};
const oauth = { redirectUris: [callback] };
const hs = await startHubSpot({ seed: 41, records: 5, accounts: 2, log, oauth });
const sf = await startSalesforce({ seed: 42, records: 5, log, oauth });
const pd = await startPipedrive({
  seed: 43,
  records: 5,
  log,
  oauth,
  rateLimit: { burst: 100_000 },
});

const secrets = {
  CRM_HUBSPOT_CLIENT_ID: hs.credentials.HUBSPOT_CLIENT_ID,
  CRM_HUBSPOT_CLIENT_SECRET: hs.credentials.HUBSPOT_CLIENT_SECRET,
  CRM_HUBSPOT_AUTHORIZE_URL: `${hs.url}/oauth/authorize`,
  CRM_HUBSPOT_API_URL: hs.url,
  CRM_SALESFORCE_CLIENT_ID: sf.credentials.SALESFORCE_CLIENT_ID,
  CRM_SALESFORCE_CLIENT_SECRET: sf.credentials.SALESFORCE_CLIENT_SECRET,
  CRM_SALESFORCE_LOGIN_URL: sf.url,
  CRM_PIPEDRIVE_CLIENT_ID: pd.credentials.PIPEDRIVE_CLIENT_ID,
  CRM_PIPEDRIVE_CLIENT_SECRET: pd.credentials.PIPEDRIVE_CLIENT_SECRET,
  CRM_PIPEDRIVE_OAUTH_URL: pd.url,
  CRM_PIPEDRIVE_API_URL: pd.url,
  CRM_CONNECT_REDIRECT_ALLOW_LIST: `${APP},https://admin.example/`,
  CRM_CONNECT_TIMEOUT_MS: "5000",
  CRM_CORS_ORIGINS: "https://app.example",
};
let gw: ConnectGateway = await startConnectGateway(port, secrets);

// The sandboxes' seeds fix their remote account ids: rows an earlier run left are removed.
const hs1 = (hs.emulator.tenancy!.get(1) as unknown as { credentials(): Record<string, string> })
  .credentials();
const PD2_SEED = 44;
await sql`delete from crm.connections
          where (provider = 'hubspot' and remote_account_id in (${hs.credentials.HUBSPOT_PORTAL_ID}, ${hs1.HUBSPOT_PORTAL_ID}))
             or (provider = 'salesforce' and remote_account_id = ${sf.credentials.SALESFORCE_ORG_ID})
             or (provider = 'pipedrive' and remote_account_id = ${pd.credentials.PIPEDRIVE_COMPANY_ID})`;

// Everything the functions print, to look for tokens in it.
const printed: string[] = [];
const write = Deno.stdout.write.bind(Deno.stdout);
const writeSync = Deno.stdout.writeSync.bind(Deno.stdout);
Deno.stdout.write = (b: Uint8Array) => {
  printed.push(new TextDecoder().decode(b));
  return write(b);
};
Deno.stdout.writeSync = (b: Uint8Array) => {
  printed.push(new TextDecoder().decode(b));
  return writeSync(b);
};
const answers: string[] = [];
const record = (a: Answer) => {
  answers.push(a.text, a.location ?? "");
  return a;
};

const opts = { sanitizeOps: false, sanitizeResources: false };
const remoteOf = {
  hubspot: hs.credentials.HUBSPOT_PORTAL_ID,
  salesforce: sf.credentials.SALESFORCE_ORG_ID,
  pipedrive: pd.credentials.PIPEDRIVE_COMPANY_ID,
};

async function start(
  u: TestUser,
  provider: string,
  redirect_to: string | undefined = `${APP}/done`,
) {
  return record(await req(`${gw.fn}/start`, { jwt: u.jwt, body: { provider, redirect_to } }));
}

/** The provider's consent redirect: the callback URL with code and state. */
async function consent(authorizeUrl: string): Promise<string> {
  const res = await fetch(authorizeUrl, { redirect: "manual" });
  await res.body?.cancel();
  assert.equal(res.status, 302, `authorize answered ${res.status}`);
  const loc = res.headers.get("location")!;
  assert.ok(loc.startsWith(callback), loc);
  return loc;
}

async function connectFlow(u: TestUser, provider: string) {
  const s = await start(u, provider);
  assert.equal(s.status, 200, s.text);
  const cb = await consent(String(s.body.authorize_url));
  const done = record(await req(cb));
  return { start: s, callbackUrl: cb, done };
}

const connectionsOf = async (accountId: string) =>
  Number(
    (await sql`select count(*) as n from crm.connections where account_id = ${accountId}`)[0].n,
  );

const users: Record<string, TestUser> = {};
const connections: Record<string, string> = {};

for (const provider of ["hubspot", "salesforce", "pipedrive"] as const) {
  Deno.test(
    `${provider}: connected through the OAuth flow, credentials encrypted, first backfill synced`,
    opts,
    async () => {
      const u = users[provider] = await newUser();
      const t0 = new Date();
      const flow = await connectFlow(u, provider);
      if (provider === "salesforce") {
        const a = new URL(String(flow.start.body.authorize_url));
        assert.equal(a.searchParams.get("code_challenge_method"), "S256");
        assert.equal(a.searchParams.get("code_challenge")?.length, 43);
        assert.equal(a.searchParams.get("scope"), "api refresh_token id");
      } else {
        assert.equal(
          new URL(String(flow.start.body.authorize_url)).searchParams.get("code_challenge"),
          null,
        );
      }
      assert.equal(flow.done.status, 303, flow.done.text);
      const back = new URL(flow.done.location!);
      assert.equal(`${back.origin}${back.pathname}`, `${APP}/done`);
      assert.equal(back.searchParams.get("crm_connect"), "success");
      const id = connections[provider] = back.searchParams.get("connection_id")!;
      assert.equal(back.searchParams.get("created"), "true");
      assert.deepEqual([...back.searchParams.keys()].sort(), [
        "connection_id",
        "created",
        "crm_connect",
        "provider",
      ]);

      const [row] = await sql`select account_id, provider, remote_account_id, status,
                                   convert_from(credentials, 'UTF8') as c
                            from crm.connections where id = ${id}`;
      assert.equal(row.account_id, u.accountId);
      assert.equal(row.remote_account_id, String(remoteOf[provider]));
      assert.equal(row.status, "active");
      assert.match(row.c, /^v1:/);

      const synced = await awaitJobs(sql, id, t0);
      assert.ok(
        synced.runs.length > 0 && synced.runs.every((r) => r.status !== "failed"),
        JSON.stringify(synced.runs),
      );
      const [{ n }] = await sql`select count(*) as n from crm.contacts where connection_id = ${id}`;
      assert.ok(Number(n) >= 5, `contacts mirrored: ${n}`);
      // The connect also queued the webhook set-up. Its outcome depends on the stack: the test
      // stack has no deployment HubSpot app (HUBSPOT_APP_ID), so HubSpot's set-up ends dead
      // there; that job is not the backfill's (connect_webhooks.test.ts covers the set-up).
      const [jobs] = await sql`select count(*) filter (where kind = 'setup')::int as setup,
                                      count(*) filter (where kind = 'inbound' and state = 'dead')::int
                                        as dead
                               from crm.jobs where connection_id = ${id}`;
      assert.deepEqual({ ...jobs }, { setup: 1, dead: 0 });

      const st = record(await req(`${gw.fn}/status`, { jwt: u.jwt }));
      assert.equal(st.status, 200);
      const list = st.body.connections as Array<Record<string, unknown>>;
      assert.equal(list.length, 1);
      assert.equal(list[0].provider, provider);
      assert.equal(list[0].remote_account_id, String(remoteOf[provider]));
      assert.equal(list[0].status, "active");
      assert.ok(list[0].last_synced_at);
      assert.equal(typeof (list[0].backlog as Record<string, number>).outbox_pending, "number");
    },
  );
}

Deno.test(
  "reconnecting the same remote account keeps the connection and its mirror",
  opts,
  async () => {
    const u = users.hubspot;
    const id = connections.hubspot;
    const before =
      await sql`select id, remote_id from crm.contacts where connection_id = ${id} order by id`;
    await sql`select crm.mark_connection_error(${id}, 'HubSpot refused the stored credentials (reconnect it)')`;
    const flow = await connectFlow(u, "hubspot");
    const back = new URL(flow.done.location!);
    assert.equal(back.searchParams.get("crm_connect"), "success");
    assert.equal(back.searchParams.get("connection_id"), id);
    assert.equal(back.searchParams.get("created"), "false");
    const [row] = await sql`select status, last_error from crm.connections where id = ${id}`;
    assert.equal(row.status, "active");
    assert.equal(row.last_error, null);
    const after =
      await sql`select id, remote_id from crm.contacts where connection_id = ${id} order by id`;
    assert.deepEqual([...after].slice(0, before.length), [...before]);
    await awaitJobs(sql, id, new Date());
  },
);

Deno.test(
  "a different remote account for an existing connection is refused clearly, nothing written",
  opts,
  async () => {
    const u = users.hubspot;
    const other = hs1;
    const r = record(
      await req(`${gw.fn}/token`, {
        jwt: u.jwt,
        body: { provider: "hubspot", token: other.HUBSPOT_PRIVATE_APP_TOKEN },
      }),
    );
    assert.equal(r.status, 409, r.text);
    assert.equal(r.body.error, "other_remote_account");
    assert.match(String(r.body.message), /another hubspot account/);
    assert.equal(await connectionsOf(u.accountId), 1);
    // The same remote account from another app account: refused as taken.
    const v = await newUser();
    const taken = record(
      await req(`${gw.fn}/token`, {
        jwt: v.jwt,
        body: { provider: "hubspot", token: hs.credentials.HUBSPOT_PRIVATE_APP_TOKEN },
      }),
    );
    assert.equal(taken.status, 409);
    assert.equal(taken.body.error, "remote_account_taken");
    assert.equal(await connectionsOf(v.accountId), 0);
  },
);

Deno.test(
  "token connect: HubSpot private-app and Pipedrive API tokens are checked by a test call",
  opts,
  async () => {
    const u = await newUser();
    const bad = record(
      await req(`${gw.fn}/token`, {
        jwt: u.jwt,
        body: { provider: "pipedrive", token: "not-a-real-token-123" },
      }),
    );
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error, "invalid_token");
    assert.equal(await connectionsOf(u.accountId), 0);
    const sfToken = record(
      await req(`${gw.fn}/token`, {
        jwt: u.jwt,
        body: { provider: "salesforce", token: "whatever-123456" },
      }),
    );
    assert.equal(sfToken.status, 400);

    // Pipedrive account 0 is linked to users.pipedrive; a new sandbox company for this one.
    const pd2 = await startPipedrive({ seed: PD2_SEED, records: 3, log });
    await sql`delete from crm.connections where provider = 'pipedrive'
            and remote_account_id = ${pd2.credentials.PIPEDRIVE_COMPANY_ID}`;
    const gw2 = await startConnectGateway(freePort(), {
      ...secrets,
      CRM_PIPEDRIVE_API_URL: pd2.url,
    });
    try {
      const ok = record(
        await req(`${gw2.fn}/token`, {
          jwt: u.jwt,
          body: { provider: "pipedrive", token: pd2.credentials.PIPEDRIVE_API_TOKEN },
        }),
      );
      assert.equal(ok.status, 201, ok.text);
      assert.equal(ok.body.remote_account_id, pd2.credentials.PIPEDRIVE_COMPANY_ID);
      const id = String(ok.body.connection_id);
      const synced = await awaitJobs(sql, id, new Date(0));
      assert.ok(synced.ok, JSON.stringify(synced.runs));
      const [{ n }] = await sql`select count(*) as n from crm.contacts where connection_id = ${id}`;
      assert.ok(Number(n) >= 3);
      await sql`delete from crm.connections where id = ${id}`;
    } finally {
      await gw2.close();
      await pd2.close();
    }
  },
);

Deno.test(
  "state replayed, expired, forged, or of another user/account → refused, nothing written",
  opts,
  async () => {
    const u = await newUser();
    const { done, callbackUrl } = await connectFlow(u, "pipedrive");
    // pipedrive's company is taken by users.pipedrive: refused with a clear code, then replayed.
    assert.equal(new URL(done.location!).searchParams.get("error"), "remote_account_taken");
    assert.equal(
      pd.emulator.tokens.list().filter((t) => t.kind === "refresh" && t.revoked).length,
      0,
      "the refused grant is dropped, not revoked (the existing connection's grant stays)",
    );
    const replay = record(await req(callbackUrl));
    assert.equal(replay.status, 400);
    assert.match(replay.text, /already used or has expired/);
    assert.equal(replay.location, null);

    const v = await newUser();
    const key = await stateKey({
      get: (k) => (k === "CRM_ENCRYPTION_KEY" ? need("CRM_ENCRYPTION_KEY") : undefined),
    });
    const s = await start(v, "hubspot");
    const cb = new URL(await consent(String(s.body.authorize_url)));
    const real = cb.searchParams.get("state")!;
    const claims = JSON.parse(atob(real.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    const withState = (state: string) => {
      const x = new URL(cb);
      x.searchParams.set("state", state);
      return x.toString();
    };
    // Another user's or account's claims on this nonce, correctly signed: no matching nonce row.
    const x = await newUser();
    for (
      const who of [{ userId: x.userId, accountId: v.accountId }, {
        userId: v.userId,
        accountId: x.accountId,
      }]
    ) {
      const mixed = await signState(key, { nonce: claims.jti, ...who, provider: "hubspot" }, 600);
      const r = record(await req(withState(mixed)));
      assert.equal(r.status, 400, r.text);
    }
    // Forged (another key), tampered, expired.
    const forged = await signState(new TextEncoder().encode("x".repeat(40)), {
      nonce: claims.jti,
      userId: v.userId,
      accountId: v.accountId,
      provider: "hubspot",
    }, 600);
    const expired = await signState(
      key,
      {
        nonce: claims.jti,
        userId: v.userId,
        accountId: v.accountId,
        provider: "hubspot",
      },
      60,
      Math.floor(Date.now() / 1000) - 3600,
    );
    const tampered = real.slice(0, -3) + (real.endsWith("A") ? "BBB" : "AAA");
    for (const bad of [forged, expired, tampered, ""]) {
      const r = record(await req(withState(bad)));
      assert.equal(r.status, 400, r.text);
      assert.match(r.text, /invalid or has expired/);
    }
    assert.equal(await connectionsOf(v.accountId), 0);
    assert.equal(await connectionsOf(x.accountId), 0);
    // The nonce expired in the database (its state still valid): refused.
    await sql`update crm.connect_states set created_at = now() - interval '20 minutes',
                                          expires_at = now() - interval '1 second'
            where nonce = ${claims.jti}`;
    const late = record(await req(cb.toString()));
    assert.equal(late.status, 400);
    assert.equal(await connectionsOf(v.accountId), 0);
    const [{ left }] =
      await sql`select count(*) as left from crm.connect_states where nonce = ${claims.jti}`;
    assert.equal(Number(left), 1, "an expired nonce is not consumed, only refused");
  },
);

Deno.test(
  "refused consent comes back as access_denied; redirect_to off the allow-list is refused",
  opts,
  async () => {
    const u = await newUser();
    await pd.emulator.oauth.set({ consent: "deny" });
    try {
      const s = await start(u, "pipedrive");
      const cb = await consent(String(s.body.authorize_url));
      const r = record(await req(cb));
      assert.equal(r.status, 303);
      const back = new URL(r.location!);
      assert.equal(back.searchParams.get("crm_connect"), "error");
      assert.equal(back.searchParams.get("error"), "access_denied");
    } finally {
      pd.emulator.oauth.set({ consent: "approve" });
    }
    for (
      const off of [
        "https://evil.example/crm",
        "https://app.example/other",
        "https://app.example.evil.com/crm",
        "javascript:alert(1)",
        "https://u:p@app.example/crm",
      ]
    ) {
      const r = await start(u, "hubspot", off);
      assert.equal(r.status, 400, off);
      assert.match(String(r.body.error), /allow-list/);
    }
    assert.equal(await start(u, "hubspot", "https://admin.example/x/y").then((r) => r.status), 200);
    assert.equal(await start(u, "hubspot", undefined).then((r) => r.status), 200);
    assert.equal(await start(u, "nope").then((r) => r.status), 400);
    assert.equal(await connectionsOf(u.accountId), 0);
  },
);

Deno.test(
  "anon key, expired, forged or service JWT → 401/403 on every user route",
  opts,
  async () => {
    const secret = need("SUPABASE_JWT_SECRET");
    const u = users.salesforce;
    const expired = await mintKey(
      secret,
      {
        role: "authenticated",
        aud: "authenticated",
        sub: u.userId,
        app_metadata: { account_id: u.accountId },
      },
      60,
      Math.floor(Date.now() / 1000) - 7200,
    );
    const forged = await mintKey("another-secret-with-at-least-32-characters!!", {
      role: "authenticated",
      aud: "authenticated",
      sub: u.userId,
      app_metadata: { account_id: u.accountId },
    });
    const routes = [
      { path: "/status" },
      { path: "/start", body: { provider: "hubspot" } },
      { path: "/token", body: { provider: "hubspot", token: "pat-xxxxxxxxxxxx" } },
      { path: "/disconnect", body: { connection_id: connections.salesforce } },
    ];
    for (const r of routes) {
      for (const jwt of [undefined, need("SUPABASE_ANON_KEY"), expired, forged, "garbage"]) {
        const a = await req(`${gw.fn}${r.path}`, { jwt, body: r.body });
        assert.equal(a.status, 401, `${r.path} ${a.text}`);
      }
      const svc = await req(`${gw.fn}${r.path}`, {
        jwt: need("SUPABASE_SERVICE_ROLE_KEY"),
        body: r.body,
      });
      assert.equal(svc.status, 403, r.path);
    }
    const [row] =
      await sql`select status from crm.connections where id = ${connections.salesforce}`;
    assert.equal(row.status, "active");
  },
);

Deno.test(
  "browsers: the preflight answers allowed origins only, answers carry CORS headers",
  opts,
  async () => {
    const pre = (origin: string) =>
      fetch(`${gw.fn}/start`, {
        method: "OPTIONS",
        headers: {
          origin,
          "access-control-request-method": "POST",
          "access-control-request-headers": "authorization, content-type",
        },
      });
    const ok = await pre("https://app.example");
    await ok.body?.cancel();
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get("access-control-allow-origin"), "https://app.example");
    const no = await pre("https://evil.example");
    await no.body?.cancel();
    assert.equal(no.status, 403);
    assert.equal(no.headers.get("access-control-allow-origin"), null);
    const st = await fetch(`${gw.fn}/status`, {
      headers: { origin: "https://app.example", authorization: `Bearer ${users.hubspot.jwt}` },
    });
    await st.body?.cancel();
    assert.equal(st.status, 200);
    assert.equal(st.headers.get("access-control-allow-origin"), "https://app.example");
  },
);

Deno.test(
  "IDOR: another account's connection is 404 in /status and /disconnect, nothing changes",
  opts,
  async () => {
    const intruder = await newUser();
    const target = connections.salesforce;
    const st = await req(`${gw.fn}/status?connection_id=${target}`, { jwt: intruder.jwt });
    assert.equal(st.status, 404);
    assert.equal(st.text.includes(target), false);
    const all = await req(`${gw.fn}/status?account_id=${users.salesforce.accountId}`, {
      jwt: intruder.jwt,
    });
    assert.deepEqual(all.body, { connections: [] });
    const d = await req(`${gw.fn}/disconnect`, {
      jwt: intruder.jwt,
      body: { connection_id: target, purge: true },
    });
    assert.equal(d.status, 404);
    assert.equal(
      d.text,
      (await req(`${gw.fn}/disconnect`, {
        jwt: intruder.jwt,
        body: { connection_id: crypto.randomUUID() },
      })).text,
    );
    const [row] =
      await sql`select status, credentials is not null as has from crm.connections where id = ${target}`;
    assert.equal(row.status, "active");
    assert.equal(row.has, true);
    const own = await req(`${gw.fn}/status?connection_id=${target}`, { jwt: users.salesforce.jwt });
    assert.equal(own.status, 200);
  },
);

Deno.test("a redeploy (functions restarted) leaves /status unchanged", opts, async () => {
  const before = await Promise.all(
    Object.values(users).map((u) => req(`${gw.fn}/status`, { jwt: u.jwt }).then((a) => a.text)),
  );
  await gw.close();
  gw = await startConnectGateway(port, secrets);
  const after = await Promise.all(
    Object.values(users).map((u) => req(`${gw.fn}/status`, { jwt: u.jwt }).then((a) => a.text)),
  );
  assert.deepEqual(after, before);
  assert.ok(before.every((t) => t.includes('"status":"active"')));
});

Deno.test(
  "disconnect revokes at the provider, stops the jobs, keeps the mirror; purge deletes it",
  opts,
  async () => {
    const u = users.salesforce;
    const id = connections.salesforce;
    const [{ c }] = await sql`select count(*) as c from crm.contacts where connection_id = ${id}`;
    await sql`select crm.enqueue_inbound(array['contacts'], 'delta', ${id}::uuid, 'manual')`;
    const d = record(await req(`${gw.fn}/disconnect`, { jwt: u.jwt, body: { connection_id: id } }));
    assert.equal(d.status, 200, d.text);
    assert.equal(d.body.status, "disconnected");
    assert.equal(d.body.revoked_at_provider, true);
    const live = sf.emulator.tokens.list().filter((t) =>
      t.kind === "refresh" && !t.revoked &&
      t.token !== sf.credentials.SALESFORCE_REFRESH_TOKEN
    );
    assert.equal(live.length, 0, "the connection's refresh token is revoked");
    const [row] = await sql`select status, credentials from crm.connections where id = ${id}`;
    assert.equal(row.status, "disconnected");
    assert.equal(row.credentials, null);
    const [{ jobs }] = await sql`select count(*) as jobs from crm.jobs
                               where connection_id = ${id} and state in ('queued', 'running')`;
    assert.equal(Number(jobs), 0);
    const [{ c2 }] = await sql`select count(*) as c2 from crm.contacts where connection_id = ${id}`;
    assert.equal(c2, c);

    const st = await req(`${gw.fn}/status`, { jwt: u.jwt });
    assert.equal((st.body.connections as Array<{ status: string }>)[0].status, "disconnected");

    const p = record(
      await req(`${gw.fn}/disconnect`, { jwt: u.jwt, body: { connection_id: id, purge: true } }),
    );
    assert.equal(p.body.status, "purged");
    assert.equal(await connectionsOf(u.accountId), 0);
    const [{ c3 }] = await sql`select count(*) as c3 from crm.contacts where connection_id = ${id}`;
    assert.equal(Number(c3), 0);
  },
);

Deno.test(
  "tokens never appear in answers, function logs, sync_log or net._http_response",
  opts,
  async () => {
    const tokens = [hs, sf, pd].flatMap((e) => e.emulator.tokens.list())
      .filter((t) => t.kind !== "code").map((t) => t.token).filter((t) => t.length >= 20);
    assert.ok(tokens.length > 6);
    const ids = Object.values(connections);
    const logs = await sql`select coalesce(details::text, '') || coalesce(error::text, '') as t
                         from crm.sync_log where connection_id = any(${ids}::uuid[])`;
    const net = await sql`select coalesce(content, '') || coalesce(error_msg, '') as t
                        from net._http_response`;
    const haystacks = [
      ...answers,
      ...printed,
      ...gw.logs,
      ...logs.map((r) => r.t),
      ...net.map((r) => r.t),
    ];
    assert.ok(printed.some((l) => l.includes('"fn":"crm-connect"')), "function logs captured");
    for (const t of tokens) {
      assert.ok(!haystacks.some((h) => h.includes(t)), "a token leaked");
    }
  },
);

Deno.test({
  name: "teardown",
  ...opts,
  fn: async () => {
    Deno.stdout.write = write;
    Deno.stdout.writeSync = writeSync;
    await gw.close();
    await Promise.all([hs.close(), sf.close(), pd.close()]);
    await sql.end();
  },
});
