/**
 * Test helpers for emulator tests (and for product tests that need a webhook
 * receiver): a recording HTTP receiver and an admin API caller.
 *
 * Note: SDK back-off waits cannot be shortened from a test — npm modules run
 * with Node's timers bound at load time, not `globalThis.setTimeout`.
 */

export interface ReceivedRequest {
  n: number;
  method: string;
  url: string;
  path: string;
  headers: Record<string, string>;
  body: string;
  at: number;
}

export interface Receiver {
  url: string;
  requests: ReceivedRequest[];
  /** Wait until at least `n` requests arrived (rejects after timeoutMs). */
  waitFor(n: number, timeoutMs?: number): Promise<ReceivedRequest[]>;
  close(): Promise<void>;
}

export type Responder = (r: ReceivedRequest) => Response | Promise<Response>;

/** Start a local receiver; `respond` decides each answer (default 200 "ok"). */
export function startReceiver(respond: Responder = () => new Response("ok")): Promise<Receiver> {
  const requests: ReceivedRequest[] = [];
  let waiters: Array<() => void> = [];
  return new Promise((resolve) => {
    const server = Deno.serve({
      port: 0,
      hostname: "127.0.0.1",
      onListen: (addr) => {
        const url = `http://127.0.0.1:${(addr as Deno.NetAddr).port}`;
        resolve({
          url,
          requests,
          waitFor(n, timeoutMs = 5000) {
            return new Promise((res, rej) => {
              const check = () => {
                if (requests.length >= n) {
                  clearTimeout(timer);
                  waiters = waiters.filter((w) => w !== check);
                  res(requests);
                  return true;
                }
                return false;
              };
              const timer = setTimeout(() => {
                waiters = waiters.filter((w) => w !== check);
                rej(
                  new Error(`receiver: got ${requests.length} of ${n} requests in ${timeoutMs} ms`),
                );
              }, timeoutMs);
              if (!check()) waiters.push(check);
            });
          },
          async close() {
            await server.shutdown();
          },
        });
      },
    }, async (req) => {
      const u = new URL(req.url);
      const r: ReceivedRequest = {
        n: requests.length + 1,
        method: req.method,
        url: req.url,
        path: u.pathname + u.search,
        headers: Object.fromEntries(req.headers),
        body: await req.text(),
        at: Date.now(),
      };
      requests.push(r);
      const res = await respond(r);
      for (const w of [...waiters]) w();
      return res;
    });
  });
}

/** Call an emulator admin endpoint (JSON in, JSON out; throws on non-2xx). */
export async function admin(
  base: string,
  path: string,
  init: RequestInit & { json?: unknown } = {},
): Promise<unknown> {
  const res = await fetch(`${base}/__admin${path}`, {
    method: init.method ?? (init.json !== undefined ? "POST" : "GET"),
    headers: { "content-type": "application/json" },
    body: init.json !== undefined ? JSON.stringify(init.json) : undefined,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`admin ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}
