// Child process of `npm run bench` for the issue-11 parts: CRM sandboxes with their documented
// rate limits ON (unlike ./sandbox_server.ts, which lifts them), each hosting one or many
// accounts (portals / orgs / companies; shared/emulators/common/tenancy.ts). Prints one JSON
// line when all listen — per provider its URL, account 0's credentials and the seed time — and
// closes them on SIGTERM. The other accounts' credentials come from the admin listing
// (GET /__admin/accounts), as any client of the sandboxes reads them.
//
//   deno run -A scripts/bench/tenant_server.ts '<json>'
//   json: { "<provider>": { "accounts": n, "records": n, "tenantRecords": n }, ... }
//   (records: per object of account 0; tenantRecords: per object of accounts 1..n-1)
import { startHubSpot } from "../../shared/emulators/hubspot/mod.ts";
import { startPipedrive } from "../../shared/emulators/pipedrive/mod.ts";
import { startSalesforce } from "../../shared/emulators/salesforce/mod.ts";

interface Spec {
  accounts: number;
  records: number;
  tenantRecords: number;
}

const specs = JSON.parse(Deno.args[0] ?? "{}") as Record<string, Spec>;
const quiet = () => {};
const starters = {
  hubspot: (s: Spec) => startHubSpot({ port: 0, seed: 1, log: quiet, ...s }),
  salesforce: (s: Spec) => startSalesforce({ port: 0, seed: 1, log: quiet, ...s }),
  pipedrive: (s: Spec) => startPipedrive({ port: 0, seed: 1, log: quiet, ...s }),
};
const t0 = performance.now();
const started: { close(): Promise<void> }[] = [];
const ready: Record<string, unknown> = {};
for (const [provider, spec] of Object.entries(specs)) {
  const start = starters[provider as keyof typeof starters];
  if (!start) {
    console.error(`tenant_server: unknown provider ${provider}`);
    Deno.exit(2);
  }
  const sb = await start(spec);
  started.push(sb);
  ready[provider] = { url: sb.url, credentials: sb.credentials };
}
console.log(JSON.stringify({ seededMs: Math.round(performance.now() - t0), ...ready }));

const stop = async () => {
  await Promise.all(started.map((s) => s.close()));
  Deno.exit(0);
};
Deno.addSignalListener("SIGTERM", stop);
Deno.addSignalListener("SIGINT", stop);
