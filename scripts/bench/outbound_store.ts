// What the sandbox CRM holds after a push, read through its admin API (GET /__admin/store):
// each contact's first name and the time the CRM stamped on its last change — HubSpot's
// updatedAt (milliseconds), Salesforce's LastModifiedDate and Pipedrive's update_time (both
// truncated to the second, as the real APIs give them).
import type { ProviderName } from "../../supabase/functions/_shared/providers/types.ts";
import { applyStamp } from "./outbound_figures.ts";
import { admin } from "./sandboxes.ts";

export interface StoredContact {
  firstName: unknown;
  appliedMs: number | null;
  precisionMs: number;
}

const SHAPE: Record<ProviderName, { object: string; id: string; first: string; at: string }> = {
  hubspot: { object: "contacts", id: "id", first: "firstname", at: "updatedAt" },
  salesforce: { object: "Contact", id: "Id", first: "FirstName", at: "LastModifiedDate" },
  pipedrive: { object: "person", id: "id", first: "first_name", at: "update_time" },
};

/** The sandbox's contacts (Salesforce: Contacts and Leads) by remote id. */
export async function storedContacts(
  provider: ProviderName,
  url: string,
): Promise<Map<string, StoredContact>> {
  const s = SHAPE[provider];
  const rows = await admin(url, "GET", `/store?object=${s.object}`) as Record<string, unknown>[];
  if (provider === "salesforce") {
    rows.push(...await admin(url, "GET", "/store?object=Lead") as Record<string, unknown>[]);
  }
  const out = new Map<string, StoredContact>();
  for (const r of rows) {
    const props = provider === "hubspot" ? r.properties as Record<string, unknown> : r;
    const stamp = applyStamp(provider, r[s.at]);
    out.set(String(r[s.id]), {
      firstName: props[s.first],
      appliedMs: stamp?.ms ?? null,
      precisionMs: stamp?.precisionMs ?? 1,
    });
  }
  return out;
}
