// Pipedrive: webhooks v2 registered through the API on the connection's own credentials
// (POST /v1/webhooks, version "2.0"), one per object the receiver processes, all calling
// <public URL>/pipedrive with the connection's HTTP basic-auth pair (the only authentication
// Pipedrive offers; the receiver finds the connection by the user's SHA-256).
// Docs: https://pipedrive.readme.io/docs/guide-for-webhooks-v2
// Idempotent: the account's webhooks are listed first; ours are those calling our URL.
//  - stored pair, and ours carry its user: keep them, create only the objects missing, delete
//    ours that carry another user or repeat an object;
//  - no stored pair (first registration, credentials replaced): a fresh pair; the new webhooks
//    are created first, then the pair is stored (with its hash, one transaction), then ours of
//    the old pair are deleted, so at every moment some webhook delivers with credentials the
//    receiver accepts or is retried by Pipedrive (3 s, 30 s, 150 s) until it does.
// Pipedrive never shows a webhook's password again, so a stored pair is trusted as it is.
import { z } from "zod";
import type { ApiCaller } from "./subscribe_http.ts";
import { requestJson } from "./subscribe_http.ts";
import { generateSecret } from "./secret.ts";
import type { SubscribeDeps, SubscribeResult } from "./subscribe_types.ts";

/** The entities crm-webhook maps (webhooks/pipedrive.ts): person, organization, deal, user. */
export const PIPEDRIVE_OBJECTS = ["person", "organization", "deal", "user"] as const;

const Hook = z.looseObject({
  id: z.union([z.number(), z.string()]),
  subscription_url: z.string(),
  event_action: z.string(),
  event_object: z.string(),
  http_auth_user: z.string().nullable().optional(),
  version: z.string().nullable().optional(),
  is_active: z.union([z.number(), z.boolean()]).optional(),
});
const List = z.looseObject({ data: z.array(Hook).nullable().optional() });

function authHeaders(creds: Record<string, string>): Record<string, string> {
  if (creds.accessToken) return { authorization: `Bearer ${creds.accessToken}` };
  if (creds.apiToken) return { "x-api-token": creds.apiToken };
  throw new Error("the connection has neither an API token nor an OAuth access token");
}

export async function subscribePipedrive(d: SubscribeDeps): Promise<SubscribeResult> {
  const url = `${d.publicBase}/pipedrive`;
  const api = `${d.conn.baseUrl}/v1/webhooks`;
  const headers = authHeaders(d.conn.credentials);
  const caller: ApiCaller = {
    ...d.budget,
    log: d.log,
    deadline: d.deadline,
    timeoutMs: d.timeoutMs,
    refusal: "revoked",
  };

  const listed = await requestJson(caller, "webhooks", "GET", api, { headers });
  const hooks = List.parse(listed.body).data ?? [];
  const ours = hooks.filter((h) => h.subscription_url === url);

  const storedUser = d.conn.credentials.webhook_user || null;
  const storedPassword = d.conn.credentials.webhook_password || null;
  const reuse = storedUser !== null && storedPassword !== null;
  const user = reuse ? storedUser! : generateSecret(24);
  const password = reuse ? storedPassword! : generateSecret();

  // Ours to keep: the stored user's, v2, one per wanted object, for every action.
  const kept = new Map<string, z.infer<typeof Hook>>();
  if (reuse) {
    for (const h of ours) {
      const wanted = (PIPEDRIVE_OBJECTS as readonly string[]).includes(h.event_object);
      if (
        wanted && h.http_auth_user === user && h.event_action === "*" &&
        (h.version ?? "2.0") === "2.0" && !kept.has(h.event_object)
      ) kept.set(h.event_object, h);
    }
  }
  const created: string[] = [];
  for (const object of PIPEDRIVE_OBJECTS) {
    if (kept.has(object)) continue;
    const res = await requestJson(caller, "create", "POST", api, {
      headers,
      body: {
        subscription_url: url,
        event_action: "*",
        event_object: object,
        http_auth_user: user,
        http_auth_password: password,
        version: "2.0",
        name: `crm-sync ${object}`,
      },
    });
    const made = Hook.safeParse((res.body as { data?: unknown })?.data);
    if (made.success) kept.set(object, made.data);
    created.push(object);
  }
  // The pair (and its hash) is stored after the webhooks that use it exist; when reused it is
  // already stored, and only the hash column is made sure of.
  await d.storeSecrets({
    credentials: reuse ? {} : { webhook_user: user, webhook_password: password },
    userHashOf: user,
  });
  const keep = new Set([...kept.values()].map((h) => String(h.id)));
  const removed: string[] = [];
  for (const h of ours) {
    if (keep.has(String(h.id))) continue;
    await requestJson(caller, "delete", "DELETE", `${api}/${h.id}`, { headers, accept: [404] });
    removed.push(String(h.id));
  }
  return {
    provider: "pipedrive",
    endpoint: url,
    action: created.length === 0 && removed.length === 0 ? "unchanged" : "registered",
    details: {
      webhooks: [...keep].sort(),
      created,
      removed,
      credentials: reuse ? "kept" : "generated",
    },
  };
}
