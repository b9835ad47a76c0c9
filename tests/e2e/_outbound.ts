// Helpers of the outbound e2e tests: app writes made as the account's authenticated user (RLS
// and the outbox triggers apply as in production), waiting for the outbox to drain, and reading
// what the sandbox CRM stores, flattened to provider property names.
import type postgres from "postgres";
import type { ProviderName } from "../../supabase/functions/_shared/providers/types.ts";
import type { Sql } from "./_harness.ts";
import { admin, callFunction } from "./_harness.ts";

type Tx = postgres.TransactionSql;

/** Runs `fn` in one transaction as the connection's account's authenticated user. */
export async function asApp<T>(
  sql: Sql,
  conn: string,
  fn: (tx: Tx) => Promise<T>,
): Promise<T> {
  const [{ account_id }] = await sql`select account_id from crm.connections where id = ${conn}`;
  const claims = JSON.stringify({
    sub: crypto.randomUUID(),
    role: "authenticated",
    app_metadata: { account_id },
  });
  return await sql.begin(async (tx) => {
    await tx`set local role authenticated`;
    await tx`select set_config('request.jwt.claims', ${claims}, true)`;
    return await fn(tx);
  }) as T;
}

/** Waits until the connection has no pending or leased outbox entry (dead letters aside) and
 * no outbound job running or due; returns how long that took. */
export async function awaitOutbox(sql: Sql, conn: string, timeoutMs = 60_000): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    const [r] = await sql`
      select (select count(*) from crm.outbox
              where connection_id = ${conn} and state <> 'dead') as entries,
             (select count(*) from crm.jobs
              where connection_id = ${conn} and kind = 'outbound'
                and (state = 'running' or (state = 'queued' and run_after <= now()))) as jobs`;
    if (Number(r.entries) === 0 && Number(r.jobs) === 0) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs) {
      const rows = await sql`select op, state, attempts, last_error, next_attempt_at
                             from crm.outbox where connection_id = ${conn} limit 5`;
      throw new Error(`outbox of ${conn} did not drain: ${JSON.stringify(rows)}`);
    }
    await new Promise((res) => setTimeout(res, 50));
  }
}

/** One push of the connection in a direct request (no worker involved). */
export async function pushNow(conn: string): Promise<Record<string, unknown>> {
  const r = await callFunction("crm-sync-bidirectional", {
    direction: "outbound",
    connection_id: conn,
  });
  if (r.status !== 200) throw new Error(`push answered ${r.status}: ${JSON.stringify(r.json)}`);
  return r.json;
}

/** One inbound walk of `objects` in a direct request (a delta unless `mode` says full). */
export async function pullNow(
  conn: string,
  objects: string[] = ["contacts"],
  mode: "delta" | "full" = "delta",
): Promise<Array<Record<string, unknown>>> {
  const r = await callFunction("crm-sync-bidirectional", {
    direction: "inbound",
    connection_id: conn,
    objects,
    mode,
  });
  if (r.status !== 200) throw new Error(`pull answered ${r.status}: ${JSON.stringify(r.json)}`);
  return r.json.runs as Array<Record<string, unknown>>;
}

/** The sandbox admin API's object names. */
export const ADMIN_OBJECT: Record<ProviderName, Record<string, string>> = {
  hubspot: { contacts: "contacts", companies: "companies", deals: "deals" },
  salesforce: { contacts: "Contact", leads: "Lead", companies: "Account", deals: "Opportunity" },
  pipedrive: { contacts: "person", companies: "organization", deals: "deal" },
};

export interface StoredRecord {
  id: string;
  /** Flat provider properties (HubSpot's `properties`, the record itself elsewhere). */
  props: Record<string, unknown>;
  deleted: boolean;
  /** HubSpot: the record's associations. */
  associations?: { type: string; id: string }[];
}

function flatten(provider: ProviderName, r: Record<string, unknown>): StoredRecord {
  if (provider === "hubspot") {
    return {
      id: String(r.id),
      props: r.properties as Record<string, unknown>,
      deleted: r.archived === true,
      associations: r.associations as { type: string; id: string }[],
    };
  }
  if (provider === "salesforce") {
    return { id: String(r.Id), props: r, deleted: r.IsDeleted === true };
  }
  return { id: String(r.id), props: r, deleted: r.is_deleted === true };
}

/** Every record of an object the sandbox holds, archived and deleted ones included. */
export async function storedAll(
  url: string,
  provider: ProviderName,
  object: string,
): Promise<StoredRecord[]> {
  const rows = await admin(url, "GET", `/records/${ADMIN_OBJECT[provider][object]}`);
  return (rows as Record<string, unknown>[]).map((r) => flatten(provider, r));
}

export async function stored(
  url: string,
  provider: ProviderName,
  object: string,
  id: string,
): Promise<StoredRecord> {
  const r = await admin(url, "GET", `/records/${ADMIN_OBJECT[provider][object]}/${id}`);
  return flatten(provider, r);
}

/** Calls made to the sandbox route "METHOD /pattern", any status. */
export async function routeCalls(url: string, route: string): Promise<number> {
  const c = await admin(url, "GET", "/counters") as { routes: Record<string, { total: number }> };
  return Object.entries(c.routes)
    .filter(([r]) => r === route)
    .reduce((n, [, r]) => n + r.total, 0);
}
