// Live reads for dashboards (crm-fetch-live): records changed within a timeframe, straight from
// the CRM through the same adapter and mapper as the sync, normalised. With persist they are
// also written through crm.save_inbound_page in mode "live", which applies them exactly as the
// sync would but moves no watermark or checkpoint (a timeframe is not a complete walk).
// Pages are read by the walk's own reader and feed (./walk.ts, ./feed.ts): the same budgeted
// adapter calls, mapping and fetch-ahead; only what is done with each page differs. The context
// given should take the 'interactive' lane of the shared rate budget (crm-fetch-live does), so a
// live read waits for no delta or backfill of the same account.
import type { Sql } from "../db.ts";
import type { ObjectType, RecordError } from "../providers/types.ts";
import { recordFailure } from "./connections.ts";
import type { SyncContext } from "./context.ts";
import type { RunSummary } from "./inbound.ts";
import { PageFeed } from "./feed.ts";
import { closeRun, mergePages, type PageTarget, savePage } from "./runlog.ts";
import { RunTally, type Warning } from "./tally.ts";
import { pageReader } from "./walk.ts";

/** Largest page asked of the CRM (each adapter caps it at its own maximum). */
const LIVE_PAGE = 500;

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
  // Objects without a modified filter (adapter.capabilities.alwaysFull) ignore "since".
  const from = o.since && !adapter.capabilities.alwaysFull.includes(o.object)
    ? { modifiedAt: o.since.toISOString(), remoteId: "" }
    : null;
  const readPage = pageReader(adapter, mapper, o.object, from, {
    pageSize: Math.min(o.limit, LIVE_PAGE),
    deadline: o.deadline,
  });
  // Counted as fetched (not as handed over), so no page past the limit is asked for.
  let fetched = 0;
  const read = async (cp: unknown) => {
    const page = await readPage(cp);
    fetched += page.count;
    return page;
  };
  const target: PageTarget | null = runId === null ? null : {
    runId,
    leaseToken: null,
    connectionId: conn.id,
    object: o.object,
    mode: "live",
  };
  const feed = new PageFeed(read, null, {
    batchRecords: LIVE_PAGE,
    maxAhead: LIVE_PAGE,
    mayFetch: () => fetched < o.limit && Date.now() < o.deadline,
    merge: mergePages,
  });
  try {
    for (let page = await feed.next(); page; page = await feed.next()) {
      out.errors.push(...page.errors);
      out.warnings.push(...page.warnings);
      for (const record of JSON.parse(page.json) as Record<string, unknown>[]) {
        if (record.deleted !== true && out.records.length < o.limit) out.records.push(record);
      }
      if (target) await savePage(sql, target, tally, page, null);
      if (page.done) break;
      if (out.records.length >= o.limit || Date.now() >= o.deadline) {
        out.more = true;
        break;
      }
    }
    feed.stop();
  } catch (e) {
    feed.stop();
    out.error = (await recordFailure(sql, conn, e)).message;
  }
  out.api_calls = ctx.calls() - calls0;
  // What the CRM said about its limits reaches the shared budget before the request ends.
  await ctx.budget.flush();
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
