// crm-fetch-live: normalised records straight from the CRM for dashboards, persisted with
// sync: true through the sync's apply path (owners land in crm.owners, records link to them);
// user tokens see only their account's connections; bad input is refused before any work.
import assert from "node:assert/strict";
import { mintKey } from "../../shared/local/jwt.ts";
import { need } from "../_support/env.ts";
import { callFunction, withConnection } from "./_harness.ts";

Deno.test({
  name: "e2e crm-fetch-live: live records, persist, owners linked, auth and input errors",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await withConnection("salesforce", { seed: 61, records: 40 }, async ({ sql, conn }) => {
      const live = await callFunction("crm-fetch-live", {
        type: "contacts",
        connection_id: conn,
        limit: 10,
      });
      assert.equal(live.status, 200, JSON.stringify(live.json));
      const [res] = live.json.results as Array<Record<string, unknown>>;
      const records = res.records as Array<Record<string, unknown>>;
      assert.equal(records.length, 10);
      assert.equal(res.more, true);
      for (const r of records) {
        assert.ok(typeof r.remote_id === "string" && r.remote_updated_at);
        if (r.email) assert.equal(r.email, String(r.email).toLowerCase());
        assert.ok(r.kind === "contact" || r.kind === "lead");
      }
      const [{ n: none }] =
        await sql`select count(*)::int as n from crm.contacts where connection_id = ${conn}`;
      assert.equal(none, 0, "a plain live read writes nothing");

      // Persist: owners first, then contacts link to them.
      for (const type of ["owners", "contacts"]) {
        const r = await callFunction("crm-fetch-live", {
          type,
          connection_id: conn,
          sync: true,
          limit: 1000,
        });
        assert.equal(r.status, 200, JSON.stringify(r.json));
      }
      const [{ owners }] =
        await sql`select count(*)::int as owners from crm.owners where connection_id = ${conn}`;
      assert.ok(owners > 0);
      const [{ linked, withOwner }] = await sql`
        select count(owner_id)::int as linked, count(owner_remote_id)::int as "withOwner"
        from crm.contacts where connection_id = ${conn}`;
      assert.ok(withOwner > 0);
      assert.equal(linked, withOwner, "every contact with an owner is linked to it");
      const logs = await sql`select object, status, processed from crm.sync_log
                             where connection_id = ${conn} and trigger = 'live' order by id`;
      assert.deepEqual(logs.map((l) => [l.object, l.status]), [["owners", "success"], [
        "contacts",
        "success",
      ]]);
      const [cur] =
        await sql`select count(*)::int as n from crm.sync_cursors where connection_id = ${conn}`;
      assert.equal(cur.n, 0, "a live persist moves no sync cursor");

      // A user of the connection's account sees it; a user of another account does not.
      const [{ account_id }] = await sql`select account_id from crm.connections where id = ${conn}`;
      const secret = need("SUPABASE_JWT_SECRET");
      const user = await mintKey(secret, {
        role: "authenticated",
        aud: "authenticated",
        sub: crypto.randomUUID(),
        app_metadata: { account_id },
      });
      const stranger = await mintKey(secret, {
        role: "authenticated",
        aud: "authenticated",
        sub: crypto.randomUUID(),
        app_metadata: { account_id: crypto.randomUUID() },
      });
      const mine = await callFunction(
        "crm-fetch-live",
        { type: "owners", timeframe: "this_month" },
        user,
      );
      assert.equal(mine.status, 200, JSON.stringify(mine.json));
      assert.equal((mine.json.results as unknown[]).length, 1);
      const theirs = await callFunction(
        "crm-fetch-live",
        { type: "owners", connection_id: conn },
        stranger,
      );
      assert.equal(theirs.status, 404);

      // Bad input: nothing runs.
      const anon = await callFunction(
        "crm-fetch-live",
        { type: "owners" },
        need("SUPABASE_ANON_KEY"),
      );
      assert.equal(anon.status, 401);
      assert.equal((await callFunction("crm-fetch-live", "{not json", user)).status, 400);
      assert.equal((await callFunction("crm-fetch-live", { type: "tickets" }, user)).status, 400);
      assert.equal(
        (await callFunction("crm-fetch-live", { type: "owners", limit: 5000 }, user)).status,
        400,
      );
      const big = await callFunction(
        "crm-fetch-live",
        { type: "owners", pad: "x".repeat(70_000) },
        user,
      );
      assert.equal(big.status, 413);
      const sync = await callFunction("crm-sync-bidirectional", { direction: "inbound" }, user);
      assert.equal(sync.status, 403, "the sync is service-role only");
      const unknownKey = await callFunction("crm-sync-bidirectional", {
        direction: "inbound",
        turbo: true,
      });
      assert.equal(unknownKey.status, 400);
    });
  },
});
