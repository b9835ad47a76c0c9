// The functions' HTTP boundary through the real gateway: one body limit and parser for every
// function (413 over the limit; 400 for malformed JSON, a NUL or a lone surrogate, never a
// 500), truthful 404 for an unknown connection, the per-account limit on crm-fetch-live's
// sync: true (429 + Retry-After, kept in SQL), and CORS for browsers calling crm-fetch-live.
import assert from "node:assert/strict";
import { mintKey } from "../../shared/local/jwt.ts";
import { MAX_BODY_BYTES } from "../../supabase/functions/_shared/http/body.ts";
import { need } from "../_support/env.ts";
import { callFunction, db, withConnection } from "./_harness.ts";

const FUNCTIONS = ["crm-sync-bidirectional", "crm-fetch-live", "platform-ping"];

Deno.test({
  name: "e2e http: every function answers 4xx to bad bodies under one limit",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const sql = db();
    try {
      const [{ before }] = await sql`select count(*)::int as before from public.platform_pings`;
      for (const fn of FUNCTIONS) {
        const big = await callFunction(fn, { pad: "x".repeat(MAX_BODY_BYTES) });
        assert.equal(big.status, 413, `${fn}: over the limit`);
        const huge = await callFunction(fn, { source: "x".repeat(5 * 1024 * 1024) });
        assert.equal(huge.status, 413, `${fn}: 5 MB`);
        assert.equal((await callFunction(fn, "{not json")).status, 400, `${fn}: malformed`);
        for (const text of ["A\\u0000B", "A\\ud800B"]) {
          const r = await callFunction(fn, `{"source":"${text}","type":"contacts"}`);
          assert.equal(r.status, 400, `${fn}: ${text} -> ${JSON.stringify(r.json)}`);
          assert.match(String(r.json.error), /NUL|surrogate/);
        }
      }
      const [{ after }] = await sql`select count(*)::int as after from public.platform_pings`;
      assert.equal(after, before, "no bad body wrote a ping");
    } finally {
      await sql.end();
    }
  },
});

Deno.test({
  name: "e2e http: crm-sync-bidirectional answers 404 for an unknown connection",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const id = crypto.randomUUID();
    const r = await callFunction("crm-sync-bidirectional", {
      direction: "inbound",
      connection_id: id,
    });
    assert.equal(r.status, 404, JSON.stringify(r.json));
    assert.equal(r.json.error, `connection ${id} not found`);
  },
});

Deno.test({
  name: "e2e http: crm-sync-bidirectional answers 409 for a connection that is not active",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await withConnection("pipedrive", { seed: 72, records: 1 }, async (s) => {
      await s.sql`update crm.connections set status = 'paused' where id = ${s.conn}`;
      const r = await callFunction("crm-sync-bidirectional", {
        direction: "inbound",
        connection_id: s.conn,
      });
      assert.equal(r.status, 409, JSON.stringify(r.json));
      assert.match(String(r.json.error), /is paused, not active; nothing was synced/);
      const [{ n }] = await s.sql`select count(*)::int as n from crm.sync_log
                                  where connection_id = ${s.conn}`;
      assert.equal(n, 0);
    });
  },
});

Deno.test({
  name: "e2e http: crm-fetch-live limits a user's sync: true per account (429 + Retry-After)",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await withConnection("hubspot", { seed: 71, records: 5, unlimited: true }, async (s) => {
      const [{ account_id }] = await s.sql`select account_id from crm.connections
                                           where id = ${s.conn}`;
      const user = await mintKey(need("SUPABASE_JWT_SECRET"), {
        role: "authenticated",
        aud: "authenticated",
        sub: crypto.randomUUID(),
        app_metadata: { account_id },
      });
      const body = { type: "owners", connection_id: s.conn, sync: true, limit: 5 };
      try {
        const first = await callFunction("crm-fetch-live", body, user);
        assert.equal(first.status, 200, JSON.stringify(first.json));
        const [bucket] = await s.sql`select tokens, last_granted from crm.live_fetch_buckets
                                     where account_id = ${account_id} and kind = 'sync'`;
        assert.ok(bucket?.last_granted, "the call took a grant from the account's bucket");

        // Spend the rest of the bucket the way concurrent callers would.
        await s.sql`update crm.live_fetch_buckets set tokens = 0, refilled_at = now()
                    where account_id = ${account_id} and kind = 'sync'`;
        const res = await fetch(`${need("SUPABASE_URL")}/functions/v1/crm-fetch-live`, {
          method: "POST",
          headers: { authorization: `Bearer ${user}`, "content-type": "application/json" },
          body: JSON.stringify(body),
        });
        const json = await res.json();
        assert.equal(res.status, 429, JSON.stringify(json));
        const wait = Number(res.headers.get("retry-after"));
        assert.ok(Number.isInteger(wait) && wait > 0, `Retry-After: ${wait}`);
        assert.match(json.error, /live sync limit reached for this account/);
        const [{ n }] = await s.sql`select count(*)::int as n from crm.sync_log
                                    where connection_id = ${s.conn} and trigger = 'live'`;
        assert.equal(n, 1, "the refused call ran nothing");

        const read = await callFunction("crm-fetch-live", { ...body, sync: false }, user);
        assert.equal(read.status, 200, "plain reads have a bucket of their own");
        const service = await callFunction("crm-fetch-live", body);
        assert.equal(service.status, 200, "the service role is not limited");

        // Plain reads call the CRM too: they spend the account's read bucket.
        await s.sql`update crm.live_fetch_buckets set tokens = 0, refilled_at = now()
                    where account_id = ${account_id} and kind = 'read'`;
        const refusedRead = await callFunction("crm-fetch-live", { ...body, sync: false }, user);
        assert.equal(refusedRead.status, 429, JSON.stringify(refusedRead.json));
        assert.match(String(refusedRead.json.error), /live fetch limit reached/);
      } finally {
        await s.sql`delete from crm.live_fetch_buckets where account_id = ${account_id}`;
      }
    });
  },
});

Deno.test({
  name: "e2e http: crm-fetch-live answers CORS preflights and requests for allowed origins only",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    // The local stack allows the usual dashboard dev servers (shared/local/secrets.ts).
    const url = `${need("SUPABASE_URL")}/functions/v1/crm-fetch-live`;
    const allowed = "http://localhost:5173";
    const other = "https://evil.example";
    const preflight = (origin: string) =>
      fetch(url, {
        method: "OPTIONS",
        headers: {
          origin,
          "access-control-request-method": "POST",
          "access-control-request-headers": "authorization, content-type, apikey, x-client-info",
        },
      });
    const ok = await preflight(allowed);
    await ok.body?.cancel();
    assert.equal(ok.status, 200, "the gateway let the preflight through to the function");
    assert.equal(ok.headers.get("access-control-allow-origin"), allowed);
    assert.match(ok.headers.get("access-control-allow-headers")!, /authorization/);
    const no = await preflight(other);
    await no.body?.cancel();
    assert.equal(no.status, 403);
    assert.equal(no.headers.get("access-control-allow-origin"), null);

    const post = (origin: string, token: string) =>
      fetch(url, {
        method: "POST",
        headers: { origin, authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ type: "owners", connection_id: crypto.randomUUID() }),
      });
    const service = need("SUPABASE_SERVICE_ROLE_KEY");
    const notFound = await post(allowed, service);
    await notFound.body?.cancel();
    assert.equal(notFound.status, 404);
    assert.equal(notFound.headers.get("access-control-allow-origin"), allowed, "errors too");
    const anon = await post(allowed, need("SUPABASE_ANON_KEY"));
    await anon.body?.cancel();
    assert.equal(anon.status, 401);
    assert.equal(anon.headers.get("access-control-allow-origin"), allowed);
    const foreign = await post(other, service);
    await foreign.body?.cancel();
    assert.equal(foreign.status, 404);
    assert.equal(foreign.headers.get("access-control-allow-origin"), null);
  },
});
