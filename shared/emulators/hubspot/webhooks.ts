/**
 * HubSpot webhook delivery (app webhooks, v3 payload format).
 * Docs: https://developers.hubspot.com/docs/api/webhooks
 *
 * - POST of a JSON array of events, at most 100 per request; events raised
 *   close together (one API call, one admin change) share a request;
 * - signed with v3 headers, plus the legacy `X-HubSpot-Signature` (v1 or v2)
 *   when configured; the URI signed is the configured target URL;
 * - up to `maxConcurrentRequests` (default 10) requests in flight;
 * - any non-2xx, connection error or no answer within 5 s is a failure,
 *   retried up to 10 times spread over ~24 h (delays × timeScale);
 * - `attemptNumber` counts retries from 0; the same eventId repeats on retry.
 */
import { z } from "zod";
import type { DeliveryJob, WebhookRequest } from "../common/webhook_queue.ts";
import type { HubSpotEmulator } from "./emulator.ts";
import { signatureHeaders } from "./signature.ts";
import { pairTypes } from "./association_types.ts";
import { OBJECT_TYPES, SINGULAR } from "./properties.ts";
import type { HsChange } from "./store.ts";

/** 1m, 2m, 5m, 10m, 30m, 1h, 2h, 4h, 8h, 8h ≈ 24 h in total. */
export const HUBSPOT_RETRY_DELAYS_MS = [
  60_000,
  120_000,
  300_000,
  600_000,
  1_800_000,
  3_600_000,
  7_200_000,
  14_400_000,
  28_800_000,
  28_800_000,
];

export const SubscriptionSchema = z.object({
  id: z.number().int().optional(),
  subscriptionType: z.string().regex(
    /^(contact|company|deal)\.(creation|deletion|propertyChange|merge|restore|associationChange|privacyDeletion)$/,
  ),
  /** For propertyChange: the property (omit = every property, a sandbox convenience). */
  propertyName: z.string().optional(),
  active: z.boolean().default(true),
});
export type Subscription = z.infer<typeof SubscriptionSchema> & { id: number };

export const HubSpotWebhookConfigSchema = z.object({
  targetUrl: z.string().url().nullable().default(null),
  /** Default: every event type of every object. */
  subscriptions: z.array(SubscriptionSchema).optional(),
  /** Also send the legacy X-HubSpot-Signature of this version. */
  legacySignature: z.enum(["v1", "v2"]).nullable().default(null),
  /** Signing secret (default: the app's client secret). */
  secret: z.string().optional(),
  maxConcurrentRequests: z.number().int().min(1).max(100).default(10),
  timeoutMs: z.number().int().min(1).max(120_000).default(5000),
  maxBatchSize: z.number().int().min(1).max(100).default(100),
  /** Wait this long (real ms) to collect events into one request. */
  batchWindowMs: z.number().int().min(0).max(60_000).default(0),
  retryDelaysMs: z.array(z.number().min(0)).max(20).optional(),
}).strict();
export type HubSpotWebhookConfigInput = z.input<typeof HubSpotWebhookConfigSchema>;
type Config = z.infer<typeof HubSpotWebhookConfigSchema>;

export function defaultSubscriptions(): Array<Omit<Subscription, "id">> {
  const out: Array<Omit<Subscription, "id">> = [];
  for (const t of OBJECT_TYPES) {
    const s = SINGULAR[t];
    for (
      const ev of [
        "creation",
        "deletion",
        "propertyChange",
        "merge",
        "restore",
        "associationChange",
      ]
    ) {
      out.push({ subscriptionType: `${s}.${ev}`, active: true });
    }
    if (t === "contacts") out.push({ subscriptionType: "contact.privacyDeletion", active: true });
  }
  return out;
}

export type HubSpotEvent = Record<string, unknown> & { eventId: number; subscriptionType: string };

export interface HubSpotWebhooksSnapshot {
  config: Config;
  subscriptions: Subscription[];
  createdAt: number;
  updatedAt: number;
  nextEventId: number;
  nextSubscriptionId: number;
}

export class HubSpotWebhooks {
  config: Config;
  subscriptions: Subscription[] = [];
  createdAt = 0;
  updatedAt = 0;
  #pending: HubSpotEvent[] = [];
  #flushTimer: number | undefined;
  #nextEventId: number;
  #nextSubscriptionId = 1000;

  constructor(private hs: HubSpotEmulator, initial: HubSpotWebhookConfigInput = {}) {
    this.#nextEventId = 100 + hs.prng.fork("event-ids").int(0, 9_999);
    this.config = HubSpotWebhookConfigSchema.parse(initial);
    this.#setSubscriptions(this.config.subscriptions);
  }

  configure(input: HubSpotWebhookConfigInput): Config {
    this.config = HubSpotWebhookConfigSchema.parse(input);
    this.#setSubscriptions(this.config.subscriptions);
    this.hs.queue.maxConcurrency = this.config.maxConcurrentRequests;
    this.updatedAt = this.hs.now();
    if (!this.createdAt) this.createdAt = this.updatedAt;
    return this.config;
  }

  #setSubscriptions(subs: z.infer<typeof SubscriptionSchema>[] | undefined): void {
    const list: z.infer<typeof SubscriptionSchema>[] = subs ?? defaultSubscriptions();
    this.subscriptions = list.map((s) => ({
      ...s,
      active: s.active ?? true,
      id: s.id ?? this.#nextSubscriptionId++,
    }));
  }

  /** Settings, subscriptions and id counters, for a sandbox snapshot. */
  snapshot(): HubSpotWebhooksSnapshot {
    return {
      config: this.config,
      subscriptions: this.subscriptions,
      createdAt: this.createdAt,
      updatedAt: this.updatedAt,
      nextEventId: this.#nextEventId,
      nextSubscriptionId: this.#nextSubscriptionId,
    };
  }

  load(s: HubSpotWebhooksSnapshot): void {
    this.config = s.config;
    this.subscriptions = s.subscriptions;
    this.createdAt = s.createdAt;
    this.updatedAt = s.updatedAt;
    this.#nextEventId = s.nextEventId;
    this.#nextSubscriptionId = s.nextSubscriptionId;
    this.hs.queue.maxConcurrency = this.config.maxConcurrentRequests;
  }

  addSubscription(s: Omit<Subscription, "id">): Subscription {
    const sub = { ...s, id: this.#nextSubscriptionId++ };
    this.subscriptions.push(sub);
    return sub;
  }

  get secret(): string {
    return this.config.secret ?? this.hs.creds.clientSecret;
  }

  /** Turn a store change into events for matching subscriptions. */
  emit(change: HsChange): void {
    if (!this.config.targetUrl) return;
    const occurredAt = this.hs.now();
    const base = (subscriptionType: string, subId: number) => ({
      eventId: this.#nextEventId++,
      subscriptionId: subId,
      portalId: this.hs.creds.portalId,
      appId: this.hs.creds.appId,
      occurredAt,
      subscriptionType,
      attemptNumber: 0,
    });
    const source = {
      changeSource: change.source,
      sourceId: this.hs.store.sourceIdOf(change.source),
    };
    const subs = (type: string, prop?: string) =>
      this.subscriptions.filter((s) =>
        s.active && s.subscriptionType === type &&
        (prop === undefined || s.propertyName === undefined || s.propertyName === prop)
      );

    if (change.kind === "associationChange") {
      for (
        const [fromT, fromId, toT, toId] of [[
          change.fromType,
          change.fromId,
          change.toType,
          change.toId,
        ], [change.toType, change.toId, change.fromType, change.fromId]] as const
      ) {
        const t = pairTypes(fromT, toT);
        if (!t) continue;
        for (const s of subs(`${SINGULAR[fromT]}.associationChange`)) {
          this.#push({
            ...base(s.subscriptionType, s.id),
            changeSource: change.source,
            associationType: t.webhookName,
            fromObjectId: Number(fromId),
            toObjectId: Number(toId),
            associationRemoved: change.removed,
            isPrimaryAssociation: change.primary,
          });
        }
      }
      return;
    }
    const singular = SINGULAR[change.type];
    switch (change.kind) {
      case "creation":
        for (const s of subs(`${singular}.creation`)) {
          this.#push({
            ...base(s.subscriptionType, s.id),
            objectId: Number(change.id),
            changeFlag: "NEW",
            ...source,
          });
        }
        break;
      case "propertyChange":
        for (const s of subs(`${singular}.propertyChange`, change.property)) {
          this.#push({
            ...base(s.subscriptionType, s.id),
            objectId: Number(change.id),
            propertyName: change.property,
            propertyValue: change.value ?? "",
            ...source,
          });
        }
        break;
      case "deletion":
        for (const s of subs(`${singular}.deletion`)) {
          this.#push({
            ...base(s.subscriptionType, s.id),
            objectId: Number(change.id),
            changeFlag: "DELETED",
            ...source,
          });
        }
        break;
      case "restore":
        for (const s of subs(`${singular}.restore`)) {
          this.#push({
            ...base(s.subscriptionType, s.id),
            objectId: Number(change.id),
            changeFlag: "RESTORED",
            ...source,
          });
        }
        break;
      case "privacyDeletion":
        for (const s of subs(`${singular}.privacyDeletion`)) {
          this.#push({
            ...base(s.subscriptionType, s.id),
            objectId: Number(change.id),
            changeFlag: "DELETED",
            ...source,
          });
        }
        break;
      case "merge":
        for (const s of subs(`${singular}.merge`)) {
          this.#push({
            ...base(s.subscriptionType, s.id),
            objectId: Number(change.primaryId),
            changeFlag: "MERGED",
            ...source,
            primaryObjectId: Number(change.primaryId),
            mergedObjectIds: change.mergedIds.map(Number),
            newObjectId: Number(change.newObjectId),
            numberOfPropertiesMoved: change.propertiesMoved,
          });
        }
        break;
    }
  }

  #push(e: HubSpotEvent): void {
    this.#pending.push(e);
    if (this.#pending.length >= this.config.maxBatchSize) {
      this.flush();
      return;
    }
    if (this.#flushTimer === undefined) {
      this.hs.queue.retain();
      this.#flushTimer = setTimeout(() => this.flush(), this.config.batchWindowMs);
    }
  }

  /** Send everything collected so far. */
  flush(): void {
    const timer = this.#flushTimer;
    this.#flushTimer = undefined;
    while (this.#pending.length > 0) {
      const events = this.#pending.splice(0, this.config.maxBatchSize);
      this.hs.queue.enqueue(this.#job(events));
    }
    if (timer !== undefined) {
      clearTimeout(timer);
      this.hs.queue.release();
    }
  }

  /** Stop the batching timer (emulator shutdown). */
  cancel(): void {
    if (this.#flushTimer !== undefined) {
      clearTimeout(this.#flushTimer);
      this.hs.queue.release();
    }
    this.#flushTimer = undefined;
    this.#pending = [];
  }

  #job(events: HubSpotEvent[]): DeliveryJob {
    const types = [...new Set(events.map((e) => e.subscriptionType))].join(",");
    return {
      label: `hubspot ${types} ×${events.length}`,
      policy: {
        delaysMs: this.config.retryDelaysMs ?? HUBSPOT_RETRY_DELAYS_MS,
        timeoutMs: this.config.timeoutMs,
      },
      build: (attempt): WebhookRequest | null => {
        const url = this.config.targetUrl;
        if (!url) return null;
        const body = JSON.stringify(events.map((e) => ({ ...e, attemptNumber: attempt - 1 })));
        const ts = this.hs.now();
        return {
          url,
          method: "POST",
          body,
          headers: {
            "content-type": "application/json",
            "user-agent":
              "HubSpot Connect 2.0 (http://dev.hubspot.com/) - WebhooksExecutorDaemon-executor",
            ...signatureHeaders(this.secret, "POST", url, body, ts, this.config.legacySignature),
          },
        };
      },
    };
  }
}
