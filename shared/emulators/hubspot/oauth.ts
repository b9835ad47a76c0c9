/**
 * HubSpot OAuth 2.0: authorize (auto-consent redirect), token endpoint
 * (authorization_code and refresh_token grants, form-encoded), token info and
 * refresh-token revocation. Docs:
 * https://developers.hubspot.com/docs/api/oauth-quickstart-guide
 * The refresh token stays the same across refreshes (unless `hs.oauth.rotateRefreshTokens`);
 * access tokens live `tokenTtlSeconds` (default 1800, as on HubSpot). HubSpot's authorize
 * takes no PKCE parameters (client_id, scope, optional_scope, redirect_uri, state): they are
 * ignored here as there. A refused consent sends nothing to the redirect URI (HubSpot's docs),
 * so authorize then answers a page only.
 */
import { json, noContent, readForm } from "../common/http.ts";
import type { HubSpotEmulator } from "./emulator.ts";

export function registerOAuthRoutes(hs: HubSpotEmulator): void {
  const oauthError = (status: string, message: string, code = 400) =>
    json({ status, message, correlationId: hs.errors.correlationId() }, code);

  hs.open("GET", "/oauth/authorize", ({ url }) => {
    const clientId = url.searchParams.get("client_id");
    const redirect = url.searchParams.get("redirect_uri");
    if (clientId !== hs.creds.clientId) {
      return oauthError("BAD_CLIENT_ID", "missing or unknown client id");
    }
    if (!redirect) return oauthError("BAD_REDIRECT_URI", "missing redirect_uri");
    if (!hs.oauth.redirectAllowed(redirect)) {
      return oauthError("BAD_REDIRECT_URI", "redirect_uri does not match the app's settings");
    }
    if (hs.oauth.consent === "deny") {
      return new Response("<html><body>The app was not connected.</body></html>", {
        status: 200,
        headers: { "content-type": "text/html; charset=utf-8" },
      });
    }
    const code = hs.tokens.issue("code", hs.tokens.mint("", 36, "hex"), hs.now(), {
      clientId,
      redirectUri: redirect,
      scopes: (url.searchParams.get("scope") ?? "").split(/[ +]/).filter(Boolean),
    });
    const target = new URL(redirect);
    target.searchParams.set("code", code.token);
    const state = url.searchParams.get("state");
    if (state !== null) target.searchParams.set("state", state);
    return new Response(null, { status: 302, headers: { location: target.toString() } });
  });

  hs.open("POST", "/oauth/v1/token", async ({ req }) => {
    const form = await readForm(req);
    const grant = form.get("grant_type");
    if (form.get("client_id") !== hs.creds.clientId) {
      return oauthError("BAD_CLIENT_ID", "missing or unknown client id");
    }
    if (form.get("client_secret") !== hs.creds.clientSecret) {
      return oauthError("BAD_CLIENT_SECRET", "missing or invalid client secret");
    }
    const now = hs.now();
    let refreshToken: string;
    let scopes: string[] | undefined;
    if (grant === "authorization_code") {
      const code = hs.tokens.check(form.get("code"), now, ["code"]);
      if (!code.ok) return oauthError("BAD_AUTH_CODE", "missing or invalid auth code");
      if (code.info.redirectUri && code.info.redirectUri !== form.get("redirect_uri")) {
        return oauthError(
          "BAD_REDIRECT_URI",
          "redirect_uri does not match the one used to obtain the code",
        );
      }
      hs.tokens.revoke((t) => t.token === code.info.token);
      scopes = code.info.scopes;
      refreshToken = hs.tokens.issue("refresh", hs.tokens.mint("", 36, "hex"), now, {
        clientId: hs.creds.clientId,
        scopes,
      })
        .token;
    } else if (grant === "refresh_token") {
      const rt = hs.tokens.check(form.get("refresh_token"), now, ["refresh"]);
      if (!rt.ok) return oauthError("BAD_REFRESH_TOKEN", "missing or invalid refresh token");
      refreshToken = rt.info.token;
      scopes = rt.info.scopes;
      if (hs.oauth.rotateRefreshTokens) {
        hs.tokens.revoke((t) => t.token === rt.info.token);
        refreshToken = hs.tokens.issue("refresh", hs.tokens.mint("", 36, "hex"), now, {
          clientId: hs.creds.clientId,
          scopes,
        }).token;
      }
    } else {
      return oauthError("BAD_GRANT_TYPE", `unsupported grant_type: ${grant}`);
    }
    const access = hs.tokens.issue("access", `C${hs.tokens.mint("", 60)}`, now, {
      clientId: hs.creds.clientId,
      refreshToken,
      scopes,
    });
    return json({
      token_type: "bearer",
      refresh_token: refreshToken,
      access_token: access.token,
      expires_in: Math.round(hs.issuedTokenTtlMs / 1000),
    });
  });

  hs.open("GET", "/oauth/v1/access-tokens/:token", ({ params }) => {
    const t = hs.tokens.check(params.token, hs.now(), ["access"]);
    if (!t.ok) return oauthError("BAD_ACCESS_TOKEN", "missing or invalid access token", 404);
    return json({
      token: t.info.token,
      user: "sandbox-user@sandbox-crm.example",
      hub_domain: `sandbox-${hs.creds.portalId}.hubspot.test`,
      scopes: t.info.scopes ?? [],
      hub_id: hs.creds.portalId,
      app_id: hs.creds.appId,
      expires_in: t.info.expiresAt === null
        ? 21600
        : Math.max(0, Math.round((t.info.expiresAt - hs.now()) / 1000)),
      user_id: hs.store.owners[0]?.userId ?? 1,
      token_type: "access",
    });
  });

  hs.open("GET", "/oauth/v1/refresh-tokens/:token", ({ params }) => {
    const t = hs.tokens.check(params.token, hs.now(), ["refresh"]);
    if (!t.ok) return oauthError("BAD_REFRESH_TOKEN", "missing or invalid refresh token", 404);
    return json({
      token: t.info.token,
      user: "sandbox-user@sandbox-crm.example",
      hub_domain: `sandbox-${hs.creds.portalId}.hubspot.test`,
      scopes: t.info.scopes ?? [],
      hub_id: hs.creds.portalId,
      client_id: hs.creds.clientId,
      user_id: hs.store.owners[0]?.userId ?? 1,
      token_type: "refresh",
    });
  });

  hs.open("DELETE", "/oauth/v1/refresh-tokens/:token", ({ params }) => {
    hs.tokens.revoke((t) => t.token === params.token || t.refreshToken === params.token);
    return noContent();
  });
}
