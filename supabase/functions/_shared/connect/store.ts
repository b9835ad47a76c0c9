// crm-connect's database side: nonces, the create-or-reactivate of a connection with its
// credentials (encrypted, bound to the connection id, in the format sync/connections.ts
// reads), the first backfill, the status and the disconnect. Every account id here comes
// from the caller's verified JWT or from a verified state, never from a request body.
import { decryptJson, encryptJson } from "../crypto.ts";
import type { Sql } from "../db.ts";
import type { ProviderName } from "../providers/types.ts";
import type { Grant } from "./oauth.ts";

export async function createState(
  sql: Sql,
  key: CryptoKey,
  s: {
    nonce: string;
    accountId: string;
    userId: string;
    provider: ProviderName;
    redirectTo: string | null;
    verifier: string | null;
    ttlS: number;
  },
): Promise<void> {
  const verifier = s.verifier
    ? await encryptJson(key, s.verifier, `connect-state:${s.nonce}`)
    : null;
  await sql`select crm.create_connect_state(${s.nonce}::uuid, ${s.accountId}::uuid,
              ${s.userId}::uuid, ${s.provider}, ${s.redirectTo}, ${verifier},
              make_interval(secs => ${s.ttlS}))`;
}

/** The nonce's redirect target and PKCE verifier, once; null when spent, expired or foreign. */
export async function consumeState(
  sql: Sql,
  key: CryptoKey,
  c: { nonce: string; accountId: string; userId: string; provider: ProviderName },
): Promise<{ redirectTo: string | null; verifier: string | null } | null> {
  const rows = await sql`select redirect_to, verifier from crm.consume_connect_state(
      ${c.nonce}::uuid, ${c.accountId}::uuid, ${c.userId}::uuid, ${c.provider})`;
  if (!rows.length) return null;
  const verifier = rows[0].verifier
    ? await decryptJson<string>(key, rows[0].verifier, `connect-state:${c.nonce}`)
    : null;
  return { redirectTo: rows[0].redirect_to, verifier };
}

/** The stored credentials' webhook_* keys (none when they do not decrypt). */
async function webhookSecretsOf(
  key: CryptoKey,
  stored: string,
  connectionId: string,
): Promise<Record<string, string>> {
  try {
    const c = await decryptJson<Record<string, string>>(key, stored, connectionId);
    return Object.fromEntries(Object.entries(c).filter(([k]) => k.startsWith("webhook_")));
  } catch {
    return {};
  }
}

export type SaveResult =
  | { ok: true; connectionId: string; created: boolean }
  | { ok: false; code: "other_remote_account" | "remote_account_taken"; message: string };

const OBJECTS = ["owners", "companies", "contacts", "deals"];

/**
 * Creates or re-activates the account's connection to the grant's remote account and stores
 * the credentials, in one transaction; then queues the first backfill (a full walk of every
 * enabled object) and, when the database has it, the webhook set-up (crm.register_webhooks).
 */
export async function saveConnection(
  sql: Sql,
  key: CryptoKey,
  accountId: string,
  provider: ProviderName,
  grant: Grant,
  log: (msg: string, extra?: Record<string, unknown>) => void,
): Promise<SaveResult> {
  let saved: { connectionId: string; created: boolean };
  try {
    saved = await sql.begin(async (tx) => {
      const [row] = await tx`select connection_id, created from crm.connect_connection(
          ${accountId}::uuid, ${provider}, ${grant.remoteAccountId}, ${grant.name},
          ${tx.json(grant.settings as never)})`;
      // Reconnecting the same remote account keeps its webhook secrets (the Salesforce listener
      // URL an admin pasted, the Pipedrive basic-auth pair, the HubSpot signing secret): their
      // lookup hashes stay on the row, and a new token would break the registered URLs. Merged
      // under the credentials lock and the row lock, as token refresh and the webhook set-up
      // write. A disconnected connection has none (disconnect clears them on purpose).
      await tx`select crm.lock_credentials(${row.connection_id}::uuid)`;
      const [cur] = await tx`select convert_from(credentials, 'UTF8') as c from crm.connections
                             where id = ${row.connection_id} for update`;
      const kept = cur?.c ? await webhookSecretsOf(key, cur.c, row.connection_id) : {};
      const stored = await encryptJson(
        key,
        { ...grant.credentials, ...kept },
        row.connection_id,
      );
      await tx`update crm.connections
               set credentials = convert_to(${stored}, 'UTF8'), credentials_updated_at = now(),
                   updated_at = now()
               where id = ${row.connection_id}`;
      return { connectionId: row.connection_id as string, created: row.created as boolean };
    }) as { connectionId: string; created: boolean };
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === "CRM20") {
      return { ok: false, code: "other_remote_account", message: (e as Error).message };
    }
    if (code === "CRM21") {
      return { ok: false, code: "remote_account_taken", message: (e as Error).message };
    }
    throw e;
  }
  await sql`select crm.enqueue_inbound(${OBJECTS}::text[], 'full', ${saved.connectionId}::uuid,
                                       'backfill')`;
  const [{ fn }] =
    await sql`select to_regprocedure('crm.register_webhooks(uuid)') is not null as fn`;
  if (fn) {
    try {
      await sql`select crm.register_webhooks(${saved.connectionId}::uuid)`;
    } catch (e) {
      log("webhook set-up not queued", {
        connection_id: saved.connectionId,
        error: (e as Error).message,
      });
    }
  }
  return { ok: true, ...saved };
}

export interface StatusRow {
  id: string;
  provider: string;
  remote_account_id: string | null;
  name: string | null;
  status: string;
  status_changed_at: Date;
  last_synced_at: Date | null;
  last_error: string | null;
  last_error_at: Date | null;
  backlog: Record<string, number>;
}

export async function statusOf(sql: Sql, accountId: string): Promise<StatusRow[]> {
  const rows = await sql`select * from crm.connect_status(${accountId}::uuid)`;
  return rows.map((r) => ({
    ...r,
    backlog: Object.fromEntries(
      Object.entries(r.backlog as Record<string, unknown>).map(([k, v]) => [k, Number(v)]),
    ),
  })) as unknown as StatusRow[];
}

/** The stored credentials of one of the account's connections (null: none, or not its own). */
export async function credentialsOf(
  sql: Sql,
  key: CryptoKey,
  accountId: string,
  connectionId: string,
): Promise<{ provider: ProviderName; credentials: Record<string, string> | null } | null> {
  const rows = await sql`select provider, convert_from(credentials, 'UTF8') as credentials
                         from crm.connections
                         where id = ${connectionId}::uuid and account_id = ${accountId}::uuid`;
  if (!rows.length) return null;
  let credentials: Record<string, string> | null = null;
  if (rows[0].credentials) {
    try {
      credentials = await decryptJson(key, rows[0].credentials, connectionId);
    } catch {
      credentials = null;
    }
  }
  return { provider: rows[0].provider, credentials };
}

export async function disconnect(
  sql: Sql,
  accountId: string,
  connectionId: string,
  purge: boolean,
): Promise<string | null> {
  const [{ result }] = await sql`select crm.disconnect_connection(${accountId}::uuid,
                                   ${connectionId}::uuid, ${purge}) as result`;
  return result;
}
