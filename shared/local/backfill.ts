// The initial backfill of `npm start`: calls the sync function over HTTP through the gateway
// (service-role key, JSON body) in its direct shape, one connection per request and the
// connections concurrently, and repeats while it answers `"more": true`, keeping running totals
// per connection and object from its answers. (Without a connection id the function only
// enqueues jobs for its workers; the direct shape answers with the runs it made.)
//
// Contract of crm-sync-bidirectional this relies on:
//   200 {"ok": true, "more": bool, "runs": [{connection_id, provider, object, run_id, status,
//        processed, created, updated, unchanged, deleted, failed, api_calls, more, error?}]}
//   4xx/5xx {"error": "..."}
// Limits, by decision: a 5xx or a network error is retried 3 times with growing pauses (a
// function process can crash or hit the 150 s wall clock and be replaced), and so is an
// answer in which a stream failed (a failed run answers `more: false`: calling again starts
// it over; revoked credentials are not retried); any other failure
// ends the backfill, as do 10 answers in a row with `more` but nothing processed (a function
// that never finishes must not keep `npm start` from reaching the live status).

export const SYNC_FUNCTION = "crm-sync-bidirectional";
const COUNTS = ["processed", "created", "updated", "unchanged", "deleted", "failed", "api_calls"];
type Count = "processed" | "created" | "updated" | "unchanged" | "deleted" | "failed" | "api_calls";

export interface SyncRun extends Record<Count, number> {
  connection_id: string;
  provider: string;
  object: string;
  run_id: number | string | null;
  status: string;
  more: boolean;
  revoked?: boolean;
  error?: unknown;
}

/** Running totals of one connection and object over all answers so far. */
export interface StreamTotals extends Record<Count, number> {
  connection_id: string;
  provider: string;
  object: string;
  runs: number;
  status: string;
  more: boolean;
  error: string | null;
}

export interface BackfillProgress {
  requests: number;
  startedAt: number;
  streams: Map<string, StreamTotals>;
  /** Set while waiting to retry after a transient failure. */
  retrying: string | null;
}

export interface BackfillResult {
  outcome: "done" | "not_deployed" | "failed" | "stalled" | "aborted";
  message: string;
  progress: BackfillProgress;
}

export interface BackfillOptions {
  /** SUPABASE_URL of the stack (the gateway). */
  url: string;
  serviceRoleKey: string;
  /** The connections to backfill, concurrently (each its own sequence of requests). */
  connectionIds: string[];
  onProgress?: (p: BackfillProgress) => void | Promise<void>;
  signal?: AbortSignal;
  /** Pauses before the 1st, 2nd, 3rd retry of a transient failure. */
  retryDelaysMs?: number[];
  maxIdleAnswers?: number;
  /** Per request; a little above the gateway's 150 s wall clock. */
  requestTimeoutMs?: number;
}

function errorText(e: unknown): string {
  if (e == null) return "";
  if (typeof e === "string") return e;
  if (typeof e === "object" && "message" in e) return String((e as { message: unknown }).message);
  return JSON.stringify(e);
}

function add(progress: BackfillProgress, run: SyncRun) {
  const id = `${run.connection_id}:${run.object}`;
  const t = progress.streams.get(id) ?? {
    connection_id: run.connection_id,
    provider: run.provider,
    object: run.object,
    runs: 0,
    status: "",
    more: false,
    error: null,
    processed: 0,
    created: 0,
    updated: 0,
    unchanged: 0,
    deleted: 0,
    failed: 0,
    api_calls: 0,
  };
  for (const k of COUNTS as Count[]) t[k] += Number(run[k] ?? 0) || 0;
  t.runs++;
  t.status = String(run.status ?? "");
  t.more = run.more === true;
  t.error = run.error ? errorText(run.error) : null;
  progress.streams.set(id, t);
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });

export async function runBackfill(opts: BackfillOptions): Promise<BackfillResult> {
  const progress: BackfillProgress = {
    requests: 0,
    startedAt: Date.now(),
    streams: new Map(),
    retrying: null,
  };
  const results = await Promise.all(
    opts.connectionIds.map((id) => backfillOne(opts, id, progress)),
  );
  progress.retrying = null;
  // The first that did not finish says why; "done" only when all are.
  const worst = results.find((r) => r.outcome !== "done") ?? results[0] ??
    { outcome: "done" as const, message: "nothing to sync" };
  return { outcome: worst.outcome, message: worst.message, progress };
}

async function backfillOne(
  opts: BackfillOptions,
  connectionId: string,
  progress: BackfillProgress,
): Promise<Omit<BackfillResult, "progress">> {
  const delays = opts.retryDelaysMs ?? [2000, 5000, 10_000];
  const maxIdle = opts.maxIdleAnswers ?? 10;
  const endpoint = `${opts.url.replace(/\/$/, "")}/functions/v1/${SYNC_FUNCTION}`;
  const body = JSON.stringify({
    direction: "inbound",
    mode: "delta",
    trigger: "backfill",
    connection_id: connectionId,
  });
  const end = (outcome: BackfillResult["outcome"], message: string) => ({ outcome, message });
  let failures = 0;
  let idle = 0;
  for (;;) {
    if (opts.signal?.aborted) return end("aborted", "interrupted");
    let status = 0;
    let text = "";
    try {
      const res = await fetch(endpoint, {
        method: "POST",
        headers: {
          Authorization: `Bearer ${opts.serviceRoleKey}`,
          "Content-Type": "application/json",
        },
        body,
        signal: AbortSignal.any([
          AbortSignal.timeout(opts.requestTimeoutMs ?? 160_000),
          ...(opts.signal ? [opts.signal] : []),
        ]),
      });
      status = res.status;
      text = await res.text();
    } catch (e) {
      if (opts.signal?.aborted) return end("aborted", "interrupted");
      text = (e as Error).message;
    }
    progress.requests++;
    let json: Record<string, unknown> | null = null;
    try {
      json = JSON.parse(text);
    } catch { /* not JSON: reported below */ }

    // The gateway's own 404 (no such function) differs from a 404 the function sends.
    if (status === 404 && json?.error === undefined) {
      return end(
        "not_deployed",
        `${SYNC_FUNCTION} is not deployed yet (the gateway answered 404 for ${endpoint})`,
      );
    }
    if (status === 0 || status >= 500) {
      const why = status
        ? `HTTP ${status}: ${errorText(json?.error ?? json?.message ?? text)}`
        : text;
      if (failures < delays.length) {
        progress.retrying = `${why}; retrying in ${delays[failures] / 1000} s`;
        await opts.onProgress?.(progress);
        await sleep(delays[failures++], opts.signal);
        continue;
      }
      return end("failed", `${SYNC_FUNCTION} failed ${failures + 1} times in a row, last: ${why}`);
    }
    if (status !== 200 || !json || !Array.isArray(json.runs)) {
      const why = errorText(json?.error ?? json?.message ?? text.slice(0, 200));
      return end("failed", `${SYNC_FUNCTION} answered HTTP ${status}: ${why}`);
    }
    const runs = json.runs as SyncRun[];
    for (const run of runs) add(progress, run);
    const failed = runs.filter((r) => r.status === "failed" && r.revoked !== true);
    if (json.more !== true && failed.length > 0) {
      const why = `${failed[0].object}: ${errorText(failed[0].error) || "failed"}`;
      if (failures < delays.length) {
        progress.retrying = `a stream failed (${why}); retrying in ${delays[failures] / 1000} s`;
        await opts.onProgress?.(progress);
        await sleep(delays[failures++], opts.signal);
        continue;
      }
      return end("failed", `${failed.length} stream(s) failed ${failures + 1} times, last: ${why}`);
    }
    failures = 0;
    progress.retrying = null;
    await opts.onProgress?.(progress);
    if (json.more !== true) {
      return end("done", runs.length || progress.streams.size ? "complete" : "nothing to sync");
    }
    idle = runs.some((r) => Number(r.processed) > 0) ? 0 : idle + 1;
    if (idle >= maxIdle) {
      return end("stalled", `${maxIdle} answers in a row said "more" but processed nothing`);
    }
  }
}
