// _shared/auth.ts: functions verify every credential themselves. HS256 with the JWT secret,
// ES256/RS256 from the project's JWKS (served here by a local HTTP server), API keys compared in
// constant time; alg none, expired, wrong audience, forged or foreign signatures are refused.
import assert from "node:assert/strict";
import { exportJWK, generateKeyPair, SignJWT, UnsecuredJWT } from "jose";
import {
  type AuthConfig,
  authFromEnv,
  identify,
  isServiceRole,
  sameSecret,
} from "../../supabase/functions/_shared/auth.ts";

const SECRET = "unit-test-jwt-secret-with-at-least-32-characters";
const ACCOUNT = "6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f";
const SERVICE_KEY = "legacy-service-role-key-for-the-test";
const SB_SECRET = "sb_secret_unitTestKey0123456789abcdef";
const now = () => Math.floor(Date.now() / 1000);

function req(token?: string, apikey?: string): Request {
  const headers = new Headers();
  if (token) headers.set("authorization", `Bearer ${token}`);
  if (apikey) headers.set("apikey", apikey);
  return new Request("http://fn.test/", { method: "POST", headers });
}

const userClaims = {
  role: "authenticated",
  aud: "authenticated",
  sub: "0e6f8b4a-1c2d-4e3f-8a9b-0c1d2e3f4a5b",
  app_metadata: { account_id: ACCOUNT },
};

async function hs256(claims: Record<string, unknown>, o: { secret?: string; exp?: number } = {}) {
  return await new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuedAt(now() - 10)
    .setExpirationTime(o.exp ?? now() + 3600)
    .sign(new TextEncoder().encode(o.secret ?? SECRET));
}

function config(extra: Partial<AuthConfig> = {}): AuthConfig {
  return { jwtSecret: SECRET, serviceKeys: [SERVICE_KEY, SB_SECRET], ...extra };
}

/** A JWKS endpoint like the project's /auth/v1/.well-known/jwks.json, counting its fetches. */
async function withJwksServer(
  fn: (
    env: { get(k: string): string | undefined },
    keys: { es: CryptoKey; rs: CryptoKey; fetches: () => number },
  ) => Promise<void>,
) {
  const es = await generateKeyPair("ES256");
  const rs = await generateKeyPair("RS256");
  const jwks = {
    keys: [
      { ...(await exportJWK(es.publicKey)), kid: "es-1", alg: "ES256", use: "sig" },
      { ...(await exportJWK(rs.publicKey)), kid: "rs-1", alg: "RS256", use: "sig" },
    ],
  };
  let fetches = 0;
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, (r) => {
    if (new URL(r.url).pathname !== "/auth/v1/.well-known/jwks.json") {
      return new Response("not found", { status: 404 });
    }
    fetches++;
    return Response.json(jwks);
  });
  const env = new Map([
    ["SUPABASE_URL", `http://127.0.0.1:${server.addr.port}`],
    ["SUPABASE_SERVICE_ROLE_KEY", SERVICE_KEY],
    ["SUPABASE_SECRET_KEYS", JSON.stringify({ default: SB_SECRET })],
    ["JWT_SECRET", SECRET],
  ]);
  try {
    await fn(env, { es: es.privateKey, rs: rs.privateKey, fetches: () => fetches });
  } finally {
    await server.shutdown();
  }
}

async function asymmetric(
  key: CryptoKey,
  alg: "ES256" | "RS256",
  kid: string,
  claims: Record<string, unknown> = userClaims,
) {
  return await new SignJWT(claims)
    .setProtectedHeader({ alg, kid, typ: "JWT" })
    .setIssuedAt()
    .setExpirationTime("1h")
    .sign(key);
}

Deno.test("auth: a valid HS256 user token identifies the user and the account", async () => {
  const who = await identify(req(await hs256(userClaims)), config());
  assert.deepEqual(who, { kind: "user", accountId: ACCOUNT, userId: userClaims.sub });
});

Deno.test("auth: valid ES256 and RS256 tokens verify against the project's JWKS, fetched once", async () => {
  await withJwksServer(async (env, { es, rs, fetches }) => {
    const cfg = authFromEnv(env);
    const viaEs = await identify(req(await asymmetric(es, "ES256", "es-1")), cfg);
    assert.deepEqual(viaEs, { kind: "user", accountId: ACCOUNT, userId: userClaims.sub });
    const viaRs = await identify(req(await asymmetric(rs, "RS256", "rs-1")), cfg);
    assert.equal(viaRs?.kind, "user");
    assert.equal(fetches(), 1, "the key set is cached, not fetched per request");
    const service = await asymmetric(es, "ES256", "es-1", { role: "service_role" });
    assert.equal(await isServiceRole(req(service), cfg), true);
  });
});

Deno.test("auth: SUPABASE_JWKS from the environment verifies without a fetch", async () => {
  await withJwksServer(async (env, { es, fetches }) => {
    const url = env.get("SUPABASE_URL")!;
    const jwks = await (await fetch(`${url}/auth/v1/.well-known/jwks.json`)).json();
    const counted = fetches();
    const cfg = authFromEnv({
      get: (k) => k === "SUPABASE_JWKS" ? JSON.stringify(jwks) : env.get(k),
    });
    assert.equal((await identify(req(await asymmetric(es, "ES256", "es-1")), cfg))?.kind, "user");
    assert.equal(fetches(), counted, "no request to the JWKS endpoint");
  });
});

Deno.test("auth: alg none is refused, whatever it claims", async () => {
  const none = new UnsecuredJWT({ ...userClaims, role: "service_role" })
    .setIssuedAt()
    .setExpirationTime("1h")
    .encode();
  assert.equal(await identify(req(none), config()), null);
  // The same with an empty signature part and "alg":"none" spelled differently.
  const header = btoa(JSON.stringify({ alg: "None", typ: "JWT" })).replace(/=+$/, "");
  const body = btoa(JSON.stringify({ role: "service_role", exp: now() + 60 })).replace(/=+$/, "");
  assert.equal(await identify(req(`${header}.${body}.`), config()), null);
});

Deno.test("auth: expired tokens and tokens without exp are refused", async () => {
  const expired = await hs256(userClaims, { exp: now() - 3600 });
  assert.equal(await identify(req(expired), config()), null);
  const service = await hs256({ role: "service_role" }, { exp: now() - 3600 });
  assert.equal(await isServiceRole(req(service), config()), false);
  const noExp = await new SignJWT(userClaims).setProtectedHeader({ alg: "HS256" })
    .sign(new TextEncoder().encode(SECRET));
  assert.equal(await identify(req(noExp), config()), null);
});

Deno.test("auth: wrong audiences are refused", async () => {
  const other = await hs256({ ...userClaims, aud: "some-other-api" });
  assert.equal(await identify(req(other), config()), null, "user token for another audience");
  const none = await hs256({ ...userClaims, aud: undefined });
  assert.equal(await identify(req(none), config()), null, "user token without aud");
  const service = await hs256({ role: "service_role", aud: "some-other-api" });
  assert.equal(await isServiceRole(req(service), config()), false, "service token elsewhere");
  const legacyKey = await hs256({ role: "service_role", iss: "supabase", ref: "proj" });
  assert.equal(await isServiceRole(req(legacyKey), config()), true, "legacy keys carry no aud");
});

Deno.test("auth: forged signatures and foreign keys are refused", async () => {
  const user = await hs256(userClaims);
  const [h, , s] = user.split(".");
  const promoted = btoa(JSON.stringify({ ...userClaims, role: "service_role", exp: now() + 60 }))
    .replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
  assert.equal(await identify(req(`${h}.${promoted}.${s}`), config()), null, "payload swapped");
  const flipped = s.slice(0, -2) + (s.at(-2) === "A" ? "B" : "A") + s.at(-1);
  assert.equal(await identify(req(`${h}.${user.split(".")[1]}.${flipped}`), config()), null);
  const foreign = await hs256({ role: "service_role" }, {
    secret: "another-project-secret-with-32-characters!",
  });
  assert.equal(await isServiceRole(req(foreign), config()), false, "another project's secret");
  assert.equal(
    await isServiceRole(req(await hs256({ role: "service_role" })), config({ jwtSecret: "" })),
    false,
    "without a configured secret no HS256 token verifies",
  );
  await withJwksServer(async (env) => {
    const stranger = await generateKeyPair("ES256");
    const token = await asymmetric(stranger.privateKey, "ES256", "es-1", { role: "service_role" });
    assert.equal(await isServiceRole(req(token), authFromEnv(env)), false, "same kid, other key");
    const unknownKid = await asymmetric(stranger.privateKey, "ES256", "nope");
    assert.equal(await identify(req(unknownKid), authFromEnv(env)), null, "unknown kid");
  });
});

Deno.test("auth: an unreachable JWKS endpoint refuses asymmetric tokens", async () => {
  const { privateKey } = await generateKeyPair("ES256");
  const listener = Deno.listen({ port: 0, hostname: "127.0.0.1" });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const cfg = authFromEnv({
    get: (k) => k === "SUPABASE_URL" ? `http://127.0.0.1:${port}` : undefined,
  });
  const token = await asymmetric(privateKey, "ES256", "es-1", { role: "service_role" });
  assert.equal(await identify(req(token), cfg), null);
});

Deno.test("auth: service keys match exactly, in Authorization or apikey; anything else is not", async () => {
  const cfg = config();
  assert.equal(await isServiceRole(req(SERVICE_KEY), cfg), true, "legacy service_role key");
  assert.equal(await isServiceRole(req(undefined, SB_SECRET), cfg), true, "sb_secret in apikey");
  assert.equal(await isServiceRole(req(SB_SECRET), cfg), true, "sb_secret as bearer");
  assert.equal(await isServiceRole(req(SERVICE_KEY.slice(0, -1)), cfg), false, "a prefix");
  assert.equal(await isServiceRole(req(`${SERVICE_KEY}x`), cfg), false, "a longer key");
  assert.equal(await isServiceRole(req(undefined, "sb_publishable_abc"), cfg), false);
  assert.equal(await isServiceRole(req(), cfg), false, "no credentials");
  assert.equal(await sameSecret("abc", "abc"), true);
  assert.equal(await sameSecret("abc", "abd"), false);
  assert.equal(await sameSecret("abc", "abcd"), false, "different lengths compare too");
  const env = authFromEnv({
    get: (k) =>
      ({ SUPABASE_SERVICE_ROLE_KEY: SERVICE_KEY, SUPABASE_SECRET_KEYS: '{"a":"sb_secret_1"}' })[
        k as "SUPABASE_SERVICE_ROLE_KEY"
      ],
  });
  assert.deepEqual(env.serviceKeys, [SERVICE_KEY, "sb_secret_1"]);
});

Deno.test("auth: anon keys, users without an account and bad headers are not callers", async () => {
  const cfg = config();
  assert.equal(await identify(req(await hs256({ role: "anon", iss: "supabase" })), cfg), null);
  const noAccount = await hs256({ ...userClaims, app_metadata: {} });
  assert.equal(await identify(req(noAccount), cfg), null);
  const badAccount = await hs256({ ...userClaims, app_metadata: { account_id: "acc" } });
  assert.equal(await identify(req(badAccount), cfg), null);
  assert.equal(await identify(req("not.a.jwt"), cfg), null);
  const basic = new Request("http://fn.test/", {
    headers: { authorization: `Basic ${SERVICE_KEY}` },
  });
  assert.equal(await identify(basic, cfg), null, "only Bearer");
});
