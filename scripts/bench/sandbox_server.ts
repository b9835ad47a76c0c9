// Child process of `npm run bench`: the HubSpot and Salesforce sandboxes, seeded and with their
// rate limits lifted, on free ports. Prints one JSON line when both listen — URLs, credentials
// and how many contacts each holds — and closes them on SIGTERM.
//
//   deno run -A scripts/bench/sandbox_server.ts <hubspot records> <salesforce records>
//
// Decision: the sandboxes run in their own process, not in the bench process. The naive
// baseline runs in the bench process, as the seeds ran in theirs; serving its pages from the
// same event loop would bill the sandbox's work to the baseline, which a real CRM never does.
// Salesforce seeds `records` Contacts AND `records` Leads, so the bench asks for half.
import { startHubSpot } from "../../shared/emulators/hubspot/mod.ts";
import { startSalesforce } from "../../shared/emulators/salesforce/mod.ts";

const [hubspotRecords, salesforceRecords] = Deno.args.map(Number);
if (!Number.isInteger(hubspotRecords) || !Number.isInteger(salesforceRecords)) {
  console.error("usage: sandbox_server.ts <hubspot records> <salesforce records>");
  Deno.exit(2);
}

const quiet = () => {};
const seeded0 = performance.now();
const hubspot = await startHubSpot({
  port: 0,
  seed: 1,
  records: hubspotRecords,
  log: quiet,
  // Lifted like the e2e harness's `unlimited`: the bench measures the sync machinery, not
  // HubSpot's 100 requests / 10 s and 5 searches / s (their caps are printed separately).
  rateLimit: { tenSecondly: 100_000, searchPerSecond: 10_000, daily: 0 },
});
const salesforce = await startSalesforce({
  port: 0,
  seed: 1,
  records: salesforceRecords,
  log: quiet,
  dailyApiRequests: 0, // 0 = no daily budget
});
const seededMs = performance.now() - seeded0;

const hsContacts = [...hubspot.store.tables.contacts.byId.values()];
const sfCount = (type: "Contact" | "Lead") => {
  const rows = [...salesforce.store.tables[type].byId.values()];
  return { total: rows.length, deleted: rows.filter((r) => r.isDeleted).length };
};
console.log(JSON.stringify({
  seededMs: Math.round(seededMs),
  hubspot: {
    url: hubspot.url,
    credentials: hubspot.credentials,
    // What a search walk delivers: neither archived nor merged away.
    contacts: {
      total: hsContacts.length,
      live: hsContacts.filter((r) => !r.archived && !r.mergedInto).length,
    },
  },
  salesforce: {
    url: salesforce.url,
    credentials: salesforce.credentials,
    // queryAll (the engine) also returns the recycle bin; query (the baseline) does not.
    Contact: sfCount("Contact"),
    Lead: sfCount("Lead"),
  },
}));

const stop = async () => {
  await Promise.all([hubspot.close(), salesforce.close()]);
  Deno.exit(0);
};
Deno.addSignalListener("SIGTERM", stop);
Deno.addSignalListener("SIGINT", stop);
