import assert from "node:assert/strict";
import { createAdapter } from "../../supabase/functions/_shared/providers/registry.ts";
import { type ProviderDeps, PROVIDERS } from "../../supabase/functions/_shared/providers/types.ts";

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
