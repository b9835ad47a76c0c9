/** Pipedrive webhooks v2: payload shape, basic auth, retries, merges. */
import { v1 } from "pipedrive";
import { Configuration, PersonsApi } from "pipedrive/v2";
import { assert, assertEquals, assertRejects } from "../common/assert.ts";
import { admin, startReceiver } from "../common/testing.ts";
import { startPipedrive } from "./mod.ts";

interface Payload {
  data: Record<string, unknown> | null;
  previous: Record<string, unknown> | null;
  meta: Record<string, unknown>;
}

Deno.test("webhooks v2 created through the v1 API: meta/data/previous with basic auth", async () => {
  const rx = await startReceiver();
  const pd = await startPipedrive({ seed: 71, records: 5 });
  try {
    const cfg = new v1.Configuration({
      apiKey: pd.credentials.PIPEDRIVE_API_TOKEN,
      basePath: `${pd.url}/v1`,
    });
    const hooks = new v1.WebhooksApi(cfg);
    const v1Hook = await assertRejects(() =>
      hooks.addWebhook({
        AddWebhookRequest: {
          subscription_url: rx.url,
          event_action: "*",
          event_object: "*",
        } as never,
      })
    ) as { success: boolean };
    assertEquals(v1Hook.success, false, "webhooks v1 payloads are not emulated");
    const hook = await hooks.addWebhook({
      AddWebhookRequest: {
        subscription_url: `${rx.url}/hook`,
        event_action: "*",
        event_object: "person",
        http_auth_user: "crm",
        http_auth_password: "s3cret",
        version: "2.0",
      } as never,
    });
    assertEquals(hook.data!.version, "2.0");

    const persons = new PersonsApi(
      new Configuration({
        apiKey: pd.credentials.PIPEDRIVE_API_TOKEN,
        basePath: `${pd.url}/api/v2`,
      }),
    );
    const p = (await persons.addPerson({
      AddPersonRequest: {
        name: "Ada Lovelace",
        emails: [{ value: "ada@example.com", primary: true }],
      },
    })).data!;
    await persons.updatePerson({ id: p.id!, UpdatePersonRequest: { job_title: "Analyst" } });
    await admin(pd.url, `/records/person/${p.id}`, { method: "DELETE" });
    await pd.webhooks.idle();
    const bodies = rx.requests.map((r) => JSON.parse(r.body) as Payload);
    assertEquals(bodies.map((b) => b.meta.action), ["create", "change", "delete"]);
    assert(rx.requests.every((r) => r.headers.authorization === `Basic ${btoa("crm:s3cret")}`));
    const [create, change, del] = bodies;
    assertEquals(create.meta.entity, "person");
    assertEquals(create.meta.entity_id, String(p.id));
    assertEquals(create.meta.company_id, pd.credentials.PIPEDRIVE_COMPANY_ID);
    assertEquals(create.meta.version, "2.0");
    assertEquals(create.meta.change_source, "api");
    assertEquals(create.meta.attempt, 1);
    assertEquals(create.meta.webhook_id, String(hook.data!.id));
    assertEquals(create.previous, null);
    assertEquals((create.data!.emails as Array<{ value: string }>)[0].value, "ada@example.com");
    assertEquals(change.previous, { job_title: null });
    assertEquals(change.data!.job_title, "Analyst");
    assertEquals(del.data, null);
    assertEquals(del.meta.change_source, "app");
    assertEquals(del.previous!.id, p.id);

    // Organizations are not subscribed.
    await admin(pd.url, "/records/organization", { json: { name: "Quiet Org" } });
    await pd.webhooks.idle();
    assertEquals(rx.requests.length, 3);
  } finally {
    await pd.close();
    await rx.close();
  }
});

Deno.test("failed webhook deliveries are retried 3 times (3 s, 30 s, 150 s × timeScale), attempt increases", async () => {
  const rx = await startReceiver(() => new Response("no", { status: 503 }));
  const pd = await startPipedrive({ seed: 72, records: 5, timeScale: 0.001 });
  try {
    await admin(pd.url, "/webhooks", { method: "PUT", json: { url: rx.url, eventObject: "deal" } });
    const deal = pd.store.tables.deal.bySeq.find((r) => !r.isDeleted)!;
    await admin(pd.url, `/records/deal/${deal.id}`, {
      method: "PATCH",
      json: { title: "Retry me" },
    });
    await pd.webhooks.idle();
    const attempts = rx.requests.map((r) => (JSON.parse(r.body) as Payload).meta.attempt);
    assertEquals(attempts, [1, 2, 3, 4]);
    assert(pd.webhooks.deliveries[3].gaveUp);
    const ids = new Set(rx.requests.map((r) => (JSON.parse(r.body) as Payload).meta.id));
    assertEquals(ids.size, 1, "same event id on every attempt");
  } finally {
    await pd.close();
    await rx.close();
  }
});

Deno.test("merge sends delete (merged_to_id) for the loser and change for the survivor", async () => {
  const rx = await startReceiver();
  const pd = await startPipedrive({ seed: 73, records: 5 });
  try {
    await admin(pd.url, "/webhooks", {
      method: "PUT",
      json: { url: rx.url, eventObject: "person" },
    });
    const [a, b] = pd.store.tables.person.bySeq.filter((r) => !r.isDeleted);
    await admin(pd.url, "/records/person/merge", { json: { primaryId: a.id, mergedId: b.id } });
    await pd.webhooks.idle();
    const metas = rx.requests.map((r) => (JSON.parse(r.body) as Payload).meta);
    const del = metas.find((m) => m.action === "delete")!;
    assertEquals(del.entity_id, b.id);
    assertEquals(del.merged_to_id, a.id);
    assert(metas.some((m) => m.action === "change" && m.entity_id === a.id));
  } finally {
    await pd.close();
    await rx.close();
  }
});
