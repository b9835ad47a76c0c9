// One crm.connections row per benchmarked sandbox, credentials encrypted the way the edge
// functions read them (shared/local/connections.ts), with the pacing raised through
// settings.rate_limits so the figures measure the sync machinery rather than the providers'
// documented limits (printed apart by the report).
import type postgres from "postgres";
import { connectionCredentials, storeCredentials } from "../../shared/local/connections.ts";
import { importKey } from "../../supabase/functions/_shared/crypto.ts";
import type { SandboxInfo } from "./sandboxes.ts";

/** The override the bench sets (supabase/functions/_shared/sync/limits.ts reads it). */
export const RAISED_LIMITS = {
  default: { limit: 100_000, window_ms: 1_000 },
  search: { limit: 100_000, window_ms: 1_000 },
};

export async function registerConnection(
  sql: postgres.Sql,
  base64Key: string,
  sb: SandboxInfo,
): Promise<{ id: string; settings: Record<string, unknown> }> {
  const id = crypto.randomUUID();
  const settings = {
    base_url: sb.url,
    default_phone_region: "US",
    objects: ["contacts"],
    rate_limits: RAISED_LIMITS,
  };
  await sql`
    insert into crm.connections (id, account_id, provider, remote_account_id, name, settings)
    values (${id}, ${crypto.randomUUID()}, ${sb.provider}, ${`bench-${id}`},
            ${`bench ${sb.provider}`}, ${sql.json(settings)})`;
  await storeCredentials(
    sql,
    await importKey(base64Key),
    id,
    connectionCredentials(sb.provider, { ...sb.credentials }, sb.url),
  );
  return { id, settings };
}

/** A connection row with no credentials, for the SQL-only figures (bad page, A/B): they call
 * crm functions directly and never reach a CRM. Columns as of the first migrations, so a
 * database built from an older commit takes it too. */
export async function plainConnection(sql: postgres.Sql, provider = "hubspot"): Promise<string> {
  const id = crypto.randomUUID();
  await sql`
    insert into crm.connections (id, account_id, provider, remote_account_id, name, settings)
    values (${id}, ${crypto.randomUUID()}, ${provider}, ${`bench-${id}`}, ${`bench sql ${provider}`},
            ${sql.json({ objects: ["contacts"], default_phone_region: "US" })})`;
  return id;
}
