// Local stand-in for Supabase's functions gateway (Kong + edge-runtime main worker):
// POST/GET /functions/v1/<slug>[/...] → supabase/functions/<slug>/index.ts, run in Deno
// processes of its own (shared/local/function_runner.ts), one request per process at a time
// from a pool per function (shared/local/function_pool.ts), with the hosted limits: CPU per
// request (546 when exceeded), wall clock (504), memory (546). verify_jwt comes from config.toml per function (default
// true, as on the platform); keys are checked against the stack's JWT secret. As in the
// Supabase CLI's main worker, OPTIONS (CORS preflights, which carry no credentials) reaches the
// function without that check; the function answers it. Functions get the JWT secret as
// JWT_SECRET, the name self-hosted Supabase gives them, so they can verify tokens themselves,
// and /auth/v1/.well-known/jwks.json answers the project's (empty: HS256 only) key set.
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse as parseToml } from "smol-toml";
import { readEnvFile } from "./env_file.ts";
import { BootError, type CpuPolicy, createPool, type Proc } from "./function_pool.ts";
import { verifyJwt } from "./jwt.ts";

export interface GatewayOptions {
  port: number;
  hostname?: string;
  functionsDir: string;
  configToml: string;
  jwtSecret: string;
  /** Platform variables every function sees (SUPABASE_URL, SUPABASE_DB_URL, keys...). */
  env: Record<string, string>;
  /** Function secrets (like `supabase secrets set`), KEY=value lines. */
  envFile?: string;
  /** Secrets the local stack owns (CRM_ENCRYPTION_KEY); envFile overrides them by name. */
  stackEnvFile?: string;
  /** Wall-clock limit per request; the hosted platform allows 150 s. */
  requestTimeoutMs?: number;
  /** V8 heap cap per function process; the hosted platform allows 256 MB. */
  memoryMb?: number;
  /** CPU per request, ms (hosted: 2 s, "does not include async I/O"); 0 disables CPU limits. */
  cpuLimitMs?: number;
  /** per_worker (hosted): a process that has used this much CPU retires after its request.
   * Default: half of cpuLimitMs, as the hosted isolates do. */
  cpuSoftLimitMs?: number;
  /** per_worker (default, hosted): CPU counts over the process's life from its first request;
   * per_request: the count restarts at each request (edge-runtime's per_request policy). */
  cpuPolicy?: CpuPolicy;
  /** Processes per function (default 16); further requests wait for a free one. */
  maxProcessesPerFunction?: number;
  /** Requests a process serves at once under per_worker (default 1). Hosted, a per_worker
   * isolate serves concurrent requests (see function_pool.ts); >1 reproduces that. */
  requestsPerProcess?: number;
  /** Idle processes beyond one per function are stopped after this long (default 30 s). */
  idleTimeoutMs?: number;
  watch?: boolean;
  log?: (msg: string) => void;
}

const RUNNER = fileURLToPath(new URL("./function_runner.ts", import.meta.url).href);
const DENO_CONFIG = fileURLToPath(new URL("../../deno.json", import.meta.url).href);
const SLUG = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;
// Variables a function process inherits from the machine; everything else is explicit.
const INHERITED = ["PATH", "HOME", "TMPDIR", "DENO_DIR", "DENO_TLS_CA_STORE", "LANG", "TZ"];

function json(status: number, body: unknown): Response {
  return Response.json(body, { status });
}

// What a hosted caller gets when the worker is terminated at a resource limit (CPU or memory):
// status 546 with this body (supabase.com/docs/guides/functions/status-codes, and the
// troubleshooting page "546 - WORKER_LIMIT Exceeded"; the code was WORKER_LIMIT until the docs
// renamed it in supabase/supabase#46051, so clients should match the status). The log names the
// limit ("CPU Time exceeded", "Memory limit exceeded"); the answer does not.
const RESOURCE_LIMIT = {
  code: "WORKER_RESOURCE_LIMIT",
  message: "Function failed due to not having enough compute resources (please check logs)",
};
const LOOPBACK = new Set(["127.0.0.1", "::1", "::ffff:127.0.0.1"]);

export function startGateway(opts: GatewayOptions) {
  const log = opts.log ?? ((m: string) => console.error(`[gateway] ${m}`));
  let config: { mtime: number; verify: Record<string, boolean> } = { mtime: -1, verify: {} };

  function verifyJwtFor(slug: string): boolean {
    const mtime = statSync(opts.configToml).mtimeMs;
    if (mtime !== config.mtime) {
      const toml = parseToml(Deno.readTextFileSync(opts.configToml)) as {
        functions?: Record<string, { verify_jwt?: boolean }>;
      };
      const verify: Record<string, boolean> = {};
      for (const [name, f] of Object.entries(toml.functions ?? {})) {
        if (typeof f.verify_jwt === "boolean") verify[name] = f.verify_jwt;
      }
      config = { mtime, verify };
    }
    return config.verify[slug] ?? true;
  }

  async function functionEnv(): Promise<Record<string, string>> {
    const env: Record<string, string> = {};
    for (const k of INHERITED) {
      const v = Deno.env.get(k);
      if (v !== undefined) env[k] = v;
    }
    // Read at every spawn, so a changed file reaches the next function process.
    const secrets = {
      ...(opts.stackEnvFile ? await readEnvFile(opts.stackEnvFile) : {}),
      ...(opts.envFile ? await readEnvFile(opts.envFile) : {}),
    };
    for (const [k, v] of Object.entries(secrets)) {
      // The platform reserves the SUPABASE_ prefix; `supabase secrets set` skips such names.
      if (!k.startsWith("SUPABASE_")) env[k] = v;
    }
    return { ...env, JWT_SECRET: opts.jwtSecret, ...opts.env };
  }

  function command(_slug: string, entry: string): Promise<Deno.Command> {
    return functionEnv().then((env) =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "--no-prompt",
          `--config=${DENO_CONFIG}`,
          `--v8-flags=--max-old-space-size=${opts.memoryMb ?? 256}`,
          RUNNER,
          entry,
        ],
        clearEnv: true,
        env,
        stdin: "null",
        stdout: "piped",
        stderr: "inherit",
      })
    );
  }

  const cpuLimitMs = opts.cpuLimitMs ?? 2000;
  const limits = {
    cpuLimitMs,
    cpuSoftLimitMs: opts.cpuSoftLimitMs ?? cpuLimitMs / 2,
    cpuPolicy: opts.cpuPolicy ?? "per_worker",
    requestTimeoutMs: opts.requestTimeoutMs ?? 150_000,
    memoryMb: opts.memoryMb ?? 256,
    maxProcessesPerFunction: opts.maxProcessesPerFunction ?? 16,
    requestsPerProcess: opts.requestsPerProcess ?? 1,
    idleTimeoutMs: opts.idleTimeoutMs ?? 30_000,
  };
  const pool = createPool({
    command,
    cpuLimitMs: limits.cpuLimitMs,
    cpuSoftLimitMs: limits.cpuSoftLimitMs,
    cpuPolicy: limits.cpuPolicy,
    maxProcesses: limits.maxProcessesPerFunction,
    requestsPerProcess: limits.requestsPerProcess,
    idleTimeoutMs: limits.idleTimeoutMs,
    log,
  });

  function stats() {
    return { limits, functions: pool.stats() };
  }

  // One settle round trip per process at a time: the runner answers when nothing runs on it and
  // no waitUntil task is pending, which covers every request whose answer was relayed before,
  // so requests that end while a round is open (a shared process, requestsPerProcess > 1) wait
  // for that round instead of each asking again.
  const rounds = new Map<Proc, Promise<boolean>>();

  function settleRound(proc: Proc, deadline: AbortSignal): Promise<boolean> {
    let round = rounds.get(proc);
    if (!round) {
      round = fetch(`http://127.0.0.1:${proc.port}/__runner/settled`, { signal: deadline })
        .then(async (r) => {
          await r.body?.cancel();
          return true;
        })
        .catch(() => {
          if (proc.exit) return false; // killed at a limit or crashed: the pool logged it
          if (deadline.aborted) {
            pool.kill(proc, "wall_clock", "wall clock time limit reached (EdgeRuntime.waitUntil)");
          } else pool.kill(proc, "crash");
          return false;
        })
        .finally(() => rounds.delete(proc));
      rounds.set(proc, round);
    }
    return round;
  }

  /** The end of the response (or the caller leaving), then of the process's background work:
   * only then is the process free for another request. */
  async function settle(proc: Proc, deadline: AbortSignal) {
    pool.responded(proc);
    if (await settleRound(proc, deadline)) pool.release(proc);
  }

  async function handle(req: Request, info: Deno.ServeHandlerInfo): Promise<Response> {
    const url = new URL(req.url);
    if (url.pathname === "/__health") return json(200, { ok: true });
    // Operator route (benchmarks, tests), never exposed beyond this machine.
    if (url.pathname === "/_gateway/stats") {
      const remote = (info.remoteAddr as Deno.NetAddr).hostname;
      if (!LOOPBACK.has(remote)) {
        return json(404, { code: "NOT_FOUND", message: "no route matched" });
      }
      if (req.method === "GET") return json(200, stats());
      if (req.method === "DELETE") {
        pool.resetStats();
        return json(200, stats());
      }
      return json(405, { code: "METHOD_NOT_ALLOWED", message: "GET or DELETE" });
    }
    // No auth server runs locally and its keys are all HS256: the asymmetric key set is empty.
    if (url.pathname === "/auth/v1/.well-known/jwks.json") return json(200, { keys: [] });
    const m = url.pathname.match(/^\/functions\/v1\/([^/]+)(\/.*)?$/);
    if (!m) return json(404, { code: "NOT_FOUND", message: "no route matched" });
    const slug = m[1];
    const entry = join(opts.functionsDir, slug, "index.ts");
    if (!SLUG.test(slug) || !existsSync(entry)) {
      return json(404, { code: "NOT_FOUND", message: "Requested function was not found" });
    }
    if (req.method !== "OPTIONS" && verifyJwtFor(slug)) {
      const auth = req.headers.get("authorization") ?? "";
      if (!auth) return json(401, { code: 401, message: "Missing authorization header" });
      const token = auth.match(/^Bearer\s+(.+)$/i)?.[1];
      if (!token || !(await verifyJwt(token, opts.jwtSecret))) {
        return json(401, { code: 401, message: "Invalid JWT" });
      }
    }

    const headers = new Headers(req.headers);
    headers.delete("host");
    // As a proxy in front of the platform's functions does: the address the request came from
    // is appended to X-Forwarded-For (crm-webhook's refusal limit keys on its first entry).
    const remote = (info.remoteAddr as Deno.NetAddr).hostname;
    const forwarded = req.headers.get("x-forwarded-for");
    headers.set("x-forwarded-for", forwarded ? `${forwarded}, ${remote}` : remote);
    // A preflight reaches the function unauthenticated, so its body (a preflight has none) is
    // read and dropped chunk by chunk rather than buffered: an anonymous OPTIONS must not make
    // the gateway hold an arbitrary upload in memory. (Read, not cancelled: an answer before the
    // body is read breaks clients that are still sending it.)
    const preflight = req.method === "OPTIONS";
    if (preflight) {
      if (req.body) { for await (const _ of req.body) { /* dropped */ } }
      headers.delete("content-length");
      headers.delete("transfer-encoding");
    }
    // Buffered so a request that found a worker which had just died can go to its successor.
    const body = !preflight && req.body ? new Uint8Array(await req.arrayBuffer()) : undefined;
    // The wall clock runs from here: waiting for a free process, the response, then the
    // request's background work.
    const deadline = AbortSignal.timeout(limits.requestTimeoutMs);
    const timedOut = () =>
      json(504, { code: "TIMEOUT", message: "Function exceeded the wall-clock limit" });
    for (let attempt = 1;; attempt++) {
      let proc: Proc;
      try {
        proc = await pool.acquire(slug, entry, deadline);
      } catch (e) {
        if (deadline.aborted) return timedOut();
        if (!(e instanceof BootError)) throw e;
        log(`${slug} failed to boot: ${e.message}`);
        return json(503, {
          code: "BOOT_ERROR",
          message: "Function failed to start (please check logs)",
        });
      }
      let res: Response;
      try {
        res = await fetch(`http://127.0.0.1:${proc.port}/${slug}${m[2] ?? ""}${url.search}`, {
          method: req.method,
          headers,
          body,
          redirect: "manual",
          signal: deadline,
        });
      } catch (e) {
        if (deadline.aborted && !proc.exit) {
          pool.kill(proc, "wall_clock", "wall clock time limit reached");
          return timedOut();
        }
        const message = String((e as Error).message);
        const refused = /connection refused|ECONNREFUSED/i.test(message);
        // A process that died on its own: its exit status says whether it hit the heap cap.
        if (!proc.exit) {
          let timer: number | undefined;
          await Promise.race([
            proc.child.status,
            new Promise((r) => timer = setTimeout(r, 300)),
          ]);
          clearTimeout(timer);
        }
        if (proc.exit === "cpu" || proc.exit === "memory") return json(546, RESOURCE_LIMIT);
        // Any other failure leaves the process unfit for the next request.
        pool.kill(proc, "crash");
        // Refused means the request never reached the (dead) process: safe to send it once more.
        if (refused && attempt === 1) continue;
        log(`${slug}: ${message}`);
        return json(502, { code: "WORKER_ERROR", message: "Function exited before it responded" });
      }
      const done = () => void settle(proc, deadline);
      return new Response(res.body ? relay(res.body, done) : (done(), null), {
        status: res.status,
        statusText: res.statusText,
        headers: res.headers,
      });
    }
  }

  const server = Deno.serve({
    port: opts.port,
    hostname: opts.hostname ?? "127.0.0.1",
    onListen: () => {},
  }, (req, info) =>
    handle(req, info).catch((e) => {
      log(`internal error: ${e.stack ?? e}`);
      return json(500, { code: "GATEWAY_ERROR", message: "gateway error" });
    }));

  let watcher: Deno.FsWatcher | null = null;
  if (opts.watch) {
    watcher = Deno.watchFs(opts.functionsDir, { recursive: true });
    (async () => {
      for await (const ev of watcher!) {
        if (ev.kind !== "access") pool.retireAll();
      }
    })();
  }

  return {
    port: server.addr.port,
    url: `http://127.0.0.1:${server.addr.port}`,
    /** Pid of a live process of `slug` (tests use this to prove isolation). */
    workerPid(slug: string): number | undefined {
      return pool.pids(slug)[0];
    },
    /** Pids of the live processes of `slug`. */
    workerPids(slug: string): number[] {
      return pool.pids(slug);
    },
    /** What GET /_gateway/stats answers. */
    stats,
    async close() {
      watcher?.close();
      await server.shutdown();
      await pool.close();
    },
  };
}

/** Passes a response body through, calling `done` once when it ends, fails or is cancelled. */
function relay(body: ReadableStream<Uint8Array>, done: () => void): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let ended = false;
  const end = () => {
    if (!ended) {
      ended = true;
      done();
    }
  };
  return new ReadableStream({
    async pull(controller) {
      try {
        const r = await reader.read();
        if (r.done) {
          controller.close();
          end();
        } else controller.enqueue(r.value);
      } catch (e) {
        // The process was killed mid-body (a limit): the caller gets a truncated answer.
        controller.error(e);
        end();
      }
    },
    cancel(reason) {
      end();
      return reader.cancel(reason);
    },
  });
}

if (import.meta.main) {
  const need = (k: string) => {
    const v = Deno.env.get(k);
    if (!v) throw new Error(`${k} is required`);
    return v;
  };
  const root = fileURLToPath(new URL("../../", import.meta.url).href);
  const cpuLimit = Deno.env.get("GATEWAY_CPU_LIMIT_MS");
  if (cpuLimit && !(Number(cpuLimit) >= 0)) throw new Error("GATEWAY_CPU_LIMIT_MS: ms, 0 = off");
  const perProcess = Deno.env.get("GATEWAY_REQUESTS_PER_PROCESS");
  if (perProcess && !(Number.isInteger(Number(perProcess)) && Number(perProcess) >= 1)) {
    throw new Error("GATEWAY_REQUESTS_PER_PROCESS: an integer >= 1");
  }
  const gw = startGateway({
    port: Number(need("GATEWAY_PORT")),
    functionsDir: Deno.env.get("FUNCTIONS_DIR") ?? join(root, "supabase", "functions"),
    configToml: join(root, "supabase", "config.toml"),
    jwtSecret: need("SUPABASE_JWT_SECRET"),
    envFile: Deno.env.get("FUNCTIONS_ENV_FILE"),
    stackEnvFile: Deno.env.get("FUNCTIONS_STACK_ENV_FILE"),
    watch: Deno.env.get("GATEWAY_WATCH") === "1",
    cpuLimitMs: cpuLimit ? Number(cpuLimit) : undefined,
    requestsPerProcess: perProcess ? Number(perProcess) : undefined,
    env: {
      SUPABASE_URL: need("SUPABASE_URL"),
      SUPABASE_DB_URL: need("SUPABASE_DB_URL"),
      SUPABASE_ANON_KEY: need("SUPABASE_ANON_KEY"),
      SUPABASE_SERVICE_ROLE_KEY: need("SUPABASE_SERVICE_ROLE_KEY"),
    },
  });
  console.error(`[gateway] listening on ${gw.url}`);
  const stop = async () => {
    await gw.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
}
