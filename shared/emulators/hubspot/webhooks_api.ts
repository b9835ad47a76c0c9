/**
 * Webhooks settings API for the developer app (`?hapikey=<developer key>`):
 * /webhooks/v3/{appId}/settings and /subscriptions.
 * Docs: https://developers.hubspot.com/docs/api/webhooks (Webhook settings).
 * Same configuration as PUT /__admin/webhooks.
 */
import { z } from "zod";
import { json, noContent } from "../common/http.ts";
import type { RequestContext } from "../common/router.ts";
import type { HubSpotEmulator } from "./emulator.ts";
import { type Subscription, SubscriptionSchema } from "./webhooks.ts";

const EVENT_TYPE = SubscriptionSchema.shape.subscriptionType;

export function registerWebhookSettingsRoutes(hs: HubSpotEmulator): void {
  const guard = (ctx: RequestContext) => {
    if (ctx.url.searchParams.get("hapikey") !== hs.creds.developerApiKey) {
      hs.fail(401, "INVALID_AUTHENTICATION", "The developer API key provided is invalid.");
    }
    if (ctx.params.appId !== String(hs.creds.appId)) {
      hs.fail(404, "OBJECT_NOT_FOUND", `App ${ctx.params.appId} not found`);
    }
  };
  const subJson = (s: Subscription) => ({
    id: String(s.id),
    eventType: s.subscriptionType,
    propertyName: s.propertyName,
    active: s.active,
    createdAt: new Date(hs.webhooks.createdAt || hs.now()).toISOString(),
    updatedAt: new Date(hs.webhooks.updatedAt || hs.now()).toISOString(),
  });
  const settingsJson = () => ({
    targetUrl: hs.webhooks.config.targetUrl,
    throttling: {
      maxConcurrentRequests: hs.webhooks.config.maxConcurrentRequests,
      period: "SECONDLY",
    },
    createdAt: new Date(hs.webhooks.createdAt || hs.now()).toISOString(),
    updatedAt: new Date(hs.webhooks.updatedAt || hs.now()).toISOString(),
  });

  hs.open("GET", "/webhooks/v3/:appId/settings", (ctx) => {
    guard(ctx);
    if (!hs.webhooks.config.targetUrl) {
      hs.fail(404, "OBJECT_NOT_FOUND", "No webhook settings configured");
    }
    return json(settingsJson());
  });
  hs.open("PUT", "/webhooks/v3/:appId/settings", async (ctx) => {
    guard(ctx);
    const body = await hs.body(
      ctx,
      z.object({
        targetUrl: z.string().url(),
        throttling: z.object({ maxConcurrentRequests: z.number().int().min(1).max(100) })
          .passthrough(),
      }),
    );
    hs.webhooks.configure({
      ...hs.webhooks.config,
      subscriptions: hs.webhooks.subscriptions,
      targetUrl: body.targetUrl,
      maxConcurrentRequests: body.throttling.maxConcurrentRequests,
    });
    return json(settingsJson());
  });
  hs.open("DELETE", "/webhooks/v3/:appId/settings", (ctx) => {
    guard(ctx);
    hs.webhooks.configure({
      ...hs.webhooks.config,
      subscriptions: hs.webhooks.subscriptions,
      targetUrl: null,
    });
    return noContent();
  });

  hs.open("GET", "/webhooks/v3/:appId/subscriptions", (ctx) => {
    guard(ctx);
    return json({ results: hs.webhooks.subscriptions.map(subJson) });
  });
  hs.open("POST", "/webhooks/v3/:appId/subscriptions", async (ctx) => {
    guard(ctx);
    const body = await hs.body(
      ctx,
      z.object({
        eventType: EVENT_TYPE,
        propertyName: z.string().optional(),
        active: z.boolean().default(false),
      }).passthrough(),
    );
    const s = hs.webhooks.addSubscription({
      subscriptionType: body.eventType,
      propertyName: body.propertyName,
      active: body.active,
    });
    return json(subJson(s), 201);
  });
  const find = (ctx: RequestContext) => {
    const s = hs.webhooks.subscriptions.find((x) => String(x.id) === ctx.params.subscriptionId);
    if (!s) hs.fail(404, "OBJECT_NOT_FOUND", `Subscription ${ctx.params.subscriptionId} not found`);
    return s;
  };
  hs.open("GET", "/webhooks/v3/:appId/subscriptions/:subscriptionId", (ctx) => {
    guard(ctx);
    return json(subJson(find(ctx)));
  });
  hs.open("PATCH", "/webhooks/v3/:appId/subscriptions/:subscriptionId", async (ctx) => {
    guard(ctx);
    const body = await hs.body(ctx, z.object({ active: z.boolean().optional() }));
    const s = find(ctx);
    if (body.active !== undefined) s.active = body.active;
    return json(subJson(s));
  });
  hs.open("DELETE", "/webhooks/v3/:appId/subscriptions/:subscriptionId", (ctx) => {
    guard(ctx);
    const s = find(ctx);
    hs.webhooks.subscriptions = hs.webhooks.subscriptions.filter((x) => x !== s);
    return noContent();
  });
}
