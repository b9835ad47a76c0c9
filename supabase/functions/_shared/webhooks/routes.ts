// Which connection a webhook request belongs to. Lookups go by what the request names (a
// HubSpot portal, the hash of a Salesforce URL token or of a Pipedrive basic-auth user), and at
// most one connection's credentials are decrypted per request: the one named. A request never
// sees a secret; it only learns whether its own signature or password matched.
import { decryptJson } from "../crypto.ts";
import type { Sql } from "../db.ts";
import { sha256Hex } from "./limits.ts";

export interface RoutedConnection {
  id: string;
  remoteAccountId: string | null;
  credentials: Record<string, unknown> | null;
}

/** HubSpot connections per portal ((provider, remote_account_id) is unique). */
export async function hubspotConnectionsByPortal(
  sql: Sql,
  portals: string[],
): Promise<Map<string, string>> {
  const rows = await sql`
    select remote_account_id, id
    from crm.connections
    where provider = 'hubspot' and remote_account_id = any (${portals}::text[])`;
  return new Map(rows.map((r) => [String(r.remote_account_id), String(r.id)]));
}

async function withCredentials(
  key: CryptoKey,
  row: { id: string; remote_account_id: string | null; credentials: string | null },
): Promise<RoutedConnection> {
  let credentials: Record<string, unknown> | null = null;
  if (row.credentials) {
    try {
      credentials = await decryptJson<Record<string, unknown>>(key, row.credentials, row.id);
    } catch {
      credentials = null; // undecryptable: treated as no secret, so the request is refused
    }
  }
  return { id: row.id, remoteAccountId: row.remote_account_id, credentials };
}

type Row = { id: string; remote_account_id: string | null; credentials: string | null };

/** The HubSpot connection of a portal, with its credentials (for its webhook_secret). */
export async function hubspotConnection(
  sql: Sql,
  key: CryptoKey,
  portal: string,
): Promise<RoutedConnection | null> {
  const [row] = await sql<Row[]>`
    select id, remote_account_id, convert_from(credentials, 'UTF8') as credentials
    from crm.connections
    where provider = 'hubspot' and remote_account_id = ${portal}`;
  return row ? await withCredentials(key, row) : null;
}

/** The Salesforce connection whose URL token this is. */
export async function salesforceConnectionByToken(
  sql: Sql,
  key: CryptoKey,
  token: string,
): Promise<RoutedConnection | null> {
  const hash = await sha256Hex(token);
  const [row] = await sql<Row[]>`
    select id, remote_account_id, convert_from(credentials, 'UTF8') as credentials
    from crm.connections
    where provider = 'salesforce' and webhook_token_hash = ${hash}`;
  return row ? await withCredentials(key, row) : null;
}

/** The Pipedrive connection whose webhook user this is. */
export async function pipedriveConnectionByUser(
  sql: Sql,
  key: CryptoKey,
  user: string,
): Promise<RoutedConnection | null> {
  const hash = await sha256Hex(user);
  const [row] = await sql<Row[]>`
    select id, remote_account_id, convert_from(credentials, 'UTF8') as credentials
    from crm.connections
    where provider = 'pipedrive' and webhook_user_hash = ${hash}`;
  return row ? await withCredentials(key, row) : null;
}

/** A string credential, or null. */
export function credential(c: RoutedConnection, name: string): string | null {
  const v = c.credentials?.[name];
  return typeof v === "string" && v.length > 0 ? v : null;
}
