// The OAuth `state` of crm-connect: an HS256 JWT (jose) naming the nonce, the user, the
// account and the provider, valid for minutes. The signature stops forgery; the nonce row
// (crm.connect_states, consumed in one statement) stops replay and binds it server-side, so a
// state is worth nothing without its row and the row nothing without a valid state.
import { jwtVerify, SignJWT } from "jose";
import { type ProviderName, PROVIDERS } from "../providers/types.ts";

const ISSUER = "crm-connect";
const AUDIENCE = "crm-connect/callback";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface StateClaims {
  nonce: string;
  userId: string;
  accountId: string;
  provider: ProviderName;
}

export async function signState(
  key: Uint8Array,
  c: StateClaims,
  ttlS: number,
  nowS = Math.floor(Date.now() / 1000),
): Promise<string> {
  return await new SignJWT({ acc: c.accountId, prv: c.provider })
    .setProtectedHeader({ alg: "HS256" })
    .setJti(c.nonce)
    .setSubject(c.userId)
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setIssuedAt(nowS)
    .setExpirationTime(nowS + ttlS)
    .sign(key);
}

/** The claims of a valid, unexpired state of ours, or null. */
export async function verifyState(
  key: Uint8Array,
  state: string,
  now?: Date,
): Promise<StateClaims | null> {
  try {
    const { payload } = await jwtVerify(state, key, {
      algorithms: ["HS256"],
      issuer: ISSUER,
      audience: AUDIENCE,
      requiredClaims: ["exp", "jti", "sub"],
      clockTolerance: 5,
      currentDate: now,
    });
    const { jti, sub, acc, prv } = payload as Record<string, unknown>;
    if (
      typeof jti !== "string" || !UUID.test(jti) || typeof sub !== "string" || !UUID.test(sub) ||
      typeof acc !== "string" || !UUID.test(acc) ||
      !PROVIDERS.includes(prv as ProviderName)
    ) return null;
    return { nonce: jti, userId: sub, accountId: acc, provider: prv as ProviderName };
  } catch {
    return null;
  }
}

/** A PKCE pair (RFC 7636, S256): 64 random URL-safe characters and their SHA-256. */
export async function pkcePair(): Promise<{ verifier: string; challenge: string }> {
  const verifier = b64url(crypto.getRandomValues(new Uint8Array(48)));
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return { verifier, challenge: b64url(new Uint8Array(digest)) };
}

function b64url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_")
    .replace(/=+$/, "");
}
