// Hosts one edge function in its own Deno process, the way Supabase's edge-runtime gives each
// function a user worker: the function's index.ts calls Deno.serve(handler) as on the platform;
// we capture that handler, serve it on a loopback port chosen here, report the port on stdout
// and provide EdgeRuntime.waitUntil. A crash here never reaches the gateway process.
//
// Protocol with the gateway (shared/local/function_pool.ts), beside the port line: it sends one
// request at a time and, once it has relayed the whole response, asks GET /__runner/settled,
// which answers 204 when no handler is running and every waitUntil task has settled. Until then
// the request's CPU is still counted, as the hosted runtime keeps an isolate until its waitUntil
// promises resolve. Callers never reach that path: the gateway forwards /<slug>/..., and a slug
// cannot start with "_".
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

type Handler = (req: Request, info: Deno.ServeHandlerInfo) => Response | Promise<Response>;

const entry = Deno.args[0];
if (!entry) {
  console.error("usage: function_runner.ts <path/to/index.ts>");
  Deno.exit(2);
}

const pending = new Set<Promise<unknown>>();
let running = 0;
let settledWaiters: (() => void)[] = [];

function settleCheck() {
  if (running > 0 || pending.size > 0) return;
  for (const resolve of settledWaiters) resolve();
  settledWaiters = [];
}

function whenSettled(): Promise<void> {
  const { promise, resolve } = Promise.withResolvers<void>();
  settledWaiters.push(resolve);
  settleCheck();
  return promise;
}

(globalThis as Record<string, unknown>).EdgeRuntime = {
  waitUntil<T>(promise: Promise<T>): Promise<T> {
    const tracked = Promise.resolve(promise)
      .catch((e) => console.error("EdgeRuntime.waitUntil task failed:", e))
      .finally(() => {
        pending.delete(tracked);
        settleCheck();
      });
    pending.add(tracked);
    return promise;
  },
};

let handler: Handler | null = null;
const realServe = Deno.serve.bind(Deno);

function captureHandler(args: unknown[]): Handler {
  for (const a of args) {
    if (typeof a === "function") return a as Handler;
    if (a && typeof a === "object" && typeof (a as { handler?: unknown }).handler === "function") {
      return (a as { handler: Handler }).handler;
    }
    if (a && typeof a === "object" && typeof (a as { fetch?: unknown }).fetch === "function") {
      const obj = a as { fetch: Handler };
      return (req, info) => obj.fetch(req, info);
    }
  }
  throw new TypeError("Deno.serve called without a handler");
}

const finished = Promise.withResolvers<void>();
// deno-lint-ignore no-explicit-any
(Deno as any).serve = (...args: unknown[]) => {
  handler = captureHandler(args);
  return {
    finished: finished.promise,
    addr: { transport: "tcp", hostname: "127.0.0.1", port: 0 },
    ref() {},
    unref() {},
    shutdown: () => Promise.resolve(),
    [Symbol.asyncDispose]: () => Promise.resolve(),
  };
};

await import(pathToFileURL(resolve(entry)).href);
if (!handler) {
  console.error(`${entry} did not call Deno.serve(handler)`);
  Deno.exit(3);
}
const fn: Handler = handler;

const server = realServe({
  hostname: "127.0.0.1",
  port: 0,
  onListen: ({ port }) => console.log(JSON.stringify({ port })),
}, async (req, info) => {
  if (new URL(req.url).pathname === "/__runner/settled") {
    await whenSettled();
    return new Response(null, { status: 204 });
  }
  running++;
  try {
    return await fn(req, info);
  } catch (e) {
    console.error("function threw:", e);
    return Response.json(
      { code: "FUNCTION_ERROR", message: "The function threw an uncaught exception" },
      { status: 500 },
    );
  } finally {
    running--;
    settleCheck();
  }
});

const stop = async () => {
  // In-flight requests get a short grace period; a hung handler must not block the exit.
  await Promise.race([server.shutdown(), new Promise((r) => setTimeout(r, 2000))]);
  // Like the platform, background tasks get a grace period after the last response.
  await Promise.race([Promise.allSettled([...pending]), new Promise((r) => setTimeout(r, 10_000))]);
  finished.resolve();
  Deno.exit(0);
};
Deno.addSignalListener("SIGTERM", stop);
Deno.addSignalListener("SIGINT", stop);
