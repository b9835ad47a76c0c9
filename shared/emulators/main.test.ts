/** main.ts: one ready line with URLs and credentials, clean exit on SIGTERM. */
import { assert, assertEquals } from "./common/assert.ts";

Deno.test("main.ts prints one ready line, serves all three with --accounts, exits 0 on SIGTERM", async () => {
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
      "--seed",
      "5",
      "--records",
      "10",
      "--accounts",
      "3",
      "--tenant-records",
      "2",
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!out.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    out += value;
  }
  const ready = JSON.parse(out.split("\n")[0]) as {
    ready: boolean;
    accounts: number;
    env: Record<string, string>;
  };
  assert(ready.ready);
  assertEquals(ready.accounts, 3);
  const env = ready.env;
  for (
    const k of [
      "HUBSPOT_API_URL",
      "SALESFORCE_API_URL",
      "PIPEDRIVE_API_URL",
      "HUBSPOT_ACCESS_TOKEN",
      "HUBSPOT_CLIENT_SECRET",
      "HUBSPOT_REFRESH_TOKEN",
      "HUBSPOT_CLIENT_ID",
      "HUBSPOT_PORTAL_ID",
      "SALESFORCE_ACCESS_TOKEN",
      "SALESFORCE_REFRESH_TOKEN",
      "SALESFORCE_CLIENT_ID",
      "SALESFORCE_CLIENT_SECRET",
      "SALESFORCE_ORG_ID",
      "SALESFORCE_INSTANCE_URL",
      "PIPEDRIVE_API_TOKEN",
      "PIPEDRIVE_CLIENT_ID",
      "PIPEDRIVE_CLIENT_SECRET",
      "PIPEDRIVE_COMPANY_ID",
    ]
  ) {
    assert(env[k], `missing ${k}`);
  }
  const hs = await fetch(`${env.HUBSPOT_API_URL}/crm/v3/objects/contacts?limit=1`, {
    headers: { authorization: `Bearer ${env.HUBSPOT_ACCESS_TOKEN}` },
  });
  assertEquals(hs.status, 200);
  await hs.body?.cancel();
  const sf = await fetch(
    `${env.SALESFORCE_API_URL}/services/data/v62.0/query?q=SELECT+Id+FROM+Contact+LIMIT+1`,
    { headers: { authorization: `Bearer ${env.SALESFORCE_ACCESS_TOKEN}` } },
  );
  assertEquals(sf.status, 200);
  await sf.body?.cancel();
  const pd = await fetch(`${env.PIPEDRIVE_API_URL}/api/v2/persons?limit=1`, {
    headers: { "x-api-token": env.PIPEDRIVE_API_TOKEN },
  });
  assertEquals(pd.status, 200);
  await pd.body?.cancel();
  // Account 2 of each sandbox: listed by the admin API, served through the same port.
  for (const [base, key] of [["HUBSPOT", "HUBSPOT_PRIVATE_APP_TOKEN"], ["PIPEDRIVE", ""]]) {
    const url = env[`${base}_API_URL`];
    const listed = await (await fetch(`${url}/__admin/accounts?from=2&limit=1`)).json() as {
      count: number;
      accounts: Array<{ credentials: Record<string, string> }>;
    };
    assertEquals(listed.count, 3);
    const c = listed.accounts[0].credentials;
    const res = key
      ? await fetch(`${url}/crm/v3/objects/contacts?limit=10`, {
        headers: { authorization: `Bearer ${c[key]}` },
      })
      : await fetch(`${url}/api/v2/persons?limit=10&api_token=${c.PIPEDRIVE_API_TOKEN}`);
    assertEquals(res.status, 200);
    const body = await res.json() as { results?: unknown[]; data?: unknown[] };
    assertEquals((body.results ?? body.data)?.length, 2, "account 2 has --tenant-records 2");
  }

  child.kill("SIGTERM");
  let rest = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    rest += value;
  }
  const status = await child.status;
  const stderr = await new Response(child.stderr).text();
  assertEquals(status.code, 0, stderr);
  assertEquals((out + rest).trim().split("\n").length, 1, "exactly one line on stdout");
  assert(stderr.includes("shutting down"));
});
