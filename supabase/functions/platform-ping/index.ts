// Health probe for the platform path: records who called (cron, manual, test) and answers.
// Service role only. The row is written after the response via EdgeRuntime.waitUntil when
// the caller asks for `background: true`, which also proves waitUntil works.
import { z } from "zod";
import { authFromEnv, isServiceRole } from "../_shared/auth.ts";
import { connect } from "../_shared/db.ts";
import { parseBody } from "../_shared/http/body.ts";

declare const EdgeRuntime: { waitUntil(p: Promise<unknown>): void };

const Body = z.object({
  source: z.string().min(1).max(100),
  request_id: z.string().max(100).optional(),
  background: z.boolean().optional(),
}).strict();

const sql = connect();
const auth = authFromEnv();

Deno.serve(async (req) => {
  if (req.method !== "POST") return Response.json({ error: "method not allowed" }, { status: 405 });
  if (!await isServiceRole(req, auth)) {
    return Response.json({ error: "service role required" }, { status: 403 });
  }
  const parsed = await parseBody(req, Body);
  if (!parsed.ok) return parsed.response;
  const { source, request_id, background } = parsed.data;
  const write = sql`insert into public.platform_pings (source, request_id)
                    values (${source}, ${request_id ?? null})`;
  if (background) {
    EdgeRuntime.waitUntil(write);
    return Response.json({ ok: true, queued: true }, { status: 202 });
  }
  await write;
  return Response.json({ ok: true });
});
