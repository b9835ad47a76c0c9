/**
 * Start the three CRM sandboxes.
 *
 *   deno run -A shared/emulators/main.ts [--hubspot-port N] [--salesforce-port N]
 *     [--pipedrive-port N] [--seed N] [--records N] [--hostname H] [--time-scale X]
 *     [--accounts N] [--tenant-records N]
 *
 * Ports default to 54330 (HubSpot), 54331 (Salesforce), 54332 (Pipedrive);
 * 0 picks a free port. Once all three listen, exactly one line of JSON goes to
 * stdout: {"ready":true,"accounts":N,"env":{"HUBSPOT_API_URL":…,"SALESFORCE_API_URL":…,
 * "PIPEDRIVE_API_URL":…, …credentials of account 0}}. `--accounts N` (default 1) makes each
 * sandbox host N accounts (portals / orgs / companies), created on first use, with
 * `--tenant-records` records per object each (default 10) except account 0 (`--records`);
 * GET /__admin/accounts lists their credentials. Logs go to stderr. SIGTERM/SIGINT
 * close the servers and exit 0; a start-up failure exits 1.
 *
 * `--state-dir DIR` keeps the sandboxes' state across restarts (common/snapshot.ts): at start
 * each sandbox whose snapshot `DIR/<provider>.json` exists loads it instead of its generated
 * records; at SIGTERM/SIGINT every sandbox is saved there before the servers close, and in
 * between a sandbox that changed is saved every `--save-interval` seconds (default 30; 0 =
 * only at exit), so a crash loses at most that much. An unreadable snapshot stops the start
 * (exit 1) rather than regenerating a sandbox over data a mirror may still hold.
 */
import { parseArgs } from "node:util";
import { startHubSpot } from "./hubspot/mod.ts";
import { startPipedrive } from "./pipedrive/mod.ts";
import { startSalesforce } from "./salesforce/mod.ts";
import { readSnapshot, saveSnapshot } from "./common/snapshot.ts";
import type { Emulator } from "./common/emulator.ts";

const log = (line: string) => console.error(`[emulators] ${line}`);

function intArg(v: string | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    log(`--${name} must be a non-negative integer (got ${v})`);
    Deno.exit(2);
  }
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      "hubspot-port": { type: "string" },
      "salesforce-port": { type: "string" },
      "pipedrive-port": { type: "string" },
      "seed": { type: "string" },
      "records": { type: "string" },
      "hostname": { type: "string" },
      "time-scale": { type: "string" },
      "accounts": { type: "string" },
      "tenant-records": { type: "string" },
      "state-dir": { type: "string" },
      "save-interval": { type: "string" },
    },
    strict: true,
  });
  const seed = intArg(values.seed, "seed", 1);
  const records = intArg(values.records, "records", 25);
  const hostname = values.hostname ?? "127.0.0.1";
  const timeScale = values["time-scale"] === undefined ? 1 : Number(values["time-scale"]);
  if (!(timeScale > 0)) {
    log(`--time-scale must be a positive number`);
    Deno.exit(2);
  }
  const accounts = intArg(values.accounts, "accounts", 1);
  if (accounts < 1) {
    log(`--accounts must be at least 1`);
    Deno.exit(2);
  }
  const tenantRecords = intArg(values["tenant-records"], "tenant-records", 10);
  const stateDir = values["state-dir"];
  const saveEverySeconds = intArg(values["save-interval"], "save-interval", 30);
  const common = { seed, records, hostname, timeScale, log, accounts, tenantRecords };

  const started: Array<{ close(): Promise<void> }> = [];
  const emulators: Emulator[] = [];
  try {
    const hubspot = await startHubSpot({
      ...common,
      port: intArg(values["hubspot-port"], "hubspot-port", 54330),
    });
    started.push(hubspot);
    const salesforce = await startSalesforce({
      ...common,
      port: intArg(values["salesforce-port"], "salesforce-port", 54331),
    });
    started.push(salesforce);
    const pipedrive = await startPipedrive({
      ...common,
      port: intArg(values["pipedrive-port"], "pipedrive-port", 54332),
    });
    started.push(pipedrive);
    const restored: string[] = [];
    if (stateDir) {
      for (const s of [hubspot, salesforce, pipedrive]) {
        const snap = await readSnapshot(stateDir, s.emulator.name).catch((e) => {
          throw new Error(
            `${(e as Error).message}; delete it, or start the stack with --fresh`,
          );
        });
        if (!snap) continue;
        s.emulator.restoreSnapshot(snap.state);
        s.emulator.seed = snap.seed;
        s.emulator.records = snap.records;
        restored.push(`${s.emulator.name} (saved ${snap.savedAt})`);
      }
      emulators.push(hubspot.emulator, salesforce.emulator, pipedrive.emulator);
    }
    if (restored.length) log(`restored from ${stateDir}: ${restored.join(", ")}`);
    // The seed and size the sandboxes were generated with (a restored one: when first made).
    const made = restored.length ? hubspot.emulator.records : records;
    log(
      `HubSpot ${hubspot.url}, Salesforce ${salesforce.url}, Pipedrive ${pipedrive.url} (seed ${seed}, ${made} records per object, ${accounts} account(s) each)`,
    );
    const env = {
      HUBSPOT_API_URL: hubspot.url,
      SALESFORCE_API_URL: salesforce.url,
      PIPEDRIVE_API_URL: pipedrive.url,
      ...hubspot.credentials,
      ...salesforce.credentials,
      ...pipedrive.credentials,
    };
    console.log(JSON.stringify({ ready: true, accounts, env }));
  } catch (e) {
    log(`start-up failed: ${(e as Error).message}`);
    for (const s of started) await s.close().catch(() => {});
    Deno.exit(1);
  }

  // Saves the sandboxes whose state changed since their last save (all of them with `force`).
  const savedAt = new Map<Emulator, number>();
  let saving: Promise<void> = Promise.resolve();
  const save = (force: boolean) =>
    saving = saving.then(async () => {
      if (!stateDir) return;
      for (const e of emulators) {
        const v = e.stateVersion();
        if (!force && savedAt.get(e) === v) continue;
        try {
          await saveSnapshot(stateDir, e);
          savedAt.set(e, v);
        } catch (err) {
          log(`could not save the ${e.name} sandbox: ${(err as Error).message}`);
        }
      }
    });
  for (const e of emulators) savedAt.set(e, e.stateVersion());
  const timer = stateDir && saveEverySeconds > 0
    ? setInterval(() => void save(false), saveEverySeconds * 1000)
    : undefined;

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: shutting down`);
    clearInterval(timer);
    await save(true);
    if (stateDir) log(`saved the sandboxes to ${stateDir}`);
    await Promise.all(started.map((s) => s.close().catch((e) => log(`close failed: ${e}`))));
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", () => void stop("SIGTERM"));
  Deno.addSignalListener("SIGINT", () => void stop("SIGINT"));
}

if (import.meta.main) await main();
