// Every SDK request carries the call's timeout down to the socket: against a server that never
// answers, each adapter's call ends at its timeout, the retries stop at the run's deadline, and
// the server sees each request's connection closed by the client (aborted, not abandoned).
import assert from "node:assert/strict";
import { createAdapter } from "../../supabase/functions/_shared/providers/registry.ts";
import {
  type ObjectType,
  type ProviderAdapter,
  ProviderError,
  type ProviderName,
} from "../../supabase/functions/_shared/providers/types.ts";

/** A TCP server that reads requests and never answers; counts connections the client closed
 * (one per request: an unanswered connection is never reused). */
function silentServer() {
  const listener = Deno.listen({ port: 0, hostname: "127.0.0.1" });
  const sockets: Deno.Conn[] = [];
  let received = 0;
  let closed = 0;
  (async () => {
    for await (const conn of listener) {
      sockets.push(conn);
      received++;
      (async () => {
        const buf = new Uint8Array(64 * 1024);
        while ((await conn.read(buf).catch(() => null)) !== null) { /* never answer */ }
        closed++;
      })();
    }
  })().catch(() => {});
  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    received: () => received,
    closed: () => closed,
    close: () => {
      listener.close();
      for (const s of sockets) {
        try {
          s.close();
        } catch { /* closed by the client */ }
      }
    },
  };
}

const CALLS: Array<[ProviderName, string, (a: ProviderAdapter, d: number) => Promise<unknown>]> = [
  [
    "hubspot",
    "list (typed call)",
    (a, d) => a.changesSince("contacts", null, null, { deadline: d }),
  ],
  [
    "hubspot",
    "search",
    (a, d) =>
      a.changesSince("contacts", { modifiedAt: new Date(0).toISOString(), remoteId: "" }, null, {
        deadline: d,
      }),
  ],
  [
    "hubspot",
    "owners (typed call)",
    (a, d) => a.changesSince("owners", null, null, { deadline: d }),
  ],
  [
    "hubspot",
    "archive listing (typed call)",
    (a, d) => a.deletedSince("contacts", new Date(0).toISOString(), { deadline: d }),
  ],
  ["hubspot", "batch read (typed call)", (a, d) => a.readByIds("contacts", ["1"], { deadline: d })],
  ["salesforce", "query", (a, d) => a.changesSince("companies", null, null, { deadline: d })],
  ["pipedrive", "list", (a, d) => a.changesSince("contacts", null, null, { deadline: d })],
  [
    "pipedrive",
    "users (v1)",
    (a, d) => a.readByIds("owners" as ObjectType, ["1"], { deadline: d }),
  ],
];

for (const [provider, what, call] of CALLS) {
  Deno.test({
    name: `${provider} ${what}: a request with no answer is aborted at its timeout`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      const server = silentServer();
      try {
        const adapter = await createAdapter(provider, {
          baseUrl: server.url,
          credentials: { accessToken: "t", apiToken: "t", instanceUrl: server.url },
          beforeRequest: () => Promise.resolve(),
          onTokens: () => Promise.resolve(),
          countCall: () => {},
          log: () => {},
          callTimeoutMs: 150,
        });
        const err = await call(adapter, Date.now() + 600).catch((e) => e);
        assert.ok(err instanceof ProviderError, String(err));
        assert.equal(err.action, "retry", "out of time is transient: the next run continues");
        assert.match(err.message, /no answer within 150 ms|no time left|time budget/);
        assert.ok(server.received() >= 2, "timeouts were retried within the budget");
        for (let i = 0; i < 100 && server.closed() < server.received(); i++) {
          await new Promise((r) => setTimeout(r, 20));
        }
        assert.equal(server.closed(), server.received(), "every request's connection was closed");
      } finally {
        server.close();
      }
    },
  });
}
