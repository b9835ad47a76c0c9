/**
 * Minimal path router: `:name` captures one segment, `*name` the rest.
 * Routes are matched in registration order; the matched pattern is the
 * counter key ("GET /crm/v3/objects/:objectType").
 */

export interface RequestContext {
  req: Request;
  url: URL;
  params: Record<string, string>;
  /** "METHOD pattern" of the matched route. */
  route: string;
}

export type Handler<C extends RequestContext = RequestContext> = (
  ctx: C,
) => Response | Promise<Response>;

interface Route<C extends RequestContext> {
  method: string;
  pattern: string;
  segments: string[];
  handler: Handler<C>;
}

export interface Match<C extends RequestContext> {
  handler: Handler<C>;
  params: Record<string, string>;
  route: string;
}

export class Router<C extends RequestContext = RequestContext> {
  #routes: Route<C>[] = [];

  on(method: string, pattern: string, handler: Handler<C>): this {
    this.#routes.push({ method, pattern, segments: split(pattern), handler });
    return this;
  }
  get(p: string, h: Handler<C>): this {
    return this.on("GET", p, h);
  }
  post(p: string, h: Handler<C>): this {
    return this.on("POST", p, h);
  }
  put(p: string, h: Handler<C>): this {
    return this.on("PUT", p, h);
  }
  patch(p: string, h: Handler<C>): this {
    return this.on("PATCH", p, h);
  }
  delete(p: string, h: Handler<C>): this {
    return this.on("DELETE", p, h);
  }

  /** Match a request; `methodMismatch` is set when only the method differs. */
  match(method: string, pathname: string): Match<C> | { methodMismatch: boolean } {
    const parts = split(pathname);
    let mismatch = false;
    for (const r of this.#routes) {
      const params = matchSegments(r.segments, parts);
      if (!params) continue;
      if (r.method !== method && !(method === "HEAD" && r.method === "GET")) {
        mismatch = true;
        continue;
      }
      return { handler: r.handler, params, route: `${r.method} ${r.pattern}` };
    }
    return { methodMismatch: mismatch };
  }
}

function split(path: string): string[] {
  return path.split("/").filter((s) => s.length > 0);
}

function matchSegments(pattern: string[], parts: string[]): Record<string, string> | null {
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const seg = pattern[i];
    if (seg.startsWith("*")) {
      params[seg.slice(1)] = parts.slice(i).map(decodeURIComponent).join("/");
      return params;
    }
    const part = parts[i];
    if (part === undefined) return null;
    if (seg.startsWith(":")) {
      try {
        params[seg.slice(1)] = decodeURIComponent(part);
      } catch {
        return null;
      }
    } else if (seg !== part) return null;
  }
  return pattern.length === parts.length ? params : null;
}
