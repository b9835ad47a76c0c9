// A HubSpot connection of an e2e sandbox made ready to receive webhooks (a numeric portal and
// its own webhook secret added to its encrypted credentials), and signed deliveries to it.
import { decryptJson, encryptJson, importKey } from "../../supabase/functions/_shared/crypto.ts";
import { signV3 } from "../../supabase/functions/_shared/webhooks/hubspot.ts";
import { need } from "../_support/env.ts";
import type { Sql } from "./_harness.ts";
import { hookUrl, randomSecret } from "./_webhooks.ts";

export interface HubSpotReceiver {
  portal: string;
  secret: string;
}

export async function receiveHubSpotWebhooks(sql: Sql, conn: string): Promise<HubSpotReceiver> {
  const key = await importKey(need("CRM_ENCRYPTION_KEY"));
  const [row] = await sql`select convert_from(credentials, 'UTF8') as c
                          from crm.connections where id = ${conn}`;
  const creds = await decryptJson<Record<string, unknown>>(key, row.c, conn);
  const secret = randomSecret();
  const portal = String(700_000_000 + Math.floor(Math.random() * 99_000_000));
  const stored = await encryptJson(key, { ...creds, webhook_secret: secret }, conn);
  await sql`update crm.connections
            set credentials = convert_to(${stored}, 'UTF8'), remote_account_id = ${portal}
            where id = ${conn}`;
  return { portal, secret };
}

let eventId = Date.now();

/** One signed delivery of property changes of `ids` (now), from `from` (X-Forwarded-For). */
export async function deliverHubSpot(
  r: HubSpotReceiver,
  ids: string[],
  from = "192.0.2.10",
  opts: { forged?: boolean } = {},
): Promise<Response> {
  const now = Date.now();
  const body = JSON.stringify(ids.map((id) => ({
    eventId: ++eventId,
    subscriptionId: 77,
    portalId: Number(r.portal),
    occurredAt: now,
    subscriptionType: "contact.propertyChange",
    objectId: Number(id),
    propertyName: "firstname",
    changeSource: "CRM_UI",
  })));
  const url = hookUrl("/hubspot");
  const sig = opts.forged
    ? btoa(randomSecret(32))
    : await signV3(r.secret, "POST", url, body, String(now));
  return await fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-hubspot-request-timestamp": String(now),
      "x-hubspot-signature-v3": sig,
      "x-forwarded-for": from,
    },
    body,
  });
}
