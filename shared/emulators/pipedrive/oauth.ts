/**
 * Pipedrive OAuth 2.0 on the API host (the SDK's OAuth2Configuration uses
 * one `host` for both): authorize (auto-consent redirect), token
 * (authorization_code / refresh_token, client credentials in HTTP Basic
 * auth), revoke. Token responses include `api_domain`, which the SDK turns
 * into its base path. Access tokens live `tokenTtlSeconds` (default 3599).
 * Docs: https://pipedrive.readme.io/docs/marketplace-oauth-authorization
 * Pipedrive documents no PKCE parameters; a refused consent redirects with
 * `error=access_denied`; rotation of the refresh token follows `pd.oauth`.
 */
import { json, parseBasicAuth, readForm } from "../common/http.ts";
import { deniedRedirect } from "../common/oauth.ts";
import type { PipedriveEmulator } from "./emulator.ts";

export function registerOAuthRoutes(pd: PipedriveEmulator): void {
  const err = (error: string, description: string, status = 400) =>
    json({ success: false, error, error_description: description, message: description }, status);
  const scope = "base,deals:full,contacts:full,leads:full,users:read,webhooks:full";

  pd.open("GET", "/oauth/authorize", ({ url }) => {
    if (url.searchParams.get("client_id") !== pd.creds.clientId) {
      return err("invalid_client", "Unknown client_id", 401);
    }
    const redirect = url.searchParams.get("redirect_uri");
    if (!redirect) return err("invalid_request", "redirect_uri is required");
    if (!pd.oauth.redirectAllowed(redirect)) {
      return err("invalid_request", "redirect_uri does not match the app's callback URL");
    }
    if (pd.oauth.consent === "deny") return deniedRedirect(redirect, url.searchParams.get("state"));
    const code = pd.tokens.issue(
      "code",
      `${pd.creds.companyId}.1.${pd.tokens.mint("", 40, "hex")}`,
      pd.now(),
      { clientId: pd.creds.clientId, redirectUri: redirect },
    );
    const target = new URL(redirect);
    target.searchParams.set("code", code.token);
    const state = url.searchParams.get("state");
    if (state !== null) target.searchParams.set("state", state);
    return new Response(null, { status: 302, headers: { location: target.toString() } });
  });

  pd.open("POST", "/oauth/token", async ({ req }) => {
    const form = await readForm(req);
    const basic = parseBasicAuth(req.headers.get("authorization"));
    const clientId = basic?.user ?? form.get("client_id");
    const secret = basic?.password ?? form.get("client_secret");
    if (clientId !== pd.creds.clientId || secret !== pd.creds.clientSecret) {
      return err("invalid_client", "Invalid client credentials", 401);
    }
    const now = pd.now();
    let refresh: string;
    const grant = form.get("grant_type");
    if (grant === "authorization_code") {
      const code = pd.tokens.check(form.get("code"), now, ["code"]);
      if (!code.ok) return err("invalid_grant", "Invalid authorization code");
      if (code.info.redirectUri && code.info.redirectUri !== form.get("redirect_uri")) {
        return err("invalid_grant", "redirect_uri does not match");
      }
      pd.tokens.revoke((t) => t.token === code.info.token);
      refresh = pd.tokens.issue(
        "refresh",
        `${pd.creds.companyId}:1:${pd.tokens.mint("", 40, "hex")}`,
        now,
        { clientId, subject: "1" },
      ).token;
    } else if (grant === "refresh_token") {
      const rt = pd.tokens.check(form.get("refresh_token"), now, ["refresh"]);
      if (!rt.ok) return err("invalid_grant", "Invalid refresh token");
      refresh = rt.info.token;
      if (pd.oauth.rotateRefreshTokens) {
        pd.tokens.revoke((t) => t.token === rt.info.token);
        refresh = pd.tokens.issue(
          "refresh",
          `${pd.creds.companyId}:1:${pd.tokens.mint("", 40, "hex")}`,
          now,
          { clientId, subject: "1" },
        ).token;
      }
    } else {
      return err("unsupported_grant_type", `Unsupported grant_type: ${grant}`);
    }
    const access = pd.tokens.issue(
      "access",
      `${pd.creds.companyId}:1:${pd.tokens.mint("", 40, "hex")}`,
      now,
      { clientId, refreshToken: refresh, subject: "1" },
    );
    return json({
      access_token: access.token,
      token_type: "Bearer",
      refresh_token: refresh,
      scope,
      expires_in: Math.round(pd.issuedTokenTtlMs / 1000),
      api_domain: pd.url,
    });
  });

  pd.open("POST", "/oauth/revoke", async ({ req }) => {
    const form = await readForm(req);
    const basic = parseBasicAuth(req.headers.get("authorization"));
    if (basic?.user !== pd.creds.clientId || basic?.password !== pd.creds.clientSecret) {
      return err("invalid_client", "Invalid client credentials", 401);
    }
    const token = decodeURIComponent(form.get("token") ?? "");
    pd.tokens.revoke((t) => t.token === token || t.refreshToken === token);
    return json({ success: true });
  });
}
