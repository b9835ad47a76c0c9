// Request bodies at the function boundary: size-capped (413), JSON (400), schema-checked by zod
// (400 with the issues). Nothing past this point sees unvalidated input.
import type { z } from "zod";

export const MAX_BODY_BYTES = 64 * 1024;

export type Parsed<T> = { ok: true; data: T } | { ok: false; response: Response };

export async function parseBody<S extends z.ZodTypeAny>(
  req: Request,
  schema: S,
  maxBytes = MAX_BODY_BYTES,
): Promise<Parsed<z.infer<S>>> {
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > maxBytes) return { ok: false, response: tooLarge(maxBytes) };
  const bytes = new Uint8Array(await req.arrayBuffer());
  if (bytes.length > maxBytes) return { ok: false, response: tooLarge(maxBytes) };
  let json: unknown = {};
  if (bytes.length > 0) {
    try {
      json = JSON.parse(new TextDecoder().decode(bytes));
    } catch {
      return {
        ok: false,
        response: Response.json({ error: "body is not valid JSON" }, { status: 400 }),
      };
    }
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    return {
      ok: false,
      response: Response.json({ error: "invalid body", issues: parsed.error.issues }, {
        status: 400,
      }),
    };
  }
  return { ok: true, data: parsed.data };
}

function tooLarge(max: number): Response {
  return Response.json({ error: `body larger than ${max} bytes` }, { status: 413 });
}
