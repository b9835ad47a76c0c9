/**
 * Memory of multi-account sandboxes (not a test).
 *
 *   deno run -A shared/emulators/bench_accounts.ts [--accounts 1000] [--tenant-records 50]
 *
 * Starts main.ts in a child process with N accounts per sandbox, reads its RSS (Linux
 * /proc/<pid>/status) once idle, then creates every account of every sandbox with one API
 * read each (with its own credentials, from GET /__admin/accounts) and reads the RSS again.
 * Prints one JSON line.
 */
import { parseArgs } from "node:util";

function rssMb(pid: number): { rss: number; peak: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0);
  return { rss: Math.round(kb("VmRSS") / 1024), peak: Math.round(kb("VmHWM") / 1024) };
}

interface Listed {
  accounts: Array<{ account: number; credentials: Record<string, string> }>;
}

async function touch(provider: string, url: string, c: Record<string, string>): Promise<void> {
  const res = provider === "HUBSPOT"
    ? await fetch(`${url}/crm/v3/objects/contacts?limit=1`, {
      headers: { authorization: `Bearer ${c.HUBSPOT_PRIVATE_APP_TOKEN}` },
    })
    : provider === "SALESFORCE"
    ? await fetch(`${url}/services/data/v62.0/query?q=SELECT+Id+FROM+Contact+LIMIT+1`, {
      headers: { authorization: `Bearer ${c.SALESFORCE_ACCESS_TOKEN}` },
    })
    : await fetch(`${url}/api/v2/persons?limit=1`, {
      headers: { "x-api-token": c.PIPEDRIVE_API_TOKEN },
    });
  await res.body?.cancel();
  if (res.status !== 200) throw new Error(`${provider} ${url}: ${res.status}`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: { accounts: { type: "string" }, "tenant-records": { type: "string" } },
  });
  const accounts = Number(values.accounts ?? 1000);
  const tenantRecords = Number(values["tenant-records"] ?? 50);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./main.ts", import.meta.url).pathname,
      ...["--hubspot-port", "0", "--salesforce-port", "0", "--pipedrive-port", "0"],
      ...["--accounts", String(accounts), "--tenant-records", String(tenantRecords)],
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  try {
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    while (!out.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error("main.ts exited before its ready line");
      out += value;
    }
    const env = (JSON.parse(out.split("\n")[0]) as { env: Record<string, string> }).env;
    const idle = rssMb(child.pid);
    const started = performance.now();
    const perProvider: Record<string, { rss: number; ms: number }> = {};
    for (const provider of ["HUBSPOT", "SALESFORCE", "PIPEDRIVE"]) {
      const url = env[`${provider}_API_URL`];
      const t0 = performance.now();
      const listed = await (await fetch(`${url}/__admin/accounts?limit=${accounts}`))
        .json() as Listed;
      // A few at a time, as the bench's connections would arrive.
      for (let i = 0; i < listed.accounts.length; i += 20) {
        await Promise.all(
          listed.accounts.slice(i, i + 20).map((a) => touch(provider, url, a.credentials)),
        );
      }
      perProvider[provider.toLowerCase()] = {
        rss: rssMb(child.pid).rss,
        ms: Math.round(performance.now() - t0),
      };
    }
    console.log(JSON.stringify({
      accounts,
      tenantRecords,
      idleRssMb: idle.rss,
      rssAfterEachProviderMb: perProvider,
      finalRssMb: rssMb(child.pid).rss,
      peakRssMb: rssMb(child.pid).peak,
      createAllMs: Math.round(performance.now() - started),
    }));
  } finally {
    child.kill("SIGTERM");
    await child.status;
  }
}

if (import.meta.main) await main();
