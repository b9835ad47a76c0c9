// _shared/webhooks: the verifiers and normalizers of crm-webhook, without a database.
// HubSpot v1 and v2 are checked against the examples HubSpot publishes
// (developers.hubspot.com/docs/faq/v1-request-validation, .../v2-request-validation). HubSpot
// publishes no v3 example with a result, so v3 is cross-checked against the sandbox's
// independent signer (node:crypto, shared/emulators/hubspot/signature.ts).
import assert from "node:assert/strict";
import * as sandbox from "../../shared/emulators/hubspot/signature.ts";
import {
  decodeV3Uri,
  type HubSpotSignature,
  normalizeHubSpot,
  parseHubSpotBatch,
  signV1,
  signV2,
  signV3,
  verifyHubSpot,
} from "../../supabase/functions/_shared/webhooks/hubspot.ts";
import { routeHubSpot } from "../../supabase/functions/_shared/webhooks/hubspot_route.ts";
import {
  MAX_WEBHOOK_BODY_BYTES,
  readText,
  Refusal,
  safeEqual,
} from "../../supabase/functions/_shared/webhooks/limits.ts";
import {
  normalizePipedrive,
  parseBasicAuth,
  parsePipedriveDelivery,
} from "../../supabase/functions/_shared/webhooks/pipedrive.ts";
import {
  normalizeSalesforce,
  parseOutboundMessage,
  sameOrg,
  xmlText,
} from "../../supabase/functions/_shared/webhooks/salesforce.ts";

const PUBLISHED_SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
const PUBLISHED_BODY =
  '[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]';

function status(f: () => unknown): number | null {
  try {
    f();
    return null;
  } catch (e) {
    if (e instanceof Refusal) return e.status;
    throw e;
  }
}

async function statusAsync(f: () => Promise<unknown>): Promise<number | null> {
  try {
    await f();
    return null;
  } catch (e) {
    if (e instanceof Refusal) return e.status;
    throw e;
  }
}

const sig = (s: Partial<HubSpotSignature>): HubSpotSignature => ({
  v3: null,
  timestamp: null,
  legacy: null,
  version: null,
  ...s,
});

Deno.test("HubSpot v1: HubSpot's published example", async () => {
  assert.equal(
    await signV1(PUBLISHED_SECRET, PUBLISHED_BODY),
    "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de",
  );
  const ok = await verifyHubSpot(PUBLISHED_SECRET, {
    method: "POST",
    uri: "https://example.com/any",
    body: PUBLISHED_BODY,
    sig: sig({
      legacy: "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de",
      version: "v1",
    }),
    now: Date.now(),
  });
  assert.equal(ok, true);
});

Deno.test("HubSpot v2: HubSpot's published example (GET, no body)", async () => {
  const expected = "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e";
  assert.equal(
    await signV2(PUBLISHED_SECRET, "GET", "https://www.example.com/webhook_uri", ""),
    expected,
  );
  const r = {
    method: "GET",
    uri: "https://www.example.com/webhook_uri",
    body: "",
    sig: sig({ legacy: expected.toUpperCase(), version: "v2" }),
    now: Date.now(),
  };
  assert.equal(await verifyHubSpot(PUBLISHED_SECRET, r), true);
  assert.equal(await verifyHubSpot(PUBLISHED_SECRET, { ...r, uri: r.uri + "?x=1" }), false);
  // The version header selects the scheme: a v2 signature presented as v1 fails.
  assert.equal(
    await verifyHubSpot(PUBLISHED_SECRET, { ...r, sig: { ...r.sig, version: "v1" } }),
    false,
  );
  assert.equal(
    await verifyHubSpot(PUBLISHED_SECRET, { ...r, sig: { ...r.sig, version: null } }),
    false,
  );
});

Deno.test("HubSpot v3: agrees with the sandbox's signer, including URI decoding", async () => {
  const uris = [
    "https://example.com/functions/v1/crm-webhook/hubspot",
    "https://example.com/functions/v1/crm-webhook/hubspot?a=%3A%2F%3F%40%21%24%27%28%29%2A%2C%3B&b=%20%7E",
    "https://example.com/x%2fy%3a",
  ];
  for (const uri of uris) {
    for (const body of [PUBLISHED_BODY, "", '[{"name":"Zoë ✓"}]']) {
      const ts = "1700000000000";
      assert.equal(
        await signV3("secret-1", "POST", uri, body, ts),
        sandbox.signV3("secret-1", "POST", uri, body, ts),
      );
    }
  }
  assert.equal(decodeV3Uri("a%3Ab%2fc%20d%7e"), "a:b/c%20d%7e");
});

Deno.test("HubSpot v3: timestamp window, forgery, tampering", async () => {
  const now = 1_700_000_000_000;
  const uri = "https://example.com/functions/v1/crm-webhook/hubspot";
  const make = async (ts: number, body = PUBLISHED_BODY) => ({
    method: "POST",
    uri,
    body,
    sig: sig({
      v3: await signV3("s3cret", "POST", uri, body, String(ts)),
      timestamp: String(ts),
    }),
    now,
  });
  assert.equal(await verifyHubSpot("s3cret", await make(now - 1000)), true);
  assert.equal(await verifyHubSpot("s3cret", await make(now - 299_000)), true);
  // Replayed after 5 minutes, or dated in the future: refused.
  assert.equal(await verifyHubSpot("s3cret", await make(now - 301_000)), false);
  assert.equal(await verifyHubSpot("s3cret", await make(now + 301_000)), false);
  // Another secret, a changed body, a changed timestamp, a garbage timestamp.
  const good = await make(now);
  assert.equal(await verifyHubSpot("other", good), false);
  assert.equal(await verifyHubSpot("s3cret", { ...good, body: good.body + " " }), false);
  assert.equal(
    await verifyHubSpot("s3cret", { ...good, sig: { ...good.sig, timestamp: String(now - 1) } }),
    false,
  );
  assert.equal(
    await verifyHubSpot("s3cret", { ...good, sig: { ...good.sig, timestamp: "1e12" } }),
    false,
  );
  assert.equal(
    await verifyHubSpot("s3cret", { ...good, sig: { ...good.sig, v3: "AAAA" } }),
    false,
  );
  // A v3 header present means v3: a valid legacy signature next to a forged v3 one fails.
  const legacy = await signV1("s3cret", good.body);
  assert.equal(
    await verifyHubSpot("s3cret", {
      ...good,
      sig: { ...good.sig, v3: "forged", legacy, version: "v1" },
    }),
    false,
  );
});

Deno.test("HubSpot: batches parsed loudly, normalized to SPEC13 rows", () => {
  assert.equal(status(() => parseHubSpotBatch("{")), 400);
  assert.equal(status(() => parseHubSpotBatch('{"eventId":1}')), 400);
  assert.equal(status(() => parseHubSpotBatch('[{"eventId":"x"}]')), 400);
  assert.equal(status(() => parseHubSpotBatch(JSON.stringify(Array(101).fill({})))), 400);
  const base = { subscriptionId: 7, portalId: 62515, occurredAt: 1564113600000 };
  const batch = parseHubSpotBatch(JSON.stringify([
    {
      ...base,
      eventId: 1,
      subscriptionType: "contact.propertyChange",
      objectId: 11,
      propertyName: "email",
    },
    { ...base, eventId: 2, subscriptionType: "company.deletion", objectId: 12 },
    { ...base, eventId: 3, subscriptionType: "contact.privacyDeletion", objectId: 13 },
    {
      ...base,
      eventId: 4,
      subscriptionType: "deal.merge",
      objectId: 14,
      primaryObjectId: 14,
      mergedObjectIds: [15, 16],
    },
    { ...base, eventId: 5, subscriptionType: "object.creation", objectTypeId: "0-3", objectId: 17 },
    { ...base, eventId: 6, subscriptionType: "ticket.creation", objectId: 18 },
    { ...base, eventId: 7, subscriptionType: "contact.somethingNew", objectId: 19 },
    {
      ...base,
      eventId: 8,
      subscriptionType: "object.creation",
      objectTypeId: "2-999",
      objectId: 20,
    },
  ]));
  const { events, skipped } = normalizeHubSpot(batch, (p) => (p === "62515" ? "conn-1" : null));
  assert.equal(skipped, 3);
  assert.deepEqual(
    events.map((e) => [e.object, e.remote_id, e.event_type, e.connection_id]),
    [
      ["contacts", "11", "upsert", "conn-1"],
      ["companies", "12", "delete", "conn-1"],
      ["contacts", "13", "delete", "conn-1"],
      ["deals", "14", "merge", "conn-1"],
      ["deals", "17", "upsert", "conn-1"],
    ],
  );
  assert.equal(events[0].dedupe_key, "1:7:62515:1564113600000:11:email");
  assert.equal(events[1].dedupe_key, "2:7:62515:1564113600000:12:");
  assert.equal(events[0].occurred_at, "2019-07-26T04:00:00.000Z");
  assert.deepEqual((events[3].payload as { mergedObjectIds: number[] }).mergedObjectIds, [15, 16]);
  const none = normalizeHubSpot(batch, () => null);
  assert.ok(none.events.every((e) => e.connection_id === null));
});

const ORG = "00D000000000001EAA";
function envelope(notes: string, org = ORG, prolog = ""): string {
  return `<?xml version="1.0" encoding="UTF-8"?>${prolog}` +
    `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">` +
    `<soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound">` +
    `<OrganizationId>${org}</OrganizationId><ActionId>04k000000000001AAA</ActionId>` +
    `<SessionId xsi:nil="true"/>${notes}</notifications></soapenv:Body></soapenv:Envelope>`;
}
const note = (id: string, type: string, fields: string) =>
  `<Notification><Id>${id}</Id><sObject xsi:type="sf:${type}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">${fields}</sObject></Notification>`;

Deno.test("Salesforce: Outbound Message parsed and normalized", () => {
  const msg = parseOutboundMessage(envelope(
    note(
      "04l000000000001AAA",
      "Contact",
      "<sf:Id>003000000000001AAA</sf:Id><sf:LastName>O&apos;Brien &amp; Co &#x263A;</sf:LastName><sf:SystemModstamp>2026-12-05T00:00:00.000Z</sf:SystemModstamp>",
    ) +
      note("04l000000000002AAA", "Opportunity", "<sf:Id>006000000000001AAA</sf:Id>") +
      note("04l000000000003AAA", "Case", "<sf:Id>500000000000001AAA</sf:Id>"),
  ));
  assert.equal(msg.organizationId, ORG);
  const { events, skipped } = normalizeSalesforce(msg, "conn-sf");
  assert.equal(skipped, 1);
  assert.deepEqual(
    events.map((e) => [e.object, e.remote_id, e.event_type, e.dedupe_key, e.occurred_at]),
    [
      [
        "contacts",
        "003000000000001AAA",
        "upsert",
        `${ORG}:04l000000000001AAA`,
        "2026-12-05T00:00:00.000Z",
      ],
      ["deals", "006000000000001AAA", "upsert", `${ORG}:04l000000000002AAA`, null],
    ],
  );
  const fields = (events[0].payload as { fields: Record<string, string> }).fields;
  assert.equal(fields.LastName, "O'Brien & Co ☺");
  // One notification alone is still a list.
  const one = parseOutboundMessage(envelope(note("04l9", "Lead", "<sf:Id>00Q1</sf:Id>")));
  assert.equal(one.notifications.length, 1);
});

Deno.test("Salesforce: entity expansion, DOCTYPE, malformed and oversized messages refused", () => {
  const laughs = `<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>`;
  assert.equal(
    status(() =>
      parseOutboundMessage(envelope(note("a", "Contact", "<sf:Id>&lol2;</sf:Id>"), ORG, laughs))
    ),
    400,
  );
  const xxe = `<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>`;
  assert.equal(status(() => parseOutboundMessage(envelope("", ORG, xxe))), 400);
  // An undeclared entity stays text, never expanded or looked up.
  const m = parseOutboundMessage(
    envelope(note("04la", "Contact", "<sf:Id>003a</sf:Id><sf:LastName>&lol;</sf:LastName>")),
  );
  assert.equal(m.notifications[0].fields.LastName, "&lol;");
  assert.equal(status(() => parseOutboundMessage("<a><b></a>")), 400);
  assert.equal(status(() => parseOutboundMessage("not xml")), 400);
  assert.equal(status(() => parseOutboundMessage("<a/>")), 400);
  assert.equal(status(() => parseOutboundMessage(envelope("", "bad org!"))), 400);
  assert.equal(
    status(() => parseOutboundMessage(envelope("<Notification><Id>x</Id></Notification>"))),
    400,
  );
  const many = Array.from(
    { length: 101 },
    (_, i) => note(`04l${i}`, "Contact", `<sf:Id>003${i}</sf:Id>`),
  )
    .join("");
  assert.equal(status(() => parseOutboundMessage(envelope(many))), 400);
  const deep = "<a>".repeat(5000) + "</a>".repeat(5000);
  assert.equal(status(() => parseOutboundMessage(deep)), 400);
  assert.equal(xmlText("&#0;&#xD800;&#1114112;&lt;"), "&#0;&#xD800;&#1114112;<");
});

Deno.test("Salesforce: 15- and 18-character org ids", () => {
  assert.ok(sameOrg("00D000000000001EAA", "00D000000000001"));
  assert.ok(sameOrg("00D000000000001EAA", "00D000000000001EAA"));
  assert.ok(!sameOrg("00D000000000001EAA", "00D000000000002EAA"));
  assert.ok(!sameOrg("00D000000000001EAA", "00D000000000001EAB"));
  assert.ok(!sameOrg("", ""));
});

Deno.test("Pipedrive: basic auth and v2 deliveries", () => {
  const b = (s: string) => "Basic " + btoa(s);
  assert.deepEqual(parseBasicAuth(b("user:pa:ss")), { user: "user", password: "pa:ss" });
  assert.equal(parseBasicAuth(null), null);
  assert.equal(parseBasicAuth("Bearer x"), null);
  assert.equal(parseBasicAuth(b(":nouser")), null);
  assert.equal(parseBasicAuth(b("nocolon")), null);
  assert.equal(parseBasicAuth("Basic !!!"), null);
  assert.equal(parseBasicAuth("Basic " + btoa("\xff\xfe:x")), null); // not UTF-8
  const meta = {
    id: "e1",
    action: "change",
    entity: "person",
    entity_id: "42",
    company_id: "777",
    timestamp: "2026-12-05T00:00:01.000Z",
    version: "2.0",
  };
  const row = (m: Record<string, unknown>) =>
    normalizePipedrive(
      parsePipedriveDelivery(
        JSON.stringify({ data: { id: 42 }, previous: null, meta: { ...meta, ...m } }),
      ),
      "conn-pd",
    );
  assert.deepEqual(
    row({}).events.map((e) => [e.object, e.remote_id, e.event_type, e.dedupe_key, e.occurred_at]),
    [["contacts", "42", "upsert", "777:e1", "2026-12-05T00:00:01.000Z"]],
  );
  assert.equal(row({ action: "delete" }).events[0].event_type, "delete");
  assert.equal(row({ action: "delete", merged_to_id: "41" }).events[0].event_type, "merge");
  assert.equal(row({ entity: "organization" }).events[0].object, "companies");
  assert.equal(row({ entity: "deal" }).events[0].object, "deals");
  assert.deepEqual(row({ entity: "activity" }), { events: [], skipped: 1 });
  assert.deepEqual(row({ action: "archive" }), { events: [], skipped: 1 });
  assert.equal(status(() => parsePipedriveDelivery("[]")), 400);
  assert.equal(status(() => parsePipedriveDelivery("{")), 400);
  assert.equal(
    status(() => parsePipedriveDelivery(JSON.stringify({ meta: { ...meta, version: "1.0" } }))),
    400,
  );
  assert.equal(
    status(() => parsePipedriveDelivery(JSON.stringify({ meta: { ...meta, entity_id: {} } }))),
    400,
  );
});

Deno.test("limits: body cap (413), non-UTF-8 (400), constant-time compare", async () => {
  const req = (body: BodyInit) => new Request("http://x/", { method: "POST", body });
  assert.equal(await readText(req("héllo")), "héllo");
  assert.equal(await statusAsync(() => readText(req(new Uint8Array([0x7b, 0xff, 0xfe])))), 400);
  assert.equal(
    await statusAsync(() => readText(req(new Uint8Array(MAX_WEBHOOK_BODY_BYTES + 1)))),
    413,
  );
  assert.equal(
    (await readText(req(new Uint8Array(MAX_WEBHOOK_BODY_BYTES)))).length,
    MAX_WEBHOOK_BODY_BYTES,
  );
  assert.ok(safeEqual("abc", "abc"));
  assert.ok(!safeEqual("abc", "abd"));
  assert.ok(!safeEqual("abc", "abcd"));
});

Deno.test("HubSpot routing: the app secret routes by portal, a connection's secret only its own", async () => {
  const uri = "https://example.com/functions/v1/crm-webhook/hubspot";
  const now = Date.now();
  const ev = (portalId: number, eventId = 1) => ({
    eventId,
    subscriptionId: 1,
    portalId,
    occurredAt: now,
    subscriptionType: "contact.creation",
    objectId: 5,
  });
  const signed = async (secret: string, batch: unknown[]) => {
    const body = JSON.stringify(batch);
    return {
      method: "POST",
      uri,
      body,
      sig: sig({
        v3: await signV3(secret, "POST", uri, body, String(now)),
        timestamp: String(now),
      }),
      now,
    };
  };
  const decrypted: string[] = [];
  const deps = (appSecret: string | null) => ({
    appSecret,
    connectionsOf: (portals: string[]) =>
      Promise.resolve(new Map(portals.filter((p) => p !== "3").map((p) => [p, `conn-${p}`]))),
    connectionSecret: async (portal: string, ok: (secret: string) => Promise<boolean>) => {
      decrypted.push(portal);
      return portal !== "3" && await ok(`own-${portal}`) ? { id: `conn-${portal}` } : null;
    },
  });
  // App secret: every portal, unknown ones routed to null; no connection decrypted.
  const app = await routeHubSpot(await signed("app", [ev(1), ev(2, 2), ev(3, 3)]), deps("app"));
  assert.equal(app.by, "app");
  assert.deepEqual(["1", "2", "3"].map(app.route), ["conn-1", "conn-2", null]);
  assert.deepEqual(decrypted, []);
  // A connection's own secret: its portal only.
  const own = await routeHubSpot(await signed("own-1", [ev(1)]), deps("app"));
  assert.equal(own.by, "connection");
  assert.equal(own.route("1"), "conn-1");
  assert.deepEqual(decrypted, ["1"]);
  // Portal 2's secret cannot sign for portal 1, nor for a batch naming both.
  assert.equal(
    await statusAsync(async () => routeHubSpot(await signed("own-2", [ev(1)]), deps(null))),
    401,
  );
  assert.equal(
    await statusAsync(async () =>
      routeHubSpot(await signed("own-1", [ev(1), ev(2, 2)]), deps(null))
    ),
    401,
  );
  // Unknown portal without the app secret: 401. App not configured: app-signed batch is 401.
  assert.equal(
    await statusAsync(async () => routeHubSpot(await signed("x", [ev(3)]), deps(null))),
    401,
  );
  assert.equal(
    await statusAsync(async () => routeHubSpot(await signed("app", [ev(1)]), deps(null))),
    401,
  );
  // Signed but malformed: 400.
  const bad = await signed("app", []);
  assert.equal(await statusAsync(() => routeHubSpot({ ...bad, body: "[{" }, deps("app"))), 400);
});
