/**
 * Test helpers for emulator tests (and for product tests that need a webhook
 * receiver): a recording HTTP receiver and a timer scaler for SDK back-off.
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
                rej(new Error(`receiver: got ${requests.length} of ${n} requests in ${timeoutMs} ms`));
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

/**
 * Scale every `setTimeout` delay of at least `minMs` by `factor` while `fn`
 * runs. SDKs back off for seconds (HubSpot waits 10 s after a 429); tests
 * shrink those waits without touching the SDK.
 */
export async function withScaledTimers<T>(factor: number, fn: () => Promise<T>, minMs = 100): Promise<T> {
  const original = globalThis.setTimeout;
  const scaled = ((handler: TimerHandler, timeout?: number, ...args: unknown[]) =>
    original(
      handler,
      timeout !== undefined && timeout >= minMs ? Math.round(timeout * factor) : timeout,
      ...args,
    )) as typeof setTimeout;
  globalThis.setTimeout = scaled;
  try {
    return await fn();
  } finally {
    globalThis.setTimeout = original;
  }
}
