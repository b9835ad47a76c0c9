// Loading a connection for the engine: its row, its decrypted credentials (CRM_ENCRYPTION_KEY,
// bound to the connection id) and where its API lives; persisting refreshed tokens encrypted;
// putting it in the error state when the CRM revoked access. Credentials never leave this
// module in logs or responses.
import { z } from "zod";
import { decryptJson, encryptJson } from "../crypto.ts";
import type { Sql } from "../db.ts";
import { ProviderError, type ProviderName, PROVIDERS, type TokenSet } from "../providers/types.ts";

export interface Connection {
  id: string;
  accountId: string;
  provider: ProviderName;
  name: string | null;
  status: string;
  settings: Record<string, unknown>;
  baseUrl: string;
  credentials: Record<string, string>;
}

/** Production API hosts; settings.base_url overrides them (sandboxes, EU data centres). */
const DEFAULT_BASE: Record<ProviderName, (c: Record<string, string>) => string> = {
  hubspot: () => "https://api.hubapi.com",
  salesforce: (c) => c.instanceUrl ?? "https://login.salesforce.com",
  pipedrive: (c) =>
    c.companyDomain ? `https://${c.companyDomain}.pipedrive.com` : "https://api.pipedrive.com",
};

const Row = z.object({
  id: z.string().uuid(),
  account_id: z.string().uuid(),
  provider: z.enum(PROVIDERS),
  name: z.string().nullable(),
  status: z.string(),
  settings: z.record(z.string(), z.unknown()),
  credentials: z.string().nullable(),
});

const Credentials = z.record(z.string(), z.union([z.string(), z.number(), z.null()]))
  .transform((o) =>
    Object.fromEntries(
      Object.entries(o).filter(([, v]) => v !== null).map(([k, v]) => [k, String(v)]),
    )
  );

export interface LoadFilter {
  connectionId?: string;
  accountId?: string;
  /** Only connections in status active (the sync); live reads also refuse non-active ones. */
  activeOnly?: boolean;
}

export interface LoadResult {
  connections: Connection[];
  /** Connections that could not be used, with the reason (also recorded on the row). */
  unusable: { id: string; provider: string; reason: string }[];
}

export async function loadConnections(
  sql: Sql,
  key: CryptoKey,
  f: LoadFilter,
): Promise<LoadResult> {
  const rows = await sql`
    select id, account_id, provider, name, status, settings,
           convert_from(credentials, 'UTF8') as credentials
    from crm.connections
    where (${f.connectionId ?? null}::uuid is null or id = ${f.connectionId ?? null}::uuid)
      and (${f.accountId ?? null}::uuid is null or account_id = ${f.accountId ?? null}::uuid)
      and (${f.activeOnly ?? true} = false or status = 'active')
    order by created_at, id`;
  const out: LoadResult = { connections: [], unusable: [] };
  for (const raw of rows) {
    const row = Row.parse(raw);
    if (!row.credentials) {
      out.unusable.push({ id: row.id, provider: row.provider, reason: "no credentials stored" });
      continue;
    }
    let credentials: Record<string, string>;
    try {
      credentials = Credentials.parse(await decryptJson(key, row.credentials, row.id));
    } catch {
      const reason = "stored credentials cannot be decrypted with CRM_ENCRYPTION_KEY";
      await markConnectionError(sql, row.id, reason);
      out.unusable.push({ id: row.id, provider: row.provider, reason });
      continue;
    }
    const base = typeof row.settings.base_url === "string" && row.settings.base_url
      ? row.settings.base_url
      : DEFAULT_BASE[row.provider](credentials);
    out.connections.push({
      id: row.id,
      accountId: row.account_id,
      provider: row.provider,
      name: row.name,
      status: row.status,
      settings: row.settings,
      baseUrl: base.replace(/\/$/, ""),
      credentials,
    });
  }
  return out;
}

/**
 * Merges refreshed tokens into the stored credentials, re-encrypted, before they are used. The
 * row is locked and its credentials re-read inside the transaction, so keys another writer
 * stored since this context loaded them (the webhook secrets of a setup job) are kept rather
 * than overwritten with this context's older copy.
 */
export async function persistTokens(
  sql: Sql,
  key: CryptoKey,
  conn: Connection,
  tokens: TokenSet,
): Promise<void> {
  const fresh: Record<string, string> = { accessToken: tokens.accessToken };
  if (tokens.refreshToken) fresh.refreshToken = tokens.refreshToken;
  if (tokens.expiresAt) fresh.expiresAt = tokens.expiresAt;
  if (tokens.instanceUrl) fresh.instanceUrl = tokens.instanceUrl;
  conn.credentials = await sql.begin(async (tx) => {
    const [row] = await tx`select convert_from(credentials, 'UTF8') as credentials
                           from crm.connections where id = ${conn.id} for update`;
    let current = conn.credentials;
    if (row?.credentials) {
      try {
        current = Credentials.parse(await decryptJson(key, row.credentials, conn.id));
      } catch {
        // Unreadable now (rewritten under another key?): keep this context's copy.
      }
    }
    const next: Record<string, string> = { ...current, ...fresh };
    const stored = await encryptJson(key, next, conn.id);
    await tx`update crm.connections
             set credentials = convert_to(${stored}, 'UTF8'), credentials_updated_at = now(),
                 updated_at = now()
             where id = ${conn.id}`;
    return next;
  }) as Record<string, string>;
}

export async function markConnectionError(sql: Sql, id: string, reason: string): Promise<void> {
  await sql`select crm.mark_connection_error(${id}, ${reason})`;
}

/**
 * What a failed run reports: the error's message, and whether the CRM refused the credentials,
 * in which case the connection is put in the error state with the same readable reason.
 */
export async function recordFailure(
  sql: Sql,
  conn: Connection,
  e: unknown,
): Promise<{ message: string; revoked: boolean }> {
  const text = errorMessage(e);
  const revoked = e instanceof ProviderError && e.action === "revoked";
  if (!revoked) return { message: text, revoked };
  const message = `${conn.provider} refused the stored credentials (reconnect it): ${text}`;
  await markConnectionError(sql, conn.id, message);
  return { message, revoked };
}

export function errorMessage(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).slice(0, 1000);
}
