/**
 * HubSpot request signatures (pure functions, no emulator state).
 * Docs: https://developers.hubspot.com/docs/api/webhooks/validating-requests
 *
 * - v1: hex SHA-256 of clientSecret + body
 *   (`X-HubSpot-Signature`, `X-HubSpot-Signature-Version: v1`)
 * - v2: hex SHA-256 of clientSecret + method + uri + body (same headers, `v2`)
 * - v3: base64 HMAC-SHA256 keyed with clientSecret over
 *   method + uri + body + timestamp (`X-HubSpot-Signature-v3`,
 *   `X-HubSpot-Request-Timestamp` in epoch ms). Receivers decode a fixed set of
 *   percent-escapes in the URI before hashing, reject timestamps older than
 *   5 minutes and compare in constant time.
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";

export const MAX_V3_AGE_MS = 5 * 60 * 1000;

export function signV1(clientSecret: string, body: string): string {
  return createHash("sha256").update(clientSecret + body, "utf8").digest("hex");
}

export function signV2(clientSecret: string, method: string, uri: string, body: string): string {
  return createHash("sha256").update(clientSecret + method + uri + body, "utf8").digest("hex");
}

/** Percent-escapes HubSpot decodes in the URI before computing v3 signatures. */
const V3_DECODE: Record<string, string> = {
  "%3A": ":",
  "%2F": "/",
  "%3F": "?",
  "%40": "@",
  "%21": "!",
  "%24": "$",
  "%27": "'",
  "%28": "(",
  "%29": ")",
  "%2A": "*",
  "%2C": ",",
  "%3B": ";",
};

export function normalizeV3Uri(uri: string): string {
  return uri.replace(/%(3A|2F|3F|40|21|24|27|28|29|2A|2C|3B)/gi, (m) => V3_DECODE[m.toUpperCase()]);
}

export function signV3(
  clientSecret: string,
  method: string,
  uri: string,
  body: string,
  timestamp: number | string,
): string {
  const source = method + normalizeV3Uri(uri) + body + String(timestamp);
  return createHmac("sha256", clientSecret).update(source, "utf8").digest("base64");
}

function safeEqual(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  if (x.length !== y.length) return false;
  return timingSafeEqual(x, y);
}

export interface VerifyV3Input {
  clientSecret: string;
  method: string;
  uri: string;
  body: string;
  timestamp: string | number | null | undefined;
  signature: string | null | undefined;
  now?: number;
  maxAgeMs?: number;
}

/** Verify a v3 signature, including the 5-minute timestamp window. */
export function verifyV3(i: VerifyV3Input): boolean {
  if (!i.signature || i.timestamp === null || i.timestamp === undefined) return false;
  const ts = Number(i.timestamp);
  if (!Number.isFinite(ts)) return false;
  const now = i.now ?? Date.now();
  if (now - ts > (i.maxAgeMs ?? MAX_V3_AGE_MS)) return false;
  return safeEqual(signV3(i.clientSecret, i.method, i.uri, i.body, i.timestamp), i.signature);
}

export function verifyV1(
  clientSecret: string,
  body: string,
  signature: string | null | undefined,
): boolean {
  return !!signature && safeEqual(signV1(clientSecret, body), signature);
}

export function verifyV2(
  clientSecret: string,
  method: string,
  uri: string,
  body: string,
  signature: string | null | undefined,
): boolean {
  return !!signature && safeEqual(signV2(clientSecret, method, uri, body), signature);
}

/** Headers HubSpot puts on a webhook request for the requested versions. */
export function signatureHeaders(
  clientSecret: string,
  method: string,
  uri: string,
  body: string,
  timestamp: number,
  legacy: "v1" | "v2" | null,
): Record<string, string> {
  const h: Record<string, string> = {
    "X-HubSpot-Signature-v3": signV3(clientSecret, method, uri, body, timestamp),
    "X-HubSpot-Request-Timestamp": String(timestamp),
  };
  if (legacy === "v1") {
    h["X-HubSpot-Signature"] = signV1(clientSecret, body);
    h["X-HubSpot-Signature-Version"] = "v1";
  } else if (legacy === "v2") {
    h["X-HubSpot-Signature"] = signV2(clientSecret, method, uri, body);
    h["X-HubSpot-Signature-Version"] = "v2";
  }
  return h;
}
