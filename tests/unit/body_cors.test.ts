// _shared/http/body.ts (the one body limit and parser of every function) and
// _shared/http/cors.ts (the allow-list of browser origins).
import assert from "node:assert/strict";
import { z } from "zod";
import {
  findUnstorableText,
  MAX_BODY_BYTES,
  parseBody,
} from "../../supabase/functions/_shared/http/body.ts";
import { corsFromEnv, preflight, withCors } from "../../supabase/functions/_shared/http/cors.ts";

const Schema = z.object({ name: z.string().optional(), tags: z.array(z.string()).optional() })
  .strict();

function post(body: BodyInit | null, headers: Record<string, string> = {}): Request {
  return new Request("http://fn.test/", { method: "POST", body, headers });
}

async function status(r: Request) {
  const p = await parseBody(r, Schema);
  return p.ok ? { status: 200, data: p.data } : {
    status: p.response.status,
    error: (await p.response.json()).error as string,
  };
}

Deno.test("body: NUL and lone surrogates are refused with 400 naming the field", async () => {
  const nul = await status(post('{"name":"A\\u0000B"}'));
  assert.equal(nul.status, 400);
  assert.match(nul.error!, /NUL character .* at \$\.name/);
  const lone = await status(post('{"tags":["ok","A\\ud800B"]}'));
  assert.equal(lone.status, 400);
  assert.match(lone.error!, /lone UTF-16 surrogate at \$\.tags\[1\]/);
  const key = await status(post('{"a\\u0000":1}'));
  assert.equal(key.status, 400);
  assert.match(key.error!, /a key with a NUL/);
  const pair = await status(post('{"name":"\\ud83d\\ude00"}'));
  assert.deepEqual(pair, { status: 200, data: { name: "\u{1F600}" } }, "a surrogate pair is fine");
});

Deno.test("body: over the limit is 413, declared or streamed; malformed is 400", async () => {
  const big = "x".repeat(MAX_BODY_BYTES + 1);
  assert.equal((await status(post(JSON.stringify({ name: big })))).status, 413);
  // No Content-Length: the stream is cut at the limit.
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      c.enqueue(new TextEncoder().encode(" ".repeat(16 * 1024)));
    },
  });
  assert.equal((await status(post(stream))).status, 413, "an endless body stops at the cap");
  assert.equal((await status(post("{not json"))).status, 400);
  assert.equal((await status(post(new Uint8Array([0x7b, 0xff, 0x7d])))).status, 400, "not UTF-8");
  assert.equal((await status(post('{"name":1}'))).status, 400, "schema");
  assert.equal((await status(post('{"other":1}'))).status, 400, "unknown key");
  const deep = "[".repeat(20_000) + "]".repeat(20_000);
  assert.equal((await status(post(deep))).status, 400, "deep nesting is a 400, not a crash");
  assert.deepEqual(await status(post(null)), { status: 200, data: {} }, "empty body is {}");
});

Deno.test("body: the walker finds text anywhere, iteratively", () => {
  let deep: unknown = "A\u0000";
  for (let i = 0; i < 50_000; i++) deep = [deep];
  assert.ok(findUnstorableText(deep)?.problem.includes("NUL"));
  assert.equal(findUnstorableText({ a: [1, true, null, { b: "fine" }] }), null);
});

Deno.test("cors: allowed origins get the headers, others do not; preflights per the guide", async () => {
  const policy = corsFromEnv("https://app.example.com, http://localhost:5173/");
  const from = (origin: string | null, method = "POST") =>
    new Request("http://fn.test/", { method, headers: origin ? { origin } : {} });

  const ok = preflight(from("http://localhost:5173", "OPTIONS"), policy);
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get("access-control-allow-origin"), "http://localhost:5173");
  assert.match(
    ok.headers.get("access-control-allow-headers")!,
    /authorization.*apikey.*content-type/,
  );
  assert.match(ok.headers.get("access-control-allow-methods")!, /POST/);
  // crm-connect GET /status from a browser.
  assert.match(ok.headers.get("access-control-allow-methods")!, /\bGET\b/);
  const no = preflight(from("https://evil.example", "OPTIONS"), policy);
  assert.equal(no.status, 403);
  assert.equal(no.headers.get("access-control-allow-origin"), null);
  await no.body?.cancel();
  await ok.body?.cancel();

  const err = withCors(from("https://app.example.com"), Response.json({}, { status: 401 }), policy);
  assert.equal(err.headers.get("access-control-allow-origin"), "https://app.example.com");
  assert.match(err.headers.get("access-control-expose-headers")!, /retry-after/);
  assert.equal(err.headers.get("vary"), "Origin");
  const other = withCors(from("https://evil.example"), Response.json({}), policy);
  assert.equal(other.headers.get("access-control-allow-origin"), null);

  const none = corsFromEnv(undefined);
  const denied = withCors(from("http://localhost:5173"), Response.json({}), none);
  assert.equal(denied.headers.get("access-control-allow-origin"), null, "default: no origin");
  const any = corsFromEnv("*");
  const star = withCors(from("https://x.example"), Response.json({}), any);
  assert.equal(star.headers.get("access-control-allow-origin"), "https://x.example");
});
