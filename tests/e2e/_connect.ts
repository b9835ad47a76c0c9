// Harness of the crm-connect tests: a gateway of its own over the real functions folder (so a
// test can restart the functions, as a redeploy does, and give crm-connect the sandboxes' OAuth
// apps as secrets), the test stack's database and workers behind it, sandboxes in-process, and
// user JWTs minted with the stack's JWT secret.
import { startGateway } from "../../shared/local/gateway.ts";
import { mintKey } from "../../shared/local/jwt.ts";
import { fileURLToPath } from "node:url";
import { need } from "../_support/env.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url).href);
export const APP = "https://app.example/crm";

export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

export interface ConnectGateway {
  url: string;
  fn: string;
  logs: string[];
  close(): Promise<void>;
}

/** The gateway serving crm-connect with `secrets` (function secrets) on `port`. */
export async function startConnectGateway(
  port: number,
  secrets: Record<string, string>,
): Promise<ConnectGateway> {
  const envFile = await Deno.makeTempFile();
  await Deno.writeTextFile(
    envFile,
    Object.entries({ CRM_ENCRYPTION_KEY: need("CRM_ENCRYPTION_KEY"), ...secrets })
      .map(([k, v]) => `${k}=${v}`).join("\n") + "\n",
  );
  const logs: string[] = [];
  const gw = startGateway({
    port,
    functionsDir: `${ROOT}supabase/functions`,
    configToml: `${ROOT}supabase/config.toml`,
    jwtSecret: need("SUPABASE_JWT_SECRET"),
    envFile,
    env: {
      SUPABASE_URL: `http://127.0.0.1:${port}`,
      SUPABASE_DB_URL: need("SUPABASE_DB_URL"),
      SUPABASE_ANON_KEY: need("SUPABASE_ANON_KEY"),
      SUPABASE_SERVICE_ROLE_KEY: need("SUPABASE_SERVICE_ROLE_KEY"),
    },
    cpuLimitMs: 0,
    log: (m) => logs.push(m),
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    const ok = await fetch(`${url}/__health`).then((r) => r.body?.cancel().then(() => r.ok))
      .catch(() => false);
    if (ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    fn: `${url}/functions/v1/crm-connect`,
    logs,
    close: async () => {
      await gw.close();
      await Deno.remove(envFile).catch(() => {});
    },
  };
}

export interface TestUser {
  userId: string;
  accountId: string;
  jwt: string;
}

export async function newUser(ttlS = 3600, accountId = crypto.randomUUID()): Promise<TestUser> {
  const userId = crypto.randomUUID();
  const jwt = await mintKey(need("SUPABASE_JWT_SECRET"), {
    role: "authenticated",
    aud: "authenticated",
    sub: userId,
    app_metadata: { account_id: accountId },
  }, ttlS);
  return { userId, accountId, jwt };
}

export interface Answer {
  status: number;
  body: Record<string, unknown>;
  location: string | null;
  text: string;
}

export async function req(
  url: string,
  o: { method?: string; jwt?: string; body?: unknown } = {},
): Promise<Answer> {
  const res = await fetch(url, {
    method: o.method ?? (o.body === undefined ? "GET" : "POST"),
    redirect: "manual",
    headers: {
      ...(o.jwt ? { authorization: `Bearer ${o.jwt}` } : {}),
      ...(o.body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: o.body === undefined ? undefined : JSON.stringify(o.body),
  });
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text);
  } catch { /* a page or a redirect */ }
  return { status: res.status, body, location: res.headers.get("location"), text };
}
