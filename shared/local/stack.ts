// Brings the local platform up and down: Postgres (+ bootstrap + migrations via the Supabase
// CLI), the pg_net worker, the functions gateway, the CRM sandboxes and one connection per
// sandbox (the dev stack connects them through crm-connect, ./connect_sandboxes.ts; the test
// profile writes the rows, ./connections.ts). Every step is idempotent; `down` stops exactly
// the processes whose pids it recorded, then the cluster.
import { existsSync } from "node:fs";
import postgres from "postgres";
import { join } from "node:path";
import { dbUrl, ROOT, type StackConfig } from "./config.ts";
import { registerSandboxConnections } from "./connections.ts";
import {
  connectSandboxes,
  devUserJwt,
  finishSandboxWebhooks,
  sandboxConnectSecrets,
} from "./connect_sandboxes.ts";
import { formatEnv, readEnvFile } from "./env_file.ts";
import { enableSandboxWebhooks } from "./webhooks.ts";
import { KEY_EPOCH_S, mintKey } from "./jwt.ts";
import {
  bootstrap,
  initCluster,
  psql,
  pushMigrations,
  startCluster,
  stopCluster,
} from "./postgres.ts";
import {
  clearStalePid,
  killDetached,
  runningPid,
  startDetached,
  stopDetached,
  waitFor,
} from "./processes.ts";
import { ensureStackSecrets, setStackSecrets } from "./secrets.ts";

export interface UpOptions {
  emulators?: boolean;
  /** Register one crm.connections row per sandbox (default true; needs the emulators). */
  connections?: boolean;
  /** Register the sandbox connections' webhooks, so the sandboxes deliver to the gateway
   * (default false: `npm start` turns it on; the test stack's tests make their own). */
  webhooks?: boolean;
  /** How the sandbox connections are made: "crm-connect" connects them through the function
   * as the dev account's user (`npm start`; crm-connect then queues the webhook set-up and the
   * first backfill), "rows" writes the rows directly (default: the test suites expect them). */
  connect?: "rows" | "crm-connect";
  /** Keep the sandboxes' state in `<dir>/sandboxes` across restarts (default false: the test
   * stack's sandboxes start from their seed; `npm start` and `stack:up` turn it on). */
  sandboxState?: boolean;
  /** Aborts the start-up between steps (Ctrl-C during `up`): it throws, and the caller stops
   * what was started. */
  signal?: AbortSignal;
  watch?: boolean;
  log?: (msg: string) => void;
}

const SERVICES = ["emulators", "gateway", "pg_net_worker"] as const;
const EMULATORS_MAIN = join(ROOT, "shared", "emulators", "main.ts");
const DENO = Deno.execPath();

export async function platformEnv(cfg: StackConfig): Promise<Record<string, string>> {
  return {
    SUPABASE_URL: `http://127.0.0.1:${cfg.gatewayPort}`,
    SUPABASE_DB_URL: dbUrl(cfg),
    SUPABASE_ANON_KEY: await mintKey(
      cfg.jwtSecret,
      { role: "anon", ref: "local" },
      undefined,
      KEY_EPOCH_S,
    ),
    SUPABASE_SERVICE_ROLE_KEY: await mintKey(
      cfg.jwtSecret,
      { role: "service_role", ref: "local" },
      undefined,
      KEY_EPOCH_S,
    ),
    SUPABASE_JWT_SECRET: cfg.jwtSecret,
  };
}

async function upsertVaultSecret(cfg: StackConfig, name: string, value: string) {
  const sql = postgres(dbUrl(cfg), { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql`select id from vault.secrets where name = ${name}`;
    if (row) await sql`select vault.update_secret(${row.id}, ${value})`;
    else {
      await sql`select vault.create_secret(${value}, ${name}, 'set by the crm-sync local stack')`;
    }
  } finally {
    await sql.end();
  }
}

async function healthy(url: string): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
  await res.body?.cancel();
  return res.ok;
}

async function emulatorLog(cfg: StackConfig): Promise<string> {
  return await Deno.readTextFile(join(cfg.dir, "logs", "emulators.log")).catch(() => "");
}

async function emulatorEnv(cfg: StackConfig): Promise<Record<string, string> | null> {
  const line = (await emulatorLog(cfg)).split("\n").reverse()
    .find((l) => l.startsWith('{"ready":true'));
  return line ? JSON.parse(line).env : null;
}

/** Records per object the running sandboxes were seeded with (from their start-up log line). */
async function emulatorRecords(cfg: StackConfig): Promise<number | null> {
  const m = (await emulatorLog(cfg)).match(/\(seed \d+, (\d+) records per object\)/);
  return m ? Number(m[1]) : null;
}

/** Where the sandboxes keep their state between runs (shared/emulators/common/snapshot.ts). */
export function sandboxStateDir(cfg: StackConfig): string {
  return join(cfg.dir, "sandboxes");
}

/** The mirror and the sandboxes must describe the same records: a new database drops the
 * sandboxes' saved state (both start over), and sandboxes about to be regenerated while the
 * mirror holds records are reported (`--fresh` resets both). */
async function checkSandboxState(cfg: StackConfig, newCluster: boolean, log: (m: string) => void) {
  const dir = sandboxStateDir(cfg);
  const saved = existsSync(join(dir, "hubspot.json")) ||
    existsSync(join(dir, "salesforce.json")) || existsSync(join(dir, "pipedrive.json"));
  if (newCluster) {
    if (saved) {
      await Deno.remove(dir, { recursive: true });
      log("new database: the sandboxes' saved state was dropped too (both start from the seed)");
    }
    return;
  }
  if (saved) {
    log(`sandboxes: loading their saved state from ${dir}`);
    return;
  }
  const n = await psql(cfg, [
    "-tA",
    "-c",
    "select (select count(*) from crm.contacts) + (select count(*) from crm.companies)",
  ]).catch(() => "0");
  if (Number(n.trim()) > 0) {
    log(
      "sandboxes: no saved state (first run with it, or the last stop was a crash): they are " +
        "generated from their seed while the mirror keeps its rows; `npm start -- --fresh` " +
        "resets both",
    );
  }
}

export async function up(cfg: StackConfig, opts: UpOptions = {}): Promise<Record<string, string>> {
  const log = opts.log ?? ((m: string) => console.error(`[stack] ${m}`));
  await Deno.mkdir(cfg.dir, { recursive: true });
  const newCluster = await initCluster(cfg);
  if (newCluster) log(`initialised a Postgres cluster in ${cfg.pgData}`);
  await startCluster(cfg);
  log(`postgres on 127.0.0.1:${cfg.pgPort}`);
  await bootstrap(cfg);
  const pushed = await pushMigrations(cfg);
  log(/up to date/i.test(pushed) ? "migrations up to date" : "migrations applied");

  const env = await platformEnv(cfg);
  const secrets = await ensureStackSecrets(cfg);
  // Supabase's scheduling guide keeps the project URL and key in Vault for pg_cron jobs.
  await upsertVaultSecret(cfg, "project_url", env.SUPABASE_URL);
  await upsertVaultSecret(cfg, "service_role_key", env.SUPABASE_SERVICE_ROLE_KEY);

  const common = {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: Deno.env.get("HOME") ?? "/root",
  };
  const start = async (name: string, cmd: string[], extra: Record<string, string>) => {
    opts.signal?.throwIfAborted();
    if (clearStalePid(cfg.dir, name)) log(`removed the stale pid file of ${name}`);
    if (runningPid(cfg.dir, name)) return false;
    await Deno.remove(join(cfg.dir, "logs", `${name}.log`)).catch(() => {});
    await startDetached(cfg.dir, { name, cmd, env: { ...common, ...extra }, cwd: ROOT });
    return true;
  };
  const alive = (name: string) => () => runningPid(cfg.dir, name) === null;

  await start("pg_net_worker", [DENO, "run", "-A", join(ROOT, "shared/local/pg_net_worker.ts")], {
    SUPABASE_DB_URL: env.SUPABASE_DB_URL,
  });
  let emulators: Record<string, string> = {};
  const withEmulators = (opts.emulators ?? true) && existsSync(EMULATORS_MAIN);
  const viaConnect = withEmulators && (opts.connections ?? true) && opts.connect === "crm-connect";
  let emulatorsStarted = false;
  const stateDir = sandboxStateDir(cfg);
  const keepState = withEmulators && opts.sandboxState === true;
  if (keepState && !runningPid(cfg.dir, "emulators")) {
    await checkSandboxState(cfg, newCluster, log);
  }
  if (withEmulators) {
    emulatorsStarted = await start("emulators", [
      DENO,
      "run",
      "-A",
      EMULATORS_MAIN,
      "--hubspot-port",
      String(cfg.emulatorPorts.hubspot),
      "--salesforce-port",
      String(cfg.emulatorPorts.salesforce),
      "--pipedrive-port",
      String(cfg.emulatorPorts.pipedrive),
      "--records",
      String(cfg.sandboxRecords),
      ...(keepState ? ["--state-dir", stateDir] : []),
    ], {});
  }
  if (viaConnect) {
    // crm-connect's settings for the sandboxes are function secrets: written before the gateway
    // starts, so no function process runs without them.
    await waitFor(
      "emulators",
      async () => (await emulatorEnv(cfg)) !== null,
      60_000,
      alive("emulators"),
      opts.signal,
    );
    if (
      await setStackSecrets(cfg, sandboxConnectSecrets((await emulatorEnv(cfg))!, env.SUPABASE_URL))
    ) log(`wrote crm-connect's sandbox settings to ${cfg.stackSecretsFile}`);
  }
  const gw = gatewayCommand(cfg, env, opts.watch ?? false);
  await start("gateway", gw.cmd, { ...common, ...gw.env });

  await waitFor(
    "gateway",
    () => healthy(`${env.SUPABASE_URL}/__health`),
    30_000,
    alive("gateway"),
    opts.signal,
  );
  await waitFor(
    "pg_net worker",
    async () => {
      const n = await psql(cfg, [
        "-tA",
        "-c",
        "select count(*) from pg_stat_activity where application_name = 'pg_net worker'",
      ]);
      return Number(n.trim()) > 0;
    },
    30_000,
    alive("pg_net_worker"),
    opts.signal,
  );
  if (withEmulators) {
    await waitFor(
      "emulators",
      async () => (await emulatorEnv(cfg)) !== null,
      60_000,
      alive("emulators"),
      opts.signal,
    );
    emulators = (await emulatorEnv(cfg))!;
    const seeded = await emulatorRecords(cfg);
    if (!emulatorsStarted && seeded !== null && seeded !== cfg.sandboxRecords) {
      // Re-seeding running sandboxes would orphan what was already synced from them.
      log(
        `sandboxes already running with ${seeded} records per object (not ${cfg.sandboxRecords}); ` +
          "run stack:down first to change the size",
      );
    }
  }
  log(
    `gateway on ${env.SUPABASE_URL}, pg_net worker running${
      withEmulators ? ", sandboxes running" : ""
    }`,
  );

  opts.signal?.throwIfAborted();
  if (viaConnect) {
    const sql = postgres(env.SUPABASE_DB_URL, { max: 1, onnotice: () => {} });
    try {
      const jwt = await devUserJwt(cfg.jwtSecret);
      const connected = await connectSandboxes({
        gatewayUrl: env.SUPABASE_URL,
        jwt,
        env: emulators,
      });
      for (const c of connected) {
        log(`${c.provider}: ${c.action} through crm-connect${c.reason ? ` (${c.reason})` : ""}`);
      }
      if (opts.webhooks) {
        const lines = await finishSandboxWebhooks(sql, {
          gatewayUrl: env.SUPABASE_URL,
          jwt,
          env: emulators,
          connected,
        }).catch((e) => [`webhooks not set up: ${(e as Error).message}`]);
        for (const l of lines) log(l);
      }
    } finally {
      await sql.end();
    }
  } else if (withEmulators && (opts.connections ?? true)) {
    const sql = postgres(env.SUPABASE_DB_URL, { max: 1, onnotice: () => {} });
    try {
      const done = await registerSandboxConnections(sql, emulators, secrets.CRM_ENCRYPTION_KEY);
      const by = (a: string) => done.filter((r) => r.action === a).map((r) => r.provider);
      log(
        `sandbox connections: ${
          ["created", "updated", "skipped"].filter((a) => by(a).length)
            .map((a) => `${a} ${by(a).join(", ")}`).join("; ")
        }${by("skipped").length ? " (skipped: pointed at a real account)" : ""}`,
      );
      if (opts.webhooks) {
        const lines = await enableSandboxWebhooks(sql, {
          connections: done,
          env: { ...env, ...emulators },
          functionEnv: await readEnvFile(cfg.functionsEnvFile),
          base64Key: secrets.CRM_ENCRYPTION_KEY,
        }).catch((e) => [`webhooks not set up: ${(e as Error).message}`]);
        for (const l of lines) log(l);
      }
    } finally {
      await sql.end();
    }
  }

  const all = { ...env, ...emulators, ...secrets };
  await Deno.writeTextFile(cfg.envFile, formatEnv(all), { mode: 0o600 });
  log(`wrote ${cfg.envFile}`);
  return all;
}

function gatewayCommand(cfg: StackConfig, env: Record<string, string>, watch: boolean) {
  return {
    cmd: [DENO, "run", "-A", join(ROOT, "shared/local/gateway.ts")],
    env: {
      ...env,
      GATEWAY_PORT: String(cfg.gatewayPort),
      FUNCTIONS_ENV_FILE: cfg.functionsEnvFile,
      FUNCTIONS_STACK_ENV_FILE: cfg.stackSecretsFile,
      GATEWAY_WATCH: watch ? "1" : "0",
      GATEWAY_CPU_LIMIT_MS: String(cfg.functionCpuLimitMs),
      GATEWAY_REQUESTS_PER_PROCESS: String(cfg.functionRequestsPerProcess),
    },
  };
}

/**
 * Restarts a running stack's gateway, as a crash or a deploy would: `hard` SIGKILLs its process
 * group (the gateway and every function process, requests in flight included), otherwise
 * SIGTERM with a short grace. Returns once the new gateway answers its health check. For the
 * chaos harness; the gateway runs without file watching afterwards.
 */
export async function restartGateway(
  cfg: StackConfig,
  opts: { hard: boolean; graceMs?: number },
): Promise<void> {
  if (runningPid(cfg.dir, "gateway") === null) {
    throw new Error("the stack's gateway is not running");
  }
  if (opts.hard) await killDetached(cfg.dir, "gateway");
  else await stopDetached(cfg.dir, "gateway", opts.graceMs ?? 2000);
  const env = await platformEnv(cfg);
  const gw = gatewayCommand(cfg, env, false);
  await startDetached(cfg.dir, {
    name: "gateway",
    cmd: gw.cmd,
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      HOME: Deno.env.get("HOME") ?? "/root",
      ...gw.env,
    },
    cwd: ROOT,
  });
  await waitFor(
    "gateway",
    () => healthy(`${env.SUPABASE_URL}/__health`),
    30_000,
    () => runningPid(cfg.dir, "gateway") === null,
  );
}

export async function down(cfg: StackConfig, log = (m: string) => console.error(`[stack] ${m}`)) {
  // In parallel: none of them needs another to stop (each is waited for, SIGKILL after 8 s).
  await Promise.all(SERVICES.map(async (name) => {
    if (await stopDetached(cfg.dir, name)) log(`stopped ${name}`);
  }));
  if (existsSync(join(cfg.pgData, "PG_VERSION")) && await stopCluster(cfg)) log("stopped postgres");
}

/** A forced stop (a second Ctrl-C): SIGKILL every service's process group, Postgres stopped
 * in `immediate` mode; the pid files go too. */
export async function kill(cfg: StackConfig, log = (m: string) => console.error(`[stack] ${m}`)) {
  await Promise.all(SERVICES.map(async (name) => {
    if (await killDetached(cfg.dir, name)) log(`killed ${name}`);
  }));
  if (existsSync(join(cfg.pgData, "PG_VERSION")) && await stopCluster(cfg, "immediate")) {
    log("stopped postgres (immediate)");
  }
}

export async function readStackEnv(cfg: StackConfig): Promise<Record<string, string>> {
  return await readEnvFile(cfg.envFile);
}

export function servicePids(cfg: StackConfig): Record<string, number | null> {
  return Object.fromEntries(SERVICES.map((s) => [s, runningPid(cfg.dir, s)]));
}
