// HubSpot: webhooks belong to the app, not to the portal. The app's settings (target URL,
// throttling) and subscriptions are set through the webhooks settings API, authenticated by the
// app's developer API key (?hapikey=), and HubSpot then sends the events of every portal that
// installed the app to that URL, signed with the app's client secret; crm-webhook routes them
// by portalId. Docs: https://developers.hubspot.com/docs/api/webhooks (Webhook settings).
// Which app: the connection's own (credentials appId + developerApiKey, e.g. a developer's
// test app or the local sandbox; its clientSecret, which signs the deliveries, is stored as the
// connection's webhook_secret for the receiver), else the deployment's public app (function
// secrets HUBSPOT_APP_ID + HUBSPOT_DEVELOPER_API_KEY; the receiver checks its signatures with
// HUBSPOT_CLIENT_SECRET).
// Subscriptions: creation, deletion, merge, restore and associationChange of contacts,
// companies and deals, contact.privacyDeletion, and propertyChange of every mapped inbound
// property (HubSpot requires a property per propertyChange subscription). Idempotent: existing
// subscriptions are read and only what is missing is created (an inactive one is activated); a
// propertyChange subscription without a property (the sandbox's "every property") covers all.
// Nothing is deleted: the app's subscriptions serve every portal, another connection may need
// a property this one does not map. Calls use the developer key, counted by HubSpot against the
// app, so they do not spend the portal's rate budget; each has a timeout.
import { z } from "zod";
import { type ApiCaller, requestJson } from "./subscribe_http.ts";
import {
  SubscribeConfigError,
  type SubscribeDeps,
  type SubscribeResult,
} from "./subscribe_types.ts";

const OBJECTS = { contacts: "contact", companies: "company", deals: "deal" } as const;
const EVENTS = ["creation", "deletion", "merge", "restore", "associationChange"] as const;
/** Deliveries HubSpot may have in flight at once to our URL (the receiver acks in ms). */
export const HUBSPOT_MAX_CONCURRENT = 10;

const Sub = z.looseObject({
  id: z.union([z.string(), z.number()]),
  eventType: z.string(),
  propertyName: z.string().nullable().optional(),
  active: z.boolean().optional(),
});
const Subs = z.looseObject({ results: z.array(Sub) });
const Settings = z.looseObject({ targetUrl: z.string().nullable().optional() });

export interface Wanted {
  eventType: string;
  propertyName?: string;
}

/** The subscriptions the receiver processes, for the mapped inbound properties. */
export function wantedSubscriptions(fields: Record<string, string[]>): Wanted[] {
  const out: Wanted[] = [];
  for (const [object, singular] of Object.entries(OBJECTS)) {
    for (const ev of EVENTS) out.push({ eventType: `${singular}.${ev}` });
    if (singular === "contact") out.push({ eventType: "contact.privacyDeletion" });
    const props = [...new Set((fields[object] ?? []).filter((p) => /^[a-z0-9_]+$/i.test(p)))]
      .sort();
    for (const p of props) out.push({ eventType: `${singular}.propertyChange`, propertyName: p });
  }
  return out;
}

function app(d: SubscribeDeps): { appId: string; key: string; own: boolean } {
  const c = d.conn.credentials;
  if (c.appId && c.developerApiKey) return { appId: c.appId, key: c.developerApiKey, own: true };
  const appId = d.env("HUBSPOT_APP_ID");
  const key = d.env("HUBSPOT_DEVELOPER_API_KEY");
  if (appId && key) return { appId, key, own: false };
  throw new SubscribeConfigError(
    "HubSpot webhooks need the app's id and developer API key: set the function secrets " +
      "HUBSPOT_APP_ID and HUBSPOT_DEVELOPER_API_KEY (or the connection's appId/developerApiKey)",
  );
}

export async function subscribeHubSpot(d: SubscribeDeps): Promise<SubscribeResult> {
  const url = `${d.publicBase}/hubspot`;
  const { appId, key, own } = app(d);
  if (!/^\d{1,20}$/.test(appId)) {
    throw new SubscribeConfigError("the HubSpot app id must be numeric");
  }
  const base = `${d.conn.baseUrl}/webhooks/v3/${appId}`;
  const q = `hapikey=${encodeURIComponent(key)}`;
  const caller: ApiCaller = {
    log: d.log,
    deadline: d.deadline,
    timeoutMs: d.timeoutMs,
    refusal: "fatal",
  };
  const changed: string[] = [];

  const current = await requestJson(caller, "webhook-settings", "GET", `${base}/settings?${q}`, {
    accept: [404],
  });
  const target = current.status === 404 ? null : Settings.parse(current.body).targetUrl ?? null;
  if (target !== url) {
    await requestJson(caller, "webhook-settings", "PUT", `${base}/settings?${q}`, {
      body: {
        targetUrl: url,
        throttling: { maxConcurrentRequests: HUBSPOT_MAX_CONCURRENT, period: "SECONDLY" },
      },
    });
    changed.push("settings");
  }

  const listed = await requestJson(
    caller,
    "webhook-subscriptions",
    "GET",
    `${base}/subscriptions?${q}`,
  );
  const existing = Subs.parse(listed.body).results;
  const wanted = wantedSubscriptions(d.fields);
  let created = 0;
  let activated = 0;
  for (const w of wanted) {
    const same = existing.filter((s) =>
      s.eventType === w.eventType &&
      ((s.propertyName ?? undefined) === w.propertyName ||
        (w.propertyName !== undefined && !s.propertyName))
    );
    if (same.some((s) => s.active !== false)) continue;
    if (same.length > 0) {
      await requestJson(
        caller,
        "webhook-subscriptions",
        "PATCH",
        `${base}/subscriptions/${same[0].id}?${q}`,
        {
          body: { active: true },
        },
      );
      activated++;
      continue;
    }
    await requestJson(caller, "webhook-subscriptions", "POST", `${base}/subscriptions?${q}`, {
      body: { ...w, active: true },
    });
    created++;
  }
  if (created || activated) changed.push("subscriptions");

  // The connection's own app signs with its client secret: the receiver checks it as this
  // connection's webhook_secret. The deployment's app is checked with HUBSPOT_CLIENT_SECRET.
  let secret: "connection" | "app" = "app";
  if (own) {
    const signing = d.conn.credentials.clientSecret;
    if (!signing) {
      throw new SubscribeConfigError(
        "the connection's own HubSpot app needs its clientSecret in the credentials (it signs the webhooks)",
      );
    }
    if (d.conn.credentials.webhook_secret !== signing) {
      await d.storeSecrets({ credentials: { webhook_secret: signing } });
      changed.push("secret");
    }
    secret = "connection";
  }
  return {
    provider: "hubspot",
    endpoint: url,
    action: changed.length ? "registered" : "unchanged",
    details: {
      app_id: appId,
      app: own ? "connection" : "deployment",
      signing_secret: secret,
      subscriptions: wanted.length,
      created,
      activated,
      changed,
    },
  };
}
