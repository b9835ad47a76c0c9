// The inbound side of crm-sync-bidirectional's direct shape: one connection's enabled objects
// in dependency order (owners before the records that point at them, companies before contacts
// and deals), each stream resumable and bounded by one shared deadline and CPU budget. Work over
// many connections goes through the job queue instead (../jobs).
import type { Sql } from "../db.ts";
import { OBJECT_TYPES, type ObjectType, ProviderError } from "../providers/types.ts";
import { type Connection, errorMessage, loadConnections } from "./connections.ts";
import { createSyncContext, type Logger, type SyncContext } from "./context.ts";
import { RunTally } from "./tally.ts";
import { type InboundMode, runInbound, type RunSummary, type Trigger } from "./inbound.ts";

const ORDER: ObjectType[] = ["owners", "companies", "contacts", "deals"];

export interface InboundRequest {
  objects?: ObjectType[];
  connectionId: string;
  mode: InboundMode;
  trigger: Trigger;
  dryRun: boolean;
  deadline: number;
  /** CPU ms the request has left: at 0 no new stream or page is started (see
   * InboundOptions.cpuLeftMs). */
  cpuLeftMs?: () => number;
  pageSize?: number;
}

export interface InboundResult {
  /** Some stream stopped at the time budget (or never started): calling again continues. */
  more: boolean;
  runs: RunSummary[];
  unusable: { id: string; provider: string; reason: string }[];
}

export async function syncInbound(
  sql: Sql,
  key: CryptoKey,
  req: InboundRequest,
  log: Logger,
): Promise<InboundResult> {
  const { connections, unusable } = await loadConnections(sql, key, {
    connectionId: req.connectionId,
    activeOnly: true,
  });
  const conn = connections[0];
  if (!conn) return { more: false, runs: [], unusable };
  const runs = await syncConnection(sql, key, conn, req, log, unusable);
  return { more: runs.some((r) => r.more), runs, unusable };
}

async function syncConnection(
  sql: Sql,
  key: CryptoKey,
  conn: Connection,
  req: InboundRequest,
  log: Logger,
  unusable: InboundResult["unusable"],
): Promise<RunSummary[]> {
  const enabled = Array.isArray(conn.settings.objects)
    ? conn.settings.objects as string[]
    : [...OBJECT_TYPES];
  const objects = ORDER.filter((o) =>
    (req.objects ?? OBJECT_TYPES).includes(o) && enabled.includes(o)
  );
  const runs: RunSummary[] = [];
  let ctx;
  try {
    ctx = await createSyncContext(sql, key, conn, log, {
      lane: req.mode === "full" ? "backfill" : "delta",
    });
  } catch (e) {
    unusable.push({ id: conn.id, provider: conn.provider, reason: errorMessage(e) });
    return runs;
  }
  try {
    await syncObjects(sql, ctx, conn, objects, req, log, runs);
  } finally {
    await ctx.budget.flush();
  }
  return runs;
}

async function syncObjects(
  sql: Sql,
  ctx: SyncContext,
  conn: Connection,
  objects: ObjectType[],
  req: InboundRequest,
  log: Logger,
  runs: RunSummary[],
): Promise<void> {
  for (const object of objects) {
    if (Date.now() >= req.deadline || (req.cpuLeftMs?.() ?? Infinity) <= 0) {
      // Truthfully more: the next call starts this stream.
      runs.push(notStarted(conn, object, "time budget used up before this stream", true));
      continue;
    }
    try {
      const r = await runInbound(sql, ctx, {
        object,
        mode: req.mode,
        trigger: req.trigger,
        deadline: req.deadline,
        cpuLeftMs: req.cpuLeftMs,
        dryRun: req.dryRun,
        pageSize: req.pageSize,
      });
      runs.push(r);
      if (r.revoked) break;
    } catch (e) {
      // Database-side failures (the run could not even be opened or closed).
      log("inbound stream failed", { connection_id: conn.id, object, error: errorMessage(e) });
      runs.push({
        ...notStarted(conn, object, errorMessage(e), false),
        status: "failed",
      });
      if (e instanceof ProviderError && e.action === "revoked") break;
    }
  }
}

function notStarted(
  conn: Connection,
  object: ObjectType,
  reason: string,
  more: boolean,
): RunSummary {
  return new RunTally(conn, object, () => 0).summary(null, "skipped", { error: reason, more });
}
