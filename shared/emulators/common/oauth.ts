/**
 * What the three sandboxes' OAuth endpoints share: the consent switch (a user who refuses),
 * the registered redirect URIs, refresh-token rotation, and the PKCE check (RFC 7636).
 *
 * - consent "approve" (default): authorize redirects with a code at once (no login page);
 *   "deny": the user refused. Salesforce and Pipedrive then redirect with
 *   `error=access_denied` (their docs); HubSpot sends no request to the redirect URI when the
 *   user does not grant access, so its authorize answers a page and nothing else.
 * - redirectUris: null (default) accepts any redirect URI at authorize, as an app with every
 *   URI registered would; a list makes authorize refuse the others, as the providers do with
 *   URIs missing from the app's settings. The code exchange always requires the URI the code
 *   was issued for, byte for byte.
 * - rotateRefreshTokens: a refresh answers a new refresh token and revokes the old one
 *   (Salesforce's "refresh token rotation" connected-app setting). Default off: HubSpot and
 *   Salesforce document that the refresh token stays; Pipedrive's refresh answer carries a
 *   refresh_token, and clients must store whatever comes back.
 */
import { z } from "zod";

export const OAuthPolicySchema = z.object({
  consent: z.enum(["approve", "deny"]).optional(),
  redirectUris: z.array(z.string().url()).nullable().optional(),
  rotateRefreshTokens: z.boolean().optional(),
}).strict();
export type OAuthPolicyInput = z.infer<typeof OAuthPolicySchema>;

export class OAuthPolicy {
  consent: "approve" | "deny" = "approve";
  redirectUris: string[] | null = null;
  rotateRefreshTokens = false;

  constructor(input: OAuthPolicyInput = {}) {
    this.set(input);
  }

  set(input: OAuthPolicyInput): void {
    if (input.consent !== undefined) this.consent = input.consent;
    if (input.redirectUris !== undefined) this.redirectUris = input.redirectUris;
    if (input.rotateRefreshTokens !== undefined) {
      this.rotateRefreshTokens = input.rotateRefreshTokens;
    }
  }

  snapshot() {
    return {
      consent: this.consent,
      redirectUris: this.redirectUris,
      rotateRefreshTokens: this.rotateRefreshTokens,
    };
  }

  redirectAllowed(uri: string): boolean {
    return this.redirectUris === null || this.redirectUris.includes(uri);
  }
}

const VERIFIER = /^[A-Za-z0-9\-._~]{43,128}$/;

export async function s256(verifier: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  const b64 = btoa(String.fromCharCode(...new Uint8Array(digest)));
  return b64.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * The code exchange's PKCE check: a code issued with a challenge needs the matching verifier;
 * a code issued without one refuses a verifier (nothing to check it against).
 */
export async function pkceMatches(
  challenge: string | undefined,
  method: string | undefined,
  verifier: string | null,
): Promise<boolean> {
  if (!challenge) return verifier === null;
  if (verifier === null || !VERIFIER.test(verifier)) return false;
  return (method === "plain" ? verifier : await s256(verifier)) === challenge;
}

/** The redirect a refused consent produces (RFC 6749 §4.1.2.1). */
export function deniedRedirect(redirect: string, state: string | null): Response {
  const target = new URL(redirect);
  target.searchParams.set("error", "access_denied");
  target.searchParams.set("error_description", "end-user denied authorization");
  if (state !== null) target.searchParams.set("state", state);
  return new Response(null, { status: 302, headers: { location: target.toString() } });
}
