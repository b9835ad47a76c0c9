// The outbound part's app: writes made as the connection's account's authenticated user (role
// authenticated, JWT claims with app_metadata.account_id, as PostgREST sets them), so RLS and
// the outbox triggers run as in production; and the wait for a connection's outbox to drain.
import type postgres from "postgres";

async function claimsOf(sql: postgres.Sql, conn: string): Promise<string> {
  const [{ account_id }] = await sql`select account_id from crm.connections where id = ${conn}`;
  return JSON.stringify({
    sub: crypto.randomUUID(),
    role: "authenticated",
    app_metadata: { account_id },
  });
}

/** Runs `fn` in one transaction as the app; returns its result and the database clock at the
 * transaction's last statement (clock_timestamp(): the commit follows within its round trip, so
 * a latency measured from it is never shorter than the real one). */
export async function asApp<T>(
  sql: postgres.Sql,
  conn: string,
  fn: (tx: postgres.TransactionSql) => Promise<T>,
  claims?: string,
): Promise<{ result: T; commitMs: number }> {
  const c = claims ?? await claimsOf(sql, conn);
  return await sql.begin(async (tx) => {
    await tx`set local role authenticated`;
    await tx`select set_config('request.jwt.claims', ${c}, true)`;
    const result = await fn(tx);
    const [{ at }] = await tx`select clock_timestamp() as at`;
    return { result, commitMs: (at as Date).getTime() };
  }) as { result: T; commitMs: number };
}

/** A writer for the steady load: the claims are read once. */
export async function appWriter(sql: postgres.Sql, conn: string) {
  const claims = await claimsOf(sql, conn);
  return {
    /** Sets one contact's first name in its own transaction; the commit time (see asApp). */
    async setFirstName(id: string, value: string): Promise<number> {
      const { commitMs } = await asApp(sql, conn, async (tx) => {
        const r = await tx`update crm.contacts set first_name = ${value} where id = ${id}`;
        if (r.count !== 1) throw new Error(`the app could not update contact ${id}`);
      }, claims);
      return commitMs;
    },
  };
}

/** Changes the first name of the given contacts in one statement as the app. */
export async function changeAll(
  sql: postgres.Sql,
  conn: string,
  ids: readonly string[],
  prefix: string,
): Promise<number> {
  const { result, commitMs } = await asApp(sql, conn, async (tx) => {
    const r = await tx`update crm.contacts set first_name = ${prefix} || ' ' || left(id::text, 8)
                       where id = any(${ids as string[]}::uuid[])`;
    return r.count;
  });
  if (result !== ids.length) throw new Error(`the app changed ${result} of ${ids.length} contacts`);
  return commitMs;
}

export interface OutboxState {
  open: number;
  dead: number;
}

export async function outboxState(sql: postgres.Sql, conn: string): Promise<OutboxState> {
  const [r] = await sql`
    select count(*) filter (where state <> 'dead')::int as open,
           count(*) filter (where state = 'dead')::int as dead
    from crm.outbox where connection_id = ${conn}`;
  return { open: r.open, dead: r.dead };
}

/** Waits until the connection has no outbox entry left but dead letters and no outbound job
 * running or due; `tick` sees each poll. */
export async function waitOutbox(
  sql: postgres.Sql,
  conn: string,
  o: { timeoutMs: number; pollMs: number; tick?: (s: OutboxState) => void },
): Promise<OutboxState> {
  const until = performance.now() + o.timeoutMs;
  for (;;) {
    const s = await outboxState(sql, conn);
    o.tick?.(s);
    if (s.open === 0) {
      const [j] = await sql`
        select count(*)::int as n from crm.jobs
        where connection_id = ${conn} and kind = 'outbound'
          and (state = 'running' or (state = 'queued' and run_after <= now()))`;
      if (j.n === 0) return s;
    }
    if (performance.now() > until) {
      const rows = await sql`select op, state, attempts, last_error from crm.outbox
                             where connection_id = ${conn} and state <> 'dead' limit 3`;
      throw new Error(
        `the outbox did not drain in ${o.timeoutMs / 1000} s: ${s.open} open, e.g. ${
          JSON.stringify(rows)
        }`,
      );
    }
    await new Promise((r) => setTimeout(r, o.pollMs));
  }
}
