// The whole platform path every later feature relies on: SQL net.http_post (URL and key from
// Vault) -> pg_net worker -> functions gateway (verify_jwt) -> edge function -> a row written
// through SUPABASE_DB_URL; and the pg_cron job registered by a migration runs the same call.
import assert from "node:assert/strict";
import postgres from "postgres";
import { need } from "../_support/env.ts";

async function waitForPing(sql: postgres.Sql, source: string, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const rows = await sql`select * from public.platform_pings where source = ${source}`;
    if (rows.length) return rows;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no ping from ${source} arrived`);
}

Deno.test("net.http_post -> pg_net -> gateway -> function -> database", async () => {
  const sql = postgres(need("SUPABASE_DB_URL"), { max: 1, onnotice: () => {} });
  try {
    const source = `test-${crypto.randomUUID()}`;
    const [{ id }] = await sql`select public.platform_ping(${source})::text as id`;
    const rows = await waitForPing(sql, source);
    assert.equal(rows.length, 1);
    const [res] = await sql`select status_code, content from net._http_response where id = ${id}`;
    assert.equal(res.status_code, 200);
  } finally {
    await sql.end();
  }
});

Deno.test("the migration's pg_cron job is registered and its command performs the call", async () => {
  const sql = postgres(need("SUPABASE_DB_URL"), { max: 1, onnotice: () => {} });
  try {
    const [job] = await sql`select schedule, command, active from cron.job
                            where jobname = 'crm-platform-ping'`;
    assert.ok(job, "job crm-platform-ping exists");
    assert.equal(job.schedule, "17 * * * *");
    assert.equal(job.active, true);
    const before = (await sql`select count(*)::int as n from public.platform_pings
                             where source = 'cron'`)[0].n;
    await sql.unsafe(job.command);
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      const [{ n }] = await sql`select count(*)::int as n from public.platform_pings
                                where source = 'cron'`;
      if (n > before) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error("the cron command did not reach the function");
  } finally {
    await sql.end();
  }
});

Deno.test("the function refuses callers without the service role", async () => {
  const url = `${need("SUPABASE_URL")}/functions/v1/platform-ping`;
  const anon = await fetch(url, {
    method: "POST",
    headers: { Authorization: `Bearer ${need("SUPABASE_ANON_KEY")}` },
    body: JSON.stringify({ source: "anon" }),
  });
  assert.equal(anon.status, 403);
  await anon.body?.cancel();
  const none = await fetch(url, { method: "POST", body: "{}" });
  assert.equal(none.status, 401);
  await none.body?.cancel();
  const bad = await fetch(url, {
    method: "POST",
    headers: { Authorization: `Bearer ${need("SUPABASE_SERVICE_ROLE_KEY")}` },
    body: "{not json",
  });
  assert.equal(bad.status, 400);
  await bad.body?.cancel();
});

Deno.test("EdgeRuntime.waitUntil on the real gateway: the row lands after a 202", async () => {
  const sql = postgres(need("SUPABASE_DB_URL"), { max: 1, onnotice: () => {} });
  try {
    const source = `bg-${crypto.randomUUID()}`;
    const res = await fetch(`${need("SUPABASE_URL")}/functions/v1/platform-ping`, {
      method: "POST",
      headers: { Authorization: `Bearer ${need("SUPABASE_SERVICE_ROLE_KEY")}` },
      body: JSON.stringify({ source, background: true }),
    });
    assert.equal(res.status, 202);
    await res.body?.cancel();
    await waitForPing(sql, source);
  } finally {
    await sql.end();
  }
});
