// The local Postgres 15 cluster: Debian's binaries, a private data directory, port and
// password of `supabase start`, pg_cron preloaded, then the Supabase bootstrap SQL.
import { join } from "node:path";
import { dbUrl, ROOT, type StackConfig } from "./config.ts";

export const PG_BIN = "/usr/lib/postgresql/15/bin";
const isRoot = Deno.uid() === 0;

/** Postgres refuses to run as root; as root we run its tools as the `postgres` OS user. */
function asPgUser(cmd: string, args: string[]): [string, string[]] {
  return isRoot ? ["runuser", ["-u", "postgres", "--", cmd, ...args]] : [cmd, args];
}

async function run(cmd: string, args: string[], opts: { env?: Record<string, string> } = {}) {
  const [c, a] = asPgUser(cmd, args);
  const out = await new Deno.Command(c, {
    args: a,
    env: opts.env,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return { ok: out.success, code: out.code, text };
}

function settings(cfg: StackConfig): string {
  return [
    "# written by crm-sync's local stack (shared/local/postgres.ts)",
    `port = ${cfg.pgPort}`,
    "listen_addresses = '127.0.0.1'",
    `unix_socket_directories = '${join(cfg.pgDir, "run")}'`,
    "shared_preload_libraries = 'pg_cron'",
    "cron.database_name = 'postgres'",
    // Background workers instead of libpq connections: jobs need no password or pg_hba entry.
    "cron.use_background_workers = on",
    "max_worker_processes = 32",
    "max_connections = 200",
    "timezone = 'UTC'",
    "log_timezone = 'UTC'",
    "log_min_messages = warning",
    // The test profile trades durability for speed; a crashed test cluster is thrown away.
    ...(cfg.profile === "test"
      ? ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
      : []),
    "",
  ].join("\n");
}

export async function initCluster(cfg: StackConfig): Promise<boolean> {
  try {
    await Deno.stat(join(cfg.pgData, "PG_VERSION"));
    return false;
  } catch { /* not initialised yet */ }
  await Deno.mkdir(join(cfg.pgDir, "run"), { recursive: true });
  const pwfile = join(cfg.pgDir, ".pw");
  await Deno.writeTextFile(pwfile, cfg.dbPassword + "\n", { mode: 0o600 });
  if (isRoot) {
    await ensurePgUserCanReach(cfg.pgDir);
    await chownPg(cfg.pgDir);
  }
  const r = await run(`${PG_BIN}/initdb`, [
    "-D",
    cfg.pgData,
    "-U",
    "postgres",
    `--pwfile=${pwfile}`,
    "--auth-host=scram-sha-256",
    "--auth-local=trust",
    "-E",
    "UTF8",
    "--locale=C.UTF-8",
  ]);
  await Deno.remove(pwfile);
  if (!r.ok) throw new Error(`initdb failed:\n${r.text}`);
  await Deno.writeTextFile(join(cfg.pgData, "conf.d.crm-sync.conf"), settings(cfg));
  await Deno.writeTextFile(
    join(cfg.pgData, "postgresql.conf"),
    "include 'conf.d.crm-sync.conf'\n",
    { append: true },
  );
  // Vault stand-in key: server-only file, never in a table or setting.
  const key = Array.from(
    crypto.getRandomValues(new Uint8Array(32)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
  await Deno.writeTextFile(join(cfg.pgData, "vault.key"), key + "\n", { mode: 0o600 });
  if (isRoot) await chownPg(cfg.pgDir);
  return true;
}

async function chownPg(path: string) {
  const out = await new Deno.Command("chown", { args: ["-R", "postgres:postgres", path] }).output();
  if (!out.success) throw new Error(`chown postgres ${path} failed`);
}

/** The postgres OS user must be able to traverse every parent of the data directory. */
async function ensurePgUserCanReach(dir: string) {
  const out = await new Deno.Command("runuser", {
    args: ["-u", "postgres", "--", "test", "-x", join(dir, "..")],
  }).output();
  if (!out.success) {
    throw new Error(
      `the postgres OS user cannot reach ${dir}; clone the project somewhere every user can traverse (e.g. /tmp or /srv)`,
    );
  }
}

export async function isRunning(cfg: StackConfig): Promise<boolean> {
  const r = await run(`${PG_BIN}/pg_ctl`, ["-D", cfg.pgData, "status"]);
  return r.ok;
}

export async function startCluster(cfg: StackConfig): Promise<void> {
  if (await isRunning(cfg)) return;
  const r = await run(`${PG_BIN}/pg_ctl`, [
    "-D",
    cfg.pgData,
    "-l",
    join(cfg.pgDir, "server.log"),
    "-w",
    "-t",
    "60",
    "start",
  ]);
  if (!r.ok) {
    const log = await Deno.readTextFile(join(cfg.pgDir, "server.log")).catch(() => "");
    throw new Error(`postgres did not start:\n${r.text}\n${log.split("\n").slice(-20).join("\n")}`);
  }
}

/** `fast` rolls back sessions and shuts down cleanly; `immediate` (a forced stop) aborts at
 * once and leaves crash recovery to the next start. */
export async function stopCluster(
  cfg: StackConfig,
  mode: "fast" | "immediate" = "fast",
): Promise<boolean> {
  if (!(await isRunning(cfg))) return false;
  const r = await run(`${PG_BIN}/pg_ctl`, [
    "-D",
    cfg.pgData,
    "-m",
    mode,
    "-w",
    "-t",
    "60",
    "stop",
  ]);
  if (!r.ok) throw new Error(`postgres did not stop:\n${r.text}`);
  return true;
}

/** psql against the cluster over TCP with the password, as a client would connect. */
export async function psql(cfg: StackConfig, args: string[]): Promise<string> {
  const out = await new Deno.Command(`${PG_BIN}/psql`, {
    args: [dbUrl(cfg), "-v", "ON_ERROR_STOP=1", "-X", "-q", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`psql ${args.join(" ")} failed:\n${new TextDecoder().decode(out.stderr)}`);
  }
  return text;
}

/** `root` is the checkout whose bootstrap SQL runs (the bench's A/B passes an older commit's). */
export async function bootstrap(cfg: StackConfig, root = ROOT): Promise<void> {
  await psql(cfg, ["-f", join(root, "shared", "local", "sql", "bootstrap.sql")]);
}

/** Applies supabase/migrations with the real Supabase CLI, exactly as against a hosted project.
 * `workdir` holds the `supabase` folder to push (the bench's A/B passes an older commit's). */
export async function pushMigrations(cfg: StackConfig, workdir = ROOT): Promise<string> {
  const out = await new Deno.Command(join(ROOT, "node_modules", ".bin", "supabase"), {
    args: [
      "db",
      "push",
      "--db-url",
      `${dbUrl(cfg)}?sslmode=disable`,
      "--workdir",
      workdir,
      "--include-all",
      "--yes",
    ],
    env: { SUPABASE_TELEMETRY_DISABLED: "1", DO_NOT_TRACK: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`supabase db push failed:\n${text}`);
  return text;
}
