// Starts the gateway over the fixture functions (tests/platform/fixtures) for the gateway tests.
import { fileURLToPath } from "node:url";
import { type GatewayOptions, startGateway } from "../../shared/local/gateway.ts";
import { KEY_EPOCH_S, mintKey } from "../../shared/local/jwt.ts";

const FIXTURES = fileURLToPath(new URL("./fixtures", import.meta.url).href);
export const SECRET = "gateway-test-secret-with-at-least-32-characters";

export type Gateway = ReturnType<typeof startGateway>;

export async function withGateway(
  fn: (gw: Gateway, keys: { anon: string; service: string }) => Promise<void>,
  extra: Partial<GatewayOptions> = {},
) {
  const envFile = await Deno.makeTempFile();
  await Deno.writeTextFile(
    envFile,
    "MY_SECRET=s3cret\nSUPABASE_URL=http://evil.example\nJWT_SECRET=not-the-project-secret\n",
  );
  // The stack's own secrets: the developer's envFile wins on a shared name.
  const stackEnvFile = await Deno.makeTempFile();
  await Deno.writeTextFile(stackEnvFile, "STACK_SECRET=from-stack\nMY_SECRET=loses\n");
  const anon = await mintKey(SECRET, { role: "anon" }, undefined, KEY_EPOCH_S);
  const service = await mintKey(SECRET, { role: "service_role" }, undefined, KEY_EPOCH_S);
  const gw = startGateway({
    port: 0,
    functionsDir: `${FIXTURES}/functions`,
    configToml: `${FIXTURES}/config.toml`,
    jwtSecret: SECRET,
    envFile,
    stackEnvFile,
    env: {
      SUPABASE_URL: "http://127.0.0.1:1",
      SUPABASE_DB_URL: "postgresql://fixture",
      SUPABASE_ANON_KEY: anon,
      SUPABASE_SERVICE_ROLE_KEY: service,
    },
    log: () => {},
    ...extra,
  });
  try {
    await fn(gw, { anon, service });
  } finally {
    await gw.close();
    await Deno.remove(envFile);
    await Deno.remove(stackEnvFile);
  }
}

export async function call(url: string, init: RequestInit = {}) {
  const res = await fetch(url, init);
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch { /* not json */ }
  return { status: res.status, body: body as Record<string, unknown> };
}

export const bearer = (t: string) => ({ headers: { Authorization: `Bearer ${t}` } });
