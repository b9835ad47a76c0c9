// One session of its own against the stack database: the tests that need two real sessions
// (locks, claims, races) open one per side.
import postgres from "postgres";
import { need } from "./env.ts";

export type Sql = ReturnType<typeof postgres>;

export const openSession = (): Sql =>
  postgres(need("SUPABASE_DB_URL"), { max: 1, onnotice: () => {}, prepare: false });
export type Tx = postgres.TransactionSql;

/**
 * Runs `fn` with two sessions of its own and a fresh connection (`provider`, `settings`; null:
 * the column's default), then deletes the connection (its rows go with it) and closes both.
 */
export async function twoSessions(
  provider: string,
  settings: Record<string, unknown> | null,
  fn: (a: Sql, b: Sql, connectionId: string) => Promise<void>,
): Promise<void> {
  const a = openSession();
  const b = openSession();
  let connectionId = "";
  try {
    const remote = "two-sessions-" + crypto.randomUUID();
    [{ id: connectionId }] = settings
      ? await a`
        insert into crm.connections (account_id, provider, remote_account_id, settings)
        values (gen_random_uuid(), ${provider}, ${remote}, ${a.json(settings as never)})
        returning id::text as id`
      : await a`
        insert into crm.connections (account_id, provider, remote_account_id)
        values (gen_random_uuid(), ${provider}, ${remote})
        returning id::text as id`;
    await fn(a, b, connectionId);
  } finally {
    if (connectionId) await a`delete from crm.connections where id = ${connectionId}::uuid`;
    await a.end();
    await b.end();
  }
}
