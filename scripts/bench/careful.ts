// The careful baseline (issue 10): what a careful hand-written sync does, measured in the same
// run over the same records as the naive one — the provider's plain list endpoint
// (./naive_pages.ts) at its largest page (HubSpot's list 100, a SOQL query 2,000), sequential,
// and every 100 records ONE multi-row upsert
//   insert … select … from json_populate_recordset(…) on conflict (connection_id, remote_id)
//   do update set …
// in its own autocommit transaction: the statement PostgREST runs for supabase-js
// `upsert(rows)`, sent here straight to Postgres (no HTTP hop, which flatters the baseline).
// Decisions:
// * Salesforce is read 2,000 at a time because a careful engineer would, and because the
//   sandbox's keyset query costs about the same per call at 100 as at 2,000 (~25 ms of
//   sandbox CPU each): pages of 100 measured the sandbox (26 of 30 s), not the write.
// * Same mapper, mappings, columns and raised pacing as the naive baseline (./baseline.ts), so
//   the two baselines differ only in how they write; the table has the unique key the upsert
//   needs and nothing else (no triggers, foreign keys, sync state or conflict handling).
// * It walks every record the plain list returns (no prefix: at one statement per 100 records
//   it is fast enough), then drops bench.careful_contacts.
// * Fetch and write do not overlap, as in a plain loop; the report shows each part.
import type postgres from "postgres";
import { createRateGate, limitsFor } from "../../supabase/functions/_shared/sync/limits.ts";
import { baselineMapping, createTable, dropChecked, mapRows } from "./baseline.ts";
import { HUBSPOT_LIST_PAGE, SALESFORCE_QUERY_PAGE } from "./ceiling.ts";
import { NAIVE_PAGE, naivePages } from "./naive_pages.ts";
import { cpuSince } from "./procstat.ts";
import type { SandboxInfo } from "./sandboxes.ts";

/** Records per call of the plain list endpoint: the most each allows. */
export const CAREFUL_FETCH = {
  hubspot: HUBSPOT_LIST_PAGE,
  salesforce: SALESFORCE_QUERY_PAGE,
} as const;
/** Records per upsert statement. */
export const CAREFUL_UPSERT = NAIVE_PAGE;

export interface CarefulResult {
  records: number;
  /** Calls to the provider. */
  pages: number;
  upserts: number;
  wallMs: number;
  fetchMs: number;
  mapMs: number;
  upsertMs: number;
  cpuMs: { bench: number; pg: number; sandbox: number };
}

function upsertStatement(columns: string[]): string {
  const cols = columns.map((c) => `"${c}"`).join(", ");
  const set = columns
    .filter((c) => c !== "connection_id" && c !== "remote_id")
    .map((c) => `"${c}" = excluded."${c}"`).join(", ");
  return `insert into bench.careful_contacts (${cols})
          select ${cols} from json_populate_recordset(null::bench.careful_contacts, $1::text::json)
          on conflict (connection_id, remote_id) do update set ${set}`;
}

export async function runCareful(
  sql: postgres.Sql,
  pgData: string,
  sb: SandboxInfo & { pid: number },
  connectionId: string,
  settings: Record<string, unknown>,
): Promise<CarefulResult> {
  const { mapper, wanted } = await baselineMapping(sql, sb.provider, connectionId);
  const columns = await createTable(
    sql,
    "careful_contacts",
    wanted,
    "unique (connection_id, remote_id)",
  );
  const statement = upsertStatement(columns);
  const fetchSize = CAREFUL_FETCH[sb.provider as keyof typeof CAREFUL_FETCH] ?? NAIVE_PAGE;
  const pages = await naivePages(sb, mapper.fields(), Number.MAX_SAFE_INTEGER, fetchSize);
  const gate = createRateGate(limitsFor(sb.provider, settings));
  const r = { records: 0, pages: 0, upserts: 0, fetchMs: 0, mapMs: 0, upsertMs: 0 };

  const cpuUsed = cpuSince(pgData, sb.pid);
  const t0 = performance.now();
  for (;;) {
    const f0 = performance.now();
    await gate("default");
    const page = await pages.next();
    const m0 = performance.now();
    r.fetchMs += m0 - f0;
    if (page === null) break;
    r.pages++;
    for (let i = 0; i < page.length; i += CAREFUL_UPSERT) {
      const c0 = performance.now();
      const chunk = page.slice(i, i + CAREFUL_UPSERT);
      const body = JSON.stringify(mapRows(mapper, chunk, columns, connectionId));
      const u0 = performance.now();
      r.mapMs += u0 - c0;
      await sql.unsafe(statement, [body]);
      r.upsertMs += performance.now() - u0;
      r.upserts++;
      r.records += chunk.length;
    }
  }
  const wallMs = performance.now() - t0;
  const cpu = cpuUsed();
  await dropChecked(sql, "careful_contacts", r.records, "careful baseline holds");
  return { ...r, wallMs, cpuMs: cpu };
}
