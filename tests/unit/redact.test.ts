// Secrets in provider URLs (HubSpot's ?hapikey=, Pipedrive's ?api_token=) never reach error
// text: requests rethrow transport failures without the query, and the redaction backstop.
import assert from "node:assert/strict";
import {
  describeUrl,
  redactSecrets,
  TransportError,
} from "../../supabase/functions/_shared/http/redact.ts";
import { requestJson } from "../../supabase/functions/_shared/webhooks/subscribe_http.ts";
import { ProviderError } from "../../supabase/functions/_shared/providers/types.ts";
import { errorMessage } from "../../supabase/functions/_shared/sync/connections.ts";

function closedPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

Deno.test("redact: query secrets are replaced, other text kept", () => {
  const s = redactSecrets(
    "GET http://h/x?hapikey=abc-123&limit=5 and https://p/v1/deals?api_token=tok&x=1 " +
      '{"url":"/a?access_token=zz"} refresh_token=r1 Api_Token=Q',
  );
  assert.doesNotMatch(s, /abc-123|tok&|zz|r1|=Q/);
  assert.match(s, /hapikey=\[redacted\]&limit=5/);
  assert.match(s, /api_token=\[redacted\]&x=1/);
  assert.match(s, /"url":"\/a\?access_token=\[redacted\]"/);
  assert.equal(redactSecrets("status 500, tokens=3"), "status 500, tokens=3");
  assert.equal(describeUrl("https://a.b:8/p/q?hapikey=s#f"), "https://a.b:8/p/q");
  assert.equal(describeUrl("not a url ?hapikey=s"), "(invalid URL)");
});

Deno.test("redact: a transport failure of a request with ?hapikey= keeps the key out", async () => {
  const logs: string[] = [];
  const key = `k-${crypto.randomUUID()}`;
  const url = `http://127.0.0.1:${closedPort()}/webhooks/v3/1/settings?hapikey=${key}`;
  const err = await requestJson(
    {
      log: (msg, extra) => logs.push(JSON.stringify({ msg, ...extra })),
      refusal: "fatal",
      timeoutMs: 2000,
      deadline: Date.now() + 1500,
    },
    "webhook-settings",
    "GET",
    url,
  ).then(() => null, (e) => e);
  assert.ok(err instanceof ProviderError, String(err));
  assert.equal(err.action, "retry", "a transport failure stays transient");
  assert.match(err.message, /GET http:\/\/127\.0\.0\.1:\d+\/webhooks\/v3\/1\/settings/);
  assert.doesNotMatch(err.message, new RegExp(key));
  assert.doesNotMatch(errorMessage(err), new RegExp(key));
  assert.ok(logs.length > 0, "the retries were logged");
  for (const l of logs) assert.doesNotMatch(l, new RegExp(key));
  const t = new TransportError("GET", url, new TypeError(`error sending request for ${url}`));
  assert.doesNotMatch(t.message, new RegExp(key));
});

Deno.test("redact: errorMessage redacts a message that quotes a secret URL", () => {
  const e = new Error("error sending request for url (https://api/v1/persons?api_token=SECRET)");
  assert.doesNotMatch(errorMessage(e), /SECRET/);
});
