/** HubSpot webhook delivery: payloads, signatures, batching, retries, faults. */
import { Client } from "@hubspot/api-client";
import { assert, assertEquals, assertGreater, assertNotEquals } from "../common/assert.ts";
import { admin, type ReceivedRequest, startReceiver } from "../common/testing.ts";
import { startHubSpot } from "./mod.ts";
import { verifyV1, verifyV3 } from "./signature.ts";
import { hubspotClient } from "./test_client.ts";

type Event = Record<string, unknown> & {
  eventId: number;
  subscriptionType: string;
  attemptNumber: number;
};
const events = (reqs: ReceivedRequest[]) => reqs.flatMap((r) => JSON.parse(r.body) as Event[]);

Deno.test("events are signed arrays of ≤100 with HubSpot's fields, batched per change", async () => {
  const rx = await startReceiver();
  const hs = await startHubSpot({ seed: 31, records: 5, timeScale: 0.0001 });
  try {
    const target = `${rx.url}/functions/v1/crm-webhook?provider=hubspot&account=a%2Fb`;
    await admin(hs.url, "/webhooks", {
      method: "PUT",
      json: { targetUrl: target, legacySignature: "v1" },
    });
    const secret = hs.credentials.HUBSPOT_CLIENT_SECRET;

    const created = await admin(hs.url, "/records/contacts", {
      json: { properties: { email: "hook@example.com", firstname: "Hook" } },
    }) as { id: string };
    const [req] = await rx.waitFor(1);
    assertEquals(req.method, "POST");
    assertEquals(req.headers["content-type"], "application/json");
    assert(
      verifyV3({
        clientSecret: secret,
        method: "POST",
        uri: target,
        body: req.body,
        timestamp: req.headers["x-hubspot-request-timestamp"],
        signature: req.headers["x-hubspot-signature-v3"],
      }),
    );
    assertEquals(req.headers["x-hubspot-signature-version"], "v1");
    assert(verifyV1(secret, req.body, req.headers["x-hubspot-signature"]));
    const [ev] = JSON.parse(req.body) as Event[];
    assertEquals(ev.subscriptionType, "contact.creation");
    assertEquals(ev.objectId, Number(created.id));
    assertEquals(ev.portalId, Number(hs.credentials.HUBSPOT_PORTAL_ID));
    assertEquals(ev.appId, Number(hs.credentials.HUBSPOT_APP_ID));
    assertEquals(ev.attemptNumber, 0);
    assertEquals(ev.changeSource, "CRM_UI");
    assert(
      typeof ev.eventId === "number" && typeof ev.subscriptionId === "number" &&
        typeof ev.occurredAt === "number",
    );

    // One API batch of 100 creates → one request of 100 events.
    const client = hubspotClient(hs.url, hs.credentials.HUBSPOT_ACCESS_TOKEN);
    await client.crm.contacts.batchApi.create({
      inputs: Array.from(
        { length: 100 },
        (_, i) => ({ properties: { email: `b${i}@example.com` }, associations: [] }),
      ),
    });
    await rx.waitFor(2);
    assertEquals(JSON.parse(rx.requests[1].body).length, 100);
    // 100 updates × 2 properties = 200 events → requests of at most 100.
    const ids = hs.store.tables.contacts.bySeq.slice(-100).map((r) => r.id);
    await client.crm.contacts.batchApi.update({
      inputs: ids.map((id) => ({ id, properties: { firstname: "X", lastname: "Y" } })),
    });
    await hs.webhooks.idle();
    const later = rx.requests.slice(2);
    assert(later.every((r) => JSON.parse(r.body).length <= 100));
    const changes = events(later);
    assertEquals(changes.length, 200);
    assert(
      changes.every((e) =>
        e.subscriptionType === "contact.propertyChange" && e.changeSource === "INTEGRATION"
      ),
    );
    assertEquals(new Set(changes.map((e) => e.propertyName)), new Set(["firstname", "lastname"]));
  } finally {
    await hs.close();
    await rx.close();
  }
});

Deno.test("deletion, merge, restore, association and privacy events", async () => {
  const rx = await startReceiver();
  const hs = await startHubSpot({ seed: 32, records: 5 });
  try {
    await admin(hs.url, "/webhooks", { method: "PUT", json: { targetUrl: rx.url } });
    const a = await admin(hs.url, "/records/contacts", { json: { email: "a@ev.test" } }) as {
      id: string;
    };
    const b = await admin(hs.url, "/records/contacts", { json: { email: "b@ev.test" } }) as {
      id: string;
    };
    const company = hs.store.tables.companies.bySeq.find((r) => !r.archived)!;
    await admin(hs.url, "/associations", {
      method: "PUT",
      json: {
        fromType: "contacts",
        fromId: a.id,
        toType: "companies",
        toId: company.id,
        primary: true,
      },
    });
    await admin(hs.url, "/records/contacts/merge", { json: { primaryId: a.id, mergedId: b.id } });
    await admin(hs.url, `/records/contacts/${a.id}`, { method: "DELETE" });
    await admin(hs.url, `/records/contacts/${a.id}/restore`, { json: {} });
    await admin(hs.url, `/records/contacts/${a.id}/gdpr-delete`, { json: {} });
    await hs.webhooks.idle();
    const evs = events(rx.requests);
    const byType = (t: string) => evs.filter((e) => e.subscriptionType === t);
    const merge = byType("contact.merge")[0];
    assertEquals(merge.primaryObjectId, Number(a.id));
    assertEquals(merge.mergedObjectIds, [Number(b.id)]);
    assertEquals(merge.newObjectId, Number(a.id));
    assertEquals(byType("contact.deletion")[0].objectId, Number(a.id));
    assertEquals(byType("contact.restore")[0].objectId, Number(a.id));
    assertEquals(byType("contact.privacyDeletion")[0].objectId, Number(a.id));
    const assoc = byType("contact.associationChange")[0];
    assertEquals(assoc.associationType, "CONTACT_TO_COMPANY");
    assertEquals(assoc.fromObjectId, Number(a.id));
    assertEquals(assoc.toObjectId, Number(company.id));
    assertEquals(assoc.associationRemoved, false);
    assertEquals(byType("company.associationChange")[0].associationType, "COMPANY_TO_CONTACT");
  } finally {
    await hs.close();
    await rx.close();
  }
});

Deno.test("failed deliveries are retried with back-off (time-scaled); attemptNumber increases", async () => {
  let n = 0;
  const rx = await startReceiver(async () => {
    n++;
    if (n === 1) return new Response("boom", { status: 500 });
    if (n === 2) {
      await new Promise((r) => setTimeout(r, 150)); // longer than the 50 ms timeout
      return new Response("late");
    }
    return new Response(null, { status: 204 });
  });
  // timeScale 0.0001: the 1-minute and 2-minute retry delays become 6 and 12 ms.
  const hs = await startHubSpot({ seed: 33, records: 2, timeScale: 0.0001 });
  try {
    await admin(hs.url, "/webhooks", { method: "PUT", json: { targetUrl: rx.url, timeoutMs: 50 } });
    await admin(hs.url, "/records/deals", { json: { dealname: "Retry me" } });
    await rx.waitFor(3, 3000);
    const bodies = rx.requests.map((r) => JSON.parse(r.body) as Event[]);
    assertEquals(bodies.map((b) => b[0].attemptNumber), [0, 1, 2]);
    assertEquals(new Set(bodies.map((b) => b[0].eventId)).size, 1);
    assertEquals(bodies[0][0].subscriptionType, "deal.creation");
    await hs.webhooks.idle();
    const log = hs.webhooks.deliveries;
    assertEquals(log.map((d) => d.ok), [false, false, true]);
    assert(log[1].error?.includes("timeout"));
  } finally {
    await hs.close();
    await rx.close();
  }
});

Deno.test("webhook faults: duplicated, reordered and dropped deliveries really happen", async () => {
  const rx = await startReceiver();
  const hs = await startHubSpot({ seed: 34, records: 3, timeScale: 0.0001 });
  try {
    await admin(hs.url, "/webhooks", {
      method: "PUT",
      json: { targetUrl: rx.url, maxConcurrentRequests: 1 },
    });
    const contact = hs.store.tables.contacts.bySeq.find((r) => !r.archived)!;

    await admin(hs.url, "/faults", { method: "PATCH", json: { webhookDuplicateRate: 1 } });
    await admin(hs.url, `/records/contacts/${contact.id}`, {
      method: "PATCH",
      json: { firstname: "Dup" },
    });
    await hs.webhooks.idle();
    assertEquals(rx.requests.length, 2);
    assertEquals(rx.requests[0].body, rx.requests[1].body);

    await admin(hs.url, "/faults", {
      method: "PUT",
      json: { webhookReorderRate: 0.5, webhookReorderHoldMs: 30 },
    });
    const before = rx.requests.length;
    for (let i = 0; i < 16; i++) {
      await admin(hs.url, `/records/contacts/${contact.id}`, {
        method: "PATCH",
        json: { jobtitle: `T${i}` },
      });
      await new Promise((r) => setTimeout(r, 3));
    }
    await hs.webhooks.idle();
    const ids = events(rx.requests.slice(before)).map((e) => e.eventId);
    assertEquals(ids.length, 16);
    assertNotEquals(ids, [...ids].sort((x, y) => x - y), "some deliveries overtook earlier ones");

    await admin(hs.url, "/faults", {
      method: "PATCH",
      json: { webhookReorderRate: 0, webhookDropRate: 1 },
    });
    const before2 = rx.requests.length;
    await admin(hs.url, `/records/contacts/${contact.id}`, {
      method: "PATCH",
      json: { jobtitle: "lost" },
    });
    await hs.webhooks.idle();
    assertEquals(rx.requests.length, before2);
    assert(hs.webhooks.deliveries.some((d) => d.dropped));
    const counters = await admin(hs.url, "/counters") as { faultsInjected: Record<string, number> };
    assertGreater(counters.faultsInjected.webhookReorder ?? 0, 0);
  } finally {
    await hs.close();
    await rx.close();
  }
});

Deno.test("webhook settings and subscriptions through the SDK's developer API", async () => {
  const rx = await startReceiver();
  const hs = await startHubSpot({ seed: 35, records: 3 });
  try {
    const appId = Number(hs.credentials.HUBSPOT_APP_ID);
    const dev = new Client({
      developerApiKey: hs.credentials.HUBSPOT_DEVELOPER_API_KEY,
      basePath: hs.url,
    });
    const settings = await dev.webhooks.settingsApi.configure(appId, {
      targetUrl: rx.url,
      throttling: { maxConcurrentRequests: 5 } as never,
    });
    assertEquals(settings.targetUrl, rx.url);
    const subs = await dev.webhooks.subscriptionsApi.getAll(appId);
    for (const s of subs.results) await dev.webhooks.subscriptionsApi.archive(Number(s.id), appId);
    const sub = await dev.webhooks.subscriptionsApi.create(appId, {
      eventType: "company.propertyChange" as never,
      propertyName: "name",
      active: true,
    });
    assertEquals(sub.eventType, "company.propertyChange");
    const company = hs.store.tables.companies.bySeq.find((r) => !r.archived)!;
    await admin(hs.url, `/records/companies/${company.id}`, {
      method: "PATCH",
      json: { name: "Renamed", city: "Oslo" },
    });
    await hs.webhooks.idle();
    const evs = events(rx.requests);
    assertEquals(evs.length, 1);
    assertEquals(evs[0].propertyName, "name");
    assertEquals(evs[0].propertyValue, "Renamed");
    assertEquals(evs[0].subscriptionId, Number(sub.id));
  } finally {
    await hs.close();
    await rx.close();
  }
});
