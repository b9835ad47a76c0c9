// The naive baseline, run from the bench process as the seeds ran from theirs: one request per
// page of 100 records on the provider's plain list endpoint (./naive_pages.ts), sequential,
// and one INSERT per row — each its own autocommit transaction — into a plain table with the
// same canonical columns.
// Decisions, so the comparison is about paging and writing and nothing else:
// * Records are mapped with the engine's own mapper and the connection's field mappings, so
//   both sides produce the same canonical rows; the mapping time is reported on its own.
// * The connection's raised pacing applies (it never waits): nothing here is slower than the
//   description. postgres.js prepares the INSERT once and reuses it.
// * It may stop after a prefix (`limit` records) and the report extrapolates its rate;
//   bench.naive_contacts and its schema are dropped afterwards.
import type postgres from "postgres";
import { createMapper } from "../../supabase/functions/_shared/mapping/mapper.ts";
import type { RemoteRecord } from "../../supabase/functions/_shared/providers/types.ts";
import { createRateGate, limitsFor } from "../../supabase/functions/_shared/sync/limits.ts";
import { naivePages } from "./naive_pages.ts";
import { cpuSince } from "./procstat.ts";
import type { SandboxInfo } from "./sandboxes.ts";

export interface BaselineResult {
  records: number;
  pages: number;
  wallMs: number;
  fetchMs: number;
  mapMs: number;
  insertMs: number;
  cpuMs: { bench: number; pg: number; sandbox: number };
}

/** A plain table (no keys, checks, triggers unless `constraint` adds one) named bench.<name>,
 * with the given crm.contacts columns and types; returns the columns it has, in table order. */
export async function createTable(
  sql: postgres.Sql,
  name: string,
  columns: string[],
  constraint = "",
): Promise<string[]> {
  const types = await sql`
    select attname, format_type(atttypid, atttypmod) as type from pg_attribute
    where attrelid = 'crm.contacts'::regclass and attnum > 0 and not attisdropped
      and attname = any(${columns})
    order by attnum`;
  await sql`create schema if not exists bench`;
  await sql.unsafe(`drop table if exists bench.${name}`);
  await sql.unsafe(
    `create table bench.${name} (${
      [...types.map((t) => `"${t.attname}" ${t.type}`), ...(constraint ? [constraint] : [])]
        .join(", ")
    })`,
  );
  return types.map((t) => t.attname as string);
}

/** The engine's mapper for the connection, and the canonical contacts columns its inbound
 * mappings fill (plus the keys every row has), so a baseline writes what the engine writes. */
export async function baselineMapping(sql: postgres.Sql, provider: string, connectionId: string) {
  const mappings = await sql`select * from crm.effective_field_mappings(${connectionId})`;
  const mapper = createMapper(provider as never, [...mappings], { defaultRegion: "US" });
  const mapped = mappings
    .filter((m) =>
      m.object === "contacts" && m.enabled && m.direction !== "outbound" &&
      !String(m.column_name).startsWith("custom.")
    )
    .map((m) => m.column_name as string);
  const wanted = ["connection_id", "remote_id", "remote_updated_at", "kind", ...new Set(mapped)];
  return { mapper, wanted };
}

/** One page mapped into rows of `columns` (contacts' canonical values are strings or null,
 * timestamps as ISO text). */
export function mapRows(
  mapper: ReturnType<typeof createMapper>,
  page: RemoteRecord[],
  columns: string[],
  connectionId: string,
): Record<string, string | null>[] {
  return page.map((rec) => {
    const out = mapper.inbound("contacts", rec).record;
    return Object.fromEntries(
      columns.map((c) => [c, c === "connection_id" ? connectionId : (out[c] ?? null) as string]),
    );
  });
}

export async function runBaseline(
  sql: postgres.Sql,
  pgData: string,
  sb: SandboxInfo & { pid: number },
  connectionId: string,
  settings: Record<string, unknown>,
  limit: number,
): Promise<BaselineResult> {
  const { mapper, wanted } = await baselineMapping(sql, sb.provider, connectionId);
  const columns = await createTable(sql, "naive_contacts", wanted);
  const pages = await naivePages(sb, mapper.fields(), limit);
  const gate = createRateGate(limitsFor(sb.provider, settings));
  const r = { records: 0, pages: 0, fetchMs: 0, mapMs: 0, insertMs: 0 };

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
    const rows = mapRows(mapper, page, columns, connectionId);
    const i0 = performance.now();
    r.mapMs += i0 - m0;
    for (const row of rows) await sql`insert into bench.naive_contacts ${sql(row, columns)}`;
    r.insertMs += performance.now() - i0;
    r.records += rows.length;
  }
  const wallMs = performance.now() - t0;
  const cpu = cpuUsed();
  await dropChecked(sql, "naive_contacts", r.records, "baseline wrote");
  return { ...r, wallMs, cpuMs: cpu };
}

/** Drops a baseline's table and schema once it holds one row per record it wrote. */
export async function dropChecked(
  sql: postgres.Sql,
  table: string,
  records: number,
  what: string,
): Promise<void> {
  const [{ n }] = await sql`select count(*)::int as n from ${sql("bench")}.${sql(table)}`;
  if (n !== records) throw new Error(`${what} ${n} rows for ${records} records`);
  await sql`drop table ${sql("bench")}.${sql(table)}`;
  await sql`drop schema bench`;
}
