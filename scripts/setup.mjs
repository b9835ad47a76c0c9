#!/usr/bin/env node
// Idempotent machine setup, run by `npm start`, `npm test`, `npm run stack:*`, `npm run bench`.
// Installs only what is missing: Debian packages (apt-get, needs root or sudo), npm packages
// (npm ci), and the local stand-ins for Supabase's pg_net and Vault extensions into Postgres'
// extension directory. Node built-ins only: nothing else exists yet on a fresh machine.
import { execFileSync, spawnSync } from "node:child_process";
import process from "node:process";
import { copyFileSync, existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const quiet = process.argv.includes("--quiet");
const log = (msg) => quiet || console.error(`[setup] ${msg}`);
const isRoot = process.getuid?.() === 0;

const DEBIAN_PACKAGES = [
  "postgresql-15",
  "postgresql-15-cron",
  "postgresql-15-pgtap",
  "libtap-parser-sourcehandler-pgtap-perl",
  "postgresql-15-plpgsql-check",
];

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, {
    stdio: quiet ? "ignore" : ["ignore", "inherit", "inherit"],
    ...opts,
  });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} exited with ${r.status}`);
}

function missingDebianPackages() {
  return DEBIAN_PACKAGES.filter((pkg) => {
    const r = spawnSync("dpkg-query", ["-W", "-f=${Status}", pkg], { encoding: "utf8" });
    return r.status !== 0 || !r.stdout.includes("install ok installed");
  });
}

function installDebianPackages() {
  const missing = missingDebianPackages();
  if (missing.length === 0) return;
  log(`installing Debian packages: ${missing.join(" ")}`);
  const sudo = isRoot ? [] : ["sudo"];
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const run = (args) => sh(sudo[0] ?? args[0], sudo.length ? args : args.slice(1), { env });
  run(["apt-get", "update", "-qq"]);
  run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", ...missing]);
  // Debian's postgresql-common creates and starts a default cluster on 5432; we never use it.
  spawnSync(sudo[0] ?? "pg_dropcluster", [
    ...(sudo.length ? ["pg_dropcluster"] : []),
    "--stop",
    "15",
    "main",
  ], {
    stdio: "ignore",
  });
}

function installNpmPackages() {
  const lock = join(root, "package-lock.json");
  const stamp = join(root, "node_modules", ".package-lock.json");
  const fresh = existsSync(stamp) && existsSync(join(root, "node_modules", ".bin", "deno")) &&
    statSync(stamp).mtimeMs >= statSync(lock).mtimeMs;
  if (fresh) return;
  log("installing npm packages (npm ci)");
  // npm ci installs exactly package-lock.json or refuses. No fallback to npm install: that
  // re-resolves and rewrites the lock, so a fresh checkout would no longer be the tested one.
  // The lock lists every platform's optional binaries (@deno/*, @supabase/cli-*); the registry
  // these machines reach lacks @deno/* 2.1.14 for other platforms, so those entries pin the
  // version without an integrity hash.
  const r = spawnSync("npm", ["ci", "--no-audit", "--no-fund"], {
    cwd: root,
    stdio: quiet ? ["ignore", "ignore", "inherit"] : ["ignore", "inherit", "inherit"],
  });
  if (r.status !== 0) {
    throw new Error(
      `npm ci refused package-lock.json or failed (exit ${r.status ?? r.signal}); see npm's ` +
        "message above. Setup does not re-resolve dependencies: commit a package-lock.json " +
        "that npm ci accepts (README.md, first section).",
    );
  }
}

/** Copies the pg_net and supabase_vault stand-ins into Postgres' extension directory. */
function installExtensions() {
  const sharedir = execFileSync("/usr/lib/postgresql/15/bin/pg_config", ["--sharedir"], {
    encoding: "utf8",
  }).trim();
  const target = join(sharedir, "extension");
  const source = join(root, "shared", "local", "extensions");
  for (const file of readdirSync(source)) {
    const dest = join(target, file);
    const want = readFileSync(join(source, file));
    if (existsSync(dest) && readFileSync(dest).equals(want)) continue;
    log(`installing ${dest}`);
    if (isRoot) copyFileSync(join(source, file), dest);
    else sh("sudo", ["cp", join(source, file), dest]);
  }
}

function ensurePostgresUser() {
  if (!isRoot) return;
  if (spawnSync("id", ["-u", "postgres"], { stdio: "ignore" }).status === 0) return;
  log("creating the postgres OS user");
  sh("useradd", [
    "--system",
    "--user-group",
    "--home-dir",
    "/var/lib/postgresql",
    "--shell",
    "/bin/bash",
    "postgres",
  ]);
}

try {
  installDebianPackages();
  ensurePostgresUser();
  installNpmPackages();
  installExtensions();
} catch (e) {
  console.error(`[setup] failed: ${e.message}`);
  process.exit(1);
}
