// Local API keys: HS256 JWTs signed with the stack's JWT secret, shaped like the keys
// `supabase start` prints (iss supabase-demo, role anon|service_role).
import { jwtVerify, SignJWT } from "jose";

const TEN_YEARS_S = 10 * 365 * 24 * 3600;
// Fixed issue time for the stack's API keys, so the same secret always yields the same keys
// and `.local/stack.env` stays stable across restarts.
export const KEY_EPOCH_S = 1_767_225_600; // 2026-01-01T00:00:00Z

export async function mintKey(
  secret: string,
  claims: Record<string, unknown>,
  ttlSeconds = TEN_YEARS_S,
  now = Math.floor(Date.now() / 1000),
): Promise<string> {
  return await new SignJWT({ iss: "supabase-demo", ...claims })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuedAt(now)
    .setExpirationTime(now + ttlSeconds)
    .sign(new TextEncoder().encode(secret));
}

export async function verifyJwt(
  token: string,
  secret: string,
): Promise<Record<string, unknown> | null> {
  try {
    const { payload } = await jwtVerify(token, new TextEncoder().encode(secret), {
      algorithms: ["HS256"],
    });
    return payload as Record<string, unknown>;
  } catch {
    return null;
  }
}
