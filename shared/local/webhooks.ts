// Real-time sync for the local stack: registers the sandbox connections' webhooks through the
// engine's own verb (crm.register_webhooks → setup job → crm-sync-bidirectional worker, as a
// deployed project does), so the sandboxes deliver to the local gateway's crm-webhook, and
// points the Salesforce sandbox's Outbound Messages at the connection's listener URL through
// the sandbox's admin API (the step a Salesforce admin does by hand in Setup).
// The listener token is read from the connection's encrypted credentials with the stack's own
// CRM_ENCRYPTION_KEY; it is never printed.
import type postgres from "postgres";
import { decryptJson, importKey } from "../../supabase/functions/_shared/crypto.ts";
import { webhookBaseUrl } from "../../supabase/functions/_shared/webhooks/public_url.ts";

type Sql = postgres.Sql;

/** The Salesforce objects whose saves the receiver processes (webhooks/salesforce.ts). */
export const SALESFORCE_OUTBOUND_OBJECTS = ["Contact", "Lead", "Account", "Opportunity"];

export interface SetupState {
  id: string;
  provider: string;
  state: string | null;
  job: string | null;
  error: string | null;
}

/** Queues the webhook registration of each connection (crm.register_webhooks). */
export async function requestWebhooks(sql: Sql, ids: string[]): Promise<void> {
  for (const id of ids) await sql`select crm.register_webhooks(${id}::uuid)`;
}

/** Waits until the connections' setup jobs are no longer queued-and-due or running, then
 * answers each connection's webhook_setup state. */
export async function awaitWebhookSetup(
  sql: Sql,
  ids: string[],
  timeoutMs = 60_000,
): Promise<SetupState[]> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const [r] = await sql`
      select count(*)::int as busy from crm.jobs
      where kind = 'setup' and connection_id = any (${ids}::uuid[])
        and (state = 'running' or (state = 'queued' and run_after <= now()))`;
    if (r.busy === 0 || Date.now() > until) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  const rows = await sql`
    select c.id::text, c.provider, c.webhook_setup ->> 'state' as state,
           c.webhook_setup ->> 'error' as error,
           (select j.state from crm.jobs j where j.kind = 'setup' and j.connection_id = c.id
            order by j.id desc limit 1) as job
    from crm.connections c where c.id = any (${ids}::uuid[]) order by c.provider`;
  return rows.map((r) => ({
    id: r.id,
    provider: r.provider,
    state: r.state,
    job: r.job,
    error: r.error,
  }));
}

/** The Salesforce connection's listener URL (with its secret token), or null before the
 * registration generated the token. */
export async function salesforceListenerUrl(
  sql: Sql,
  base64Key: string,
  connectionId: string,
  publicBase: string,
): Promise<string | null> {
  const [row] = await sql`select convert_from(credentials, 'UTF8') as c
                          from crm.connections where id = ${connectionId}`;
  if (!row?.c) return null;
  const creds = await decryptJson<Record<string, string>>(
    await importKey(base64Key),
    row.c,
    connectionId,
  );
  return creds.webhook_token ? `${publicBase}/salesforce/${creds.webhook_token}` : null;
}

/** Points a Salesforce sandbox's Outbound Messages at `url` (its admin API). */
export async function configureSandboxOutbound(
  sandboxUrl: string,
  url: string,
  extra: Record<string, unknown> = {},
): Promise<void> {
  const res = await fetch(`${sandboxUrl.replace(/\/$/, "")}/__admin/outbound`, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ url, objects: SALESFORCE_OUTBOUND_OBJECTS, ...extra }),
    signal: AbortSignal.timeout(5_000),
  });
  const text = await res.text();
  if (!res.ok) {
    throw new Error(`the sandbox refused the outbound configuration: ${res.status} ${text}`);
  }
}

/**
 * `npm start`: registers the webhooks of the sandbox connections and configures the Salesforce
 * sandbox's Outbound Messages. Answers one line per provider for the start-up log.
 */
export async function enableSandboxWebhooks(
  sql: Sql,
  o: {
    connections: { provider: string; id: string | null }[];
    env: Record<string, string>;
    functionEnv: Record<string, string>;
    base64Key: string;
  },
): Promise<string[]> {
  const ids = o.connections.filter((c) => c.id).map((c) => c.id!);
  if (ids.length === 0) return [];
  const publicBase = webhookBaseUrl((k) => o.functionEnv[k] || o.env[k]);
  await requestWebhooks(sql, ids);
  const states = await awaitWebhookSetup(sql, ids);
  const lines: string[] = [];
  for (const s of states) {
    if (s.provider === "salesforce" && s.state === "manual_step" && publicBase) {
      const url = await salesforceListenerUrl(sql, o.base64Key, s.id, publicBase);
      if (url && o.env.SALESFORCE_API_URL) {
        await configureSandboxOutbound(o.env.SALESFORCE_API_URL, url);
        lines.push("salesforce: outbound messages → crm-webhook/salesforce/<token>");
        continue;
      }
    }
    lines.push(
      s.state === "registered"
        ? `${s.provider}: webhooks → ${publicBase}/${s.provider}`
        : `${s.provider}: webhooks not set up (${s.state ?? s.job ?? "no outcome"}${
          s.error ? `: ${s.error}` : ""
        })`,
    );
  }
  return lines;
}
