// Draws ./status_data.ts's model: on a terminal, one screen that fits 80×24 (one line per
// connection and object, current errors only, the next cron runs); through a pipe, one line per
// change (changedLines). Pure: the same model and options give the same text.
import type { ConnectionStatus, StatusModel, StreamStatus } from "./status_data.ts";

export interface RenderOptions {
  width?: number;
  height?: number;
  /** Lines under the title (e.g. how the backfill went). */
  notes?: string[];
  /** Service name → running. */
  services?: Record<string, boolean>;
  /** The "try it" lines, shown under the table once the backfill is done. */
  tryIt?: string[];
}

const n = (v: number | null) => v == null ? "-" : v.toLocaleString("en-US");
const hms = (d: Date) => d.toISOString().slice(11, 19);
const hm = (d: Date) => d.toISOString().slice(11, 16);

/** Compact for the table's narrow cells: 2.5s, 45s, 12m, 3h. */
function shortDuration(s: number | null): string {
  if (s == null) return "-";
  if (s < 10) return `${s.toFixed(1)}s`;
  if (s < 120) return `${Math.round(s)}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  return `${Math.round(s / 3600)}h`;
}

const RUN_WORD: Record<string, string> = {
  success: "ok",
  partial: "part",
  failed: "FAIL",
  running: "run",
};

function runCell(s: StreamStatus): string {
  if (!s.enabled) return "off";
  if (!s.run) return "never";
  const word = RUN_WORD[s.run.status] ?? s.run.status;
  return s.run.status === "running" ? word : `${word} ${hm(s.run.at)}`;
}

/** The connection's webhook inbox: waiting events and the oldest's age, else the recent p50. */
function webhookCell(c: ConnectionStatus | undefined): string {
  if (!c) return "";
  if (c.inboxPending > 0) return `${n(c.inboxPending)}·${shortDuration(c.inboxOldestS)}`;
  return c.webhookP50S == null ? "-" : `p50 ${shortDuration(c.webhookP50S)}`;
}

function clip(s: string, w: number): string {
  return s.length <= w ? s : s.slice(0, Math.max(0, w - 1)) + "…";
}

const COLS = { conn: 10, object: 9, rows: 7, inbound: 10, out: 4, dead: 4, hooks: 8 };

function tableHeader(width: number): string {
  const c = COLS;
  return clip(
    `${"connection".padEnd(c.conn)} ${"object".padEnd(c.object)} ${"rows".padStart(c.rows)}  ${
      "inbound".padEnd(c.inbound)
    } ${"out".padStart(c.out)} ${"dead".padStart(c.dead)}  ${"webhooks".padEnd(c.hooks)} errors`,
    width,
  );
}

const shortName = (c: { connection?: string; name?: string; provider: string }) => {
  const name = c.connection ?? c.name ?? c.provider;
  return name.length <= COLS.conn ? name : c.provider;
};

/** One table line per stream; the connection's name and webhook cell on its first line. */
function streamLines(m: StatusModel, width: number): { lines: string[]; details: string[] } {
  const lines: string[] = [];
  const details: string[] = [];
  const byId = new Map(m.connections.map((c) => [c.id, c]));
  let current = "";
  for (const s of m.streams) {
    const first = s.connectionId !== current;
    current = s.connectionId;
    const conn = byId.get(s.connectionId);
    const errors = [
      ...s.errors,
      ...(first ? conn?.outboundErrors.map((e) => `push: ${e}`) ?? [] : []),
    ];
    const c = COLS;
    const fixed = `${(first ? shortName(s) : "").padEnd(c.conn)} ${s.object.padEnd(c.object)} ${
      n(s.records).padStart(c.rows)
    }  ${runCell(s).padEnd(c.inbound)} ${n(s.outboxPending).padStart(c.out)} ${
      n(s.dead).padStart(c.dead)
    }  ${(first ? webhookCell(conn) : "").padEnd(c.hooks)} `;
    const room = Math.max(1, width - fixed.length);
    lines.push(fixed + (errors.length ? clip(errors.join("; "), room) : "-"));
    if (errors.length && errors.join("; ").length > room) {
      details.push(`  ${shortName(s)} ${s.object}: ${errors.join("; ")}`);
    }
  }
  return { lines, details };
}

/** The stack's processes (stack.ts SERVICES) as the README names them. */
const SERVICE_NAMES: Record<string, string> = {
  emulators: "sandboxes",
  pg_net_worker: "pg_net",
};

function serviceLine(m: StatusModel, o: RenderOptions): string {
  const all = Object.entries(o.services ?? {});
  const procs = all.map(([k, up]) => `${SERVICE_NAMES[k] ?? k} ${up ? "✓" : "DOWN"}`);
  const calls = `calls ${n(m.net.queued)} queued, ${n(m.net.lastHour)}/h, ${
    n(m.net.failed)
  } failed`;
  return `services ${[procs.join(" "), calls].filter(Boolean).join(" · ")}`;
}

function engineLine(m: StatusModel): string {
  const e = m.engine;
  if (!e) return "jobs     (crm.engine_status() not installed)";
  const oldest = e.oldestDueS == null ? "" : ` · oldest due ${shortDuration(e.oldestDueS)}`;
  return `jobs     workers ${e.liveWorkers}/${e.maxWorkers} · ${n(e.due)} due · ${
    n(e.running)
  } running · ${n(e.waiting)} waiting · ${n(e.dead)} dead${oldest}`;
}

/** The soonest cron runs, and any job whose latest run failed. */
function cronLine(m: StatusModel, width: number): string {
  const failed = m.cron.filter((j) => j.last && j.last.status === "failed").map((j) => j.name);
  const next = m.cron.filter((j) => j.next).sort((a, b) => +a.next! - +b.next!);
  const parts = next.map((j) => `${j.name.replace(/^crm-/, "")} ${hm(j.next!)}`);
  const tail = failed.length ? ` · FAILED last: ${failed.join(", ")}` : "";
  let line = "cron     next ";
  for (const [i, p] of parts.entries()) {
    const more = parts.length - i - 1;
    const candidate = `${line}${i ? " · " : ""}${p}`;
    if ((candidate + (more ? ` (+${more})` : "") + tail).length > width) {
      line += ` (+${parts.length - i})`;
      break;
    }
    line = candidate;
  }
  return clip(line + tail, width);
}

/** The screen: at most `height` lines of at most `width` characters. */
export function renderScreen(m: StatusModel, o: RenderOptions = {}): string[] {
  const width = o.width ?? 80;
  const height = o.height ?? 24;
  const head = [
    clip(`crm-sync · local stack · ${hms(m.at)} UTC · Ctrl-C stops everything`, width),
    ...(o.notes ?? []).map((l) => clip(l, width)),
    clip(serviceLine(m, o), width),
    clip(engineLine(m), width),
    cronLine(m, width),
    "",
  ];
  const { lines, details } = streamLines(m, width);
  const table = m.streams.length
    ? [tableHeader(width), ...lines]
    : ["no connections (npm start connects the sandboxes; see README)"];
  const tryIt = o.tryIt?.length ? ["", ...o.tryIt.map((l) => clip(l, width))] : [];
  const room = height - head.length - tryIt.length;
  let body = table;
  if (body.length > room) {
    const keep = Math.max(1, room - 1);
    body = [
      ...table.slice(0, keep),
      `… ${table.length - keep} more: select * from crm.sync_status()`,
    ];
  }
  const spare = height - head.length - body.length - tryIt.length;
  const shown = details.map((d) => clip(d, width)).slice(0, Math.max(0, spare));
  return [...head, ...body, ...shown, ...tryIt].slice(0, height);
}

/** Keyed one-line facts for a pipe: a line is printed when its text changes. */
export function factLines(m: StatusModel, o: RenderOptions = {}): Map<string, string> {
  const facts = new Map<string, string>();
  for (const [k, up] of Object.entries(o.services ?? {})) {
    facts.set(`service ${k}`, `${SERVICE_NAMES[k] ?? k} ${up ? "up" : "DOWN"}`);
  }
  facts.set("jobs", engineLine(m).replace(/^jobs\s+/, "jobs: ").replace(/ · oldest due .*$/, ""));
  facts.set("pg_net", `pg_net: ${n(m.net.failed)} failed call(s) in the last hour`);
  for (const j of m.cron) {
    facts.set(`cron ${j.name}`, `cron ${j.name}: last ${j.last?.status ?? "not run yet"}`);
  }
  const byId = new Map(m.connections.map((c) => [c.id, c]));
  for (const c of m.connections) {
    facts.set(
      `hooks ${c.id}`,
      `${shortName(c)} webhooks: ${n(c.inboxPending)} waiting${
        c.outboundErrors.length ? ` · push errors: ${c.outboundErrors.join("; ")}` : ""
      }`,
    );
  }
  for (const s of m.streams) {
    const conn = byId.get(s.connectionId);
    facts.set(
      `stream ${s.connectionId} ${s.object}`,
      `${shortName(conn ?? s)} ${s.object}: ${n(s.records)} rows · inbound ${runCell(s)} · out ${
        n(s.outboxPending)
      } · dead ${n(s.dead)} · errors ${s.errors.length ? s.errors.join("; ") : "-"}`,
    );
  }
  return facts;
}

/** The facts that are new or changed since `before`, each stamped with the model's time. */
export function changedLines(
  before: Map<string, string>,
  after: Map<string, string>,
  at: Date,
): string[] {
  const out: string[] = [];
  for (const [k, v] of after) if (before.get(k) !== v) out.push(`${hms(at)} ${v}`);
  for (const k of before.keys()) if (!after.has(k)) out.push(`${hms(at)} gone: ${before.get(k)}`);
  return out;
}
