/**
 * GET /crm/v3/owners/ and /crm/v3/owners/{ownerId}
 * Docs: https://developers.hubspot.com/docs/api/crm/owners
 * Paging: `limit` (≤ 500, default 100), `after` (opaque, here an offset);
 * `archived=true` lists deactivated users; `idProperty=userId` on get.
 */
import { boolParam, intParam, json } from "../common/http.ts";
import type { HubSpotEmulator } from "./emulator.ts";
import type { HsOwner } from "./store.ts";

function ownerJson(o: HsOwner) {
  return {
    id: o.id,
    email: o.email,
    type: "PERSON",
    firstName: o.firstName,
    lastName: o.lastName,
    userId: o.userId,
    userIdIncludingInactive: o.userId,
    createdAt: new Date(o.createdAt).toISOString(),
    updatedAt: new Date(o.updatedAt).toISOString(),
    archived: o.archived,
    teams: [],
  };
}

export function registerOwnerRoutes(hs: HubSpotEmulator): void {
  const list = (ctx: Parameters<Parameters<HubSpotEmulator["route"]>[2]>[0]) => {
    const limit = intParam(ctx.url, "limit") ?? 100;
    if (!Number.isInteger(limit) || limit < 1 || limit > 500) {
      hs.fail(400, "VALIDATION_ERROR", `limit must be between 1 and 500`);
    }
    const archived = boolParam(ctx.url, "archived") ?? false;
    const email = ctx.url.searchParams.get("email")?.toLowerCase();
    const after = Number(ctx.url.searchParams.get("after") ?? 0) || 0;
    const all = hs.store.owners.filter((o) =>
      o.archived === archived && (!email || o.email.toLowerCase() === email)
    );
    const page = all.slice(after, after + limit);
    const body: Record<string, unknown> = { results: page.map(ownerJson) };
    if (after + limit < all.length) {
      body.paging = {
        next: {
          after: String(after + limit),
          link: `${hs.url}/crm/v3/owners/?after=${after + limit}`,
        },
      };
    }
    return json(body);
  };
  hs.route("GET", "/crm/v3/owners/", list);
  // The account a token belongs to (private-app and OAuth tokens alike):
  // https://developers.hubspot.com/docs/api/settings/account-information-api
  hs.route("GET", "/account-info/v3/details", () =>
    json({
      portalId: Number(hs.creds.portalId),
      accountType: "STANDARD",
      timeZone: "US/Eastern",
      companyCurrency: "USD",
      additionalCurrencies: [],
      utcOffset: "-05:00",
      utcOffsetMilliseconds: -18_000_000,
      uiDomain: "app.hubspot.com",
      dataHostingLocation: "na1",
    }));
  hs.route("GET", "/crm/v3/owners/:ownerId", (ctx) => {
    const byUser = ctx.url.searchParams.get("idProperty") === "userId";
    const archived = boolParam(ctx.url, "archived") ?? false;
    const id = ctx.params.ownerId;
    const o = hs.store.owners.find((x) =>
      (byUser ? String(x.userId) === id : x.id === id) && x.archived === archived
    );
    if (!o) hs.fail(404, "OBJECT_NOT_FOUND", `Owner ${id} not found`);
    return json(ownerJson(o));
  });
}
