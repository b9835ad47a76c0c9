/**
 * Pipedrive emulator: API v2 (`/api/v2`) plus the v1 endpoints v2 lacks
 * (`/v1` and `/api/v1`), OAuth on the same host (`/oauth/*`).
 *
 * Auth: `x-api-token: <token>` (or the legacy `?api_token=`), or
 * `Authorization: Bearer <OAuth access token>`; failures are 401
 * `unauthorized access` envelopes.
 * Rate limits (docs: https://pipedrive.readme.io/docs/core-api-concepts-rate-limiting):
 * a burst limit per token in a rolling 2-second window (default 80, an
 * Essential plan) reported in `x-ratelimit-limit/-remaining/-reset` with 429
 * past it; and a daily token budget where each call costs tokens (list calls
 * more than single reads, v1 more than v2), default off (0 = unlimited).
 */
import { type AdminStore, type BaseOptions, Emulator, type FaultKind } from "../common/emulator.ts";
import { HttpError } from "../common/http.ts";
import { DailyBudget, RollingWindowLimiter } from "../common/rate_limit.ts";
import type { RequestContext } from "../common/router.ts";
import type { TokenInfo } from "../common/tokens.ts";
import { PdError } from "./errors.ts";
import { PipedriveStore, type PipedriveStoreSnapshot } from "./store.ts";
import { seedPipedrive } from "./seed.ts";
import { registerV2Routes } from "./v2.ts";
import { registerV1Routes } from "./v1.ts";
import { registerOAuthRoutes } from "./oauth.ts";
import { PipedriveWebhooks } from "./webhooks.ts";
import { type RequestFault, RequestFaults } from "./request_faults.ts";
import { PipedriveAdminStore, registerPipedriveAdmin } from "./admin.ts";
import type { AccountDescriptor } from "../common/tenancy.ts";
import {
  pipedriveAccount,
  type PipedriveCredentials,
  pipedriveCredentials,
  pipedriveEnv,
  pipedriveRoutingKeys,
} from "./account.ts";

export interface PipedriveRateLimit {
  /** Requests per token per `windowMs` (default 80 per 2 s). */
  burst?: number;
  windowMs?: number;
  /** Daily token budget (0 = unlimited, the default). */
  dailyTokens?: number;
}

export interface PipedriveOptions extends BaseOptions {
  rateLimit?: PipedriveRateLimit;
  /** Lifetime of OAuth access tokens (default 3599 s). */
  tokenTtlSeconds?: number;
}

export interface PdAuth {
  token: TokenInfo;
  userId: number;
}

export type PdHandler = (ctx: RequestContext, auth: PdAuth) => Response | Promise<Response>;

/** Token cost per call kind for the daily budget. */
export const TOKEN_COST = {
  v1List: 20,
  v2List: 10,
  v1Get: 2,
  v2Get: 1,
  v2Search: 20,
  v1Write: 10,
  v2Write: 5,
  v1Delete: 6,
  v2Delete: 3,
} as const;
export type CostKind = keyof typeof TOKEN_COST;

export class PipedriveEmulator extends Emulator {
  readonly store: PipedriveStore;
  readonly webhooks: PipedriveWebhooks;
  readonly limiter: RollingWindowLimiter;
  readonly daily: DailyBudget;
  readonly issuedTokenTtlMs: number;
  readonly creds: PipedriveCredentials;
  /** What the API user may do (admin API `PUT /__admin/permissions`). */
  permissions = { customFields: true };
  /** Answers injected for exact requests (admin API `PUT /__admin/request-faults`). */
  readonly requestFaults = new RequestFaults();
  #admin: PipedriveAdminStore;

  constructor(opts: PipedriveOptions = {}) {
    super("pipedrive", opts, (opts.tokenTtlSeconds ?? 3599) * 1000);
    this.issuedTokenTtlMs = (opts.tokenTtlSeconds ?? 3599) * 1000;
    this.creds = pipedriveCredentials(this.rootSeed, this.account);
    const rl = opts.rateLimit ?? {};
    this.limiter = new RollingWindowLimiter(rl.burst ?? 80, rl.windowMs ?? 2000);
    this.daily = new DailyBudget(rl.dailyTokens ?? 0);
    this.store = new PipedriveStore(
      this.now,
      this.prng.fork("store"),
      this.prng.fork("custom-fields"),
    );
    this.webhooks = new PipedriveWebhooks(this);
    this.store.onChange = (change) => this.webhooks.emit(change);
    this.#admin = new PipedriveAdminStore(this);
    this.#issueInitialTokens();
    seedPipedrive(this.store, this.seed, this.records);

    registerOAuthRoutes(this);
    registerV2Routes(this);
    registerV1Routes(this);
    registerPipedriveAdmin(this);
  }

  #issueInitialTokens(): void {
    const now = this.now();
    const c = this.creds;
    this.tokens.add({
      token: c.apiToken,
      kind: "api",
      createdAt: now,
      expiresAt: null,
      subject: "1",
    });
    this.tokens.add({
      token: c.accessToken,
      kind: "access",
      createdAt: now,
      expiresAt: null,
      clientId: c.clientId,
      refreshToken: c.refreshToken,
      subject: "1",
    });
    this.tokens.add({
      token: c.refreshToken,
      kind: "refresh",
      createdAt: now,
      expiresAt: null,
      clientId: c.clientId,
      subject: "1",
    });
  }

  get adminStore(): AdminStore {
    return this.#admin;
  }

  credentials(): Record<string, string> {
    return pipedriveEnv(this.creds);
  }

  protected describeAccount(account: number): AccountDescriptor {
    return pipedriveAccount(this.rootSeed, account);
  }

  protected createAccount(account: number): PipedriveEmulator {
    return new PipedriveEmulator({ ...this.options, account });
  }

  protected routingKeys(req: Request, url: URL): Promise<string[]> {
    return pipedriveRoutingKeys(req, url);
  }

  protected override resetProviderState(): void {
    this.tokens.clear();
    this.#issueInitialTokens();
    this.limiter.reset();
    this.daily.reset();
    this.permissions = { customFields: true };
    this.requestFaults.clear();
  }

  protected snapshotProvider(): unknown {
    return { store: this.store.snapshot(), webhooks: this.webhooks.snapshot() };
  }

  protected restoreProvider(state: unknown): void {
    const s = state as {
      store: PipedriveStoreSnapshot;
      webhooks: ReturnType<PipedriveWebhooks["snapshot"]>;
    };
    this.store.load(s.store);
    this.webhooks.load(s.webhooks);
  }

  protected providerStateVersion(): number {
    return this.store.version + this.webhooks.snapshot().nextId + this.webhooks.list().length;
  }

  reseed(seed: number, records: number): void {
    seedPipedrive(this.store, seed, records);
  }

  // ---- request helpers -------------------------------------------------------

  authenticate(ctx: RequestContext): PdAuth {
    const headerToken = ctx.req.headers.get("x-api-token") ?? ctx.url.searchParams.get("api_token");
    const bearer = /^Bearer\s+(.+)$/i.exec(ctx.req.headers.get("authorization") ?? "")?.[1]?.trim();
    const check = bearer
      ? this.tokens.check(bearer, this.now(), ["access"])
      : this.tokens.check(headerToken, this.now(), ["api"]);
    if (!check.ok) throw new PdError(401, "unauthorized access", { errorCode: 401 });
    return { token: check.info, userId: Number(check.info.subject ?? 1) };
  }

  rateHeaders(token: string): { headers: Record<string, string>; allowed: boolean } {
    const r = this.limiter.hit(token, this.now());
    return {
      allowed: r.allowed,
      headers: {
        "x-ratelimit-limit": String(r.limit),
        "x-ratelimit-remaining": String(r.remaining),
        "x-ratelimit-reset": String(Math.max(1, Math.ceil(r.resetMs / 1000))),
      },
    };
  }

  /** Register an authenticated API route with rate limiting and envelopes. */
  route(method: string, path: string | string[], cost: CostKind, handler: PdHandler): void {
    for (const p of Array.isArray(path) ? path : [path]) {
      this.api.on(method, p, async (ctx) => {
        let headers: Record<string, string> = {};
        try {
          const auth = this.authenticate(ctx);
          const rl = this.rateHeaders(auth.token.token);
          headers = rl.headers;
          if (!rl.allowed) throw new PdError(429, "Request over limit", { errorCode: 429 });
          if (
            this.daily.limit > 0 &&
            !this.daily.spend(String(this.creds.companyId), this.now(), TOKEN_COST[cost]).allowed
          ) {
            throw new PdError(429, "Daily token budget exceeded", { errorCode: 429 });
          }
          const injected = this.requestFaults.take(method, ctx.url.pathname);
          if (injected) throw this.#injectedError(injected);
          const res = await handler(ctx, auth);
          for (const [k, v] of Object.entries(headers)) res.headers.set(k, v);
          return res;
        } catch (e) {
          if (e instanceof PdError) return e.response(headers);
          throw e;
        }
      });
    }
  }

  #injectedError(f: RequestFault): PdError {
    const headers: Record<string, string> = f.retryAfterSeconds === undefined
      ? {}
      : { "retry-after": String(f.retryAfterSeconds) };
    if (f.status === 429) {
      return new PdError(429, "Request over limit", { errorCode: 429, headers });
    }
    if (f.status >= 500) {
      return new PdError(f.status, "Service temporarily unavailable", {
        errorCode: f.status,
        headers,
      });
    }
    return new PdError(f.status, f.message ?? "Injected error", { errorCode: f.status, headers });
  }

  /** Unauthenticated route (OAuth). */
  open(
    method: string,
    path: string,
    handler: (ctx: RequestContext) => Response | Promise<Response>,
  ): void {
    this.api.on(method, path, async (ctx) => {
      try {
        return await handler(ctx);
      } catch (e) {
        if (e instanceof PdError) return e.response();
        throw e;
      }
    });
  }

  async body(ctx: RequestContext): Promise<Record<string, unknown>> {
    const text = await ctx.req.text();
    const type = ctx.req.headers.get("content-type") ?? "";
    if (type.includes("application/x-www-form-urlencoded")) {
      return Object.fromEntries(new URLSearchParams(text));
    }
    try {
      const v = text.trim() ? JSON.parse(text) : {};
      if (!v || typeof v !== "object" || Array.isArray(v)) throw new Error("expected an object");
      return v;
    } catch (e) {
      throw new PdError(400, `Validation failed: body: ${(e as Error).message}`, {
        code: "ERR_SCHEMA_VALIDATION_FAILED",
      });
    }
  }

  respond(res: Response): never {
    throw new HttpError(res);
  }

  // ---- provider hooks ----------------------------------------------------------

  protected override requiresAuth(route: string): boolean {
    return !route.includes("/oauth/");
  }

  protected notFound(_ctx: RequestContext, methodMismatch: boolean): Response {
    return new PdError(
      methodMismatch ? 405 : 404,
      methodMismatch ? "Method not allowed" : "Unknown method .",
      { errorCode: methodMismatch ? 405 : 404 },
    ).response();
  }

  protected faultResponse(kind: FaultKind, _ctx: RequestContext): Response {
    if (kind === "429") {
      return new PdError(429, "Request over limit", { errorCode: 429 }).response({
        "x-ratelimit-limit": String(this.limiter.max),
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset": String(Math.ceil(this.limiter.windowMs / 1000)),
      });
    }
    if (kind === "401") {
      return new PdError(401, "unauthorized access", { errorCode: 401 }).response();
    }
    return new PdError(503, "Service temporarily unavailable", { errorCode: 503 }).response();
  }

  protected internalError(_ctx: RequestContext, err: unknown): Response {
    return new PdError(500, `Internal error: ${err}`, { errorCode: 500 }).response();
  }
}
