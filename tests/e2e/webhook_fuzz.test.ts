// crm-webhook under hostile input: WEBHOOK_FUZZ_N (default 10,000) generated requests across the
// three routes, none of them a valid delivery: truncated and oversized bodies, wrong types, deep
// nesting, forged and replayed signatures, wrong portals, organisations and credentials, XML
// entity expansion, non-UTF-8 bytes, header abuse, wrong methods and routes. Every answer must
// be a 4xx (never 5xx, never a dropped connection) and crm.webhook_events must not grow.
// Requests that carry a connection's real secret are always broken in a way that makes them
// invalid (truncated, wrong org or company, not a batch), so "0 rows" is a real expectation.
// Senders: most requests come from a pool of addresses (X-Forwarded-For) each too small to reach
// the refusal limit, so they reach the parsers and checks; a tenth come from one flooding
// address, which must be answered 429 once over the limit. The 429s are counted and reported.
import assert from "node:assert/strict";
import { signature } from "../../shared/emulators/hubspot/mod.ts";
import { db } from "./_harness.ts";
import { hookUrl, inboxRows, randomSecret, webhookConnection } from "./_webhooks.ts";

const run = Deno.env.get("CRM_TEST") === "1";
const N = Number(Deno.env.get("WEBHOOK_FUZZ_N") ?? 10_000);
const CONCURRENCY = 8;

function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
  return { next, int, pick };
}

interface Req {
  kind: string;
  route: string;
  method: string;
  headers: Record<string, string>;
  body: Uint8Array | string | null;
}

Deno.test({
  name: `crm-webhook fuzz: ${N} hostile requests, 0 × 5xx, 0 rows`,
  ignore: !run,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const sql = db();
    const r = prng(20261205);
    const portal = String(900_000_000 + r.int(1_000_000));
    const org = "00D" + "0".repeat(9) + "FUZ" + "AAA";
    const company = String(800_000 + r.int(1000));
    const secret = randomSecret();
    const token = randomSecret();
    const user = `fuzz-${randomSecret(6)}`;
    const password = randomSecret();
    await webhookConnection(sql, "hubspot", portal, { webhook_secret: secret });
    await webhookConnection(sql, "salesforce", org, { webhook_token: token });
    await webhookConnection(sql, "pipedrive", company, {
      webhook_user: user,
      webhook_password: password,
    });
    const hsUri = hookUrl("/hubspot");
    const hsBody = JSON.stringify([1, 2, 3].map((i) => ({
      eventId: i,
      subscriptionId: 5,
      portalId: Number(portal),
      occurredAt: Date.now(),
      subscriptionType: "contact.propertyChange",
      objectId: 100 + i,
      propertyName: "email",
      propertyValue: "x@example.com",
    })));
    const sfBody = (o: string, inner = "<sf:LastName>Doe</sf:LastName>") =>
      `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>${o}</OrganizationId><ActionId>04k000000000001AAA</ActionId><Notification><Id>04l${
        randomSecret(6)
      }</Id><sObject xsi:type="sf:Contact" xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Id>003000000000001AAA</sf:Id>${inner}</sObject></Notification></notifications></soapenv:Body></soapenv:Envelope>`;
    const pdBody = (c: string) =>
      JSON.stringify({
        data: { id: 5, name: "P" },
        previous: null,
        meta: {
          id: crypto.randomUUID(),
          action: "create",
          entity: "person",
          entity_id: "5",
          company_id: c,
          version: "2.0",
          timestamp: new Date().toISOString(),
        },
      });
    const basic = (u: string, p: string) => "Basic " + btoa(`${u}:${p}`);

    const randomJson = (depth = 0): unknown => {
      const k = r.int(depth > 3 ? 4 : 7);
      if (k === 0) return r.next() * 1e6;
      if (k === 1) return randomSecret(r.int(8));
      if (k === 2) return r.pick([null, true, false]);
      if (k === 3) return { eventId: "x", portalId: r.pick([portal, -1, {}]), meta: [] };
      if (k === 4) return Array.from({ length: 1 + r.int(3) }, () => randomJson(depth + 1));
      if (k === 5) {
        return { meta: { id: r.pick([1, null, "x"]), company_id: company, entity: 7 } };
      }
      return { [randomSecret(2)]: randomJson(depth + 1) };
    };
    const nonUtf8 = () => {
      const b = crypto.getRandomValues(new Uint8Array(10 + r.int(200)));
      b[r.int(b.length)] = 0xff; // never valid UTF-8
      return b;
    };
    const truncate = (s: string) => s.slice(0, r.int(s.length - 1));
    const deep = (n: number) => "[".repeat(n) + "]".repeat(n);
    const v3 = async (body: string, ts: number, s = secret) => ({
      "x-hubspot-signature-v3": await signature.signV3(s, "POST", hsUri, body, ts),
      "x-hubspot-request-timestamp": String(ts),
      "content-type": "application/json",
    });
    const bomb = `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">` +
      Array.from({ length: 9 }, (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i || ""};`.repeat(10)}">`)
        .join("") +
      `]><soapenv:Envelope><lolz>&lol9;</lolz></soapenv:Envelope>`;
    const xxe =
      `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><x>&xxe;</x>`;

    const generators: Array<() => Promise<Req> | Req> = [
      // HubSpot
      () => ({ kind: "hs unsigned", route: "/hubspot", method: "POST", headers: {}, body: hsBody }),
      () => ({
        kind: "hs forged v3",
        route: "/hubspot",
        method: "POST",
        headers: {
          "x-hubspot-signature-v3": btoa(randomSecret(16)),
          "x-hubspot-request-timestamp": String(Date.now()),
        },
        body: hsBody,
      }),
      async () => ({
        kind: "hs replayed",
        route: "/hubspot",
        method: "POST",
        headers: await v3(hsBody, Date.now() - 301_000 - r.int(1e9)),
        body: hsBody,
      }),
      async () => ({
        kind: "hs future",
        route: "/hubspot",
        method: "POST",
        headers: await v3(hsBody, Date.now() + 301_000 + r.int(1e9)),
        body: hsBody,
      }),
      async () => ({
        kind: "hs other secret",
        route: "/hubspot",
        method: "POST",
        headers: await v3(hsBody, Date.now(), randomSecret()),
        body: hsBody,
      }),
      async () => {
        const body = hsBody.replaceAll(`"portalId":${portal}`, `"portalId":${1 + r.int(1e6)}`);
        return {
          kind: "hs wrong portal",
          route: "/hubspot",
          method: "POST",
          headers: await v3(body, Date.now()),
          body,
        };
      },
      async () => {
        const body = truncate(hsBody);
        return {
          kind: "hs truncated, signed",
          route: "/hubspot",
          method: "POST",
          headers: await v3(body, Date.now()),
          body,
        };
      },
      async () => {
        let v = randomJson();
        if (Array.isArray(v) && v.length === 0) v = [1];
        const body = JSON.stringify(v);
        return {
          kind: "hs wrong types, signed",
          route: "/hubspot",
          method: "POST",
          headers: await v3(body, Date.now()),
          body,
        };
      },
      async () => {
        const body = deep(1000 + r.int(100_000));
        return {
          kind: "hs deep nesting, signed",
          route: "/hubspot",
          method: "POST",
          headers: await v3(body, Date.now()),
          body,
        };
      },
      () => ({
        kind: "hs legacy forged",
        route: "/hubspot",
        method: "POST",
        headers: {
          "x-hubspot-signature": randomSecret(32),
          "x-hubspot-signature-version": r.pick(["v1", "v2", "v9", ""]),
        },
        body: hsBody,
      }),
      () => ({
        kind: "hs non-UTF-8",
        route: "/hubspot",
        method: "POST",
        headers: { "x-hubspot-signature-v3": "x", "x-hubspot-request-timestamp": "1" },
        body: nonUtf8(),
      }),
      // Salesforce
      () => ({
        kind: "sf unknown token",
        route: `/salesforce/${randomSecret(16)}`,
        method: "POST",
        headers: { "content-type": "text/xml" },
        body: sfBody(org),
      }),
      () => ({
        kind: "sf other org",
        route: `/salesforce/${token}`,
        method: "POST",
        headers: { "content-type": "text/xml" },
        body: sfBody(r.pick(["00D000000000002AAA", "00D00000000000X", org.slice(0, 15) + "ZZZ"])),
      }),
      () => ({
        kind: "sf entity expansion",
        route: `/salesforce/${token}`,
        method: "POST",
        headers: {},
        body: r.pick([bomb, xxe]),
      }),
      () => ({
        kind: "sf truncated",
        route: `/salesforce/${token}`,
        method: "POST",
        headers: {},
        body: truncate(sfBody(org)),
      }),
      () => ({
        kind: "sf non-UTF-8",
        route: `/salesforce/${token}`,
        method: "POST",
        headers: {},
        body: nonUtf8(),
      }),
      () => ({
        kind: "sf deep nesting",
        route: `/salesforce/${token}`,
        method: "POST",
        headers: {},
        body: "<a>".repeat(1000 + r.int(20_000)) + "</a>",
      }),
      () => ({
        kind: "sf JSON",
        route: `/salesforce/${token}`,
        method: "POST",
        headers: {},
        body: JSON.stringify(randomJson()),
      }),
      () => ({
        kind: "sf bad route",
        route: r.pick(["/salesforce/", "/salesforce/short", `/salesforce/${token}/x`, "/sf"]),
        method: "POST",
        headers: {},
        body: sfBody(org),
      }),
      // Pipedrive
      () => ({
        kind: "pd no auth",
        route: "/pipedrive",
        method: "POST",
        headers: {},
        body: pdBody(company),
      }),
      () => ({
        kind: "pd wrong credentials",
        route: "/pipedrive",
        method: "POST",
        headers: {
          authorization: r.pick([
            basic(user, randomSecret()),
            basic(randomSecret(4), password),
            `Bearer ${password}`,
            "Basic " + "A".repeat(r.int(900)),
            "Basic",
            basic(user, password) + ", " + basic(user, password),
          ]),
        },
        body: pdBody(company),
      }),
      () => ({
        kind: "pd wrong company",
        route: "/pipedrive",
        method: "POST",
        headers: { authorization: basic(user, password) },
        body: pdBody(String(1 + r.int(1e6))),
      }),
      () => ({
        kind: "pd truncated",
        route: "/pipedrive",
        method: "POST",
        headers: { authorization: basic(user, password) },
        body: truncate(pdBody(company)),
      }),
      () => ({
        kind: "pd wrong types",
        route: "/pipedrive",
        method: "POST",
        headers: { authorization: basic(user, password) },
        body: JSON.stringify(randomJson()),
      }),
      () => ({
        kind: "pd deep nesting",
        route: "/pipedrive",
        method: "POST",
        headers: { authorization: basic(user, password) },
        body: `{"meta":${deep(1000 + r.int(50_000))}}`,
      }),
      () => ({
        kind: "pd non-UTF-8",
        route: "/pipedrive",
        method: "POST",
        headers: { authorization: basic(user, password) },
        body: nonUtf8(),
      }),
      () => ({
        kind: "pd NUL",
        route: "/pipedrive",
        method: "POST",
        headers: { authorization: basic(user, password) },
        body: pdBody(company).replace('"name":"P"', '"name":"\\u0000"').replace(
          '"entity":"person"',
          '"entity":"person","x":"\\ud800"',
        ),
      }),
      // Any route
      () => ({
        kind: "wrong method",
        route: r.pick(["/hubspot", "/pipedrive", `/salesforce/${token}`]),
        method: r.pick(["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
        headers: { authorization: basic(user, password) },
        body: null,
      }),
      () => ({
        kind: "header abuse",
        route: r.pick(["/hubspot", "/pipedrive", `/salesforce/${token}`]),
        method: "POST",
        headers: {
          "x-hubspot-signature-v3": "A".repeat(1000 + r.int(6000)),
          "x-hubspot-request-timestamp": r.pick(["-1", "1e400", "NaN", "9".repeat(40), ""]),
          authorization: "Basic " + btoa("\u00ff:" + "p".repeat(r.int(3000))),
          "content-length-x": "-5",
          "content-type": r.pick(["text/xml", "application/json", "multipart/form-data", "x/y"]),
        },
        body: r.pick([hsBody, pdBody(company), "<a/>", ""]),
      }),
      () => ({
        kind: "unknown route",
        route: r.pick(["", "/", "/stripe", "/hubspot/x", "/../crm-sync-bidirectional", "/%00"]),
        method: "POST",
        headers: {},
        body: hsBody,
      }),
    ];
    const oversized = (): Req => ({
      kind: "oversized",
      route: r.pick(["/hubspot", "/pipedrive", `/salesforce/${token}`]),
      method: "POST",
      headers: { authorization: basic(user, password), ...{ "x-hubspot-signature-v3": "x" } },
      body: new Uint8Array(1024 * 1024 + 1 + r.int(100_000)),
    });

    const before = await inboxRows(sql);
    const statuses = new Map<string, Map<number, number>>();
    const bad: string[] = [];
    const limited = { flood: 0, pool: 0 };
    let sent = 0;
    const worker = async () => {
      while (sent < N) {
        sent++;
        const req = r.next() < 0.005 ? oversized() : await r.pick(generators)();
        const flood = r.next() < 0.1;
        const from = flood ? "198.51.100.66" : `10.${r.int(8)}.${r.int(16)}.${r.int(250)}`;
        let status: number;
        try {
          const res = await fetch(hookUrl(req.route), {
            method: req.method,
            headers: { ...req.headers, "x-forwarded-for": from },
            body: req.method === "GET" || req.method === "HEAD" ? null : req.body,
          });
          await res.body?.cancel();
          status = res.status;
        } catch (e) {
          status = -1;
          bad.push(`${req.kind}: ${(e as Error).message}`);
        }
        const m = statuses.get(req.kind) ?? new Map<number, number>();
        m.set(status, (m.get(status) ?? 0) + 1);
        statuses.set(req.kind, m);
        if (status === 429) flood ? limited.flood++ : limited.pool++;
        if (status < 400 || status >= 500) bad.push(`${req.kind}: ${status}`);
      }
    };
    const t0 = performance.now();
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const seconds = (performance.now() - t0) / 1000;
    const after = await inboxRows(sql);
    const summary = [...statuses].map(([k, m]) => `${k} ${JSON.stringify(Object.fromEntries(m))}`);
    console.log(`${sent} requests in ${seconds.toFixed(1)} s\n${summary.join("\n")}`);
    console.log(
      `429 (refusal limit): ${limited.flood + limited.pool} — ${limited.flood} to the flooding ` +
        `address, ${limited.pool} to the pool of addresses`,
    );
    assert.deepEqual(bad.slice(0, 20), [], `${bad.length} requests answered outside 4xx`);
    assert.equal(after, before, "hostile requests wrote rows");
    if (N >= 1000) assert.ok(limited.flood > 0, "the flooding address was answered 429");
    assert.ok(sent >= N);
    await sql.end();
  },
});
