/** Salesforce Outbound Messages: SOAP shape, ≤100 notifications, Ack handling, retries. */
import { assert, assertEquals, assertMatch } from "../common/assert.ts";
import { admin, type ReceivedRequest, startReceiver } from "../common/testing.ts";
import { ACK_ENVELOPE, startSalesforce } from "./mod.ts";
import { sfConnection } from "./test_client.ts";

const ack = () => new Response(ACK_ENVELOPE, { headers: { "content-type": "text/xml" } });
const notificationIds = (r: ReceivedRequest) =>
  [...r.body.matchAll(/<Notification><Id>([^<]+)<\/Id>/g)].map((m) => m[1]);
const recordIds = (r: ReceivedRequest) =>
  [...r.body.matchAll(/<sf:Id>([^<]+)<\/sf:Id>/g)].map((m) => m[1]);

Deno.test("outbound messages: SOAP notifications with the org id, ≤100 per message, latest data", async () => {
  const rx = await startReceiver(ack);
  const sf = await startSalesforce({ seed: 51, records: 5 });
  try {
    const url = `${rx.url}/functions/v1/crm-webhook?provider=salesforce&secret=s3cret`;
    await admin(sf.url, "/outbound", {
      method: "PUT",
      json: {
        url,
        objects: ["Contact", "Account"],
        fields: { Contact: ["Id", "LastName", "Email", "SystemModstamp"] },
      },
    });
    const { conn } = sfConnection(sf.url, sf.credentials);
    const created = await conn.sobject("Contact").create(
      Array.from(
        { length: 150 },
        (_, i) => ({ LastName: `Out${i}`, Email: `out${i}@example.com` }),
      ),
    );
    await sf.webhooks.idle();
    assertEquals(rx.requests.length, 2);
    const [m1, m2] = rx.requests;
    assertEquals([notificationIds(m1).length, notificationIds(m2).length], [100, 50]);
    assertEquals(m1.headers["content-type"], "text/xml; charset=utf-8");
    assertEquals(m1.headers["soapaction"], '""');
    assertEquals(m1.path, "/functions/v1/crm-webhook?provider=salesforce&secret=s3cret");
    assertMatch(
      m1.body,
      new RegExp(`<OrganizationId>${sf.credentials.SALESFORCE_ORG_ID}</OrganizationId>`),
    );
    assertMatch(m1.body, /<ActionId>04k[0-9A-Za-z]{15}<\/ActionId><SessionId xsi:nil="true"\/>/);
    assertMatch(
      m1.body,
      /<sObject xsi:type="sf:Contact" xmlns:sf="urn:sobject\.enterprise\.soap\.sforce\.com"><sf:Id>003/,
    );
    assertMatch(
      m1.body,
      /<sf:SystemModstamp>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.000Z<\/sf:SystemModstamp>/,
    );
    assert(!m1.body.includes("<sf:Title>"), "only configured fields");
    assertEquals([...recordIds(m1), ...recordIds(m2)], created.map((c) => c.id));
    assert(notificationIds(m1).every((id) => id.startsWith("04l")));

    // Deletes send nothing; an app-side update does.
    await admin(sf.url, `/records/Contact/${created[0].id}`, { method: "DELETE" });
    await admin(sf.url, `/records/Contact/${created[1].id}`, {
      method: "PATCH",
      json: { LastName: "Edited & <escaped>" },
    });
    await sf.webhooks.idle();
    assertEquals(rx.requests.length, 3);
    assertMatch(rx.requests[2].body, /<sf:LastName>Edited &amp; &lt;escaped&gt;<\/sf:LastName>/);
    assert(!rx.requests.slice(2).some((r) => r.body.includes(`<sf:Id>${created[0].id}<`)));
  } finally {
    await sf.close();
    await rx.close();
  }
});

Deno.test("outbound messages without an Ack are retried (time-scaled) and repeat the same notification ids", async () => {
  let n = 0;
  const rx = await startReceiver(() => {
    n++;
    if (n === 1) return new Response("<html>oops</html>", { status: 500 });
    if (n === 2) return new Response("<Ack>false</Ack>", { status: 200 });
    return ack();
  });
  const sf = await startSalesforce({ seed: 52, records: 5, timeScale: 0.0001 });
  try {
    await admin(sf.url, "/outbound", {
      method: "PUT",
      json: { url: rx.url, objects: ["Opportunity"] },
    });
    const acc = sf.store.tables.Account.bySeq.find((r) => !r.isDeleted)!;
    await admin(sf.url, "/records/Opportunity", {
      json: { Name: "Retry", StageName: "Prospecting", CloseDate: "2025-05-01", AccountId: acc.id },
    });
    await sf.webhooks.idle();
    assertEquals(rx.requests.length, 3);
    const ids = rx.requests.map(notificationIds);
    assertEquals(ids[0], ids[1]);
    assertEquals(ids[1], ids[2]);
    assertEquals(sf.webhooks.deliveries.map((d) => d.ok), [false, false, true]);
  } finally {
    await sf.close();
    await rx.close();
  }
});
