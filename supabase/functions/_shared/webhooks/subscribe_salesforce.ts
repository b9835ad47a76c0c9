// Salesforce: Outbound Messages cannot be registered through an API the connection's OAuth
// grant may use (they are workflow/flow metadata set up in Setup), so the engine prepares what
// the admin pastes there: the listener URL <public URL>/salesforce/<token>, with a per-connection
// token (Outbound Messages cannot be signed; the secret is in the URL). The token is generated
// once, stored encrypted with its SHA-256 in webhook_token_hash (the receiver's lookup), and
// kept on later registrations so a URL already pasted keeps working. `rotate` replaces it.
import { generateSecret } from "./secret.ts";
import type { SubscribeDeps, SubscribeResult } from "./subscribe_types.ts";

const TOKEN = /^[A-Za-z0-9_-]{16,128}$/;

export async function subscribeSalesforce(
  d: SubscribeDeps,
  o: { rotate?: boolean } = {},
): Promise<SubscribeResult> {
  const stored = d.conn.credentials.webhook_token;
  const keep = !o.rotate && typeof stored === "string" && TOKEN.test(stored);
  const token = keep ? stored : generateSecret();
  // Stored (or the hash made sure of) on every registration: the hash column is what routes.
  await d.storeSecrets({ credentials: keep ? {} : { webhook_token: token }, tokenHashOf: token });
  const endpoint = `${d.publicBase}/salesforce/${token}`;
  return {
    provider: "salesforce",
    action: "manual",
    endpoint,
    shown: `${d.publicBase}/salesforce/${token.slice(0, 4)}…`,
    details: {
      token: keep ? "kept" : "generated",
      next: "Setup → Outbound Messages: one message per object (Contact, Lead, Account, " +
        "Opportunity) with this Endpoint URL, and a flow or workflow rule that sends it on " +
        "create and edit (see the README)",
    },
  };
}
