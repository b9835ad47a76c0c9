// crm-webhook through the gateway: deliveries signed and sent by the sandboxes land in
// crm.webhook_events (one row per event, duplicates deduped), an inbox job is enqueued per
// connection, and every hostile variant of a real delivery answers its 4xx and writes nothing.
import assert from "node:assert/strict";
import { admin } from "../../shared/emulators/common/testing.ts";
import { signature, startHubSpot } from "../../shared/emulators/hubspot/mod.ts";
import { startPipedrive } from "../../shared/emulators/pipedrive/mod.ts";
import { startSalesforce } from "../../shared/emulators/salesforce/mod.ts";
import { db } from "./_harness.ts";
import { hookUrl, inboxRows, post, randomSecret, webhookConnection } from "./_webhooks.ts";

const run = Deno.env.get("CRM_TEST") === "1";
const opts = { sanitizeOps: false, sanitizeResources: false, ignore: !run };
const quiet = { port: 0, records: 3, log: () => {} };

interface Delivery {
  status: number | null;
  ok: boolean;
  duplicate?: boolean;
  body?: string;
  headers?: Record<string, string>;
}

async function deliveries(base: string): Promise<Delivery[]> {
  const r = await admin(base, "/webhooks/deliveries?limit=1000") as { deliveries: Delivery[] };
  return r.deliveries;
}

async function inboxJob(sql: ReturnType<typeof db>, connectionId: string): Promise<boolean> {
  for (let i = 0; i < 50; i++) {
    const [r] = await sql`select count(*)::int as n from crm.jobs
                          where kind = 'inbox' and connection_id = ${connectionId}`;
    if (r.n > 0) return true;
    await new Promise((res) => setTimeout(res, 100));
  }
  return false;
}

Deno.test("HubSpot: signed batches stored once each, hostile variants refused", opts, async () => {
  const sql = db();
  const hs = await startHubSpot({ ...quiet, seed: 131 });
  try {
    const portal = hs.credentials.HUBSPOT_PORTAL_ID;
    const secret = hs.credentials.HUBSPOT_CLIENT_SECRET;
    const conn = await webhookConnection(sql, "hubspot", portal, { webhook_secret: secret });
    await admin(hs.url, "/webhooks", {
      method: "PUT",
      json: { targetUrl: hookUrl("/hubspot"), legacySignature: "v2" },
    });
    await admin(hs.url, "/faults", { method: "PUT", json: { webhookDuplicateRate: 1 } });
    const created = await admin(hs.url, "/records/contacts", {
      json: { email: "hook@example.com", firstname: "Hook" },
    }) as { id: string };
    await admin(hs.url, `/records/contacts/${created.id}`, {
      method: "PATCH",
      json: { firstname: "Hooked" },
    });
    await hs.webhooks.idle();
    const sent = await deliveries(hs.url);
    assert.ok(
      sent.length >= 2 && sent.some((d) => d.duplicate),
      "the sandbox duplicated deliveries",
    );
    assert.ok(sent.every((d) => d.status === 200), JSON.stringify(sent.map((d) => d.status)));
    const rows = await sql`select object, remote_id, event_type, dedupe_key, payload
                           from crm.webhook_events where connection_id = ${conn} order by id`;
    const events = sent.filter((d) => !d.duplicate).flatMap((d) => JSON.parse(d.body!));
    assert.equal(rows.length, events.length, "one row per event, duplicates dropped");
    assert.ok(rows.some((r) => r.remote_id === created.id && r.event_type === "upsert"));
    assert.ok(rows.every((r) => r.object === "contacts"));
    assert.ok(await inboxJob(sql, conn), "an inbox job is enqueued for the connection");

    // Hostile variants of a real delivery: nothing written.
    const real = sent.find((d) => d.body && d.headers)!;
    const h = real.headers!;
    const before = await inboxRows(sql);
    const v3 = (body: string, ts: number, s = secret) =>
      signature.signV3(s, "POST", hookUrl("/hubspot"), body, ts);
    const body2 = real.body!.replace(/"eventId":\d+/, '"eventId":999999');
    const now = Date.now();
    const cases: Array<[string, number, BodyInit | null, Record<string, string>, string?]> = [
      ["no signature", 401, real.body!, { "content-type": "application/json" }],
      ["forged v3", 401, real.body!, { ...h, "x-hubspot-signature-v3": "Zm9yZ2Vk" }],
      ["tampered body", 401, body2, h],
      ["replayed after 5 min", 401, body2, {
        "x-hubspot-signature-v3": await v3(body2, now - 6 * 60_000),
        "x-hubspot-request-timestamp": String(now - 6 * 60_000),
      }],
      ["another secret", 401, body2, {
        "x-hubspot-signature-v3": await v3(body2, now, "not-the-secret"),
        "x-hubspot-request-timestamp": String(now),
      }],
      ["unknown portal", 401, body2.replaceAll(`"portalId":${portal}`, '"portalId":1'), {
        "x-hubspot-signature-v3": await v3(
          body2.replaceAll(`"portalId":${portal}`, '"portalId":1'),
          now,
        ),
        "x-hubspot-request-timestamp": String(now),
      }],
      ["malformed JSON, signed", 400, "[{", {
        "x-hubspot-signature-v3": await v3("[{", now),
        "x-hubspot-request-timestamp": String(now),
      }],
      ["over 1 MiB", 413, "[" + " ".repeat(1024 * 1024 + 10) + "]", h],
      ["GET", 405, null, h, "GET"],
      ["huge header", 401, real.body!, { ...h, "x-hubspot-signature-v3": "A".repeat(5000) }],
    ];
    for (const [name, want, body, headers, method] of cases) {
      const r = await post("/hubspot", body, headers, method);
      assert.equal(r.status, want, `${name}: ${r.status} ${r.text}`);
    }
    assert.equal(await inboxRows(sql), before, "no hostile request wrote a row");
    // The same delivery again (a retry): 200, deduped.
    const ts = Date.now();
    const again = await post("/hubspot", real.body!, {
      "x-hubspot-signature-v3": await v3(real.body!, ts),
      "x-hubspot-request-timestamp": String(ts),
    });
    assert.equal(again.status, 200, again.text);
    assert.equal(JSON.parse(again.text).inserted, 0);
    assert.equal(await inboxRows(sql), before);
  } finally {
    await hs.close();
    await sql.end();
  }
});

Deno.test(
  "Salesforce: Outbound Messages stored and acknowledged, hostile variants refused",
  opts,
  async () => {
    const sql = db();
    const sf = await startSalesforce({ ...quiet, seed: 132 });
    try {
      const org = sf.credentials.SALESFORCE_ORG_ID;
      const token = randomSecret();
      const conn = await webhookConnection(sql, "salesforce", org, { webhook_token: token });
      await admin(sf.url, "/outbound", {
        method: "PUT",
        json: { url: hookUrl(`/salesforce/${token}`), objects: ["Contact", "Account"] },
      });
      await admin(sf.url, "/faults", { method: "PUT", json: { webhookDuplicateRate: 1 } });
      const c = await admin(sf.url, "/records/Contact", { json: { LastName: "O'Hook & Co" } }) as {
        Id: string;
      };
      const a = await admin(sf.url, "/records/Account", { json: { Name: "Hook Inc" } }) as {
        Id: string;
      };
      await sf.webhooks.idle();
      const sent = await deliveries(sf.url);
      assert.ok(sent.some((d) => d.duplicate), "the sandbox duplicated deliveries");
      assert.ok(sent.every((d) => d.ok && d.status === 200), JSON.stringify(sent));
      const rows = await sql`select object, remote_id, event_type from crm.webhook_events
                           where connection_id = ${conn} order by object`;
      assert.deepEqual(rows.map((r) => [r.object, r.remote_id, r.event_type]), [
        ["companies", a.Id, "upsert"],
        ["contacts", c.Id, "upsert"],
      ]);
      assert.ok(await inboxJob(sql, conn));

      const real = sent.find((d) => d.body)!.body!;
      const ack = await post(`/salesforce/${token}`, real, { "content-type": "text/xml" });
      assert.equal(ack.status, 200);
      assert.match(ack.type ?? "", /text\/xml/);
      assert.match(
        ack.text,
        /<notificationsResponse[^>]*><Ack>true<\/Ack><\/notificationsResponse>/,
      );

      const before = await inboxRows(sql);
      const other = "00D000000000999AAA";
      const bomb = real.replace(
        '<?xml version="1.0" encoding="UTF-8"?>',
        `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>`,
      ).replace(/<sf:LastName>[^<]*</, "<sf:LastName>&b;<");
      const cases: Array<[string, number, string, BodyInit | null, string?]> = [
        ["unknown token", 401, `/salesforce/${randomSecret()}`, real],
        ["other org", 401, `/salesforce/${token}`, real.replaceAll(org, other)],
        ["entity expansion", 400, `/salesforce/${token}`, bomb],
        ["not XML", 400, `/salesforce/${token}`, "<soapenv:Envelope"],
        ["not UTF-8", 400, `/salesforce/${token}`, new Uint8Array([0x3c, 0x61, 0xff, 0x3e])],
        ["over 1 MiB", 413, `/salesforce/${token}`, real + " ".repeat(1024 * 1024)],
        ["GET", 405, `/salesforce/${token}`, null, "GET"],
        ["short token", 404, `/salesforce/x`, real],
      ];
      for (const [name, want, route, body, method] of cases) {
        const r = await post(route, body, { "content-type": "text/xml" }, method);
        assert.equal(r.status, want, `${name}: ${r.status} ${r.text}`);
      }
      assert.equal(await inboxRows(sql), before, "no hostile request wrote a row");

      // Notification ids are an org's own: another org's message with the same ids is stored
      // for its connection, not dropped as a repeat of the first org's.
      const token2 = randomSecret();
      const conn2 = await webhookConnection(sql, "salesforce", other, { webhook_token: token2 });
      try {
        const r = await post(`/salesforce/${token2}`, real.replaceAll(org, other), {
          "content-type": "text/xml",
        });
        assert.equal(r.status, 200, r.text);
        const [n] = await sql`select count(*)::int as n from crm.webhook_events
                              where connection_id = ${conn2}`;
        assert.ok(n.n >= 1, "the second org's events are stored");
      } finally {
        await sql`delete from crm.connections where id = ${conn2}`;
      }
    } finally {
      await sf.close();
      await sql.end();
    }
  },
);

Deno.test(
  "Pipedrive: v2 deliveries with basic auth stored, hostile variants refused",
  opts,
  async () => {
    const sql = db();
    const pd = await startPipedrive({ ...quiet, seed: 133 });
    try {
      const company = pd.credentials.PIPEDRIVE_COMPANY_ID;
      const user = `crm-${randomSecret(8)}`;
      const password = randomSecret();
      const conn = await webhookConnection(sql, "pipedrive", company, {
        webhook_user: user,
        webhook_password: password,
      });
      await admin(pd.url, "/webhooks", {
        method: "PUT",
        json: { url: hookUrl("/pipedrive"), httpAuthUser: user, httpAuthPassword: password },
      });
      await admin(pd.url, "/faults", { method: "PUT", json: { webhookDuplicateRate: 1 } });
      const p = await admin(pd.url, "/records/person", { json: { name: "Hook Person" } }) as {
        id: number;
      };
      await admin(pd.url, `/records/person/${p.id}`, { method: "PATCH", json: { name: "Hooked" } });
      await admin(pd.url, "/records/activity", { json: { subject: "ignored" } }).catch(() => null);
      await pd.webhooks.idle();
      const sent = await deliveries(pd.url);
      assert.ok(sent.some((d) => d.duplicate), "the sandbox duplicated deliveries");
      assert.ok(sent.every((d) => d.status === 200), JSON.stringify(sent.map((d) => d.status)));
      const rows = await sql`select object, remote_id, event_type, dedupe_key
                           from crm.webhook_events where connection_id = ${conn} order by id`;
      const wanted = sent.filter((d) => !d.duplicate).map((d) => JSON.parse(d.body!))
        .filter((b) => b.meta.entity === "person");
      assert.equal(rows.length, wanted.length);
      assert.ok(rows.length >= 2);
      // Deliveries run concurrently: compared as a set, not in arrival order.
      assert.deepEqual(
        rows.map((r) => r.dedupe_key).sort(),
        wanted.map((b) => `${b.meta.company_id}:${b.meta.id}`).sort(),
      );
      assert.ok(rows.every((r) => r.object === "contacts" && r.remote_id === String(p.id)));
      assert.ok(await inboxJob(sql, conn));

      const real = sent.find((d) => d.body)!.body!;
      const basic = (u: string, pw: string) => ({ authorization: "Basic " + btoa(`${u}:${pw}`) });
      const before = await inboxRows(sql);
      const otherCompany = real.replace(/"company_id":"\d+"/, '"company_id":"1"');
      const cases: Array<[string, number, BodyInit | null, Record<string, string>, string?]> = [
        ["no auth", 401, real, {}],
        ["wrong password", 401, real, basic(user, password + "x")],
        ["unknown user", 401, real, basic("nobody", password)],
        ["bearer", 401, real, { authorization: `Bearer ${password}` }],
        ["other company", 401, otherCompany, basic(user, password)],
        ["malformed", 400, "{", basic(user, password)],
        ["wrong shape", 400, '{"meta":{"id":[]}}', basic(user, password)],
        ["not UTF-8", 400, new Uint8Array([0x7b, 0xc3, 0x28, 0x7d]), basic(user, password)],
        [
          "NUL in text",
          400,
          real.replace(/"name":"[^"]*"/, '"name":"a\\u0000b"').replace(
            /"id":"[^"]+"/,
            '"id":"nul-2"',
          ),
          basic(user, password),
        ],
        [
          "over 1 MiB",
          413,
          JSON.stringify({ pad: "x".repeat(1024 * 1024) }),
          basic(user, password),
        ],
        ["GET", 405, null, basic(user, password), "GET"],
      ];
      for (const [name, want, body, headers, method] of cases) {
        const r = await post(
          "/pipedrive",
          body,
          { "content-type": "application/json", ...headers },
          method,
        );
        assert.equal(r.status, want, `${name}: ${r.status} ${r.text}`);
      }
      assert.equal(await inboxRows(sql), before, "no hostile request wrote a row");
    } finally {
      await pd.close();
      await sql.end();
    }
  },
);
