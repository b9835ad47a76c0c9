// The bench's CRM sandboxes: starts ./sandbox_server.ts as a child process, waits for its one
// JSON line, and offers the admin calls the bench needs (counters) and the child's CPU time.
import { fileURLToPath } from "node:url";
import type { ProviderName } from "../../supabase/functions/_shared/providers/types.ts";

const SERVER = fileURLToPath(new URL("./sandbox_server.ts", import.meta.url).href);

export interface SandboxInfo {
  provider: ProviderName;
  url: string;
  credentials: Record<string, string>;
}

export interface BenchSandboxes {
  pid: number;
  seededMs: number;
  hubspot: SandboxInfo & { contacts: { total: number; live: number } };
  salesforce: SandboxInfo & {
    Contact: { total: number; deleted: number };
    Lead: { total: number; deleted: number };
  };
  close(): Promise<void>;
}

export async function startSandboxes(
  hubspotRecords: number,
  salesforceRecords: number,
): Promise<BenchSandboxes> {
  const child = await startReadyChild(
    SERVER,
    [String(hubspotRecords), String(salesforceRecords)],
    "the sandboxes",
  );
  const ready = child.ready as Record<string, Record<string, unknown>> & { seededMs: number };
  return {
    pid: child.pid,
    seededMs: ready.seededMs,
    hubspot: { provider: "hubspot", ...ready.hubspot } as BenchSandboxes["hubspot"],
    salesforce: { provider: "salesforce", ...ready.salesforce } as BenchSandboxes["salesforce"],
    close: child.close,
  };
}

/** A sandbox server in a child process: its one JSON ready line, its pid, and a close that
 * stops it and waits for it. */
export async function startReadyChild(
  script: string,
  args: string[],
  what: string,
): Promise<{ pid: number; ready: unknown; close(): Promise<void> }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...args],
    env: { NO_COLOR: "1", RUST_BACKTRACE: "0" },
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  while (!buf.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`${what} exited before they were ready`);
    buf += value;
  }
  return {
    pid: child.pid,
    ready: JSON.parse(buf.slice(0, buf.indexOf("\n"))),
    async close() {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await reader.cancel().catch(() => {});
      await child.status;
    },
  };
}

export async function admin(
  url: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<unknown> {
  const res = await fetch(`${url}/__admin${path}`, {
    method,
    ...(body === undefined
      ? {}
      : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} /__admin${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

export interface Counters {
  total: number;
  byStatus: Record<string, number>;
  routes: Record<string, { total: number; byStatus: Record<string, number> }>;
}

export async function counters(url: string): Promise<Counters> {
  return await admin(url, "GET", "/counters") as Counters;
}

export async function resetCounters(url: string): Promise<void> {
  await admin(url, "DELETE", "/counters");
}
