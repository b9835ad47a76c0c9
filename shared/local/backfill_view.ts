// How `npm start` shows the backfill: per connection and object, the records so far, the CRM's
// estimate, the rate and the ETA from crm.backfill_progress() (./backfill_progress.ts), polled
// every second while the backfill runs, whichever way it runs (the workers' jobs or requests to
// the sync function). On a terminal: one cli-progress bar per connection and object (a count
// where the CRM gives no total); through a pipe: one plain line per change. When it ends the
// bars are cleared and the final table is printed once, so it stays in the scrollback or log
// when the status view takes over.
// The renderer writes to a stream it is given (a terminal's, or a test's fake one).
// @ts-types="./cli_progress.d.ts"
import cliProgress, { type Bar, type MultiBar } from "cli-progress";
import process from "node:process";
import type postgres from "postgres";
import type { BackfillProgress, BackfillResult } from "./backfill.ts";
import { type ProgressRow, readProgress } from "./backfill_progress.ts";

interface Connection {
  id: string;
  name: string;
  provider: string;
}

/** What the renderer writes to: a terminal's stream (isTTY, columns) or any writer. */
export interface ViewStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export async function activeConnections(sql: postgres.Sql): Promise<Connection[]> {
  const rows = await sql`select id::text, coalesce(name, provider) as name, provider
                         from crm.connections where status = 'active' order by provider, name`;
  return rows.map((r) => ({ id: r.id, name: r.name, provider: r.provider }));
}

const n = (v: number) => Math.round(v).toLocaleString("en-US");

/** 4.2 s, 3m 20s, 1h 05m. */
export function duration(s: number): string {
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(Math.round(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

const key = (r: ProgressRow) => `${r.connection_id}:${r.object}`;
const label = (r: ProgressRow) =>
  `${r.connection_name.slice(0, 14).padEnd(14)} ${r.object.padEnd(9)}`;
const took = (r: ProgressRow) =>
  r.started_at && r.finished_at
    ? duration((r.finished_at.getTime() - r.started_at.getTime()) / 1000)
    : "";
const rate = (r: ProgressRow) => (r.rate === null ? "" : `${n(r.rate)}/s`);
// Whole seconds: crm.backfill_progress() rounds the ETA so.
const eta = (r: ProgressRow) =>
  r.eta_s === null ? "" : `ETA ${r.eta_s < 60 ? `${Math.round(r.eta_s)} s` : duration(r.eta_s)}`;

/** A walk that ended has read what there was: its total is its count. */
function barTotal(r: ProgressRow): number | null {
  if (r.state === "done") return r.records;
  return r.estimated_total === null ? null : Math.max(r.estimated_total, r.records);
}

function stateText(r: ProgressRow): string {
  const error = r.last_error ? `: ${r.last_error.replace(/\s+/g, " ").slice(0, 60)}` : "";
  if (r.state === "done") return `done in ${took(r)}`;
  if (r.state === "failed") return `failed${error}`;
  if (r.state === "running" && error) return `retrying${error}`;
  return r.state;
}

/** One line of a pipe's log: what a stream reached. */
export function progressLine(r: ProgressRow): string {
  const total = barTotal(r);
  const count = total === null
    ? `${n(r.records)} records`
    : `${n(r.records)}/${n(total)} (${total ? Math.floor((r.records / total) * 100) : 100}%)`;
  const pace = r.state === "running" ? [rate(r), eta(r)].filter(Boolean).join(" ") : "";
  return [`backfill: ${r.connection_name} ${r.object}`, stateText(r), count, pace]
    .filter(Boolean).join(" ");
}

/** The final table, printed once when the backfill ends. */
export function progressTable(rows: ProgressRow[]): string[] {
  const head = `  ${"connection".padEnd(14)} ${"object".padEnd(9)} ${"state".padEnd(8)} ${
    "records".padStart(9)
  } ${"estimate".padStart(9)} ${"rate".padStart(9)} ${"took".padStart(8)}`;
  return [
    head,
    ...rows.map((r) =>
      `  ${label(r)} ${r.state.padEnd(8)} ${n(r.records).padStart(9)} ${
        (r.estimated_total === null ? "-" : n(r.estimated_total)).padStart(9)
      } ${rate(r).padStart(9)} ${took(r).padStart(8)}${
        r.last_error ? `  ${r.last_error.replace(/\s+/g, " ").slice(0, 60)}` : ""
      }`
    ),
  ];
}

// The bar's lines, within 80 columns: a bar when there is a total, a count when the CRM gives
// none (Pipedrive). A running stream's bar needs no state beside it.
const WITH_TOTAL = "  {label} {bar} {percentage}% {count} {pace} {state}";
const COUNT_ONLY = "  {label} {count} {pace} {state}";

interface Payload {
  label: string;
  count: string;
  pace: string;
  state: string;
  hasTotal: boolean;
}

export interface ProgressRenderer {
  /** Draws the rows (a terminal) or prints a line per stream that changed (a pipe). */
  update(rows: ProgressRow[], note?: string | null): void;
  /** Clears the bars and prints the final table and the summary line. */
  end(rows: ProgressRow[], summary: string): void;
  /** Stops drawing at once and for good (the stack is stopping): whatever was printed below the
   * bars meanwhile (its shutdown messages) stays; the bars are not redrawn nor cleared. */
  halt(): void;
}

export function progressRenderer(o: { stream: ViewStream; tty: boolean }): ProgressRenderer {
  const line = (s: string) => o.stream.write(s + "\n");
  const printed = new Map<string, string>();
  let lastNote: string | null = null;
  let multi: MultiBar<Payload> | null = null;
  let halted = false;
  const bars = new Map<string, Bar<Payload>>();

  const payload = (r: ProgressRow): Payload => ({
    label: label(r),
    count: barTotal(r) === null
      ? `${n(r.records).padStart(7)} records`
      : `${n(r.records)}/${n(barTotal(r)!)}`,
    pace: r.state === "running" ? [rate(r), eta(r)].filter(Boolean).join(" ") : "",
    state: r.state === "running" && !r.last_error ? "" : stateText(r),
    hasTotal: barTotal(r) !== null,
  });

  // What cli-progress writes to: muted once halted, so that stopping it moves no cursor.
  const terminal: ViewStream = {
    write: (s) => halted || o.stream.write(s),
    isTTY: o.stream.isTTY,
    get columns() {
      return o.stream.columns;
    },
  };

  const drawOnTerminal = (rows: ProgressRow[], note: string | null) => {
    multi ??= new cliProgress.MultiBar<Payload>({
      stream: terminal,
      // The stack's own Ctrl-C handling stops the stack; the bars only draw.
      gracefulExit: false,
      hideCursor: false,
      // The library trims lines to the terminal's width itself; false would switch the
      // terminal's line wrapping off, and a process killed mid-backfill would leave it off.
      linewrap: true,
      clearOnComplete: true,
      barsize: 16,
      barCompleteChar: "\u2588",
      barIncompleteChar: "\u2591",
      // Redrawn when the rows change (below), not on the library's timer alone.
      throttleTime: 1000,
      format: (options, params, p) =>
        cliProgress.Format.Formatter(
          { ...options, format: p.hasTotal ? WITH_TOTAL : COUNT_ONLY },
          params,
          p,
        ),
    });
    if (note && note !== lastNote) multi.log(`${note}\n`);
    for (const r of rows) {
      const total = barTotal(r) ?? Math.max(r.records, 1);
      const bar = bars.get(key(r));
      if (bar) {
        bar.setTotal(Math.max(total, 1));
        bar.update(r.records, payload(r));
      } else {
        bars.set(key(r), multi.create(Math.max(total, 1), r.records, payload(r)));
      }
    }
    multi.update();
  };

  const printChanges = (rows: ProgressRow[], note: string | null) => {
    if (note && note !== lastNote) line(`backfill: ${note}`);
    for (const r of rows) {
      const seen = `${r.state}|${r.records}|${r.estimated_total}|${r.last_error}`;
      if (printed.get(key(r)) === seen) continue;
      printed.set(key(r), seen);
      line(progressLine(r));
    }
  };

  const halt = () => {
    halted = true;
    multi?.stop();
    multi = null;
  };
  return {
    update(rows, note = null) {
      if (halted) return;
      if (o.tty) drawOnTerminal(rows, note);
      else printChanges(rows, note);
      lastNote = note;
    },
    halt,
    end(rows, summary) {
      // Cleared (clearOnComplete) unless halted already.
      multi?.stop();
      multi = null;
      halted = true;
      if (rows.length) {
        line("");
        for (const l of progressTable(rows)) line(l);
      }
      line(summary);
    },
  };
}

export function backfillSummary(r: BackfillResult): string {
  const total = [...r.progress.streams.values()].reduce((a, s) => a + s.processed, 0);
  const failed = [...r.progress.streams.values()].reduce((a, s) => a + s.failed, 0);
  const secs = ((Date.now() - r.progress.startedAt) / 1000).toFixed(1);
  const took = `${secs} s, ${r.progress.requests} request(s)`;
  switch (r.outcome) {
    case "done":
      return `backfill done: ${n(total)} records processed${
        failed ? `, ${n(failed)} failed` : ""
      } in ${took}`;
    case "not_deployed":
      return `backfill skipped: ${r.message}`;
    default:
      return `backfill ${r.outcome} after ${n(total)} records (${took}): ${r.message}`;
  }
}

/** Follows the connections' backfill in crm.backfill_progress() until finish(): onProgress (the
 * backfill's own callback) redraws at once, a timer every `pollMs` in between. `signal` (the
 * stack's shutdown) halts the drawing at once, before the shutdown prints anything. */
export function backfillView(
  sql: postgres.Sql,
  conns: Connection[],
  o: { stream?: ViewStream; tty?: boolean; pollMs?: number; signal?: AbortSignal } = {},
) {
  const view = progressRenderer({
    stream: o.stream ?? process.stdout,
    tty: o.tty ?? Deno.stdout.isTerminal(),
  });
  const ids = conns.map((c) => c.id);
  let retrying: string | null = null;
  let reading: Promise<void> | null = null;
  // A read that fails means the stack is stopping: the bars stop for good, so that they do not
  // redraw over its shutdown messages.
  const refresh = () =>
    reading ??= readProgress(sql, ids)
      .then((rows) => view.update(rows, retrying), () => {
        clearInterval(timer);
        view.halt();
      })
      .finally(() => reading = null);
  const timer = setInterval(refresh, o.pollMs ?? 1000);
  Deno.unrefTimer(timer);
  o.signal?.addEventListener("abort", () => {
    clearInterval(timer);
    view.halt();
  }, { once: true });
  return {
    async onProgress(p: BackfillProgress) {
      retrying = p.retrying;
      await refresh();
    },
    async finish(r: BackfillResult) {
      clearInterval(timer);
      await reading;
      const rows = r.outcome === "not_deployed" ? [] : await readProgress(sql, ids).catch(() => []);
      view.end(rows, backfillSummary(r));
    },
  };
}
