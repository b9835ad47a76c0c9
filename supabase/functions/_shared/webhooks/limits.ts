// Limits and answers shared by the webhook routes. Every refusal is a 4xx that writes nothing.
// The body cap is 1 MiB: HubSpot batches at most 100 events (a few hundred bytes each), a
// Salesforce message at most 100 notifications, a Pipedrive v2 delivery one record with its
// previous values; 1 MiB leaves room for wide records without letting a sender make us buffer
// more.
import { readCapped } from "../http/body.ts";

export const MAX_WEBHOOK_BODY_BYTES = 1024 * 1024;
/** HubSpot sends at most 100 events per request, Salesforce at most 100 notifications. */
export const MAX_EVENTS_PER_REQUEST = 100;
/** Bytes of any one header value looked at (signatures, timestamps, Authorization). */
export const MAX_HEADER_CHARS = 1024;

export class Refusal extends Error {
  constructor(readonly status: 400 | 401 | 404 | 405 | 413, message: string) {
    super(message);
  }
}

export const refuse = (status: Refusal["status"], message: string): never => {
  throw new Refusal(status, message);
};

/** The raw body (413 past the cap), decoded as UTF-8 (400 otherwise). */
export async function readText(req: Request, max = MAX_WEBHOOK_BODY_BYTES): Promise<string> {
  const bytes = await readCapped(req, max);
  if (!bytes) refuse(413, `body larger than ${max} bytes`);
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes!);
  } catch {
    return refuse(400, "body is not valid UTF-8");
  }
}

/** A header's value, or null when absent; overlong values are refused (401: never trusted). */
export function header(req: Request, name: string): string | null {
  const v = req.headers.get(name);
  if (v !== null && v.length > MAX_HEADER_CHARS) refuse(401, `header ${name} is too long`);
  return v;
}

const enc = new TextEncoder();

/** Constant-time comparison of two strings (the length is not secret). */
export function safeEqual(a: string, b: string): boolean {
  const x = enc.encode(a);
  const y = enc.encode(b);
  if (x.length !== y.length) return false;
  let d = 0;
  for (let i = 0; i < x.length; i++) d |= x[i] ^ y[i];
  return d === 0;
}

export async function sha256Hex(s: string): Promise<string> {
  const h = await crypto.subtle.digest("SHA-256", enc.encode(s));
  return Array.from(new Uint8Array(h), (b) => b.toString(16).padStart(2, "0")).join("");
}
