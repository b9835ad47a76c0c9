// Where the engine's time goes, measured apart from the backfill: the engine's own adapter
// (same SDK, page size, fields and raised pacing) walks the first `limit` contacts in the bench
// process without writing anything, and the engine's mapper maps them. Sequential, with no
// prefetch, so fetch and mapping cost per record are read off directly; the backfill's SQL
// share comes from pg_stat_user_functions (./engine_run.ts).
import type postgres from "postgres";
import { connectionCredentials } from "../../shared/local/connections.ts";
import { createMapper } from "../../supabase/functions/_shared/mapping/mapper.ts";
import { createAdapter } from "../../supabase/functions/_shared/providers/registry.ts";
import type { RemoteRecord } from "../../supabase/functions/_shared/providers/types.ts";
import { createRateGate, limitsFor } from "../../supabase/functions/_shared/sync/limits.ts";
import type { SandboxInfo } from "./sandboxes.ts";

export interface ProbeResult {
  records: number;
  pages: number;
  calls: number;
  fetchMs: number;
  mapMs: number;
  /** Size of the mapped page as the engine sends it to crm.save_inbound_page, bytes/record. */
  jsonBytesPerRecord: number;
}

export async function probeAdapter(
  sql: postgres.Sql,
  sb: SandboxInfo,
  connectionId: string,
  settings: Record<string, unknown>,
  limit: number,
): Promise<ProbeResult> {
  const mappings = await sql`select * from crm.effective_field_mappings(${connectionId})`;
  const mapper = createMapper(sb.provider, [...mappings], { defaultRegion: "US" });
  let calls = 0;
  const adapter = await createAdapter(sb.provider, {
    baseUrl: sb.url,
    credentials: connectionCredentials(sb.provider, { ...sb.credentials }, sb.url),
    beforeRequest: createRateGate(limitsFor(sb.provider, settings)),
    onTokens: () => Promise.resolve(),
    countCall: (n = 1) => {
      calls += n;
    },
    log: () => {},
  }, mapper.fields());

  const r = { records: 0, pages: 0, fetchMs: 0, mapMs: 0, bytes: 0 };
  let checkpoint: unknown = null;
  while (r.records < limit) {
    const f0 = performance.now();
    const page = await adapter.changesSince("contacts", null, checkpoint, {});
    const m0 = performance.now();
    r.fetchMs += m0 - f0;
    r.pages++;
    const mapped = page.records.map((rec: RemoteRecord) => mapper.inbound("contacts", rec).record);
    r.mapMs += performance.now() - m0;
    r.bytes += JSON.stringify(mapped).length;
    r.records += page.records.length;
    if (page.done) break;
    checkpoint = page.checkpoint;
  }
  return {
    records: r.records,
    pages: r.pages,
    calls,
    fetchMs: r.fetchMs,
    mapMs: r.mapMs,
    jsonBytesPerRecord: r.records ? r.bytes / r.records : 0,
  };
}
