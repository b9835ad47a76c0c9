// The per-account limit on crm-fetch-live calls that persist (sync: true) for signed-in users:
// a token bucket in SQL (crm.take_live_fetch_grant, migration 20261204010300), shared by every
// function instance. CRM_LIVE_SYNC_BURST and CRM_LIVE_SYNC_PER_HOUR configure it; unset, the
// SQL defaults apply (burst 5, 30 an hour). Refused calls get 429 with Retry-After.
import type { Sql } from "../db.ts";

export interface LiveLimit {
  burst: number | null;
  perHour: number | null;
}

function positiveInt(name: string, value: string | undefined): number | null {
  if (value === undefined || value.trim() === "") return null;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer`);
  return n;
}

export function liveLimitFromEnv(
  env: { get(k: string): string | undefined } = Deno.env,
): LiveLimit {
  return {
    burst: positiveInt("CRM_LIVE_SYNC_BURST", env.get("CRM_LIVE_SYNC_BURST")),
    perHour: positiveInt("CRM_LIVE_SYNC_PER_HOUR", env.get("CRM_LIVE_SYNC_PER_HOUR")),
  };
}

/** Takes one grant for the account: null when granted, else the 429 to answer. */
export async function takeLiveSyncGrant(
  sql: Sql,
  accountId: string,
  limit: LiveLimit,
): Promise<Response | null> {
  const [g] = await sql`
    select granted, retry_after_s, burst, per_hour
    from crm.take_live_fetch_grant(${accountId}::uuid, ${limit.burst}::integer,
                                   ${limit.perHour}::integer)`;
  if (g.granted) return null;
  return Response.json({
    error: `live sync limit reached for this account: ${g.per_hour} calls with "sync": true ` +
      `an hour (bursts of ${g.burst}); retry in ${g.retry_after_s} s`,
    retry_after_s: g.retry_after_s,
  }, { status: 429, headers: { "retry-after": String(g.retry_after_s) } });
}
