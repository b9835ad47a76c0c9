// The refusal limit of crm-webhook end to end: a flood of forged deliveries from one address is
// answered 429 with Retry-After once over the limit, while a valid delivery from another address
// is stored meanwhile; the flooding address's own valid delivery is refused 429 during its window
// (nothing stored, nothing lost: it is retried) and stored once the window is over.
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
    const flooder = `203.0.113.${1 + Math.floor(Math.random() * 250)}`;
    try {
      const stored = async (id: string) =>
        (await sql`select count(*)::int as n from crm.webhook_events
                   where connection_id = ${conn} and remote_id = ${id}`)[0].n;
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

      // The flooder's own valid delivery during the window: 429, nothing stored.
      const during = await deliverHubSpot(r, ["43"], flooder);
      assert.equal(during.status, 429);
      const wait = Number(during.headers.get("retry-after"));
      await during.body?.cancel();
      assert.equal(await stored("43"), 0);
      // Retried after Retry-After, as providers do: stored.
      await new Promise((ok) => setTimeout(ok, wait * 1000 + 200));
      const after = await deliverHubSpot(r, ["43"], flooder);
      assert.equal(after.status, 200, await after.text());
      assert.equal(await stored("43"), 1, "the retried delivery is stored");
    } finally {
      await sql`delete from crm.connections where id = ${conn}`;
      await sql.end();
    }
  },
});
