// Health probe for the platform path: records who called (cron, manual, test) and answers.
// Service role only. The row is written after the response via EdgeRuntime.waitUntil when
// the caller asks for `background: true`, which also proves waitUntil works.
import { z } from "zod";
import { isServiceRole } from "../_shared/auth.ts";
import { connect } from "../_shared/db.ts";

declare const EdgeRuntime: { waitUntil(p: Promise<unknown>): void };

const Body = z.object({
  source: z.string().min(1).max(100),
  request_id: z.string().max(100).optional(),
  background: z.boolean().optional(),
});

const sql = connect();

Deno.serve(async (req) => {
  if (req.method !== "POST") return Response.json({ error: "method not allowed" }, { status: 405 });
  if (!isServiceRole(req)) {
    return Response.json({ error: "service role required" }, { status: 403 });
  }
  const parsed = Body.safeParse(await req.json().catch(() => null));
  if (!parsed.success) {
    return Response.json({ error: "invalid body", issues: parsed.error.issues }, { status: 400 });
  }
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
