/** The admin API shared by the three emulators, and request faults (latency, hang). */
import { assert, assertEquals, assertGreater, assertRejects } from "./assert.ts";
import { admin } from "./testing.ts";
import { startHubSpot } from "../hubspot/mod.ts";
import { startPipedrive } from "../pipedrive/mod.ts";
import { startSalesforce } from "../salesforce/mod.ts";

const cases = [
  {
    name: "hubspot",
    start: startHubSpot,
    writePath: "/crm/v3/objects/contacts",
    object: "contacts",
    create: { properties: { email: "adm@example.com", lastname: "Adm" } },
    update: { jobtitle: "CFO" },
  },
  {
    name: "salesforce",
    start: startSalesforce,
    writePath: "/services/data/v62.0/sobjects/Lead",
    object: "Contact",
    create: { LastName: "Adm", Email: "adm@example.com" },
    update: { Title: "CFO" },
  },
  {
    name: "pipedrive",
    start: startPipedrive,
    writePath: "/api/v2/persons",
    object: "person",
    create: { name: "Ada Adm" },
    update: { job_title: "CFO" },
  },
] as const;

for (const c of cases) {
  Deno.test(`admin API (${c.name}): records, set-modified, store, reset, tokens`, async () => {
    const e = await c.start({ seed: 81, records: 30 });
    try {
      const created = await admin(e.url, `/records/${c.object}`, { json: c.create }) as Record<
        string,
        unknown
      >;
      const id = String(created.id ?? created.Id);
      assert(id && id !== "undefined");
      await admin(e.url, `/records/${c.object}/${id}`, { method: "PATCH", json: c.update });
      const got = await admin(e.url, `/records/${c.object}/${id}`) as Record<string, unknown>;
      assert(JSON.stringify(got).includes("CFO"));

      const sel = await admin(e.url, `/records/${c.object}/set-modified`, {
        json: { count: 10, pick: "newest", modifiedAt: "2024-02-02T02:02:02Z" },
      }) as { updated: number; ids: string[] };
      assertEquals(sel.updated, 10);
      const dump = await admin(e.url, `/store?object=${c.object}`) as Array<
        Record<string, unknown>
      >;
      assertEquals(dump.length, 31 + 0, "30 seeded + 1 created (deleted ones included)");

      const others = dump.map((r) => String(r.id ?? r.Id)).filter((x) => x !== id);
      await admin(e.url, `/records/${c.object}/merge`, {
        json: { primaryId: id, mergedId: others[others.length - 1] },
      });
      await admin(e.url, `/records/${c.object}/${others[0]}`, { method: "DELETE" });
      const bad = await assertRejects(() => admin(e.url, `/records/nope`, { json: {} })) as Error;
      assert(bad.message.includes("404"));

      await admin(e.url, "/tokens", { method: "PUT", json: { accessTtlSeconds: 0 } });
      const tokens = await admin(e.url, "/tokens") as Array<
        { kind: string; expiresAt: number | null }
      >;
      assert(tokens.some((t) => t.kind === "access" && t.expiresAt !== null));

      const reset = await admin(e.url, "/reset", { json: { records: 5 } }) as {
        credentials: Record<string, string>;
      };
      assertEquals(reset.credentials, e.credentials, "credentials survive a reset");
      const after = await admin(e.url, `/store?object=${c.object}`) as unknown[];
      assertEquals(after.length, 5);
      const counters = await admin(e.url, "/counters") as { total: number };
      assertEquals(counters.total, 0);
    } finally {
      await e.close();
    }
  });
}

// jsforce, axios and node-fetch under Deno's node:http send the headers first
// and the body a moment later; an answer that overtakes the body makes the
// client drop the half-sent body, and Deno's writer then rejects with
// "resource closed" outside any caller (an uncaught error in the test run).
for (const c of cases) {
  Deno.test(`early answers (${c.name}: bad session, unknown route, injected 5xx) wait for the request body`, async () => {
    const e = await c.start({ seed: 84, records: 1 });
    try {
      const early = async (path: string): Promise<number> => {
        let bodySent = false;
        let answeredBeforeBody: boolean | undefined;
        let release!: () => void;
        const gate = new Promise<void>((r) => (release = r));
        const body = new ReadableStream<Uint8Array>({
          async pull(ctrl) {
            await gate;
            bodySent = true;
            ctrl.enqueue(new TextEncoder().encode(JSON.stringify({ name: "Late Body" })));
            ctrl.close();
          },
        });
        const answer = fetch(`${e.url}${path}`, {
          method: "POST",
          body,
          headers: { authorization: "Bearer not-a-session", "content-type": "application/json" },
        }).then((res) => {
          answeredBeforeBody ??= !bodySent;
          return res;
        });
        // Give an early answer every chance to arrive before the body does.
        const waited = await Promise.race([
          answer.then(() => "answer"),
          new Promise<string>((r) => setTimeout(() => r("gate"), 150)),
        ]);
        release();
        const res = await answer;
        await res.body?.cancel();
        assertEquals(answeredBeforeBody, false, `${path}: answered before the body (${waited})`);
        return res.status;
      };
      assertEquals(await early(c.writePath), 401);
      assertEquals(await early("/no/such/route"), 404);
      await admin(e.url, "/faults", { method: "PUT", json: { error5xxRate: 1 } });
      assertGreater(await early(c.writePath), 499);
    } finally {
      await e.close();
    }
  });
}

Deno.test("request faults: added latency and hung requests (the client times out)", async () => {
  const pd = await startPipedrive({ seed: 82, records: 3 });
  try {
    const headers = { "x-api-token": pd.credentials.PIPEDRIVE_API_TOKEN };
    await admin(pd.url, "/faults", {
      method: "PUT",
      json: { latencyMs: 60, routeFilter: "/api/v2/deals" },
    });
    const t0 = performance.now();
    const slow = await fetch(`${pd.url}/api/v2/deals?limit=1`, { headers });
    await slow.body?.cancel();
    assertGreater(performance.now() - t0, 55);
    // routeFilter, checked by outcome rather than by time: a route outside it gets no fault.
    await admin(pd.url, "/faults", {
      method: "PUT",
      json: { error5xxRate: 1, routeFilter: "/api/v2/deals" },
    });
    const faulted = await fetch(`${pd.url}/api/v2/deals?limit=1`, { headers });
    await faulted.body?.cancel();
    assertGreater(faulted.status, 499);
    const spared = await fetch(`${pd.url}/api/v2/persons?limit=1`, { headers });
    await spared.body?.cancel();
    assertEquals(spared.status, 200, "routeFilter limits the fault");

    await admin(pd.url, "/faults", {
      method: "PUT",
      json: { hangRate: 1, routeFilter: "GET /api/v2/organizations" },
    });
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), 100);
    await assertRejects(() =>
      fetch(`${pd.url}/api/v2/organizations`, { headers, signal: ctrl.signal })
    );
    clearTimeout(timer);
    await new Promise((r) => setTimeout(r, 20));
    assertEquals(pd.counters.count("GET /api/v2/organizations", 0), 1);
  } finally {
    await pd.close();
  }
});

Deno.test("lostAnswerRate: the write is applied, the answer never comes", async () => {
  const pd = await startPipedrive({ seed: 84, records: 3 });
  try {
    const headers = {
      "x-api-token": pd.credentials.PIPEDRIVE_API_TOKEN,
      "content-type": "application/json",
    };
    await admin(pd.url, "/faults", {
      method: "PUT",
      json: { lostAnswerRate: 1, routeFilter: "POST /api/v2/organizations" },
    });
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), 100);
    await assertRejects(() =>
      fetch(`${pd.url}/api/v2/organizations`, {
        method: "POST",
        headers,
        body: JSON.stringify({ name: "Lost Answer Ltd" }),
        signal: ctrl.signal,
      })
    );
    clearTimeout(timer);
    await new Promise((r) => setTimeout(r, 20));
    assertEquals(pd.counters.count("POST /api/v2/organizations", 0), 1);
    await admin(pd.url, "/faults", { method: "DELETE" });
    const list = await (await fetch(`${pd.url}/api/v2/organizations?limit=500`, { headers }))
      .json();
    const hits = (list.data as Array<{ name: string }>).filter((o) => o.name === "Lost Answer Ltd");
    assertEquals(hits.length, 1);
  } finally {
    await pd.close();
  }
});

Deno.test("list pages reflect writes (serialised-record memo is invalidated)", async () => {
  const hs = await startHubSpot({ seed: 83, records: 5 });
  const sf = await startSalesforce({ seed: 83, records: 5 });
  const pd = await startPipedrive({ seed: 83, records: 5 });
  try {
    const hsList = async () =>
      (await (await fetch(`${hs.url}/crm/v3/objects/contacts?limit=100&properties=jobtitle`, {
        headers: { authorization: `Bearer ${hs.credentials.HUBSPOT_ACCESS_TOKEN}` },
      })).json())
        .results as Array<{ id: string; properties: Record<string, string> }>;
    const first = (await hsList())[0];
    await admin(hs.url, `/records/contacts/${first.id}`, {
      method: "PATCH",
      json: { jobtitle: "Memo buster" },
    });
    assertEquals((await hsList())[0].properties.jobtitle, "Memo buster");

    const sfList = async () =>
      (await (await fetch(
        `${sf.url}/services/data/v62.0/query?q=${
          encodeURIComponent("SELECT Id, Title FROM Contact ORDER BY Id")
        }`,
        { headers: { authorization: `Bearer ${sf.credentials.SALESFORCE_ACCESS_TOKEN}` } },
      )).json())
        .records as Array<{ Id: string; Title: string }>;
    const c = (await sfList())[0];
    await admin(sf.url, `/records/Contact/${c.Id}`, {
      method: "PATCH",
      json: { Title: "Memo buster" },
    });
    assertEquals((await sfList())[0].Title, "Memo buster");

    const pdList = async () =>
      (await (await fetch(`${pd.url}/api/v2/persons?limit=100`, {
        headers: { "x-api-token": pd.credentials.PIPEDRIVE_API_TOKEN },
      })).json())
        .data as Array<{ id: number; job_title?: string }>;
    const p = (await pdList())[0];
    await admin(pd.url, `/records/person/${p.id}`, {
      method: "PATCH",
      json: { job_title: "Memo buster" },
    });
    assertEquals((await pdList()).find((x) => x.id === p.id)!.job_title, "Memo buster");
  } finally {
    await hs.close();
    await sf.close();
    await pd.close();
  }
});
