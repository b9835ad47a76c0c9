// One crm.connections row per CRM sandbox, so a fresh local stack can sync right away
// (`select trigger_crm_sync('contacts')`). Used by `up` (shared/local/stack.ts) and by tests
// that need to (re)register the sandboxes on the test stack.
//
// Decisions:
// * Idempotent by the table's own key (provider, remote_account_id): a re-run updates the row
//   in place — fresh credentials and base_url after the sandboxes restarted on other ports or
//   with other tokens — and never adds a second one.
// * Only rows that still point at a sandbox (settings.base_url set) are touched. A developer who
//   pointed a connection at a real CRM account (base_url null, real credentials) keeps it.
// * On update, only base_url is written into settings; conflict_policy, objects and so on stay
//   as the developer left them. A connection in `error` becomes `active` again, since its
//   credentials were just replaced; paused and disconnected ones stay so.
// * Credentials are encrypted exactly as the edge functions do (encryptJson bound to the
//   connection id) and stored as the UTF-8 bytes of the ciphertext text. The id is needed for
//   that, so insert/update and the credentials write share one transaction.
import type postgres from "postgres";
import { encryptJson, importKey } from "../../supabase/functions/_shared/crypto.ts";
import {
  OBJECT_TYPES,
  type ProviderName,
} from "../../supabase/functions/_shared/providers/types.ts";

/** The app account the sandbox connections belong to (RLS: app_metadata.account_id). */
export const DEV_ACCOUNT_ID = "00000000-0000-4000-8000-000000000001";

export const SANDBOX_PROVIDERS: readonly ProviderName[] = ["hubspot", "salesforce", "pipedrive"];

const NAMES: Record<ProviderName, string> = {
  hubspot: "HubSpot sandbox",
  salesforce: "Salesforce sandbox",
  pipedrive: "Pipedrive sandbox",
};

function need(env: Record<string, string>, key: string): string {
  const v = env[key];
  if (!v) throw new Error(`${key} missing from the sandbox environment`);
  return v;
}

/**
 * The credential JSON each adapter reads, built from the emulators' env (the `env` of their
 * ready line, copied into .local/stack.env) exactly as tests/providers/*_adapter.test.ts do.
 * `baseUrl`: the sandbox's URL when `env` is only a sandbox's `credentials` (an emulator
 * started in-process), which carry no *_API_URL; Salesforce needs it as instance/login URL.
 */
export function connectionCredentials(
  provider: ProviderName,
  env: Record<string, string>,
  baseUrl?: string,
): Record<string, string> {
  switch (provider) {
    case "hubspot":
      return {
        accessToken: need(env, "HUBSPOT_ACCESS_TOKEN"),
        refreshToken: need(env, "HUBSPOT_REFRESH_TOKEN"),
        clientId: need(env, "HUBSPOT_CLIENT_ID"),
        clientSecret: need(env, "HUBSPOT_CLIENT_SECRET"),
        // The sandbox's developer app: webhook subscriptions are registered with it (the
        // connection's own app, see _shared/webhooks/subscribe_hubspot.ts).
        ...(env.HUBSPOT_APP_ID && env.HUBSPOT_DEVELOPER_API_KEY
          ? { appId: env.HUBSPOT_APP_ID, developerApiKey: env.HUBSPOT_DEVELOPER_API_KEY }
          : {}),
      };
    case "salesforce":
      return {
        accessToken: need(env, "SALESFORCE_ACCESS_TOKEN"),
        refreshToken: need(env, "SALESFORCE_REFRESH_TOKEN"),
        clientId: need(env, "SALESFORCE_CLIENT_ID"),
        clientSecret: need(env, "SALESFORCE_CLIENT_SECRET"),
        instanceUrl: baseUrl ?? need(env, "SALESFORCE_API_URL"),
        loginUrl: baseUrl ?? need(env, "SALESFORCE_API_URL"),
      };
    case "pipedrive":
      return { apiToken: need(env, "PIPEDRIVE_API_TOKEN") };
  }
}

export interface SandboxConnection {
  provider: ProviderName;
  name: string;
  /** portalId / org id / company id: what webhooks are routed by. */
  remoteAccountId: string;
  baseUrl: string;
  credentials: Record<string, string>;
}

export function sandboxConnections(env: Record<string, string>): SandboxConnection[] {
  const remote: Record<ProviderName, string> = {
    hubspot: "HUBSPOT_PORTAL_ID",
    salesforce: "SALESFORCE_ORG_ID",
    pipedrive: "PIPEDRIVE_COMPANY_ID",
  };
  const url: Record<ProviderName, string> = {
    hubspot: "HUBSPOT_API_URL",
    salesforce: "SALESFORCE_API_URL",
    pipedrive: "PIPEDRIVE_API_URL",
  };
  return SANDBOX_PROVIDERS.map((provider) => ({
    provider,
    name: NAMES[provider],
    remoteAccountId: need(env, remote[provider]),
    baseUrl: need(env, url[provider]),
    credentials: connectionCredentials(provider, env),
  }));
}

export interface Registered {
  provider: ProviderName;
  id: string | null;
  action: "created" | "updated" | "skipped";
}

/**
 * Encrypts credentials for one connection and stores them (the edge functions' format).
 * False when there is no such connection.
 */
export async function storeCredentials(
  sql: postgres.Sql | postgres.TransactionSql,
  key: CryptoKey,
  connectionId: string,
  credentials: Record<string, string>,
): Promise<boolean> {
  const ciphertext = await encryptJson(key, credentials, connectionId);
  const res = await sql`update crm.connections
                        set credentials = convert_to(${ciphertext}, 'UTF8'),
                            credentials_updated_at = now(), updated_at = now()
                        where id = ${connectionId}`;
  return res.count === 1;
}

export async function registerSandboxConnections(
  sql: postgres.Sql,
  env: Record<string, string>,
  base64Key: string,
  accountId = DEV_ACCOUNT_ID,
): Promise<Registered[]> {
  const key = await importKey(base64Key);
  const out: Registered[] = [];
  for (const c of sandboxConnections(env)) {
    const settings = {
      base_url: c.baseUrl,
      default_phone_region: "US",
      conflict_policy: "newest_wins",
      objects: [...OBJECT_TYPES],
    };
    out.push(
      await sql.begin(async (tx) => {
        const [row] = await tx`
          insert into crm.connections (account_id, provider, remote_account_id, name, settings)
          values (${accountId}, ${c.provider}, ${c.remoteAccountId}, ${c.name}, ${
          tx.json(settings)
        })
          on conflict (provider, remote_account_id) do update
            set settings = crm.connections.settings
                           || jsonb_build_object('base_url', excluded.settings -> 'base_url'),
                status = case crm.connections.status when 'error' then 'active'
                              else crm.connections.status end,
                status_changed_at = case crm.connections.status when 'error' then now()
                                         else crm.connections.status_changed_at end,
                updated_at = now()
            where crm.connections.settings ->> 'base_url' is not null
          returning id::text, xmax = 0 as inserted`;
        if (!row) return { provider: c.provider, id: null, action: "skipped" as const };
        await storeCredentials(tx, key, row.id, c.credentials);
        return {
          provider: c.provider,
          id: row.id as string,
          action: row.inserted ? "created" as const : "updated" as const,
        };
      }),
    );
  }
  return out;
}
