// npm test: a fresh throw-away stack on the test profile's own ports and folder, every suite
// against it, then teardown. Prints one summary line `N passed, N failed[, N skipped]` and
// exits non-zero on any failure.
import { existsSync } from "node:fs";
import { join } from "node:path";
import postgres from "postgres";
import { ROOT, stackConfig } from "../shared/local/config.ts";
import { isAlive } from "../shared/local/processes.ts";
import { down, servicePids, up } from "../shared/local/stack.ts";

interface SuiteResult {
  suite: string;
  passed: number;
  failed: number;
  skipped: number;
}

const cfg = stackConfig("test");
const DENO = Deno.execPath();
const results: SuiteResult[] = [];
const only = Deno.args.length ? new Set(Deno.args) : null;
const wanted = (suite: string) => !only || only.has(suite);

function banner(text: string) {
  console.log(`\n=== ${text} ${"=".repeat(Math.max(0, 70 - text.length))}`);
}

// Plain output in logs: no ANSI colours, no Rust backtraces from Deno's own errors.
const QUIET_ENV = { NO_COLOR: "1", RUST_BACKTRACE: "0" };

async function run(cmd: string, args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(cmd, {
    args,
    env: { ...QUIET_ENV, ...env },
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return { ok: out.success, text };
}

/** A check that either passes or fails as a whole (fmt, lint, typecheck, db lint). */
async function check(suite: string, cmd: string, args: string[], env: Record<string, string> = {}) {
  if (!wanted(suite)) return;
  banner(suite);
  const r = await run(cmd, args, env);
  console.log(r.text.trim().split("\n").slice(-40).join("\n"));
  results.push({ suite, passed: r.ok ? 1 : 0, failed: r.ok ? 0 : 1, skipped: 0 });
}

async function pgTap(env: Record<string, string>) {
  if (!wanted("pgtap")) return;
  banner("pgTAP (pg_prove)");
  const files = [...Deno.readDirSync(join(ROOT, "supabase", "tests", "database"))]
    .filter((f) => f.isFile && f.name.endsWith(".sql"))
    .map((f) => join("supabase", "tests", "database", f.name))
    .sort();
  const sql = postgres(env.SUPABASE_DB_URL, { max: 1, onnotice: () => {} });
  await sql`create extension if not exists pgtap with schema extensions`;
  await sql.end();
  const r = await run("pg_prove", [
    "-h",
    "127.0.0.1",
    "-p",
    String(cfg.pgPort),
    "-U",
    "postgres",
    "-d",
    "postgres",
    "--verbose",
    "--failures",
    ...files,
  ], { PGPASSWORD: cfg.dbPassword });
  console.log(r.text.trim());
  const passed = (r.text.match(/^\s*ok \d+/gm) ?? []).length;
  let failed = (r.text.match(/^\s*not ok \d+/gm) ?? []).length;
  // A file that dies or breaks its plan fails without a `not ok` line; count it once.
  if (!r.ok && failed === 0) failed = 1;
  results.push({ suite: "pgtap", passed, failed, skipped: 0 });
}

async function denoTests(env: Record<string, string>) {
  if (!wanted("deno")) return;
  banner("deno test");
  const junit = join(cfg.dir, "junit.xml");
  const dirs = ["tests", "shared"].filter((d) => existsSync(join(ROOT, d)));
  const child = new Deno.Command(DENO, {
    args: ["test", "-A", "--no-prompt", `--junit-path=${junit}`, ...dirs],
    env: { ...env, ...QUIET_ENV, CRM_TEST: "1" },
    cwd: ROOT,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  const status = await child.status;
  const xml = await Deno.readTextFile(junit).catch(() => "");
  const top = xml.match(/<testsuites[^>]*>/)?.[0] ?? "";
  const attr = (name: string) => Number(top.match(new RegExp(`${name}="(\\d+)"`))?.[1] ?? 0);
  const cases = [...xml.matchAll(/<testcase [\s\S]*?(?:\/>|<\/testcase>)/g)].map((m) => m[0]);
  const skipped = cases.filter((c) => c.includes("<skipped")).length;
  const failed = attr("failures") + attr("errors");
  const passed = attr("tests") - failed - skipped;
  results.push({
    suite: "deno",
    passed: Math.max(0, passed),
    // Deno can fail outside a test case (type errors, leaks at module level).
    failed: failed || (status.success ? 0 : 1),
    skipped,
  });
}

/** Stack lifecycle: a second `up` changes nothing; `down` leaves no process behind. */
function record(suite: string, ok: boolean, what: string) {
  console.log(`${ok ? "ok" : "not ok"} - ${what}`);
  const r = results.find((x) => x.suite === suite) ??
    results[results.push({ suite, passed: 0, failed: 0, skipped: 0 }) - 1];
  if (ok) r.passed++;
  else r.failed++;
}

async function secondUpIsHarmless(env: Record<string, string>) {
  if (!wanted("stack")) return;
  banner("stack lifecycle");
  const before = servicePids(cfg);
  const again = await up(cfg, { watch: false, log: () => {} });
  const after = servicePids(cfg);
  record(
    "stack",
    JSON.stringify(before) === JSON.stringify(after),
    "a second stack:up keeps every process",
  );
  record(
    "stack",
    JSON.stringify(env) === JSON.stringify(again),
    "a second stack:up writes the same stack.env",
  );
}

function leftovers(pids: number[]): string[] {
  const found: string[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name) || Number(e.name) === Deno.pid || !isAlive(Number(e.name))) continue;
    try {
      const cmdline = Deno.readTextFileSync(`/proc/${e.name}/cmdline`).replaceAll("\0", " ");
      if (
        pids.includes(Number(e.name)) || cmdline.includes(cfg.dir) ||
        cmdline.includes(`${cfg.gatewayPort}`)
      ) {
        found.push(`${e.name}: ${cmdline.slice(0, 120)}`);
      }
    } catch { /* exited meanwhile */ }
  }
  return found;
}

const started = performance.now();
let exitCode = 0;
try {
  await check("fmt", DENO, ["fmt", "--check"]);
  await check("lint", DENO, ["lint"]);
  const entryPoints = [
    ...[...Deno.readDirSync(join(ROOT, "supabase", "functions"))]
      .filter((d) =>
        d.isDirectory && existsSync(join(ROOT, "supabase", "functions", d.name, "index.ts"))
      )
      .map((d) => join("supabase", "functions", d.name, "index.ts")),
    ...[...Deno.readDirSync(join(ROOT, "scripts"))].filter((f) => f.name.endsWith(".ts"))
      .map((f) => join("scripts", f.name)),
  ];
  await check("typecheck", DENO, ["check", ...entryPoints]);

  banner("test stack");
  await down(cfg, () => {});
  await Deno.remove(cfg.dir, { recursive: true }).catch(() => {});
  await Deno.mkdir(cfg.dir, { recursive: true });
  await Deno.writeTextFile(cfg.functionsEnvFile, "");
  const env = await up(cfg, { watch: false });

  await pgTap(env);
  await denoTests(env);
  await secondUpIsHarmless(env);
  const sql = postgres(env.SUPABASE_DB_URL, { max: 1, onnotice: () => {} });
  const schemas = (await sql`select nspname from pg_namespace where nspname in ('public','crm')`)
    .map((r) => r.nspname).join(",");
  await sql.end();
  await check("db-lint", join(ROOT, "node_modules", ".bin", "supabase"), [
    "db",
    "lint",
    "--db-url",
    `${env.SUPABASE_DB_URL}?sslmode=disable`,
    "--workdir",
    ROOT,
    "--level",
    "error",
    "--fail-on",
    "error",
    "--schema",
    schemas,
  ], { SUPABASE_TELEMETRY_DISABLED: "1", DO_NOT_TRACK: "1" });
} catch (e) {
  console.error(`\ntest run aborted: ${(e as Error).stack ?? e}`);
  results.push({ suite: "harness", passed: 0, failed: 1, skipped: 0 });
} finally {
  if (!Deno.env.get("KEEP_TEST_STACK")) {
    const pids = Object.values(servicePids(cfg)).filter((p): p is number => p !== null);
    await down(cfg, () => {});
    if (wanted("stack")) {
      const left = leftovers(pids);
      record("stack", left.length === 0, `stack:down leaves no process behind ${left.join("; ")}`);
    }
  }
}

banner("summary");
for (const r of results) {
  console.log(
    `  ${r.suite.padEnd(10)} ${r.passed} passed, ${r.failed} failed${
      r.skipped ? `, ${r.skipped} skipped` : ""
    }`,
  );
}
const total = results.reduce(
  (a, r) => ({
    passed: a.passed + r.passed,
    failed: a.failed + r.failed,
    skipped: a.skipped + r.skipped,
  }),
  { passed: 0, failed: 0, skipped: 0 },
);
if (total.failed > 0 || total.passed === 0) exitCode = 1;
console.log(`  (${((performance.now() - started) / 1000).toFixed(1)} s)`);
console.log(
  `${total.passed} passed, ${total.failed} failed${
    total.skipped ? `, ${total.skipped} skipped` : ""
  }`,
);
Deno.exit(exitCode);
