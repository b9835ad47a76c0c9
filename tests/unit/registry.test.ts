import assert from "node:assert/strict";
import { createAdapter } from "../../supabase/functions/_shared/providers/registry.ts";
import {
  type ProviderAdapter,
  type ProviderCapabilities,
  type ProviderDeps,
  PROVIDERS,
} from "../../supabase/functions/_shared/providers/types.ts";
import { listsDeletionsAfter, streamMode } from "../../supabase/functions/_shared/sync/walk.ts";

Deno.test("the registry builds an adapter for every provider, and only for those", async () => {
  const deps: ProviderDeps = {
    baseUrl: "http://127.0.0.1:9",
    credentials: { accessToken: "t", apiToken: "t" },
    beforeRequest: () => Promise.resolve(),
    onTokens: () => Promise.resolve(),
    countCall: () => {},
    log: () => {},
  };
  for (const p of PROVIDERS) assert.equal((await createAdapter(p, deps)).provider, p);
  await assert.rejects(createAdapter("zoho" as never, deps), /unknown provider/);
});

Deno.test("each adapter declares how deletions reach us and which objects are walked whole", async () => {
  const deps: ProviderDeps = {
    baseUrl: "http://127.0.0.1:9",
    credentials: { accessToken: "t", apiToken: "t" },
    beforeRequest: () => Promise.resolve(),
    onTokens: () => Promise.resolve(),
    countCall: () => {},
    log: () => {},
  };
  const declared = Object.fromEntries(
    await Promise.all(PROVIDERS.map(async (p) => [p, (await createAdapter(p, deps)).capabilities])),
  );
  assert.deepEqual(declared, {
    hubspot: { deletions: "listed-on-full", alwaysFull: ["owners"] },
    salesforce: { deletions: "in-walk", alwaysFull: ["owners"] },
    pipedrive: { deletions: "sweep-only", alwaysFull: ["owners"] },
  });
});

/** An adapter that only declares capabilities (the engine helpers read nothing else). */
function declaring(capabilities: ProviderCapabilities): ProviderAdapter {
  const no = () => Promise.reject(new Error("not called"));
  return {
    provider: "hubspot",
    capabilities,
    changesSince: no,
    deletedSince: no,
    readByIds: no,
    stamps: no,
    writer: { maxBatch: 1, chunk: 1, externalIdProperty: no, ensureExternalId: no, write: no },
  };
}

Deno.test("the engine reads the capabilities: always-full objects and deletion listings", () => {
  const a = declaring({ deletions: "listed-on-full", alwaysFull: ["owners", "deals"] });
  assert.equal(streamMode(a, "owners", "delta"), "full");
  assert.equal(streamMode(a, "deals", "delta"), "full");
  assert.equal(streamMode(a, "contacts", "delta"), "delta");
  assert.equal(streamMode(a, "contacts", "full"), "full");
  // A listing that reads the whole archive runs after full walks only, never after a delta.
  assert.equal(listsDeletionsAfter(a, "delta"), false);
  assert.equal(listsDeletionsAfter(a, "full"), true);
  for (const deletions of ["in-walk", "sweep-only"] as const) {
    const b = declaring({ deletions, alwaysFull: [] });
    assert.equal(listsDeletionsAfter(b, "full"), false);
    assert.equal(listsDeletionsAfter(b, "delta"), false);
    assert.equal(streamMode(b, "owners", "delta"), "delta");
  }
});
