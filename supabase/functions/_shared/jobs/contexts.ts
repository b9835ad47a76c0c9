// Connection contexts (mappings, credentials, SDK clients, the rate budget gate) a worker keeps
// between jobs, shared by the job handlers of one worker invocation. Only the last few are
// kept: a worker runs a connection's jobs one after another, while keeping every connection it
// served would grow its memory with the number of tenants. An evicted context sends its budget
// observations first.
import type { Sql } from "../db.ts";
import type { Lane } from "../sync/budget.ts";
import { loadConnections } from "../sync/connections.ts";
import { createSyncContext, type Logger, type SyncContext } from "../sync/context.ts";

/** Connection contexts a worker keeps between jobs. */
const KEPT_CONTEXTS = 4;

export interface ContextCache {
  /** The context of an active connection for calls in `lane`, or why there is none. */
  get(connectionId: string, lane: Lane): Promise<SyncContext | string>;
  /** Sends the rate-limit observations still buffered; call before the request ends. */
  flush(): Promise<void>;
}

export function contextCache(sql: Sql, key: CryptoKey, log: Logger): ContextCache {
  const contexts = new Map<string, Promise<SyncContext | string>>();
  const flushing = new Set<Promise<void>>();
  const evict = () => {
    while (contexts.size > KEPT_CONTEXTS) {
      const [oldest, c] = contexts.entries().next().value!;
      contexts.delete(oldest);
      const sent = c.then((ctx) => typeof ctx === "string" ? undefined : ctx.budget.flush())
        .catch(() => {})
        .finally(() => flushing.delete(sent));
      flushing.add(sent);
    }
  };
  return {
    get(connectionId, lane) {
      const id = `${connectionId}:${lane}`;
      let c = contexts.get(id);
      if (c) {
        // Most recently used last.
        contexts.delete(id);
        contexts.set(id, c);
        return c;
      }
      c = (async () => {
        const { connections, unusable } = await loadConnections(sql, key, {
          connectionId,
          activeOnly: true,
        });
        if (unusable.length) return unusable[0].reason;
        if (!connections.length) return "the connection is no longer active";
        return await createSyncContext(sql, key, connections[0], log, { lane });
      })();
      contexts.set(id, c);
      c.catch(() => contexts.delete(id));
      evict();
      return c;
    },
    async flush() {
      await Promise.all(flushing);
      for (const c of contexts.values()) {
        const ctx = await c.catch(() => null);
        if (ctx && typeof ctx !== "string") await ctx.budget.flush();
      }
    },
  };
}
