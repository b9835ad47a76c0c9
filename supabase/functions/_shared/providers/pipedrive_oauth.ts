// Refreshing a Pipedrive OAuth grant (connections made through crm-connect): POST the token
// URL stored with the credentials (tokenUrl; Pipedrive's own host by default) with the app's
// client id and secret in HTTP Basic auth. Pipedrive answers a refresh_token with every
// refresh; whatever comes back is stored (single-flight through deps.refreshTokens, so a
// rotated one is never lost). API-token connections have nothing to refresh: a 401 means the
// token was revoked. Docs: https://pipedrive.readme.io/docs/marketplace-oauth-authorization
import { DEFAULT_CALL_TIMEOUT_MS } from "./call.ts";
import { refreshAnswerError, refreshTransportError } from "./token_errors.ts";
import { type ProviderDeps, ProviderError, type TokenSet } from "./types.ts";

const TOKEN_URL = "https://oauth.pipedrive.com/oauth/token";

async function requestTokens(deps: ProviderDeps, c: Record<string, string>): Promise<TokenSet> {
  if (!c.refreshToken || !c.clientId || !c.clientSecret) {
    throw new ProviderError("Pipedrive rejected the credentials", "revoked", 401);
  }
  deps.countCall();
  let res: Response;
  try {
    res = await fetch(c.tokenUrl || TOKEN_URL, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        authorization: `Basic ${btoa(`${c.clientId}:${c.clientSecret}`)}`,
      },
      body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: c.refreshToken }),
      signal: AbortSignal.timeout(deps.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS),
    });
  } catch (e) {
    throw refreshTransportError("Pipedrive", e);
  }
  const body = await res.json().catch(() => ({})) as Record<string, unknown>;
  if (!res.ok || typeof body.access_token !== "string") {
    throw refreshAnswerError("Pipedrive", res.status, body);
  }
  return {
    accessToken: body.access_token,
    refreshToken: typeof body.refresh_token === "string" ? body.refresh_token : c.refreshToken,
    expiresAt: typeof body.expires_in === "number"
      ? new Date(Date.now() + body.expires_in * 1000).toISOString()
      : undefined,
  };
}

/** The adapter's 401 handler: refresh once, then `use` the new access token. */
export function pipedriveRefresher(
  deps: ProviderDeps,
  current: () => string | undefined,
  use: (accessToken: string) => void,
): () => Promise<void> {
  return async () => {
    if (!deps.credentials.accessToken) {
      throw new ProviderError("Pipedrive rejected the credentials", "revoked", 401);
    }
    const t = deps.refreshTokens
      ? await deps.refreshTokens(current(), (c) => requestTokens(deps, c))
      : await requestTokens(deps, deps.credentials).then(async (t) => {
        await deps.onTokens(t);
        return t;
      });
    use(t.accessToken);
  };
}
