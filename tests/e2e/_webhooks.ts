// Shared set-up of the webhook receiver tests: connections with webhook secrets (encrypted, and
// the hashes crm-webhook looks them up by), the function's URL, and row counts.
import { encryptJson, importKey } from "../../supabase/functions/_shared/crypto.ts";
import { sha256Hex } from "../../supabase/functions/_shared/webhooks/limits.ts";
import { need } from "../_support/env.ts";
import { gatewayStats, type Sql, until } from "./_harness.ts";

export const hookUrl = (route: string) =>
  `${need("SUPABASE_URL")}/functions/v1/crm-webhook${route}`;

export function randomSecret(bytes = 24): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(bytes)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

/**
 * A connection that receives webhooks. A connection of the same remote account left by an
 * earlier run on this test stack is removed first ((provider, remote_account_id) is unique).
 */
export async function webhookConnection(
  sql: Sql,
  provider: "hubspot" | "salesforce" | "pipedrive",
  remoteAccountId: string,
  credentials: Record<string, string>,
): Promise<string> {
  await sql`delete from crm.connections
            where provider = ${provider} and remote_account_id = ${remoteAccountId}`;
  const key = await importKey(need("CRM_ENCRYPTION_KEY"));
  const id = crypto.randomUUID();
  const stored = await encryptJson(key, credentials, id);
  const tokenHash = credentials.webhook_token ? await sha256Hex(credentials.webhook_token) : null;
  const userHash = credentials.webhook_user ? await sha256Hex(credentials.webhook_user) : null;
  await sql`
    insert into crm.connections (id, account_id, provider, remote_account_id, name, credentials,
                                 webhook_token_hash, webhook_user_hash)
    values (${id}, ${crypto.randomUUID()}, ${provider}, ${remoteAccountId}, ${`webhook ${provider}`},
            convert_to(${stored}, 'UTF8'), ${tokenHash}, ${userHash})`;
  return id;
}

export async function inboxRows(sql: Sql): Promise<number> {
  const [{ n }] = await sql`select count(*)::int as n from crm.webhook_events`;
  return n;
}

export async function post(
  route: string,
  body: BodyInit | null,
  headers: Record<string, string> = {},
  method = "POST",
): Promise<{ status: number; text: string; type: string | null }> {
  const res = await fetch(hookUrl(route), { method, headers, body });
  return { status: res.status, text: await res.text(), type: res.headers.get("content-type") };
}

/** Whether the connection's inbox is drained: no event pending or leased, no inbox job due. */
export async function inboxSettled(sql: Sql, conn: string): Promise<boolean> {
  const [r] = await sql`
    select (select count(*) from crm.webhook_events
            where connection_id = ${conn} and state in ('pending', 'processing')) as events,
           (select count(*) from crm.jobs where connection_id = ${conn} and kind = 'inbox'
              and (state = 'running' or (state = 'queued' and run_after <= now()))) as jobs`;
  return Number(r.events) === 0 && Number(r.jobs) === 0;
}

/**
 * Ends every live crm-webhook process, so the next delivery meets a fresh instance: one that
 * has not remembered any verified route (crm-webhook keeps them 10 s per instance). Tests that
 * change a connection's routing key call it for the change to take effect at once.
 */
export async function freshWebhookInstance(): Promise<void> {
  const live =
    (await gatewayStats())["crm-webhook"]?.processes.filter((p) => p.state !== "exited") ?? [];
  for (const p of live) Deno.kill(p.pid, "SIGKILL");
  await until(
    "the gateway saw crm-webhook's processes end",
    async () =>
      ((await gatewayStats())["crm-webhook"]?.processes ?? []).every((p) =>
        !live.some((k) => k.pid === p.pid) || p.state === "exited"
      ),
    10_000,
  );
}
