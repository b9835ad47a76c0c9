// The refusal limit of crm-webhook end to end: a flood of forged deliveries from one address is
// answered 429 with Retry-After once over the limit, while a valid delivery from another address
// is stored meanwhile; during its window the flooding address's valid delivery of a connection
// whose route is cached is stored (verified from memory), a forged one gets 429, and a valid one
// that needs the database is refused 429 (nothing stored, nothing lost: it is retried) and
// stored once the window is over.
import assert from "node:assert/strict";
import { REFUSAL_LIMIT } from "../../supabase/functions/_shared/webhooks/refusal_limit.ts";
import { db } from "./_harness.ts";
import { deliverHubSpot } from "./_webhook_sender.ts";
import { randomSecret, webhookConnection } from "./_webhooks.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test({
  name: "crm-webhook: forged floods get 429, valid deliveries from others are stored",
  ...opts,
  fn: async () => {
    const sql = db();
    const portal = String(600_000_000 + Math.floor(Math.random() * 99_000_000));
    const secret = randomSecret();
    const conn = await webhookConnection(sql, "hubspot", portal, { webhook_secret: secret });
    const r = { portal, secret };
    const portal2 = String(Number(portal) + 1);
    const r2 = { portal: portal2, secret: randomSecret() };
    const conn2 = await webhookConnection(sql, "hubspot", portal2, { webhook_secret: r2.secret });
    const flooder = `203.0.113.${1 + Math.floor(Math.random() * 250)}`;
    try {
      const stored = async (id: string, c = conn) =>
        (await sql`select count(*)::int as n from crm.webhook_events
                   where connection_id = ${c} and remote_id = ${id}`)[0].n;
      const statuses: number[] = [];
      let retryAfter = 0;
      const flood = (async () => {
        for (let i = 0; i < 4 * REFUSAL_LIMIT; i++) {
          const res = await deliverHubSpot(r, [String(1000 + i)], flooder, { forged: true });
          await res.body?.cancel();
          statuses.push(res.status);
          if (res.status === 429) retryAfter = Number(res.headers.get("retry-after"));
        }
      })();
      // Meanwhile, a valid delivery from another address.
      const valid = await deliverHubSpot(r, ["42"], "198.51.100.20");
      assert.equal(valid.status, 200, await valid.text());
      await flood;
      assert.ok(statuses.every((s) => s === 401 || s === 429), JSON.stringify(statuses));
      const refused = statuses.filter((s) => s === 401).length;
      const limited = statuses.filter((s) => s === 429).length;
      assert.ok(limited > 0, "the flood was answered 429");
      assert.ok(retryAfter >= 1, "with Retry-After");
      console.log(`flood of ${statuses.length}: ${refused} × 401, ${limited} × 429`);
      assert.equal(await stored("42"), 1, "the other sender's delivery is stored");

      // During the flooder's window: its valid delivery of a connection whose route this
      // isolate has cached verifies from memory and is stored (the sender's address is a header
      // anyone can set: a forger naming a provider's address must not get its deliveries 429'd).
      const cached = await deliverHubSpot(r, ["44"], flooder);
      assert.equal(cached.status, 200, await cached.text());
      assert.equal(await stored("44"), 1, "a cached route's valid delivery is stored");
      const forged = await deliverHubSpot(r, ["45"], flooder, { forged: true });
      await forged.body?.cancel();
      assert.equal(forged.status, 429, "a forged one is still limited");
      // A connection this isolate has not seen needs the database: limited, nothing stored.
      const during = await deliverHubSpot(r2, ["43"], flooder);
      assert.equal(during.status, 429);
      const wait = Number(during.headers.get("retry-after"));
      await during.body?.cancel();
      assert.equal(await stored("43", conn2), 0);
      // Retried after Retry-After, as providers do: stored.
      await new Promise((ok) => setTimeout(ok, wait * 1000 + 200));
      const after = await deliverHubSpot(r2, ["43"], flooder);
      assert.equal(after.status, 200, await after.text());
      assert.equal(await stored("43", conn2), 1, "the retried delivery is stored");
    } finally {
      await sql`delete from crm.connections where id in ${sql([conn, conn2])}`;
      await sql.end();
    }
  },
});

Deno.test({
  name: "crm-webhook: a forger naming a portal cannot evict its cached route",
  ...opts,
  fn: async () => {
    // Found by CI (the test above failed 1 run in many): a forged delivery re-checked a cached
    // route at the database and then forgot it, so the provider's next valid delivery from a
    // charged address needed the database and got 429. The order is fixed here: forged, forged
    // (the second evicted the route), valid (cached again), then the flood.
    const sql = db();
    const portal = String(600_000_000 + Math.floor(Math.random() * 99_000_000));
    const r = { portal, secret: randomSecret() };
    const conn = await webhookConnection(sql, "hubspot", portal, { webhook_secret: r.secret });
    const flooder = `203.0.113.${1 + Math.floor(Math.random() * 250)}`;
    const forged = async () => {
      const res = await deliverHubSpot(r, ["1"], flooder, { forged: true });
      await res.body?.cancel();
      return res.status;
    };
    try {
      const statuses = [await forged(), await forged()];
      const valid = await deliverHubSpot(r, ["46"], "198.51.100.21");
      assert.equal(valid.status, 200, await valid.text());
      for (let i = 0; i < REFUSAL_LIMIT + 2; i++) statuses.push(await forged());
      assert.equal(statuses.at(-1), 429, `the flooder is limited: ${statuses}`);
      const cached = await deliverHubSpot(r, ["47"], flooder);
      assert.equal(cached.status, 200, await cached.text());
    } finally {
      await sql`delete from crm.connections where id = ${conn}`;
      await sql.end();
    }
  },
});
