/**
 * Salesforce OAuth 2.0 on the login URL: authorize (auto-consent redirect),
 * token (refresh_token, authorization_code, password, client_credentials),
 * revoke, userinfo and the identity URL. Token responses carry `id` (the
 * identity URL jsforce parses into org and user ids), `instance_url`,
 * `issued_at` and `signature` (base64 HMAC-SHA256 of id + issued_at keyed
 * with the client secret). Refresh responses carry no new refresh token.
 * Docs: https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_refresh_token_flow.htm
 * Web server flow with PKCE: authorize takes `code_challenge` (S256, the only method
 * Salesforce documents), the code exchange needs the matching `code_verifier`. Consent,
 * registered redirect URIs and refresh-token rotation follow `sf.oauth` (../common/oauth.ts).
 */
import { createHmac } from "node:crypto";
import { json, readForm } from "../common/http.ts";
import { deniedRedirect, pkceMatches } from "../common/oauth.ts";
import type { TokenInfo } from "../common/tokens.ts";
import type { SalesforceEmulator } from "./emulator.ts";
import { invalidSession, SfError } from "./errors.ts";

export function registerOAuthRoutes(sf: SalesforceEmulator): void {
  const err = (error: string, description: string, status = 400) =>
    json({ error, error_description: description }, status);
  const identityUrl = () => `${sf.url}/id/${sf.creds.orgId}/${sf.creds.userId}`;

  const tokenResponse = (access: TokenInfo, refresh?: string) => {
    const issuedAt = String(sf.now());
    const id = identityUrl();
    return json({
      access_token: access.token,
      ...(refresh ? { refresh_token: refresh } : {}),
      signature: createHmac("sha256", sf.creds.clientSecret).update(id + issuedAt).digest("base64"),
      scope: "refresh_token api full",
      instance_url: sf.url,
      id,
      token_type: "Bearer",
      issued_at: issuedAt,
    });
  };
  const mintAccess = (refreshToken?: string) =>
    sf.tokens.issue(
      "access",
      `${sf.creds.orgId.slice(0, 15)}!${sf.tokens.mint("", 96)}`,
      sf.now(),
      {
        clientId: sf.creds.clientId,
        refreshToken,
        subject: sf.creds.userId,
      },
    );

  sf.open("GET", "/services/oauth2/authorize", ({ url }) => {
    if (url.searchParams.get("client_id") !== sf.creds.clientId) {
      return err("invalid_client_id", "client identifier invalid");
    }
    const redirect = url.searchParams.get("redirect_uri");
    if (!redirect || !sf.oauth.redirectAllowed(redirect)) {
      return err("redirect_uri_mismatch", "redirect_uri must match configuration");
    }
    const challenge = url.searchParams.get("code_challenge") ?? undefined;
    const method = url.searchParams.get("code_challenge_method") ?? "S256";
    if (challenge !== undefined && (method !== "S256" || !/^[A-Za-z0-9_-]{43}$/.test(challenge))) {
      return err("invalid_request", "invalid code_challenge");
    }
    if (sf.oauth.consent === "deny") return deniedRedirect(redirect, url.searchParams.get("state"));
    const code = sf.tokens.issue("code", `aPrx${sf.tokens.mint("", 60)}`, sf.now(), {
      clientId: sf.creds.clientId,
      redirectUri: redirect,
      codeChallenge: challenge,
      codeChallengeMethod: challenge ? method : undefined,
    });
    const target = new URL(redirect);
    target.searchParams.set("code", code.token);
    const state = url.searchParams.get("state");
    if (state !== null) target.searchParams.set("state", state);
    return new Response(null, { status: 302, headers: { location: target.toString() } });
  });

  sf.open("POST", "/services/oauth2/token", async ({ req }) => {
    const form = await readForm(req);
    const grant = form.get("grant_type");
    if (form.get("client_id") !== sf.creds.clientId) {
      return err("invalid_client_id", "client identifier invalid");
    }
    const secret = form.get("client_secret");
    const now = sf.now();
    switch (grant) {
      case "refresh_token": {
        if (secret !== null && secret !== sf.creds.clientSecret) {
          return err("invalid_client", "invalid client credentials");
        }
        const rt = sf.tokens.check(form.get("refresh_token"), now, ["refresh"]);
        if (!rt.ok) return err("invalid_grant", "expired access/refresh token");
        if (!sf.oauth.rotateRefreshTokens) return tokenResponse(mintAccess(rt.info.token));
        sf.tokens.revoke((t) => t.token === rt.info.token);
        const next = sf.tokens.issue("refresh", `5Aep861${sf.tokens.mint("", 80)}`, now, {
          clientId: sf.creds.clientId,
          subject: sf.creds.userId,
        });
        return tokenResponse(mintAccess(next.token), next.token);
      }
      case "authorization_code": {
        if (secret !== sf.creds.clientSecret) {
          return err("invalid_client", "invalid client credentials");
        }
        const code = sf.tokens.check(form.get("code"), now, ["code"]);
        if (!code.ok) return err("invalid_grant", "invalid authorization code");
        if (code.info.redirectUri && code.info.redirectUri !== form.get("redirect_uri")) {
          return err("redirect_uri_mismatch", "redirect_uri must match configuration");
        }
        // A code is single-use: revoked before the verifier is checked, so a guessed verifier
        // cannot be retried against the same code.
        sf.tokens.revoke((t) => t.token === code.info.token);
        const verified = await pkceMatches(
          code.info.codeChallenge,
          code.info.codeChallengeMethod,
          form.get("code_verifier"),
        );
        if (!verified) return err("invalid_grant", "invalid code verifier");
        const refresh = sf.tokens.issue("refresh", `5Aep861${sf.tokens.mint("", 80)}`, now, {
          clientId: sf.creds.clientId,
          subject: sf.creds.userId,
        });
        return tokenResponse(mintAccess(refresh.token), refresh.token);
      }
      case "password": {
        if (secret !== sf.creds.clientSecret) {
          return err("invalid_client", "invalid client credentials");
        }
        const pw = form.get("password") ?? "";
        if (form.get("username") !== sf.creds.username || !pw.startsWith(sf.creds.password)) {
          return err("invalid_grant", "authentication failure");
        }
        return tokenResponse(mintAccess());
      }
      case "client_credentials": {
        if (secret !== sf.creds.clientSecret) {
          return err("invalid_client", "invalid client credentials");
        }
        return tokenResponse(mintAccess());
      }
      default:
        return err("unsupported_grant_type", "grant type not supported");
    }
  });

  sf.open("POST", "/services/oauth2/revoke", async ({ req, url }) => {
    const form = await readForm(req);
    const token = form.get("token") ?? url.searchParams.get("token");
    const t = token ? sf.tokens.get(token) : undefined;
    if (!t) return err("unsupported_token_type", "this token type is not supported");
    sf.tokens.revoke((x) =>
      x.token === t.token || (t.kind === "refresh" && x.refreshToken === t.token)
    );
    return new Response(null, { status: 200 });
  });

  const identity = (token: string | null) => {
    const check = sf.tokens.check(token, sf.now(), ["access"]);
    if (!check.ok) {
      throw new SfError(403, [{ errorCode: "Bad_OAuth_Token", message: "Bad_OAuth_Token" }]);
    }
    const u = sf.store.tables.User.bySeq[0];
    return {
      id: identityUrl(),
      asserted_user: true,
      user_id: sf.creds.userId,
      organization_id: sf.creds.orgId,
      username: sf.creds.username,
      nick_name: "integration",
      display_name: String(u?.fields.Name ?? "Integration User"),
      email: String(u?.fields.Email ?? sf.creds.username),
      active: true,
      user_type: "STANDARD",
      language: "en_US",
      locale: "en_US",
      utcOffset: 0,
      urls: {
        rest: `${sf.url}/services/data/v{version}/`,
        sobjects: `${sf.url}/services/data/v{version}/sobjects/`,
        query: `${sf.url}/services/data/v{version}/query/`,
      },
    };
  };
  const bearer = (req: Request) =>
    /^Bearer\s+(.+)$/i.exec(req.headers.get("authorization") ?? "")?.[1] ?? null;

  sf.open("GET", "/id/:orgId/:userId", ({ req, url, params }) => {
    if (params.orgId !== sf.creds.orgId || params.userId !== sf.creds.userId) {
      throw SfError.one(404, "NOT_FOUND", "identity not found");
    }
    return json(identity(bearer(req) ?? url.searchParams.get("oauth_token")));
  });
  sf.open("GET", "/services/oauth2/userinfo", ({ req }) => {
    const token = bearer(req);
    if (!sf.tokens.check(token, sf.now(), ["access"]).ok) throw invalidSession();
    const i = identity(token);
    return json({
      sub: i.id,
      user_id: i.user_id,
      organization_id: i.organization_id,
      preferred_username: i.username,
      email: i.email,
      name: i.display_name,
    });
  });
}
