/** Small HTTP helpers shared by the emulators. */
import type { z } from "zod";

/** A response to return immediately (thrown from deep inside a handler). */
export class HttpError extends Error {
  constructor(readonly response: Response) {
    super(`HTTP ${response.status}`);
  }
}

/**
 * JSON response. HubSpot's SDK refuses bodies without a JSON content type.
 * `no-transform` stops Deno.serve from gzip/brotli-compressing the body:
 * the SDKs all ask for compression, and compressing 100k listed records
 * would triple the emulator's CPU without making it any more faithful.
 */
export function json(
  body: unknown,
  status = 200,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: {
      "content-type": "application/json;charset=utf-8",
      "cache-control": "no-store, no-transform",
      ...headers,
    },
  });
}

/** Response from JSON text that is already serialised. */
export function jsonText(
  text: string,
  status = 200,
  headers: Record<string, string> = {},
): Response {
  return new Response(text, {
    status,
    headers: {
      "content-type": "application/json;charset=utf-8",
      "cache-control": "no-store, no-transform",
      ...headers,
    },
  });
}

export function noContent(headers: Record<string, string> = {}): Response {
  return new Response(null, { status: 204, headers });
}

/**
 * Parse a JSON request body. `onError` builds the provider-specific 400.
 */
export async function readJson(req: Request, onError: (msg: string) => Response): Promise<unknown> {
  const text = await req.text();
  if (text.trim() === "") throw new HttpError(onError("Request body is empty"));
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new HttpError(onError(`Invalid JSON: ${(e as Error).message}`));
  }
}

/** Validate with zod, turning failures into the provider's 400. */
export function parseWith<T extends z.ZodType>(
  schema: T,
  value: unknown,
  onError: (msg: string) => Response,
): z.infer<T> {
  const r = schema.safeParse(value);
  if (!r.success) {
    const msg = r.error.issues.map((i) => `${i.path.join(".") || "(body)"}: ${i.message}`).join(
      "; ",
    );
    throw new HttpError(onError(msg));
  }
  return r.data;
}

/** Read `application/x-www-form-urlencoded` (or JSON) form parameters. */
export async function readForm(req: Request): Promise<URLSearchParams> {
  const text = await req.text();
  const type = req.headers.get("content-type") ?? "";
  if (type.includes("application/json")) {
    try {
      const obj = JSON.parse(text) as Record<string, unknown>;
      const p = new URLSearchParams();
      for (const [k, v] of Object.entries(obj)) {
        if (v !== undefined && v !== null) p.set(k, String(v));
      }
      return p;
    } catch {
      return new URLSearchParams();
    }
  }
  return new URLSearchParams(text);
}

export function parseBasicAuth(header: string | null): { user: string; password: string } | null {
  if (!header?.toLowerCase().startsWith("basic ")) return null;
  try {
    const decoded = atob(header.slice(6).trim());
    const i = decoded.indexOf(":");
    if (i < 0) return null;
    return { user: decoded.slice(0, i), password: decoded.slice(i + 1) };
  } catch {
    return null;
  }
}

export function bearerToken(req: Request): string | null {
  const h = req.headers.get("authorization");
  if (!h) return null;
  const m = /^Bearer\s+(.+)$/i.exec(h.trim());
  return m ? m[1].trim() : null;
}

/**
 * Read what is left of a request body (at most `limit` bytes, then give up)
 * so an answer never overtakes the body it answers. A handler that rejects a
 * request before reading it (bad session, rate limit, injected fault, 404)
 * would otherwise let hyper drop the half-sent body; Deno's node:http client
 * (under jsforce, axios, node-fetch) writes request bodies late, and its
 * pending `writer.ready` then rejects with "resource closed" where nobody
 * catches it — an unhandled rejection in the client process.
 */
export async function drainBody(req: Request, limit = 16 * 1024 * 1024): Promise<void> {
  const body = req.body;
  if (!body || req.bodyUsed || body.locked) return;
  const reader = body.getReader();
  let read = 0;
  try {
    while (read <= limit) {
      const chunk = await reader.read();
      if (chunk.done) return;
      read += chunk.value.byteLength;
    }
    await reader.cancel();
  } catch {
    // The client went away; there is nobody left to answer.
  }
}

/** Sleep that ends early (resolving `false`) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (ms <= 0) return Promise.resolve(!signal?.aborted);
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Comma-separated and/or repeated query parameter values. */
export function listParam(url: URL, name: string): string[] | undefined {
  const all = url.searchParams.getAll(name);
  if (all.length === 0) return undefined;
  return all.flatMap((v) => v.split(",")).map((v) => v.trim()).filter((v) => v.length > 0);
}

export function intParam(url: URL, name: string): number | undefined {
  const v = url.searchParams.get(name);
  if (v === null || v.trim() === "") return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? Math.trunc(n) : NaN;
}

export function boolParam(url: URL, name: string): boolean | undefined {
  const v = url.searchParams.get(name);
  if (v === null) return undefined;
  return v === "true" || v === "1";
}
