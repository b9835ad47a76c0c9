// Local stand-in for Supabase's functions gateway (Kong + edge-runtime main worker):
// POST/GET /functions/v1/<slug>[/...] → supabase/functions/<slug>/index.ts, each function in
// its own Deno process (shared/local/function_runner.ts) started on first use and restarted
// after a crash or a source change. verify_jwt comes from config.toml per function (default
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
  watch?: boolean;
  log?: (msg: string) => void;
}

interface Worker {
  child: Deno.ChildProcess;
  port: Promise<number>;
  exited: boolean;
}

const RUNNER = fileURLToPath(new URL("./function_runner.ts", import.meta.url).href);
const DENO_CONFIG = fileURLToPath(new URL("../../deno.json", import.meta.url).href);
const SLUG = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;
// Variables a function process inherits from the machine; everything else is explicit.
const INHERITED = ["PATH", "HOME", "TMPDIR", "DENO_DIR", "DENO_TLS_CA_STORE", "LANG", "TZ"];

function json(status: number, body: unknown): Response {
  return Response.json(body, { status });
}

export function startGateway(opts: GatewayOptions) {
  const log = opts.log ?? ((m: string) => console.error(`[gateway] ${m}`));
  const workers = new Map<string, Worker>();
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

  async function spawn(slug: string, entry: string): Promise<Worker> {
    const child = new Deno.Command(Deno.execPath(), {
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
      env: await functionEnv(),
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const worker: Worker = { child, port: Promise.resolve(0), exited: false };
    worker.port = readPort(slug, child.stdout);
    child.status.then((s) => {
      worker.exited = true;
      if (workers.get(slug) === worker) workers.delete(slug);
      if (!stopping) log(`${slug} exited (code ${s.code}${s.signal ? `, ${s.signal}` : ""})`);
    });
    return worker;
  }

  /** First stdout line is the runner's {"port":N}; the rest is the function's own output. */
  async function readPort(slug: string, stdout: ReadableStream<Uint8Array>): Promise<number> {
    const reader = stdout.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    while (true) {
      const { value, done } = await reader.read();
      if (done) throw new Error("function exited before it started serving");
      buf += value;
      const nl = buf.indexOf("\n");
      if (nl < 0) continue;
      const port = Number(JSON.parse(buf.slice(0, nl)).port);
      const rest = buf.slice(nl + 1);
      if (rest) Deno.stdout.writeSync(new TextEncoder().encode(rest));
      (async () => {
        for (;;) {
          const r = await reader.read().catch(() => ({ done: true, value: "" }));
          if (r.done) return;
          await Deno.stdout.write(new TextEncoder().encode(`[${slug}] ${r.value}`));
        }
      })();
      return port;
    }
  }

  // Requests that arrive while a worker is starting share that start: spawning per request
  // left orphan processes running beside the one in `workers`.
  const starting = new Map<string, Promise<Worker>>();
  function workerFor(slug: string, entry: string): Promise<Worker> {
    const w = workers.get(slug);
    if (w && !w.exited) return Promise.resolve(w);
    let next = starting.get(slug);
    if (!next) {
      next = spawn(slug, entry).then((nw) => {
        workers.set(slug, nw);
        return nw;
      }).finally(() => starting.delete(slug));
      starting.set(slug, next);
    }
    return next;
  }

  async function handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    if (url.pathname === "/__health") return json(200, { ok: true });
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
    const timeout = AbortSignal.timeout(opts.requestTimeoutMs ?? 150_000);
    for (let attempt = 1;; attempt++) {
      const worker = await workerFor(slug, entry);
      let port: number;
      try {
        port = await worker.port;
      } catch (e) {
        log(`${slug} failed to boot: ${(e as Error).message}`);
        return json(503, {
          code: "BOOT_ERROR",
          message: "Function failed to start (please check logs)",
        });
      }
      try {
        const res = await fetch(`http://127.0.0.1:${port}/${slug}${m[2] ?? ""}${url.search}`, {
          method: req.method,
          headers,
          body,
          redirect: "manual",
          signal: timeout,
        });
        return new Response(res.body, {
          status: res.status,
          statusText: res.statusText,
          headers: res.headers,
        });
      } catch (e) {
        if (timeout.aborted) {
          return json(504, { code: "TIMEOUT", message: "Function exceeded the wall-clock limit" });
        }
        const message = String((e as Error).message);
        const refused = /connection refused|ECONNREFUSED/i.test(message);
        // A worker that refused the connection, or closed it before answering, is dead or dying
        // (Deno.exit, a crash): retire it now. Left to its exit status, the next request could
        // still reach the exiting process and fail as well. A body the worker stopped reading
        // (broken pipe) leaves a healthy worker alone.
        if (refused || /closed before message completed/i.test(message)) retire(slug, worker);
        // Refused means the request never reached the (dead) worker: safe to send it once more.
        if (refused && attempt === 1) continue;
        log(`${slug}: ${message}`);
        return json(502, { code: "WORKER_ERROR", message: "Function exited before it responded" });
      }
    }
  }

  function retire(slug: string, w: Worker) {
    if (workers.get(slug) === w) workers.delete(slug);
    w.exited = true;
    try {
      w.child.kill("SIGKILL");
    } catch { /* already gone */ }
  }

  let stopping = false;
  const server = Deno.serve({
    port: opts.port,
    hostname: opts.hostname ?? "127.0.0.1",
    onListen: () => {},
  }, (req) =>
    handle(req).catch((e) => {
      log(`internal error: ${e.stack ?? e}`);
      return json(500, { code: "GATEWAY_ERROR", message: "gateway error" });
    }));

  let watcher: Deno.FsWatcher | null = null;
  if (opts.watch) {
    watcher = Deno.watchFs(opts.functionsDir, { recursive: true });
    (async () => {
      for await (const ev of watcher!) {
        if (ev.kind === "access") continue;
        for (const [slug, w] of workers) {
          workers.delete(slug);
          try {
            w.child.kill("SIGTERM");
          } catch { /* gone */ }
        }
      }
    })();
  }

  return {
    port: server.addr.port,
    url: `http://127.0.0.1:${server.addr.port}`,
    /** Pids of live function processes (tests use this to prove isolation). */
    workerPid(slug: string): number | undefined {
      const w = workers.get(slug);
      return w && !w.exited ? w.child.pid : undefined;
    },
    async close() {
      stopping = true;
      watcher?.close();
      await server.shutdown();
      const all = [...workers.values()];
      workers.clear();
      for (const w of all) {
        try {
          w.child.kill("SIGTERM");
        } catch { /* gone */ }
      }
      await Promise.all(all.map(async (w) => {
        const t = setTimeout(() => {
          try {
            w.child.kill("SIGKILL");
          } catch { /* gone */ }
        }, 12_000);
        await w.child.status;
        clearTimeout(t);
        await w.child.stdout.cancel().catch(() => {});
      }));
    },
  };
}

if (import.meta.main) {
  const need = (k: string) => {
    const v = Deno.env.get(k);
    if (!v) throw new Error(`${k} is required`);
    return v;
  };
  const root = fileURLToPath(new URL("../../", import.meta.url).href);
  const gw = startGateway({
    port: Number(need("GATEWAY_PORT")),
    functionsDir: Deno.env.get("FUNCTIONS_DIR") ?? join(root, "supabase", "functions"),
    configToml: join(root, "supabase", "config.toml"),
    jwtSecret: need("SUPABASE_JWT_SECRET"),
    envFile: Deno.env.get("FUNCTIONS_ENV_FILE"),
    stackEnvFile: Deno.env.get("FUNCTIONS_STACK_ENV_FILE"),
    watch: Deno.env.get("GATEWAY_WATCH") === "1",
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
