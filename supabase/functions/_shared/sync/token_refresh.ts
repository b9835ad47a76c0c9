// Single-flight token refresh per connection, across every worker and function instance.
// Under the connection's credentials lock (crm.lock_credentials, one transaction) the stored
// tokens are re-read: when their access token is no longer the one that just failed, another
// caller refreshed (or the user reconnected) in the meantime, and those tokens are used as they
// are, without a provider call. Otherwise this caller refreshes with the stored refresh token
// (not the copy in its memory, which a rotation may have replaced) and writes the result merged
// over the stored credentials before the lock is released. A refused refresh leaves the stored
// credentials untouched; the caller's failure handling (connections.ts recordFailure) puts the
// connection in `error` with a "reconnect it" message.
import { z } from "zod";
import { decryptJson, encryptJson } from "../crypto.ts";
import type { Sql } from "../db.ts";
import { ProviderError, type TokenSet } from "../providers/types.ts";
import type { Connection } from "./connections.ts";

const Stored = z.record(z.string(), z.union([z.string(), z.number(), z.null()]))
  .transform((o) =>
    Object.fromEntries(
      Object.entries(o).filter(([, v]) => v !== null).map(([k, v]) => [k, String(v)]),
    )
  );

export function mergeTokens(
  stored: Record<string, string>,
  t: TokenSet,
): Record<string, string> {
  const next: Record<string, string> = { ...stored, accessToken: t.accessToken };
  if (t.refreshToken) next.refreshToken = t.refreshToken;
  if (t.expiresAt) next.expiresAt = t.expiresAt;
  else delete next.expiresAt;
  if (t.instanceUrl) next.instanceUrl = t.instanceUrl;
  return next;
}

const asTokens = (c: Record<string, string>): TokenSet => ({
  accessToken: c.accessToken,
  ...(c.refreshToken ? { refreshToken: c.refreshToken } : {}),
  ...(c.expiresAt ? { expiresAt: c.expiresAt } : {}),
  ...(c.instanceUrl ? { instanceUrl: c.instanceUrl } : {}),
});

/**
 * Runs `refresh` at most once across callers whose access token `stale` failed, and returns
 * the tokens to use. `conn.credentials` is updated to what is stored afterwards.
 */
export async function refreshSingleFlight(
  sql: Sql,
  key: CryptoKey,
  conn: Connection,
  stale: string | undefined,
  refresh: (credentials: Record<string, string>) => Promise<TokenSet>,
): Promise<TokenSet> {
  return await sql.begin(async (tx) => {
    const [{ c }] = await tx`select crm.lock_credentials(${conn.id}::uuid) as c`;
    if (!c) {
      throw new ProviderError(
        `${conn.provider}: the connection has no stored credentials (reconnect it)`,
        "revoked",
        401,
      );
    }
    const stored = Stored.parse(await decryptJson(key, c, conn.id));
    if (stored.accessToken && stored.accessToken !== stale) {
      conn.credentials = stored;
      return asTokens(stored);
    }
    const tokens = await refresh(stored);
    const next = mergeTokens(stored, tokens);
    const text = await encryptJson(key, next, conn.id);
    await tx`update crm.connections
             set credentials = convert_to(${text}, 'UTF8'), credentials_updated_at = now(),
                 updated_at = now()
             where id = ${conn.id}`;
    conn.credentials = next;
    return tokens;
  }) as TokenSet;
}

/** Stores tokens an adapter obtained on its own, merged over the stored credentials. */
export async function storeTokens(
  sql: Sql,
  key: CryptoKey,
  conn: Connection,
  tokens: TokenSet,
): Promise<void> {
  await sql.begin(async (tx) => {
    const [{ c }] = await tx`select crm.lock_credentials(${conn.id}::uuid) as c`;
    const stored = c ? Stored.parse(await decryptJson(key, c, conn.id)) : conn.credentials;
    const next = mergeTokens(stored, tokens);
    const text = await encryptJson(key, next, conn.id);
    await tx`update crm.connections
             set credentials = convert_to(${text}, 'UTF8'), credentials_updated_at = now(),
                 updated_at = now()
             where id = ${conn.id}`;
    conn.credentials = next;
  });
}
