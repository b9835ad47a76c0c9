// What a provider's subscription registration is given and answers (./subscribe.ts).
import type { FieldSelection } from "../providers/registry.ts";
import type { ProviderDeps, ProviderName } from "../providers/types.ts";
import type { Connection } from "../sync/connections.ts";
import type { WebhookSecretsPatch } from "./credentials.ts";
import type { Env } from "./public_url.ts";

export interface SubscribeDeps {
  conn: Connection;
  /** crm-webhook's public URL (./public_url.ts), no trailing slash. */
  publicBase: string;
  /** The connection's rate budget, for calls made on its credentials. */
  budget: Pick<ProviderDeps, "beforeRequest" | "observe">;
  /** The mapped inbound properties per object (HubSpot subscribes to their changes). */
  fields: FieldSelection;
  /** Function secrets (HUBSPOT_APP_ID, HUBSPOT_DEVELOPER_API_KEY). */
  env: Env;
  /** Stores webhook secrets encrypted, with their lookup hashes (./credentials.ts). */
  storeSecrets(patch: WebhookSecretsPatch): Promise<void>;
  log: ProviderDeps["log"];
  /** Epoch ms after which no request starts. */
  deadline?: number;
  /** Longest wait for one answer (default SUBSCRIBE_TIMEOUT_MS, ./subscribe_http.ts). */
  timeoutMs?: number;
}

export interface SubscribeResult {
  provider: ProviderName;
  /** "registered": something was created or changed; "unchanged": all was in place;
   * "manual": the user must finish the set-up in the CRM (Salesforce). */
  action: "registered" | "unchanged" | "manual";
  /** The URL the CRM calls. For Salesforce it holds the secret token: never log or store it;
   * `shown` is the same URL with the token masked. */
  endpoint: string;
  shown?: string;
  details: Record<string, unknown>;
}

/** A registration that cannot work until an admin fixes the configuration (no retry helps). */
export class SubscribeConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SubscribeConfigError";
  }
}
