// The adapters' stamps walks (drift checks) against the sandboxes through the official SDKs:
// every live record once, with the modification time its full walk reports (so the drift
// compare finds equal records equal), deleted records not listed, the provider's largest page
// (HubSpot 100 with only the modification property, Salesforce 2,000 per queryMore batch and
// per sObject, Pipedrive 500 with the records carried), and a walk resumed from any checkpoint
// (Salesforce: also after its query locator expired) ends the same.
import assert from "node:assert/strict";
import { connectionCredentials } from "../../shared/local/connections.ts";
import { startHubSpot } from "../../shared/emulators/hubspot/mod.ts";
import { startPipedrive } from "../../shared/emulators/pipedrive/mod.ts";
import { startSalesforce } from "../../shared/emulators/salesforce/mod.ts";
import { createAdapter } from "../../supabase/functions/_shared/providers/registry.ts";
import type {
  ProviderAdapter,
  ProviderName,
  Stamp,
  StampPage,
} from "../../supabase/functions/_shared/providers/types.ts";
import { walkChanges } from "./_support.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

interface Started {
  url: string;
  credentials: Record<string, string>;
  close(): Promise<void>;
}

async function start(provider: ProviderName, records: number): Promise<Started> {
  const base = { port: 0, seed: 29, records, log: () => {} };
  return provider === "hubspot"
    ? await startHubSpot({ ...base, rateLimit: { tenSecondly: 100_000 } })
    : provider === "salesforce"
    ? await startSalesforce(base)
    : await startPipedrive({ ...base, rateLimit: { burst: 100_000 } });
}

async function adapterFor(provider: ProviderName, sb: Started) {
  const kinds: string[] = [];
  const adapter = await createAdapter(provider, {
    baseUrl: sb.url,
    credentials: connectionCredentials(provider, { ...sb.credentials }, sb.url),
    beforeRequest: (kind) => {
      kinds.push(kind);
      return Promise.resolve();
    },
    onTokens: () => Promise.resolve(),
    countCall: () => {},
    log: () => {},
  }, provider === "salesforce" ? { Contact: ["FirstName"], Lead: ["FirstName"] } : {});
  return { adapter, kinds };
}

async function walkStamps(
  adapter: ProviderAdapter,
  from: unknown = null,
): Promise<{ stamps: Stamp[]; pages: StampPage[] }> {
  const stamps: Stamp[] = [];
  const pages: StampPage[] = [];
  let cp = from;
  for (let i = 0; i < 10_000; i++) {
    const page = await adapter.stamps("contacts", cp);
    assert.deepEqual(page.errors, []);
    pages.push(page);
    stamps.push(...page.stamps);
    cp = page.checkpoint;
    if (page.done) {
      assert.equal(page.checkpoint, null);
      return { stamps, pages };
    }
  }
  throw new Error("the stamps walk did not finish");
}

const ADMIN: Record<ProviderName, string> = {
  hubspot: "contacts",
  salesforce: "Contact",
  pipedrive: "person",
};
const PAGE: Record<ProviderName, number> = { hubspot: 100, salesforce: 2000, pipedrive: 500 };

for (const provider of ["hubspot", "salesforce", "pipedrive"] as const) {
  Deno.test({
    name: `${provider} stamps: every live record once, at its full walk's time, largest pages`,
    ...opts,
    fn: async () => {
      // Salesforce: 2,300 Contacts and 2,300 Leads, so each sObject takes a queryMore.
      const sb = await start(provider, provider === "salesforce" ? 2300 : 1200);
      try {
        const { adapter, kinds } = await adapterFor(provider, sb);
        const { stamps, pages } = await walkStamps(adapter);
        const stampKinds = [...kinds];
        const ids = stamps.map((s) => s.remoteId);
        assert.equal(new Set(ids).size, ids.length, "an id listed twice");
        const { seen } = await walkChanges(adapter, "contacts");
        const live = seen.filter((r) => !r.deleted);
        const at = new Map(live.map((r) => [r.remoteId, r.modifiedAt]));
        assert.equal(stamps.length, live.length, "live records and stamps differ");
        for (const s of stamps) assert.equal(s.modifiedAt, at.get(s.remoteId), s.remoteId);
        // Largest pages: only the last page of each sObject is short.
        const full = pages.filter((p) => p.stamps.length === PAGE[provider]).length;
        const types = provider === "salesforce" ? 2 : 1;
        assert.ok(pages.length - full <= types, `${pages.length} pages, ${full} full`);
        const kind = provider === "salesforce" ? "query" : "list";
        assert.ok(stampKinds.every((k) => k === kind), stampKinds.join());
        if (provider === "pipedrive") {
          // The records travel with their stamps (no field selection in v2 lists).
          for (const p of pages) {
            assert.deepEqual(p.records?.map((r) => r.remoteId), p.stamps.map((s) => s.remoteId));
          }
        } else {
          assert.ok(pages.every((p) => p.records === undefined));
        }

        // Resumed from a checkpoint in the middle, by a new adapter (a continuation).
        const mid = pages[Math.floor(pages.length / 2) - 1];
        const rest = await walkStamps((await adapterFor(provider, sb)).adapter, mid.checkpoint);
        const upto = pages.slice(0, Math.floor(pages.length / 2)).flatMap((p) => p.stamps);
        assert.deepEqual([...upto, ...rest.stamps], stamps);

        if (provider === "salesforce") {
          // A locator gone (15 idle minutes): the walk asks again from the last Id.
          const cp = pages[0].checkpoint as { next: string; lastId: string };
          assert.ok(cp.next && cp.lastId);
          const expired = { ...cp, next: cp.next.replace(/\/query\/[^/]+$/, "/query/gone-2000") };
          const again = await walkStamps(adapter, expired);
          assert.deepEqual([...pages[0].stamps, ...again.stamps], stamps);
        }

        // A record deleted in the CRM is no longer listed.
        const gone = stamps[3].remoteId;
        const res = await fetch(`${sb.url}/__admin/records/${ADMIN[provider]}/${gone}`, {
          method: "DELETE",
        });
        assert.ok(res.ok, await res.text());
        const after = await walkStamps(adapter);
        assert.deepEqual(
          after.stamps.map((s) => s.remoteId),
          stamps.map((s) => s.remoteId).filter((id) => id !== gone),
        );
      } finally {
        await sb.close();
      }
    },
  });
}

Deno.test({
  name: "hubspot stamps: the list asks for the modification property alone",
  ...opts,
  fn: async () => {
    const sb = await startHubSpot({ port: 0, seed: 30, records: 5, log: () => {} });
    const asked: URL[] = [];
    const real = globalThis.fetch;
    globalThis.fetch = (input, init) => {
      asked.push(new URL(input instanceof Request ? input.url : String(input)));
      return real(input, init);
    };
    try {
      const { adapter } = await adapterFor("hubspot", sb);
      await adapter.stamps("contacts", null);
      await adapter.stamps("deals", null);
      const lists = asked.filter((u) => /\/crm\/v3\/objects\/\w+$/.test(u.pathname));
      assert.deepEqual(lists.map((u) => u.searchParams.getAll("properties")), [
        ["lastmodifieddate"],
        ["hs_lastmodifieddate"],
      ]);
      assert.ok(lists.every((u) => !u.searchParams.has("associations")));
      assert.ok(lists.every((u) => u.searchParams.get("limit") === "100"));
    } finally {
      globalThis.fetch = real;
      await sb.close();
    }
  },
});
