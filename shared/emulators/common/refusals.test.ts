/** Permanent refusals (./refusals.ts): API updates of the listed records fail with the
 * provider's validation error on every attempt; creates, deletes and admin saves do not. */
import { assert, assertEquals } from "./assert.ts";
import { admin } from "./testing.ts";
import { startHubSpot } from "../hubspot/mod.ts";
import { startPipedrive } from "../pipedrive/mod.ts";
import { startSalesforce } from "../salesforce/mod.ts";

type Started = Awaited<ReturnType<typeof startHubSpot>>;

async function api(
  e: Started,
  token: string,
  method: string,
  path: string,
  body: unknown,
): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${e.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

const cases = [
  {
    name: "hubspot",
    start: startHubSpot,
    token: (c: Record<string, string>) => c.HUBSPOT_PRIVATE_APP_TOKEN,
    object: "contacts",
    create: (n: number) => ({ properties: { email: `ref${n}@example.com`, lastname: "Ref" } }),
    update: async (e: Started, t: string, id: string) => [
      await api(e, t, "PATCH", `/crm/v3/objects/contacts/${id}`, {
        properties: { jobtitle: "CFO" },
      }),
      await api(e, t, "POST", `/crm/v3/objects/contacts/batch/update`, {
        inputs: [{ id, properties: { jobtitle: "CFO" } }],
      }),
    ],
    refused: (r: { status: number; json: unknown }) =>
      r.status === 400 && (r.json as { category: string }).category === "VALIDATION_ERROR" &&
      (r.json as { message: string }).message.startsWith("Property values were not valid"),
  },
  {
    name: "salesforce",
    start: startSalesforce,
    token: (c: Record<string, string>) => c.SALESFORCE_ACCESS_TOKEN,
    object: "Contact",
    create: (n: number) => ({ LastName: "Ref", Email: `ref${n}@example.com` }),
    update: async (e: Started, t: string, id: string) => [
      await api(e, t, "PATCH", `/services/data/v62.0/sobjects/Contact/${id}`, { Title: "CFO" }),
      await api(e, t, "PATCH", `/services/data/v62.0/composite/sobjects`, {
        allOrNone: false,
        records: [{ attributes: { type: "Contact" }, id, Title: "CFO" }],
      }),
    ],
    refused: (r: { status: number; json: unknown }) => {
      const j = r.json as Array<{ errorCode?: string; errors?: Array<{ statusCode: string }> }>;
      return JSON.stringify(j).includes("FIELD_CUSTOM_VALIDATION_EXCEPTION") &&
        (r.status === 400 ||
          (r.status === 200 && (j[0] as { success?: boolean }).success === false));
    },
  },
  {
    name: "pipedrive",
    start: startPipedrive,
    token: (c: Record<string, string>) => c.PIPEDRIVE_ACCESS_TOKEN,
    object: "person",
    create: (n: number) => ({ name: `Ada Ref${n}` }),
    update: async (e: Started, t: string, id: string) => [
      await api(e, t, "PATCH", `/api/v2/persons/${id}`, { job_title: "CFO" }),
    ],
    refused: (r: { status: number; json: unknown }) =>
      r.status === 400 && (r.json as { success: boolean }).success === false &&
      (r.json as { code: string }).code === "ERR_SCHEMA_VALIDATION_FAILED",
  },
] as const;

for (const c of cases) {
  Deno.test(`refusals (${c.name}): API updates of a refused record fail with the provider's validation error, every time`, async () => {
    const e = await c.start({ seed: 91, records: 2 }) as Started;
    try {
      const token = c.token(e.credentials);
      let n = 0;
      const mk = async () => {
        const r = await admin(e.url, `/records/${c.object}`, { json: c.create(n++) }) as Record<
          string,
          unknown
        >;
        return String(r.id ?? r.Id);
      };
      const id = await mk();
      await admin(e.url, "/refusals", { method: "PUT", json: { ids: [id], message: "Locked" } });
      // A fault reset leaves the refusal in place.
      await admin(e.url, "/faults", { method: "DELETE" });
      for (let i = 0; i < 2; i++) {
        for (const r of await c.update(e, token, id)) {
          assert(c.refused(r), `${c.name} attempt ${i}: ${r.status} ${JSON.stringify(r.json)}`);
          assert(JSON.stringify(r.json).includes("Locked"));
        }
      }
      const got = await admin(e.url, `/records/${c.object}/${id}`) as Record<string, unknown>;
      assert(!JSON.stringify(got).includes("CFO"), "nothing written");
      // A CRM user's save goes through.
      await admin(e.url, `/records/${c.object}/${id}`, {
        method: "PATCH",
        json: c.name === "hubspot"
          ? { properties: { jobtitle: "CEO" } }
          : c.name === "salesforce"
          ? { Title: "CEO" }
          : { job_title: "CEO" },
      });
      // Another record is written.
      const other = await mk();
      for (const r of await c.update(e, token, other)) {
        assert(r.status < 300, JSON.stringify(r.json));
      }
      const snap = await admin(e.url, "/refusals") as { refused: Record<string, number> };
      assert((snap.refused[id] ?? 0) >= 2);
      await admin(e.url, "/refusals", { method: "DELETE" });
      for (const r of await c.update(e, token, id)) assert(r.status < 300, JSON.stringify(r.json));
      assertEquals((await admin(e.url, "/refusals") as { ids: string[] }).ids, []);
    } finally {
      await e.close();
    }
  });
}
