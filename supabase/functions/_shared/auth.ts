// Who is calling: the functions verify credentials themselves, whatever the gateway did before
// (defence in depth: crm-webhook runs with verify_jwt = false and shares this code).
//
// - API keys grant the service role when they equal, in constant time, the project's legacy
//   service_role key (SUPABASE_SERVICE_ROLE_KEY) or one of its secret keys (SUPABASE_SECRET_KEYS,
//   a JSON object of name -> sb_secret_...). They are read from `Authorization: Bearer` and from
//   the `apikey` header (where Supabase's guide puts the new, non-JWT keys).
// - JWTs are verified: HS256 with the legacy JWT secret (JWT_SECRET), ES256/RS256 with the
//   project's JWKS (SUPABASE_JWKS when the platform sets it, else or on a key it lacks,
//   SUPABASE_URL/auth/v1/.well-known/jwks.json fetched with a timeout and cached). Every other
//   `alg` (none included) is refused, as are tokens without `exp` or past it.
// - Audiences: a user token must carry aud "authenticated" (what Supabase Auth issues); a
//   service_role token must carry no aud or "service_role" (the legacy keys carry none).
// Engine rights come only from a matching key or a verified token, never from a decoded claim.
import { timingSafeEqual } from "node:crypto";
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors,
  type JWTPayload,
  jwtVerify,
  type JWTVerifyGetKey,
} from "jose";

export interface AuthConfig {
  /** Legacy symmetric JWT secret (HS256); without it HS256 tokens are refused. */
  jwtSecret?: string;
  /** Resolver of the project's asymmetric signing keys; without it ES256/RS256 are refused. */
  jwks?: JWTVerifyGetKey;
  /** API keys that grant the service role (compared in constant time). */
  serviceKeys: string[];
  /** Seconds of clock skew allowed on exp/nbf/iat. */
  clockToleranceS?: number;
  /** Verification time (tests); defaults to now. */
  now?: () => Date;
}

export type Caller = { kind: "service" } | {
  kind: "user";
  accountId: string;
  userId: string | null;
};

const ASYMMETRIC = ["ES256", "RS256"];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const JWKS_TIMEOUT_MS = 3_000;
/** A kid the cache lacks refetches at most this often (key rotation, or junk tokens). */
const JWKS_COOLDOWN_MS = 30_000;
const JWKS_MAX_AGE_MS = 10 * 60_000;

/** Tries the first key set, and the second when the first has no key for the token. */
function firstThen(first: JWTVerifyGetKey, then: JWTVerifyGetKey): JWTVerifyGetKey {
  return async (header, token) => {
    try {
      return await first(header, token);
    } catch (e) {
      if (e instanceof errors.JWKSNoMatchingKey) return await then(header, token);
      throw e;
    }
  };
}

function parseJson(name: string, value: string | undefined): unknown {
  if (!value) return undefined;
  try {
    return JSON.parse(value);
  } catch {
    console.error(JSON.stringify({ msg: `${name} is not JSON; ignored` }));
    return undefined;
  }
}

/** The configuration the platform's environment describes. */
export function authFromEnv(env: { get(k: string): string | undefined } = Deno.env): AuthConfig {
  const serviceKeys: string[] = [];
  const legacy = env.get("SUPABASE_SERVICE_ROLE_KEY");
  if (legacy) serviceKeys.push(legacy);
  const secrets = parseJson("SUPABASE_SECRET_KEYS", env.get("SUPABASE_SECRET_KEYS"));
  if (secrets && typeof secrets === "object") {
    for (const v of Object.values(secrets)) if (typeof v === "string" && v) serviceKeys.push(v);
  }
  let jwks: JWTVerifyGetKey | undefined;
  const url = env.get("SUPABASE_URL");
  if (url) {
    jwks = createRemoteJWKSet(
      new URL(`${url.replace(/\/$/, "")}/auth/v1/.well-known/jwks.json`),
      {
        timeoutDuration: JWKS_TIMEOUT_MS,
        cooldownDuration: JWKS_COOLDOWN_MS,
        cacheMaxAge: JWKS_MAX_AGE_MS,
      },
    );
  }
  const local = parseJson("SUPABASE_JWKS", env.get("SUPABASE_JWKS")) as
    | { keys?: unknown[] }
    | undefined;
  if (Array.isArray(local?.keys) && local.keys.length) {
    const set = createLocalJWKSet(local as Parameters<typeof createLocalJWKSet>[0]);
    jwks = jwks ? firstThen(set, jwks) : set;
  }
  return { jwtSecret: env.get("JWT_SECRET") || undefined, jwks, serviceKeys };
}

/** Equal in constant time: both sides are hashed first, so neither length nor prefix leaks. */
export async function sameSecret(a: string, b: string): Promise<boolean> {
  const enc = new TextEncoder();
  const [ha, hb] = await Promise.all([
    crypto.subtle.digest("SHA-256", enc.encode(a)),
    crypto.subtle.digest("SHA-256", enc.encode(b)),
  ]);
  return timingSafeEqual(new Uint8Array(ha), new Uint8Array(hb));
}

async function isServiceKey(candidate: string, cfg: AuthConfig): Promise<boolean> {
  let match = false;
  // Every key is compared, so the time does not tell which one matched.
  for (const key of cfg.serviceKeys) match = (await sameSecret(candidate, key)) || match;
  return match;
}

function audiences(p: JWTPayload): string[] {
  return p.aud === undefined ? [] : Array.isArray(p.aud) ? p.aud : [p.aud];
}

/** The verified claims of a token, or null when it is not a valid token of this project. */
export async function verifyToken(token: string, cfg: AuthConfig): Promise<JWTPayload | null> {
  let alg: string | undefined;
  try {
    alg = decodeProtectedHeader(token).alg;
  } catch {
    return null;
  }
  const options = {
    requiredClaims: ["exp"],
    clockTolerance: cfg.clockToleranceS ?? 5,
    currentDate: cfg.now?.(),
  };
  let payload: JWTPayload;
  try {
    if (alg === "HS256" && cfg.jwtSecret) {
      const key = new TextEncoder().encode(cfg.jwtSecret);
      ({ payload } = await jwtVerify(token, key, { ...options, algorithms: ["HS256"] }));
    } else if (alg && ASYMMETRIC.includes(alg) && cfg.jwks) {
      ({ payload } = await jwtVerify(token, cfg.jwks, { ...options, algorithms: ASYMMETRIC }));
    } else {
      return null;
    }
  } catch (e) {
    // Unreachable or malformed JWKS is an outage worth a log line; a bad token is not.
    const outage = !(e instanceof errors.JOSEError) || e instanceof errors.JWKSTimeout ||
      e instanceof errors.JWKSInvalid;
    if (outage) {
      console.error(JSON.stringify({ msg: "JWKS unavailable", error: (e as Error).message }));
    }
    return null;
  }
  const aud = audiences(payload);
  if (payload.role === "authenticated" && !aud.includes("authenticated")) return null;
  if (payload.role === "service_role" && aud.length && !aud.includes("service_role")) return null;
  return payload;
}

function bearer(req: Request): string | null {
  return req.headers.get("authorization")?.match(/^Bearer\s+(\S+)\s*$/i)?.[1] ?? null;
}

/**
 * The caller of a function: the service role (a service key, or a verified service_role
 * token), a signed-in user with the account claim app_metadata.account_id (the claim RLS
 * uses), or null (no credentials, anon, a user without an account, anything unverified).
 */
export async function identify(req: Request, cfg: AuthConfig): Promise<Caller | null> {
  const token = bearer(req);
  const apikey = req.headers.get("apikey");
  if (apikey && await isServiceKey(apikey, cfg)) return { kind: "service" };
  if (!token) return null;
  if (await isServiceKey(token, cfg)) return { kind: "service" };
  const claims = await verifyToken(token, cfg);
  if (!claims) return null;
  if (claims.role === "service_role") return { kind: "service" };
  const account = (claims.app_metadata as { account_id?: unknown } | undefined)?.account_id;
  if (claims.role !== "authenticated" || typeof account !== "string" || !UUID.test(account)) {
    return null;
  }
  return {
    kind: "user",
    accountId: account,
    userId: typeof claims.sub === "string" ? claims.sub : null,
  };
}

export async function isServiceRole(req: Request, cfg: AuthConfig): Promise<boolean> {
  return (await identify(req, cfg))?.kind === "service";
}
