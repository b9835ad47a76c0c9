// Webhook secrets in a connection's encrypted credentials: storeWebhookSecrets sets or removes
// only the keys given, with the lookup hash in the same write; a token refresh persisted from a
// context loaded before the secrets were stored keeps them (persistTokens re-reads the row under
// lock instead of writing its older copy back).
import assert from "node:assert/strict";
import postgres from "postgres";
import { decryptJson, encryptJson, importKey } from "../../supabase/functions/_shared/crypto.ts";
import {
  type Connection,
  persistTokens,
} from "../../supabase/functions/_shared/sync/connections.ts";
import { storeWebhookSecrets } from "../../supabase/functions/_shared/webhooks/credentials.ts";
import { sha256Hex } from "../../supabase/functions/_shared/webhooks/limits.ts";
import { need } from "../_support/env.ts";

async function withConnection(
  fn: (sql: postgres.Sql, key: CryptoKey, conn: Connection) => Promise<void>,
) {
  const sql = postgres(need("SUPABASE_DB_URL"), { max: 2, onnotice: () => {}, prepare: false });
  const key = await importKey(need("CRM_ENCRYPTION_KEY"));
  const id = crypto.randomUUID();
  const credentials = { apiToken: "token-1" };
  await sql`insert into crm.connections (id, account_id, provider, remote_account_id, credentials)
            values (${id}, ${crypto.randomUUID()}, 'pipedrive', ${`wc-${id}`},
                    convert_to(${await encryptJson(key, credentials, id)}, 'UTF8'))`;
  const conn: Connection = {
    id,
    accountId: crypto.randomUUID(),
    provider: "pipedrive",
    name: null,
    status: "active",
    settings: {},
    baseUrl: "http://127.0.0.1:9",
    credentials: { ...credentials },
  };
  try {
    await fn(sql, key, conn);
  } finally {
    await sql`delete from crm.connections where id = ${id}`;
    await sql.end();
  }
}

async function stored(sql: postgres.Sql, key: CryptoKey, id: string) {
  const [r] = await sql`select convert_from(credentials, 'UTF8') as c, webhook_user_hash,
                               webhook_token_hash from crm.connections where id = ${id}`;
  return {
    creds: await decryptJson<Record<string, string>>(key, r.c, id),
    webhook_user_hash: r.webhook_user_hash as string | null,
    webhook_token_hash: r.webhook_token_hash as string | null,
  };
}

Deno.test("webhook secrets are merged into the credentials with their hash, and removed", async () => {
  await withConnection(async (sql, key, conn) => {
    const next = await storeWebhookSecrets(sql, key, conn.id, {
      credentials: { webhook_user: "u-1", webhook_password: "p-1" },
      userHashOf: "u-1",
    });
    assert.deepEqual(next, { apiToken: "token-1", webhook_user: "u-1", webhook_password: "p-1" });
    let s = await stored(sql, key, conn.id);
    assert.deepEqual(s.creds, next);
    assert.equal(s.webhook_user_hash, await sha256Hex("u-1"));
    assert.equal(s.webhook_token_hash, null, "a hash not named is left alone");

    const [before] = await sql`select credentials_updated_at as at from crm.connections
                               where id = ${conn.id}`;
    await storeWebhookSecrets(sql, key, conn.id, { credentials: {}, userHashOf: "u-1" });
    const [after] = await sql`select credentials_updated_at as at from crm.connections
                              where id = ${conn.id}`;
    assert.deepEqual(after.at, before.at, "nothing to change: nothing written");

    await storeWebhookSecrets(sql, key, conn.id, {
      credentials: { webhook_user: null, webhook_password: null },
      userHashOf: null,
    });
    s = await stored(sql, key, conn.id);
    assert.deepEqual(s.creds, { apiToken: "token-1" });
    assert.equal(s.webhook_user_hash, null);
  });
});

Deno.test("a token refresh from an older context keeps secrets stored since", async () => {
  await withConnection(async (sql, key, conn) => {
    // `conn` was loaded before the setup job stored the secrets.
    await storeWebhookSecrets(sql, key, conn.id, {
      credentials: { webhook_token: "t".repeat(43) },
      tokenHashOf: "t".repeat(43),
    });
    await persistTokens(sql, key, conn, { accessToken: "access-2", refreshToken: "refresh-2" });
    const s = await stored(sql, key, conn.id);
    assert.deepEqual(s.creds, {
      apiToken: "token-1",
      webhook_token: "t".repeat(43),
      accessToken: "access-2",
      refreshToken: "refresh-2",
    });
    assert.deepEqual(conn.credentials, s.creds, "the context sees what was stored");
  });
});
