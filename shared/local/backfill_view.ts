// How `npm start` shows the backfill while it runs: per connection and object, the running
// totals from the sync function's answers next to the rows now in Postgres. On a terminal the
// table is redrawn in place after every answer; in a log, one line per answer and the table once
// at the end.
import type postgres from "postgres";
import type { BackfillProgress, BackfillResult, StreamTotals } from "./backfill.ts";

const CLEAR = "\x1b[2J\x1b[H";
const OBJECTS = ["contacts", "companies", "deals", "owners"];

interface Connection {
  id: string;
  name: string;
  provider: string;
}

/** Rows per connection and object in the crm tables, tombstones excluded. */
async function rowCounts(sql: postgres.Sql): Promise<Map<string, number>> {
  const rows = await sql`
    select connection_id::text, 'contacts' as object, count(*)::int as n from crm.contacts
      where deleted_at is null group by 1
    union all select connection_id::text, 'companies', count(*)::int from crm.companies
      where deleted_at is null group by 1
    union all select connection_id::text, 'deals', count(*)::int from crm.deals
      where deleted_at is null group by 1
    union all select connection_id::text, 'owners', count(*)::int from crm.owners
      where deleted_at is null group by 1`;
  return new Map(rows.map((r) => [`${r.connection_id}:${r.object}`, r.n as number]));
}

export async function activeConnections(sql: postgres.Sql): Promise<Connection[]> {
  const rows = await sql`select id::text, coalesce(name, provider) as name, provider
                         from crm.connections where status = 'active' order by provider, name`;
  return rows.map((r) => ({ id: r.id, name: r.name, provider: r.provider }));
}

const n = (v: number) => v.toLocaleString("en-US");
const secs = (p: BackfillProgress) => ((Date.now() - p.startedAt) / 1000).toFixed(1);

function table(p: BackfillProgress, conns: Connection[], counts: Map<string, number>): string[] {
  const head = ["connection", "object", "processed", "created", "updated", "deleted", "failed"]
    .map((h, i) => i < 2 ? h.padEnd(i ? 10 : 20) : h.padStart(9)).join(" ");
  const lines = [`  ${head} ${"api calls".padStart(9)} ${"in postgres".padStart(11)}`];
  const known = new Set(conns.map((c) => c.id));
  const streams = [...p.streams.values()];
  // Connections the answers named but that are not active (any more) still get their rows.
  const all = [
    ...conns,
    ...streams.filter((s) => !known.has(s.connection_id))
      .map((s) => ({ id: s.connection_id, name: s.provider, provider: s.provider })),
  ].filter((c, i, a) => a.findIndex((x) => x.id === c.id) === i);
  for (const c of all) {
    for (const object of OBJECTS) {
      const t: Partial<StreamTotals> = p.streams.get(`${c.id}:${object}`) ?? {};
      const cells = [t.processed, t.created, t.updated, t.deleted, t.failed, t.api_calls]
        .map((v) => (v === undefined ? "-" : n(v)).padStart(9));
      const state = t.runs === undefined ? "waiting" : t.more ? "more…" : t.status || "done";
      lines.push(
        `  ${c.name.slice(0, 20).padEnd(20)} ${object.padEnd(10)} ${cells.join(" ")} ${
          n(counts.get(`${c.id}:${object}`) ?? 0).padStart(11)
        }  ${state}${t.error ? `: ${t.error.slice(0, 60)}` : ""}`,
      );
    }
  }
  return lines;
}

export function backfillSummary(r: BackfillResult): string {
  const total = [...r.progress.streams.values()].reduce((a, s) => a + s.processed, 0);
  const failed = [...r.progress.streams.values()].reduce((a, s) => a + s.failed, 0);
  const took = `${secs(r.progress)} s, ${r.progress.requests} request(s)`;
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

/** Returns an onProgress callback for runBackfill and a function that prints the end. */
export function backfillView(sql: postgres.Sql, conns: Connection[]) {
  const tty = Deno.stdout.isTerminal();
  const out = (s: string) => Deno.stdout.write(new TextEncoder().encode(s + "\n"));
  let last = new Map<string, number>();
  const render = async (p: BackfillProgress) => {
    last = await rowCounts(sql).catch(() => last);
    const head = `backfill (inbound delta through the gateway) — ${p.requests} request(s), ${
      secs(p)
    } s${p.retrying ? ` — ${p.retrying}` : ""}`;
    return [head, "", ...table(p, conns, last)].join("\n");
  };
  return {
    async onProgress(p: BackfillProgress) {
      if (tty) {
        await out(CLEAR + await render(p));
        return;
      }
      const processed = [...p.streams.values()].reduce((a, s) => a + s.processed, 0);
      await out(
        `backfill: request ${p.requests}, ${n(processed)} records processed, ${secs(p)} s` +
          (p.retrying ? ` — ${p.retrying}` : ""),
      );
    },
    async finish(r: BackfillResult) {
      if (r.progress.requests > 0 && r.outcome !== "not_deployed") {
        await out((tty ? CLEAR : "") + await render(r.progress));
      }
      await out(backfillSummary(r));
    },
  };
}
