// Loading a connection for the engine: its row, its decrypted credentials (CRM_ENCRYPTION_KEY,
// bound to the connection id) and where its API lives; persisting refreshed tokens encrypted;
// putting it in the error state when the CRM revoked access. Credentials never leave this
// module in logs or responses.
import { redactSecrets } from "../http/redact.ts";
import { z } from "zod";
import { decryptJson } from "../crypto.ts";
import type { Sql } from "../db.ts";
import { ProviderError, type ProviderName, PROVIDERS, type TokenSet } from "../providers/types.ts";
import { storeTokens } from "./token_refresh.ts";

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
 * Stores refreshed tokens, merged over the credentials as stored now (not over this worker's
 * copy, which a concurrent refresh or reconnect may have outdated), under the connection's
 * credentials lock (./token_refresh.ts).
 */
export async function persistTokens(
  sql: Sql,
  key: CryptoKey,
  conn: Connection,
  tokens: TokenSet,
): Promise<void> {
  await storeTokens(sql, key, conn, tokens);
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

/** An error as stored text: secrets in URL queries redacted (http/redact.ts), bounded. */
export function errorMessage(e: unknown): string {
  return redactSecrets(e instanceof Error ? e.message : String(e)).slice(0, 1000);
}
