// Removes a connection's webhook subscriptions where the provider's API allows it, for
// crm-connect's disconnect, before its credentials are dropped (they authenticate the calls).
//  - Pipedrive: the account's webhooks are listed and ours, those calling <public URL>/pipedrive
//    (the same test subscribe_pipedrive.ts uses), are deleted with DELETE /v1/webhooks/{id}.
//    A Pipedrive company has at most one connection here ((provider, remote_account_id) is
//    unique), so every webhook of the account calling our URL is this connection's.
//  - HubSpot: subscriptions belong to the app and serve every portal that installed it; they
//    stay. The portal's deliveries are refused (own app: its signing secret went with the
//    credentials) or stored and never processed (the inbox skips connections not active).
//  - Salesforce: Outbound Messages are Setup metadata the grant cannot delete; the listener
//    token goes with the credentials and its hash is cleared (crm.disconnect_connection), so the
//    URL answers 401. The admin deletes the Outbound Message (README).
// Calls spend the connection's rate budget and have a timeout each (subscribe_http.ts).
import { z } from "zod";
import type { ProviderDeps, ProviderName } from "../providers/types.ts";
import { type ApiCaller, requestJson } from "./subscribe_http.ts";

export interface UnsubscribeDeps {
  provider: ProviderName;
  /** The connection's API base (sync/connections.ts) and decrypted credentials. */
  baseUrl: string;
  credentials: Record<string, string>;
  /** crm-webhook's public URL (public_url.ts), no trailing slash; null when unknown. */
  publicBase: string | null;
  budget?: Pick<ProviderDeps, "beforeRequest" | "observe">;
  log: ProviderDeps["log"];
  timeoutMs?: number;
  deadline?: number;
}

export interface UnsubscribeResult {
  /** "removed": ours were deleted (maybe none existed); "kept": the provider's subscriptions
   * are not the connection's to delete; "manual": the admin removes them. */
  action: "removed" | "kept" | "manual";
  removed: string[];
  note: string;
}

const Hooks = z.looseObject({
  data: z.array(z.looseObject({
    id: z.union([z.number(), z.string()]),
    subscription_url: z.string(),
  })).nullable().optional(),
});

function pipedriveHeaders(c: Record<string, string>): Record<string, string> | null {
  if (c.accessToken) return { authorization: `Bearer ${c.accessToken}` };
  if (c.apiToken) return { "x-api-token": c.apiToken };
  return null;
}

export async function unsubscribeWebhooks(d: UnsubscribeDeps): Promise<UnsubscribeResult> {
  switch (d.provider) {
    case "hubspot":
      return {
        action: "kept",
        removed: [],
        note: "HubSpot webhook subscriptions belong to the app and serve every portal; " +
          "this portal's events are no longer processed",
      };
    case "salesforce":
      return {
        action: "manual",
        removed: [],
        note: "the listener URL now answers 401; delete the Outbound Messages in Setup",
      };
    case "pipedrive":
      return await unsubscribePipedrive(d);
  }
}

async function unsubscribePipedrive(d: UnsubscribeDeps): Promise<UnsubscribeResult> {
  const headers = pipedriveHeaders(d.credentials);
  if (!headers || !d.publicBase) {
    return {
      action: "manual",
      removed: [],
      note: !headers
        ? "no credentials to call Pipedrive with; delete the crm-sync webhooks in Pipedrive"
        : "crm-webhook's public URL is unknown; delete the crm-sync webhooks in Pipedrive",
    };
  }
  const url = `${d.publicBase}/pipedrive`;
  const api = `${d.baseUrl}/v1/webhooks`;
  const caller: ApiCaller = {
    ...d.budget,
    log: d.log,
    timeoutMs: d.timeoutMs,
    deadline: d.deadline,
    refusal: "revoked",
  };
  const listed = await requestJson(caller, "webhooks", "GET", api, { headers });
  const ours = (Hooks.parse(listed.body).data ?? []).filter((h) => h.subscription_url === url);
  const removed: string[] = [];
  for (const h of ours) {
    await requestJson(caller, "delete", "DELETE", `${api}/${encodeURIComponent(String(h.id))}`, {
      headers,
      accept: [404],
    });
    removed.push(String(h.id));
  }
  return {
    action: "removed",
    removed,
    note: `${removed.length} Pipedrive webhook(s) deleted`,
  };
}
