// CORS for functions that browsers call (crm-fetch-live), per Supabase's functions guide: the
// function answers the OPTIONS preflight itself (the gateway lets OPTIONS through without a
// JWT) and every answer, errors included, carries the CORS headers. Unlike the guide's "*",
// origins come from an allow-list, CRM_CORS_ORIGINS: comma-separated exact origins
// ("https://app.example.com,http://localhost:5173"), or "*" for any. Default: empty, so no
// browser origin may read the answers until one is configured. A disallowed origin gets no
// Access-Control-Allow-Origin header, and its preflight a 403.

export interface CorsPolicy {
  /** Exact origins, or "*" for any. */
  origins: ReadonlySet<string>;
}

// What supabase-js sends with functions.invoke, as in the guide.
const ALLOW_HEADERS = "authorization, x-client-info, apikey, content-type";
// GET: crm-connect's /status from a browser.
const ALLOW_METHODS = "GET, POST, OPTIONS";

export function corsFromEnv(value = Deno.env.get("CRM_CORS_ORIGINS")): CorsPolicy {
  const origins = (value ?? "").split(",").map((o) => o.trim().replace(/\/$/, "")).filter(Boolean);
  return { origins: new Set(origins) };
}

function allowedOrigin(req: Request, policy: CorsPolicy): string | null {
  const origin = req.headers.get("origin");
  if (!origin) return null;
  return policy.origins.has("*") || policy.origins.has(origin) ? origin : null;
}

/** Adds the CORS headers for the request's origin to an answer (mutates and returns it). */
export function withCors(req: Request, res: Response, policy: CorsPolicy): Response {
  res.headers.append("vary", "Origin");
  const origin = allowedOrigin(req, policy);
  if (origin) {
    res.headers.set("access-control-allow-origin", origin);
    res.headers.set("access-control-expose-headers", "retry-after");
  }
  return res;
}

/** The answer to an OPTIONS request. */
export function preflight(req: Request, policy: CorsPolicy): Response {
  if (!req.headers.get("origin")) {
    return new Response(null, { status: 204, headers: { allow: ALLOW_METHODS } });
  }
  const origin = allowedOrigin(req, policy);
  if (!origin) {
    return withCors(
      req,
      Response.json({ error: "origin not allowed (see CRM_CORS_ORIGINS)" }, { status: 403 }),
      policy,
    );
  }
  return withCors(
    req,
    new Response("ok", {
      headers: {
        "access-control-allow-methods": ALLOW_METHODS,
        "access-control-allow-headers": ALLOW_HEADERS,
        "access-control-max-age": "600",
      },
    }),
    policy,
  );
}
