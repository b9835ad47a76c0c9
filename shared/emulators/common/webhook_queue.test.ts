/** Webhook queue: what closing the queue leaves behind at the receiver. */
import { assertEquals } from "./assert.ts";
import { Faults } from "./faults.ts";
import { WebhookQueue } from "./webhook_queue.ts";

/**
 * A keep-alive HTTP/1.1 receiver on a raw socket, so the test sees each TCP connection:
 * answers every request with 204 and keeps the connection open until the client closes it.
 */
function rawReceiver() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.Conn>();
  const closedWaiters: Array<() => void> = [];
  let requests = 0;
  const serve = async (conn: Deno.Conn) => {
    open.add(conn);
    const buf = new Uint8Array(64 * 1024);
    let pending = "";
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        pending += new TextDecoder().decode(buf.subarray(0, n));
        for (;;) {
          const end = pending.indexOf("\r\n\r\n");
          if (end < 0) break;
          const length = Number(/content-length: *(\d+)/i.exec(pending.slice(0, end))?.[1] ?? 0);
          if (pending.length < end + 4 + length) break;
          pending = pending.slice(end + 4 + length);
          requests++;
          await conn.write(new TextEncoder().encode("HTTP/1.1 204 No Content\r\n\r\n"));
        }
      }
    } catch { /* reset by the peer: closed as well */ }
    open.delete(conn);
    try {
      conn.close();
    } catch { /* closed by close() below */ }
    if (open.size === 0) closedWaiters.splice(0).forEach((w) => w());
  };
  (async () => {
    for await (const conn of listener) serve(conn);
  })().catch(() => {});
  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/hook`,
    get requests() {
      return requests;
    },
    get openConnections() {
      return open.size;
    },
    /** Resolves true once the client closed every connection, false after `ms`. */
    allClosed(ms: number): Promise<boolean> {
      if (open.size === 0) return Promise.resolve(true);
      return new Promise((resolve) => {
        const timer = setTimeout(() => resolve(false), ms);
        closedWaiters.push(() => {
          clearTimeout(timer);
          resolve(true);
        });
      });
    },
    close() {
      listener.close();
      for (const c of open) c.close();
    },
  };
}

// Deliveries kept idle keep-alive connections in the process-wide fetch pool after the queue
// closed. A receiver's graceful shutdown then waited for them: up to 3 minutes in a test.
Deno.test("close() closes the queue's connections to the receiver", async () => {
  const rx = rawReceiver();
  const queue = new WebhookQueue({ faults: new Faults(1), timeScale: 1, maxConcurrency: 4 });
  try {
    for (let i = 0; i < 3; i++) {
      queue.enqueue({
        label: `job ${i}`,
        policy: { delaysMs: [], timeoutMs: 5000 },
        build: () => ({ url: rx.url, headers: {}, body: `{"n":${i}}` }),
      });
    }
    assertEquals(await queue.idle(5000), true);
    assertEquals(queue.deliveries.map((d) => d.ok), [true, true, true]);
    assertEquals(rx.requests, 3);
    await queue.close();
    // A connection left in a pool stays open for the pool's idle timeout (90 s): 5 s is ample
    // for a close that happened, and far too short for one that did not.
    assertEquals(await rx.allClosed(5000), true, `${rx.openConnections} connection(s) still open`);
  } finally {
    await queue.close();
    rx.close();
  }
});
