// Request bodies at the function boundary, one limit and one parser for every function:
// size-capped while reading (413; nothing past the cap is kept, a body without Content-Length
// included, and at most DRAIN_BYTES of a refused body are read),
// UTF-8 and JSON (400), free of text Postgres cannot store (400), schema-checked by zod (400
// with the issues). Nothing past this point sees unvalidated input.
//
// A JSON string may spell a NUL (\u0000) or a lone UTF-16 surrogate (\ud800). Both are valid
// JSON, but Postgres rejects them in text and jsonb, which would turn a bad request into a 500
// half way through the work. They are refused, not stripped: the caller's input is not
// silently changed, and the answer names the field.
import type { z } from "zod";
import { cleanString } from "../mapping/clean.ts";

export const MAX_BODY_BYTES = 64 * 1024;
/**
 * A refused body is still read (and dropped) up to this much before answering: a server that
 * answers 413 and closes while the client is still sending makes the client see a broken pipe
 * instead of the 413 (the local gateway did, for 5 MB). Past this, the connection is cut.
 */
const DRAIN_BYTES = 8 * 1024 * 1024;

export type Parsed<T> = { ok: true; data: T } | { ok: false; response: Response };

function fail(status: number, body: Record<string, unknown>): { ok: false; response: Response } {
  return { ok: false, response: Response.json(body, { status }) };
}

/** Reads and drops the rest of a refused body, up to DRAIN_BYTES in all. */
async function drain(reader: ReadableStreamDefaultReader<Uint8Array>, read: number) {
  try {
    while (read <= DRAIN_BYTES) {
      const { value, done } = await reader.read();
      if (done) return;
      read += value.length;
    }
    await reader.cancel();
  } catch { /* the client went away */ }
}

/** The body's bytes, or null once it grows past `max` (nothing past it is kept). */
export async function readCapped(req: Request, max: number): Promise<Uint8Array | null> {
  if (!req.body) return new Uint8Array();
  const reader = req.body.getReader();
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > max) {
    await drain(reader, 0);
    return null;
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > max) {
      await drain(reader, size);
      return null;
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** What makes `s` unstorable in Postgres, or null (the mapper's cleaner decides, for both). */
function unstorable(s: string): string | null {
  const found = { nul: false, surrogate: false };
  cleanString(s, found);
  if (found.nul) return "a NUL character (\\u0000)";
  return found.surrogate ? "a lone UTF-16 surrogate" : null;
}

/**
 * The first string (key or value) Postgres could not store, with its JSON path; walked without
 * recursion, so a deeply nested body cannot overflow the stack.
 */
export function findUnstorableText(value: unknown): { path: string; problem: string } | null {
  const stack: Array<[unknown, string]> = [[value, "$"]];
  while (stack.length) {
    const [v, path] = stack.pop()!;
    if (typeof v === "string") {
      const problem = unstorable(v);
      if (problem) return { path, problem };
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push([v[i], `${path}[${i}]`]);
    } else if (v !== null && typeof v === "object") {
      for (const [k, child] of Object.entries(v)) {
        const at = `${path}.${JSON.stringify(k).slice(1, -1)}`;
        const problem = unstorable(k);
        if (problem) return { path: at, problem: `a key with ${problem}` };
        stack.push([child, at]);
      }
    }
  }
  return null;
}

export async function parseBody<S extends z.ZodTypeAny>(
  req: Request,
  schema: S,
  maxBytes = MAX_BODY_BYTES,
): Promise<Parsed<z.infer<S>>> {
  const bytes = await readCapped(req, maxBytes);
  if (!bytes) return fail(413, { error: `body larger than ${maxBytes} bytes` });
  let json: unknown = {};
  if (bytes.length > 0) {
    let text: string;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch {
      return fail(400, { error: "body is not valid UTF-8" });
    }
    try {
      json = JSON.parse(text);
    } catch {
      return fail(400, { error: "body is not valid JSON" });
    }
  }
  const bad = findUnstorableText(json);
  if (bad) {
    return fail(400, {
      error: `body contains ${bad.problem} at ${bad.path}; such text cannot be stored`,
    });
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) return fail(400, { error: "invalid body", issues: parsed.error.issues });
  return { ok: true, data: parsed.data };
}
