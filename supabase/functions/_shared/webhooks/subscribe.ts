// Registers a connection's webhook subscriptions with its CRM (or, for Salesforce, prepares
// what the admin pastes in Setup): one entry for the setup job (../jobs/setup_job.ts), for
// crm-connect after a connection is made, and for the local stack. Every provider's
// registration is idempotent: run it again after a failure, a restart or a credential change,
// and it converges on one set of subscriptions pointing at the public URL.
import {
  SubscribeConfigError,
  type SubscribeDeps,
  type SubscribeResult,
} from "./subscribe_types.ts";
import { subscribeHubSpot } from "./subscribe_hubspot.ts";
import { subscribePipedrive } from "./subscribe_pipedrive.ts";
import { subscribeSalesforce } from "./subscribe_salesforce.ts";
import { webhookBaseUrl } from "./public_url.ts";

export type { SubscribeDeps, SubscribeResult } from "./subscribe_types.ts";
export { SubscribeConfigError } from "./subscribe_types.ts";

export async function registerWebhooks(
  d: Omit<SubscribeDeps, "publicBase"> & { publicBase?: string | null },
): Promise<SubscribeResult> {
  const publicBase = d.publicBase ?? webhookBaseUrl(d.env);
  if (!publicBase || !/^https?:\/\//.test(publicBase)) {
    throw new SubscribeConfigError(
      "crm-webhook's public URL is unknown: set CRM_WEBHOOK_PUBLIC_URL (or SUPABASE_URL)",
    );
  }
  const deps = { ...d, publicBase };
  switch (d.conn.provider) {
    case "hubspot":
      return await subscribeHubSpot(deps);
    case "pipedrive":
      return await subscribePipedrive(deps);
    case "salesforce":
      return await subscribeSalesforce(deps);
  }
}
