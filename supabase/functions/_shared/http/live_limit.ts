// The per-account limits on crm-fetch-live for signed-in users: token buckets in SQL
// (crm.take_live_fetch_grant, migration 20261204010300), shared by every function instance.
// Every user call takes a 'read' grant (a plain read spends the tenant's CRM quota too); a call
// with sync: true takes a 'sync' grant as well. CRM_LIVE_READ_BURST / CRM_LIVE_READ_PER_HOUR and
// CRM_LIVE_SYNC_BURST / CRM_LIVE_SYNC_PER_HOUR configure them; unset, the SQL defaults apply
// (read: burst 20, 360 an hour; sync: burst 5, 30 an hour). Refused calls get 429 with
// Retry-After.
import type { Sql } from "../db.ts";

export type LiveGrantKind = "read" | "sync";

export interface Bucket {
  burst: number | null;
  perHour: number | null;
}

export type LiveLimit = Record<LiveGrantKind, Bucket>;

function positiveInt(name: string, value: string | undefined): number | null {
  if (value === undefined || value.trim() === "") return null;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer`);
  return n;
}

export function liveLimitFromEnv(
  env: { get(k: string): string | undefined } = Deno.env,
): LiveLimit {
  const bucket = (prefix: string): Bucket => ({
    burst: positiveInt(`${prefix}_BURST`, env.get(`${prefix}_BURST`)),
    perHour: positiveInt(`${prefix}_PER_HOUR`, env.get(`${prefix}_PER_HOUR`)),
  });
  return { read: bucket("CRM_LIVE_READ"), sync: bucket("CRM_LIVE_SYNC") };
}

const WHAT: Record<LiveGrantKind, string> = {
  read: "live fetch limit reached for this account",
  sync: 'live sync limit reached for this account: calls with "sync": true',
};

/** Takes one grant of the kind for the account: null when granted, else the 429 to answer. */
export async function takeLiveGrant(
  sql: Sql,
  accountId: string,
  kind: LiveGrantKind,
  limit: LiveLimit,
): Promise<Response | null> {
  const [g] = await sql`
    select granted, retry_after_s, burst, per_hour
    from crm.take_live_fetch_grant(${accountId}::uuid, ${limit[kind].burst}::integer,
                                   ${limit[kind].perHour}::integer, ${kind})`;
  if (g.granted) return null;
  return Response.json({
    error: `${WHAT[kind]} (${g.per_hour} an hour, bursts of ${g.burst}); ` +
      `retry in ${g.retry_after_s} s`,
    retry_after_s: g.retry_after_s,
  }, { status: 429, headers: { "retry-after": String(g.retry_after_s) } });
}
