// Writes a connection's webhook secrets into its encrypted credentials, with the lookup hashes
// the receiver routes by (webhook_user_hash, webhook_token_hash), in one transaction. The row is
// locked and its credentials re-read and decrypted inside it, so keys other writers stored
// meanwhile (refreshed OAuth tokens) are kept: only the keys given change (null removes one).
import { decryptJson, encryptJson } from "../crypto.ts";
import type { Sql } from "../db.ts";
import { sha256Hex } from "./limits.ts";

export interface WebhookSecretsPatch {
  /** Credential keys to set (string) or remove (null). */
  credentials: Record<string, string | null>;
  /** The hashed lookup columns to set (the hash of the given secret), or clear (null). */
  userHashOf?: string | null;
  tokenHashOf?: string | null;
}

export async function storeWebhookSecrets(
  sql: Sql,
  key: CryptoKey,
  connectionId: string,
  patch: WebhookSecretsPatch,
): Promise<Record<string, string>> {
  const userHash = patch.userHashOf ? await sha256Hex(patch.userHashOf) : null;
  const tokenHash = patch.tokenHashOf ? await sha256Hex(patch.tokenHashOf) : null;
  return await sql.begin(async (tx) => {
    const [row] = await tx`
      select convert_from(credentials, 'UTF8') as credentials, webhook_user_hash,
             webhook_token_hash
      from crm.connections where id = ${connectionId} for update`;
    if (!row) throw new Error(`connection ${connectionId} no longer exists`);
    const current = row.credentials
      ? await decryptJson<Record<string, string>>(key, row.credentials, connectionId)
      : {};
    const next: Record<string, string> = { ...current };
    for (const [k, v] of Object.entries(patch.credentials)) {
      if (v === null) delete next[k];
      else next[k] = v;
    }
    // A registration that finds everything in place writes nothing (credentials_updated_at
    // keeps meaning "the credentials changed").
    const same = Object.entries(patch.credentials).every(([k, v]) => (current[k] ?? null) === v) &&
      (patch.userHashOf === undefined || row.webhook_user_hash === userHash) &&
      (patch.tokenHashOf === undefined || row.webhook_token_hash === tokenHash);
    if (same) return current;
    const stored = await encryptJson(key, next, connectionId);
    await tx`
      update crm.connections
      set credentials = convert_to(${stored}, 'UTF8'), credentials_updated_at = now(),
          updated_at = now(),
          webhook_user_hash = case when ${patch.userHashOf !== undefined}
                                   then ${userHash}::text else webhook_user_hash end,
          webhook_token_hash = case when ${patch.tokenHashOf !== undefined}
                                    then ${tokenHash}::text else webhook_token_hash end
      where id = ${connectionId}`;
    return next;
  }) as Record<string, string>;
}
