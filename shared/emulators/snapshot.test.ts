// Sandbox snapshots (common/snapshot.ts): a sandbox saved and loaded into a freshly generated
// one has the same records, schema, webhook configuration and counters, and goes on numbering
// new records where the saved one would have; main.ts with --state-dir keeps an edit across a
// real stop (SIGTERM) and start.
import { assert, assertEquals, assertNotEquals } from "./common/assert.ts";
import { join } from "node:path";
import type { StartedEmulator } from "./common/emulator.ts";
import { startHubSpot } from "./hubspot/mod.ts";
import { startPipedrive } from "./pipedrive/mod.ts";
import { startSalesforce } from "./salesforce/mod.ts";
import type { HubSpotEmulator } from "./hubspot/emulator.ts";
import type { SalesforceEmulator } from "./salesforce/emulator.ts";
import type { PipedriveEmulator } from "./pipedrive/emulator.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

async function admin(url: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${url}/__admin${path}`, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

interface Case {
  provider: string;
  start: (o: { port: number; seed: number; records: number }) => Promise<StartedEmulator<unknown>>;
  object: string;
  create: Record<string, unknown>;
  /** A second record (unique values differ from `create`'s). */
  next: Record<string, unknown>;
  edit: Record<string, unknown>;
  idOf: (r: Record<string, unknown>) => string;
  /** Changes beyond records: schema, webhook configuration, counters. */
  configure: (s: StartedEmulator<unknown>) => void;
}

const CASES: Case[] = [
  {
    provider: "hubspot",
    start: startHubSpot as Case["start"],
    object: "contacts",
    create: { properties: { email: "ada@engine.example", firstname: "Ada" } },
    next: { properties: { email: "grace@engine.example", firstname: "Grace" } },
    edit: { properties: { jobtitle: "Analyst" } },
    idOf: (r) => String(r.id),
    configure: (s) => {
      const e = s.emulator as HubSpotEmulator;
      e.store.props.add("contacts", {
        ...e.store.props.get("contacts", "jobtitle")!,
        name: "crm_sync_id",
        label: "crm_sync_id",
        hasUniqueValue: true,
      });
      e.store.addUniqueIndex("contacts", "crm_sync_id");
      e.webhooks.addSubscription({
        eventType: "contact.propertyChange",
        propertyName: "jobtitle",
        active: true,
      } as never);
    },
  },
  {
    provider: "salesforce",
    start: startSalesforce as Case["start"],
    object: "Contact",
    create: { LastName: "Lovelace", Email: "ada@engine.example" },
    next: { LastName: "Hopper", Email: "grace@engine.example" },
    edit: { Title: "Analyst" },
    idOf: (r) => String(r.Id),
    configure: (s) => {
      const e = s.emulator as SalesforceEmulator;
      e.customFields.create({
        FullName: "Contact.Crm_Sync_Id__c",
        Metadata: {
          type: "Text",
          label: "Crm Sync Id",
          length: 36,
          externalId: true,
          unique: true,
        },
      });
      e.outbound.configure({ url: "http://127.0.0.1:9/listener/secret" });
    },
  },
  {
    provider: "pipedrive",
    start: startPipedrive as Case["start"],
    object: "person",
    create: { name: "Ada Lovelace" },
    next: { name: "Grace Hopper" },
    edit: { job_title: "Analyst" },
    idOf: (r) => String(r.id),
    configure: (s) => {
      const e = s.emulator as PipedriveEmulator;
      e.store.addCustomField("person", "crm_sync_id", "varchar");
      e.webhooks.add({
        subscription_url: "http://127.0.0.1:9/pipedrive",
        event_action: "*",
        event_object: "person",
        user_id: 1,
        http_auth_user: "u",
        http_auth_password: "p",
        version: "2.0",
        name: null,
      });
    },
  },
];

for (const c of CASES) {
  Deno.test({
    ...opts,
    name:
      `sandbox snapshot ${c.provider}: saved, loaded into a fresh sandbox, same state and counters`,
    fn: async () => {
      const a = await c.start({ port: 0, seed: 11, records: 6 });
      const b = await c.start({ port: 0, seed: 11, records: 6 });
      try {
        const first = (await admin(a.url, "GET", `/records/${c.object}`)) as Array<
          Record<string, unknown>
        >;
        const created = await admin(a.url, "POST", `/records/${c.object}`, c.create);
        await admin(a.url, "PATCH", `/records/${c.object}/${c.idOf(first[0])}`, c.edit);
        await admin(a.url, "DELETE", `/records/${c.object}/${c.idOf(first[1])}`).catch(() => {});
        c.configure(a);
        const saved = JSON.parse(JSON.stringify(a.emulator.snapshot()));

        assertNotEquals(
          await admin(b.url, "GET", `/records/${c.object}`),
          await admin(a.url, "GET", `/records/${c.object}`),
          "the fresh sandbox starts from its seed",
        );
        b.emulator.restoreSnapshot(structuredClone(saved));
        for (const object of a.emulator.adminStore.objects()) {
          assertEquals(
            await admin(b.url, "GET", `/records/${object}`),
            await admin(a.url, "GET", `/records/${object}`),
            `${c.provider} ${object} after the restore`,
          );
        }
        assertEquals(
          JSON.parse(JSON.stringify(b.emulator.snapshot())),
          saved,
          "schema, webhooks, counters",
        );
        const edited = await admin(b.url, "GET", `/records/${c.object}/${c.idOf(first[0])}`);
        assert(JSON.stringify(edited).includes("Analyst"), "the edit survived");
        assert(
          JSON.stringify(await admin(b.url, "GET", `/records/${c.object}`)).includes(
            c.idOf(created),
          ),
        );

        // Numbering goes on where it stopped: the next record gets the id the saved sandbox
        // would have given it, and no earlier id is handed out again.
        const nextA = await admin(a.url, "POST", `/records/${c.object}`, c.next);
        const nextB = await admin(b.url, "POST", `/records/${c.object}`, c.next);
        assertEquals(c.idOf(nextB), c.idOf(nextA));
        assert(!first.some((r) => c.idOf(r) === c.idOf(nextB)));
        // Unique values are indexed again: the restored sandbox refuses a duplicate as the
        // saved one does (HubSpot email, the external-id fields).
        if (c.provider === "hubspot") {
          const dup = await admin(b.url, "POST", `/records/${c.object}`, c.create).then(
            () => "created",
            (e: Error) => e.message,
          );
          assert(dup.includes("409"), dup);
        }
      } finally {
        await a.close();
        await b.close();
      }
    },
  });
}

/** Starts main.ts; resolves with its ready line's env and the child. */
async function startMain(stateDir: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./main.ts", import.meta.url).pathname,
      "--hubspot-port",
      "0",
      "--salesforce-port",
      "0",
      "--pipedrive-port",
      "0",
      "--records",
      "4",
      "--state-dir",
      stateDir,
      "--save-interval",
      "0",
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  while (!buf.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`main.ts exited: ${buf}`);
    buf += value;
  }
  reader.releaseLock();
  const env = JSON.parse(buf.split("\n")[0]).env as Record<string, string>;
  return { child, env };
}

async function stopMain(child: Deno.ChildProcess): Promise<string> {
  child.kill("SIGTERM");
  const [status, err] = await Promise.all([
    child.status,
    new Response(child.stderr).text(),
    child.stdout.cancel().catch(() => {}),
  ]);
  assertEquals(status.code, 0, err);
  return err;
}

Deno.test({
  ...opts,
  name: "main.ts --state-dir: edits in two sandboxes survive a stop (SIGTERM) and a start",
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "sandbox_state_" });
    try {
      const one = await startMain(dir);
      const pd = one.env.PIPEDRIVE_API_URL;
      const [p] = await admin(pd, "GET", "/records/person");
      await admin(pd, "PATCH", `/records/person/${p.id}`, { job_title: "Kept across restarts" });
      const hs = one.env.HUBSPOT_API_URL;
      const [h] = await admin(hs, "GET", "/records/contacts");
      await admin(hs, "PATCH", `/records/contacts/${h.id}`, { properties: { jobtitle: "Kept" } });
      const log1 = await stopMain(one.child);
      assert(log1.includes(`saved the sandboxes to ${dir}`), log1);
      for (const f of ["hubspot.json", "salesforce.json", "pipedrive.json"]) {
        assert((await Deno.stat(join(dir, f))).size > 0, f);
      }

      const two = await startMain(dir);
      try {
        const again = await admin(two.env.PIPEDRIVE_API_URL, "GET", `/records/person/${p.id}`);
        assertEquals(again.job_title, "Kept across restarts");
        const hAgain = await admin(two.env.HUBSPOT_API_URL, "GET", `/records/contacts/${h.id}`);
        assertEquals(hAgain.properties.jobtitle, "Kept");
      } finally {
        const log2 = await stopMain(two.child);
        assert(log2.includes(`restored from ${dir}`), log2);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
