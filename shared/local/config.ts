// Where a local stack lives and listens. Three profiles: `dev` (the ports `supabase start`
// uses, so docs and tools work unchanged), `test` (its own ports and folder, so `npm test`
// never clobbers a developer's running stack) and `bench` (the same for `npm run bench`, so a
// benchmark can run beside both).
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url).href).replace(/\/$/, "");

export type Profile = "dev" | "test" | "bench";

export interface StackConfig {
  profile: Profile;
  dir: string;
  pgDir: string;
  pgData: string;
  pgPort: number;
  gatewayPort: number;
  emulatorPorts: { hubspot: number; salesforce: number; pipedrive: number };
  dbPassword: string;
  jwtSecret: string;
  envFile: string;
  functionsEnvFile: string;
  /** Function secrets the stack owns (CRM_ENCRYPTION_KEY), merged under functionsEnvFile. */
  stackSecretsFile: string;
  /** Records per object each CRM sandbox is seeded with (the emulators' --records). */
  sandboxRecords: number;
  /** CPU a function request may use before the gateway terminates it (546), ms; 0: no limit. */
  functionCpuLimitMs: number;
  /** Requests one function process serves at once (the gateway's requestsPerProcess). */
  functionRequestsPerProcess: number;
}

// The Supabase CLI's well-known local JWT secret; keys minted from it are local-only.
export const LOCAL_JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long";

// Sandbox size per object. Dev: thousands of records per sandbox so `npm start` shows a real
// backfill, yet the emulators still seed in under a second (2000 ≈ 0.8 s for all three). Test:
// the emulators' own default, which the test suites were written against. Bench: unused, the
// bench starts its own sandboxes (scripts/bench/sandbox_server.ts).
export const DEV_SANDBOX_RECORDS = 2000;
export const TEST_SANDBOX_RECORDS = 25;

// dev keeps the ports `supabase start` uses. test and bench sit below Linux's ephemeral range
// (32768-60999): a port in it can be held by any outgoing connection's local end (the test
// runner's own Postgres client once took 55330 and the sandboxes failed to bind).
const PORT_BASE: Record<Profile, number> = { dev: 54300, test: 25300, bench: 28300 };

/** CRM_STACK_PORT_BASE moves the test and bench profiles' ports, so that two checkouts on one
 * machine can run their suites side by side. The dev profile keeps the CLI's ports. */
function portBase(profile: Profile): number {
  const moved = Number(Deno.env.get("CRM_STACK_PORT_BASE") ?? "");
  return profile !== "dev" && Number.isInteger(moved) && moved > 1024 && moved < 32000
    ? moved + (profile === "bench" ? 100 : 0)
    : PORT_BASE[profile];
}

// Every profile enforces the hosted platform's 2 s of CPU per request
// (supabase.com/docs/guides/functions/limits), so what runs locally also runs there.
// CRM_FUNCTION_CPU_LIMIT_MS changes it (0 turns it off, e.g. to profile a slow function).
export const FUNCTION_CPU_LIMIT_MS = 2000;

function functionCpuLimitMs(): number {
  const raw = Deno.env.get("CRM_FUNCTION_CPU_LIMIT_MS");
  const v = Number(raw);
  return raw && Number.isInteger(v) && v >= 0 ? v : FUNCTION_CPU_LIMIT_MS;
}

// Hosted, a per_worker isolate serves concurrent requests (shared/local/function_pool.ts); the
// stacks do the same, up to this many per process. CRM_FUNCTION_REQUESTS_PER_PROCESS=1 gives
// one request per process (what the gateway did before issue 13's ack-latency work).
export const FUNCTION_REQUESTS_PER_PROCESS = 16;

function functionRequestsPerProcess(): number {
  const raw = Deno.env.get("CRM_FUNCTION_REQUESTS_PER_PROCESS");
  const v = Number(raw);
  return raw && Number.isInteger(v) && v >= 1 ? v : FUNCTION_REQUESTS_PER_PROCESS;
}

export function stackConfig(profile: Profile = "dev"): StackConfig {
  const base = portBase(profile);
  // CRM_STACK_DIR puts a stack's files elsewhere (tests/platform/shutdown.test.ts runs a
  // whole stack in a temporary folder beside the suite's own).
  const dir = Deno.env.get("CRM_STACK_DIR") ||
    join(ROOT, ".local", profile === "dev" ? "" : profile);
  return {
    profile,
    dir,
    pgDir: join(dir, "pg"),
    pgData: join(dir, "pg", "data"),
    pgPort: base + 22,
    gatewayPort: base + 21,
    emulatorPorts: { hubspot: base + 30, salesforce: base + 31, pipedrive: base + 32 },
    dbPassword: "postgres",
    jwtSecret: LOCAL_JWT_SECRET,
    envFile: join(dir, "stack.env"),
    // The dev stack reads the developer's function secrets (the CLI's convention); the test and
    // bench stacks get their own file so a developer's secrets never leak into their runs.
    functionsEnvFile: profile === "dev"
      ? join(ROOT, "supabase", "functions", ".env")
      : join(dir, "functions.env"),
    // Never in supabase/functions/.env, which belongs to the developer.
    stackSecretsFile: join(dir, "function_secrets.env"),
    sandboxRecords: profile === "dev" ? DEV_SANDBOX_RECORDS : TEST_SANDBOX_RECORDS,
    functionCpuLimitMs: functionCpuLimitMs(),
    functionRequestsPerProcess: functionRequestsPerProcess(),
  };
}

export function dbUrl(cfg: StackConfig, user = "postgres", password = cfg.dbPassword): string {
  return `postgresql://${user}:${encodeURIComponent(password)}@127.0.0.1:${cfg.pgPort}/postgres`;
}
