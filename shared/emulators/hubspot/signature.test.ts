/**
 * HubSpot signature helpers against the worked examples in HubSpot's docs
 * (https://developers.hubspot.com/docs/api/webhooks/validating-requests and
 * the v1/v2 request-validation FAQ pages) and against the official SDK's
 * own `Signature` utility.
 */
import { assert, assertEquals, assertFalse } from "../common/assert.ts";
import { Signature } from "@hubspot/api-client";
import {
  normalizeV3Uri,
  signV1,
  signV2,
  signV3,
  verifyV1,
  verifyV2,
  verifyV3,
} from "./signature.ts";

const SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
const DOC_BODY =
  '[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]';

Deno.test("v1 reproduces HubSpot's documented example", () => {
  assertEquals(
    signV1(SECRET, DOC_BODY),
    "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de",
  );
  assert(
    verifyV1(SECRET, DOC_BODY, "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"),
  );
  assertFalse(
    verifyV1(
      SECRET,
      DOC_BODY.replace('"objectId":123', '"objectId":124'),
      signV1(SECRET, DOC_BODY),
    ),
  );
});

Deno.test("v2 reproduces HubSpot's documented GET and POST examples", () => {
  assertEquals(
    signV2(SECRET, "GET", "https://www.example.com/webhook_uri", ""),
    "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e",
  );
  const body = '{"example_field":"example_value"}';
  assertEquals(
    signV2(SECRET, "POST", "https://www.example.com/webhook_uri", body),
    "9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900",
  );
  assert(
    verifyV2(
      SECRET,
      "POST",
      "https://www.example.com/webhook_uri",
      body,
      signV2(SECRET, "POST", "https://www.example.com/webhook_uri", body),
    ),
  );
  assertFalse(
    verifyV2(
      SECRET,
      "POST",
      "https://www.example.com/other",
      body,
      signV2(SECRET, "POST", "https://www.example.com/webhook_uri", body),
    ),
  );
});

Deno.test("v3 follows the documented procedure and agrees with the SDK's Signature", () => {
  // HubSpot publishes the v3 procedure (no fixed digest); inputs from its example.
  const body = '{"example_field":"example_value"}';
  const uri = "https://www.example.com/webhook_uri";
  const ts = Date.now();
  const sig = signV3(SECRET, "POST", uri, body, ts);
  assertEquals(
    sig,
    Signature.getSignature("POST", "v3", {
      signature: "",
      clientSecret: SECRET,
      requestBody: body,
      url: uri,
      timestamp: ts,
    }),
  );
  assert(
    Signature.isValid({
      signature: sig,
      clientSecret: SECRET,
      requestBody: body,
      url: uri,
      method: "POST",
      signatureVersion: "v3",
      timestamp: ts,
    }),
  );
  assert(
    verifyV3({ clientSecret: SECRET, method: "POST", uri, body, timestamp: ts, signature: sig }),
  );
  // Fixed vector, so a change in the algorithm is noticed.
  assertEquals(
    signV3(SECRET, "POST", uri, body, 1700000000000),
    Signature.getSignature("POST", "v3", {
      signature: "",
      clientSecret: SECRET,
      requestBody: body,
      url: uri,
      timestamp: 1700000000000,
    }),
  );
});

Deno.test("v3 rejects a tampered body, a stale timestamp and a wrong secret", () => {
  const uri = "https://hooks.example.com/functions/v1/crm-webhook?provider=hubspot";
  const ts = Date.now();
  const sig = signV3(SECRET, "POST", uri, DOC_BODY, ts);
  assertFalse(
    verifyV3({
      clientSecret: SECRET,
      method: "POST",
      uri,
      body: DOC_BODY + " ",
      timestamp: ts,
      signature: sig,
    }),
  );
  assertFalse(
    verifyV3({
      clientSecret: SECRET,
      method: "POST",
      uri,
      body: DOC_BODY,
      timestamp: ts + 1,
      signature: sig,
    }),
  );
  assertFalse(
    verifyV3({
      clientSecret: "other",
      method: "POST",
      uri,
      body: DOC_BODY,
      timestamp: ts,
      signature: sig,
    }),
  );
  const old = ts - 5 * 60 * 1000 - 1;
  const oldSig = signV3(SECRET, "POST", uri, DOC_BODY, old);
  assertFalse(
    verifyV3({
      clientSecret: SECRET,
      method: "POST",
      uri,
      body: DOC_BODY,
      timestamp: old,
      signature: oldSig,
    }),
  );
  assert(
    verifyV3({
      clientSecret: SECRET,
      method: "POST",
      uri,
      body: DOC_BODY,
      timestamp: old,
      signature: oldSig,
      maxAgeMs: 10 * 60 * 1000,
    }),
  );
});

Deno.test("v3 decodes the documented percent-escapes in the URI", () => {
  assertEquals(
    normalizeV3Uri("https://x.test/a%3Ab%2Fc%3Fd%40e%21f%24g%27h%28i%29j%2Ak%2Cl%3Bm%20n"),
    "https://x.test/a:b/c?d@e!f$g'h(i)j*k,l;m%20n",
  );
  assertEquals(
    signV3(SECRET, "POST", "https://x.test/hook%3Fa%3D1", "", 1),
    signV3(SECRET, "POST", "https://x.test/hook?a%3D1", "", 1),
  );
});
