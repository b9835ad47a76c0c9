// HubSpot's SDK (@hubspot/api-client 14.0.1) has no timeout and no AbortSignal anywhere: its
// transport calls fetch without a signal, and `apiRequest` takes none. Two ways in keep the
// SDK's request building and response handling and only add the signal of the call being made
// (callScope in ./call.ts):
// - typed calls send through their API object's configuration.httpApi (the per-call `httpApi`
//   option is copied but never used for sending by the SDK's generated code), so `timed(api)`
//   sets it to `send` below, which sends the SDK's RequestContext with fetch and the signal and
//   answers the ResponseContext members the SDK's response processors read;
// - generic requests are built by the SDK's own Request class (URL, auth, headers, JSON body,
//   exactly what `apiRequest` sends) and sent with fetch and the signal.
// Both report every response to the call's observer (./observe.ts): status and headers, and
// for an error status its parsed body (a 429's policyName).
import type { Client } from "@hubspot/api-client";
import { Request as SdkRequest } from "@hubspot/api-client/lib/src/services/http/Request.js";
import { callScope } from "./call.ts";
import { fetchOrThrowSafe } from "../http/redact.ts";
import { observeResponse, parseErrorBody } from "./observe.ts";

interface SdkRequestContext {
  getUrl(): string;
  getHttpMethod(): string;
  getHeaders(): Record<string, string>;
  getBody(): BodyInit | undefined;
}

/** The ResponseContext members the SDK's processors use (status, headers, body, fallbacks). */
class Answer {
  readonly body: { text(): Promise<string>; binary(): Promise<Uint8Array> };
  constructor(
    readonly httpStatusCode: number,
    readonly headers: Record<string, string>,
    bytes: Uint8Array,
  ) {
    this.body = {
      text: () => Promise.resolve(new TextDecoder().decode(bytes)),
      binary: () => Promise.resolve(bytes),
    };
  }
  getParsedHeader(name: string): Record<string, string> {
    const out: Record<string, string> = {};
    for (const part of (this.headers[name] ?? "").split(";")) {
      const [k, v] = part.split("=", 2);
      if (!k?.trim()) continue;
      if (v === undefined) out[""] = k.trim().toLowerCase();
      else out[k.trim().toLowerCase()] = v.trim().replace(/^"(.*)"$/, "$1");
    }
    return out;
  }
  async getBodyAsFile() {
    return {
      data: await this.body.binary(),
      name: this.getParsedHeader("content-disposition")["filename"] ?? "",
    };
  }
  getBodyAsAny() {
    return this.body.text();
  }
}

async function send(ctx: SdkRequestContext): Promise<Answer> {
  const res = await fetchOrThrowSafe(ctx.getHttpMethod(), ctx.getUrl(), {
    headers: ctx.getHeaders(),
    body: ctx.getBody(),
    signal: callScope.getStore()?.signal,
  });
  const headers: Record<string, string> = {};
  res.headers.forEach((v, k) => headers[k] = v);
  const bytes = new Uint8Array(await res.arrayBuffer());
  observeResponse(
    res.status,
    res.headers,
    res.status >= 400 ? parseErrorBody(new TextDecoder().decode(bytes)) : undefined,
  );
  return new Answer(res.status, headers, bytes);
}

const timedHttpApi = {
  // The SDK's Observable stub only calls toPromise() on what send returns.
  send: (ctx: SdkRequestContext) => {
    const p = send(ctx);
    return { toPromise: () => p };
  },
};

/** The SDK's typed API object, sending with the call's signal (see the header). */
export function timed<T>(api: T): T {
  const inner = (api as { api?: { configuration?: { httpApi?: unknown } } }).api;
  if (!inner?.configuration) throw new Error("unexpected HubSpot SDK shape: no api.configuration");
  inner.configuration.httpApi = timedHttpApi;
  return api;
}

/** What `client.apiRequest(opts)` would send, with the call's signal; answered with the body
 * read, so that the observer saw an error's body before the caller handles it. */
export async function apiRequest(
  client: Client,
  opts: { method: string; path: string; body?: Record<string, unknown> },
): Promise<{ status: number; headers: Headers; text: string }> {
  const req = new SdkRequest(client.config, opts);
  const res = await fetch(req.getUrl(), {
    ...req.getSendData(),
    signal: callScope.getStore()?.signal,
  });
  const text = await res.text();
  observeResponse(res.status, res.headers, res.status >= 400 ? parseErrorBody(text) : undefined);
  return { status: res.status, headers: res.headers, text };
}
