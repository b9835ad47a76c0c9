// Everything one connection's sync needs, built once per request: its field mappings, the
// mapper over them, and the provider adapter wired to this connection's rate budget (shared in
// SQL by every caller of the account, ./budget.ts), call counter and token persistence.
import type { Sql } from "../db.ts";
import { createMapper, type Mapper } from "../mapping/mapper.ts";
import { createOutboundMapper, type OutboundMapper } from "../mapping/outbound.ts";
import { createAdapter } from "../providers/registry.ts";
import type { ProviderAdapter, ProviderDeps } from "../providers/types.ts";
import { type Connection, persistTokens } from "./connections.ts";
import { type BudgetGate, createBudgetGate, type Lane } from "./budget.ts";
import { refreshSingleFlight } from "./token_refresh.ts";

export interface SyncContext {
  conn: Connection;
  adapter: ProviderAdapter;
  mapper: Mapper;
  /** The outbound mappings: canonical row → provider properties. */
  outbound: OutboundMapper;
  /** The rate budget gate of this context's calls (stats; flush before the request ends). */
  budget: BudgetGate;
  /** API calls made so far through this context. */
  calls(): number;
  /** Bytes of the CRM's answers so far (their Content-Length; answers without one count 0). */
  bytes(): number;
}

export type Logger = (msg: string, extra?: Record<string, unknown>) => void;

export async function createSyncContext(
  sql: Sql,
  key: CryptoKey,
  conn: Connection,
  log: Logger,
  opts: { lane?: Lane } = {},
): Promise<SyncContext> {
  const mappings = await sql`select * from crm.effective_field_mappings(${conn.id})`;
  const region = typeof conn.settings.default_phone_region === "string"
    ? conn.settings.default_phone_region
    : undefined;
  const mapper = createMapper(conn.provider, [...mappings], { defaultRegion: region });
  const outbound = createOutboundMapper(conn.provider, [...mappings], { defaultRegion: region });
  let calls = 0;
  let bytes = 0;
  // settings.request_timeout_ms: the longest wait for one CRM answer (default in
  // providers/call.ts); runs also cut every request at their deadline.
  const timeout = conn.settings.request_timeout_ms;
  const withConn = (msg: string, extra?: Record<string, unknown>) =>
    log(msg, { connection_id: conn.id, provider: conn.provider, ...extra });
  // Lane: the caller's precedence on the shared budget (live reads interactive; inbound walks
  // delta unless the caller says backfill).
  const budget = createBudgetGate(sql, conn, { lane: opts.lane ?? "delta", log: withConn });
  const adapter = await createAdapter(conn.provider, {
    baseUrl: conn.baseUrl,
    callTimeoutMs: Number.isInteger(timeout) && (timeout as number) >= 100 &&
        (timeout as number) <= 120_000
      ? timeout as number
      : undefined,
    credentials: conn.credentials,
    beforeRequest: budget.beforeRequest,
    observe: (o) => {
      bytes += Number(o.headers.get("content-length")) || 0;
      budget.observe(o);
    },
    describes: describeStore(sql, conn.id),
    onTokens: (tokens) => persistTokens(sql, key, conn, tokens),
    refreshTokens: (stale, refresh) => refreshSingleFlight(sql, key, conn, stale, refresh),
    countCall: (n = 1) => {
      calls += n;
    },
    log: withConn,
  }, mapper.fields());
  return { conn, adapter, mapper, outbound, budget, calls: () => calls, bytes: () => bytes };
}

/** crm.provider_describes for one connection: what describe calls learned, shared by every
 * worker and instance. */
function describeStore(sql: Sql, connectionId: string): NonNullable<ProviderDeps["describes"]> {
  return {
    async get(key, maxAgeMs) {
      const [r] = await sql`
        select fields from crm.provider_describes
        where connection_id = ${connectionId} and key = ${key}
          and described_at > now() - make_interval(secs => ${maxAgeMs / 1000})`;
      return r ? r.fields as string[] : null;
    },
    async put(key, fields) {
      await sql`
        insert into crm.provider_describes (connection_id, key, fields)
        values (${connectionId}, ${key}, ${fields}::text[])
        on conflict (connection_id, key) do update
          set fields = excluded.fields, described_at = now()`;
    },
  };
}
