// What a failed OAuth refresh means. Only the authorisation server's refusal of the grant or of
// the client (400/401 with an OAuth error such as invalid_grant, or HubSpot's BAD_REFRESH_TOKEN)
// puts the connection in error ("revoked": an admin must reconnect). Anything else — 429, 5xx,
// a gateway's HTML page, a timeout, a refused connection — is transient ("retry": the run fails,
// its job is retried with backoff, the connection stays active and the refresh token is kept).
import { ProviderError } from "./types.ts";

const REFUSED =
  /invalid_grant|invalid_client|unauthorized_client|invalid_token|BAD_REFRESH_TOKEN|BAD_CLIENT|expired access\/refresh token|inactive user|user is inactive/i;

/** Whether a token endpoint's answer (status, parsed body) refuses the grant for good. */
export function refreshRefused(status: number, body: unknown): boolean {
  if (status !== 400 && status !== 401) return false;
  const b = (body && typeof body === "object" ? body : {}) as Record<string, unknown>;
  const text = ["error", "status", "error_description", "message", "category"]
    .map((k) => (typeof b[k] === "string" ? b[k] : ""))
    .join(" ");
  return REFUSED.test(text);
}

/** The ProviderError for a failed refresh answer: revoked or transient, per refreshRefused. */
export function refreshAnswerError(
  provider: string,
  status: number,
  body: unknown,
): ProviderError {
  const b = (body && typeof body === "object" ? body : {}) as Record<string, unknown>;
  const what = String(b.error ?? b.status ?? b.message ?? "no token").slice(0, 200);
  return refreshRefused(status, body)
    ? new ProviderError(`${provider} token refresh refused (${status}): ${what}`, "revoked", status)
    : new ProviderError(
      `${provider} token refresh failed, will retry (${status}): ${what}`,
      "retry",
      status,
    );
}

/** A refresh request that got no answer (network, timeout): transient. */
export function refreshTransportError(provider: string, e: unknown): ProviderError {
  const kind = e instanceof Error ? e.name : typeof e;
  return new ProviderError(
    `${provider} token refresh got no answer (${kind}), will retry`,
    "retry",
  );
}

/** A refresh through an SDK that throws the OAuth error code as the error's name (jsforce:
 * `invalid_grant`, or `ERROR_HTTP_<status>` for an answer without one): revoked only for a
 * refusal of the grant or client, else transient. */
export function refreshSdkError(provider: string, e: unknown): ProviderError {
  if (e instanceof ProviderError) return e;
  const err = e as { name?: string; message?: string };
  const text = `${err?.name ?? ""} ${err?.message ?? ""}`.slice(0, 300);
  return REFUSED.test(text)
    ? new ProviderError(`${provider} token refresh refused: ${text}`, "revoked", 400)
    : new ProviderError(`${provider} token refresh failed, will retry: ${text}`, "retry");
}
