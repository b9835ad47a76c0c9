// Live reads for dashboards (crm-fetch-live): records changed within a timeframe, straight from
// the CRM through the same adapter and mapper as the sync, normalised. With persist they are
// also written through crm.save_inbound_page in mode "live", which applies them exactly as the
// sync would but moves no watermark or checkpoint (a timeframe is not a complete walk).
import type { Sql } from "../db.ts";
import type { ObjectType, RecordError } from "../providers/types.ts";
import { recordFailure } from "./connections.ts";
import type { SyncContext } from "./context.ts";
import type { RunSummary } from "./inbound.ts";
import { closeRun, preparePage, savePage } from "./runlog.ts";
import { RunTally, type Warning } from "./tally.ts";

export const TIMEFRAMES = ["today", "this_week", "this_month", "last_30_days", "all"] as const;
export type Timeframe = typeof TIMEFRAMES[number];

/** Start of the timeframe in UTC (weeks start on Monday), or null for "all". */
export function timeframeStart(tf: Timeframe, now = new Date()): Date | null {
  const day = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
  switch (tf) {
    case "today":
      return day;
    case "this_week":
      return new Date(day.getTime() - ((day.getUTCDay() + 6) % 7) * 86_400_000);
    case "this_month":
      return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
    case "last_30_days":
      return new Date(now.getTime() - 30 * 86_400_000);
    case "all":
      return null;
  }
}

export interface LiveOptions {
  object: ObjectType;
  since: Date | null;
  limit: number;
  persist: boolean;
  deadline: number;
}

export interface LiveResult {
  connection_id: string;
  provider: string;
  records: Record<string, unknown>[];
  errors: RecordError[];
  warnings: Warning[];
  more: boolean;
  api_calls: number;
  run?: RunSummary;
  error?: string;
}

export async function fetchLive(sql: Sql, ctx: SyncContext, o: LiveOptions): Promise<LiveResult> {
  const { conn, adapter, mapper } = ctx;
  const calls0 = ctx.calls();
  const out: LiveResult = {
    connection_id: conn.id,
    provider: conn.provider,
    records: [],
    errors: [],
    warnings: [],
    more: false,
    api_calls: 0,
  };
  const tally = new RunTally(conn, o.object, ctx.calls);
  let runId: number | null = null;
  if (o.persist) {
    const [{ id }] = await sql`
      select crm.open_sync_run(${conn.id}, ${o.object}, 'inbound', 'live', null,
        ${
      sql.json({ since: o.since?.toISOString() ?? null, limit: o.limit } as never)
    }::jsonb) as id`;
    runId = Number(id);
  }
  // Owners have no modified filter: "since" does not apply to them.
  const from = o.since && o.object !== "owners"
    ? { modifiedAt: o.since.toISOString(), remoteId: "" }
    : null;
  let checkpoint: unknown = null;
  try {
    for (;;) {
      const page = await adapter.changesSince(o.object, from, checkpoint, {
        pageSize: Math.min(o.limit, 500),
      });
      const mapped = page.records.map((r) => mapper.inbound(o.object, r));
      out.errors.push(...page.errors);
      for (const m of mapped) {
        out.warnings.push(...m.warnings);
        if (m.record.deleted !== true && out.records.length < o.limit) out.records.push(m.record);
      }
      if (runId !== null) {
        const target = {
          runId,
          leaseToken: null,
          connectionId: conn.id,
          object: o.object,
          mode: "live" as const,
        };
        await savePage(sql, target, tally, preparePage(page, mapped), null);
      }
      checkpoint = page.checkpoint;
      if (page.done) break;
      if (out.records.length >= o.limit || Date.now() >= o.deadline) {
        out.more = true;
        break;
      }
    }
  } catch (e) {
    out.error = (await recordFailure(sql, conn, e)).message;
  }
  out.api_calls = ctx.calls() - calls0;
  if (runId !== null) {
    const status = out.error ? "failed" : tally.failed ? "partial" : "success";
    await closeRun(sql, { runId, leaseToken: null }, status, tally, {
      message: out.error,
      more: out.more,
    });
    out.run = tally.summary(runId, status, { error: out.error, more: out.more });
  }
  return out;
}
