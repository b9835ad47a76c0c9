/**
 * HubSpot emulator: wiring of store, auth, rate limits, routes and webhooks.
 *
 * Auth: `Authorization: Bearer <token>` with an OAuth access token (expires,
 * refreshable at /oauth/v1/token) or a private-app token (`pat-…`, never
 * expires); `?hapikey=` developer key for the webhooks settings API.
 *
 * Rate limits (docs: https://developers.hubspot.com/docs/api/usage-details):
 * per app and portal, a rolling 10-second window (default 100) and a daily
 * budget, reported in `X-HubSpot-RateLimit-*` headers; 429 bodies carry
 * `policyName` TEN_SECONDLY_ROLLING or DAILY, which the SDK's retry decorator
 * reads. Search has its own limit (default 5/s) and no rate-limit headers.
 */
import { type AdminStore, type BaseOptions, Emulator, type FaultKind } from "../common/emulator.ts";
import { HttpError, json, parseWith, readJson } from "../common/http.ts";
import { DailyBudget, RollingWindowLimiter } from "../common/rate_limit.ts";
import type { RequestContext } from "../common/router.ts";
import type { TokenInfo } from "../common/tokens.ts";
import type { z } from "zod";
import { HsError, HsErrors } from "./errors.ts";
import { HubSpotAdminStore, registerHubSpotAdmin } from "./admin.ts";
import { registerObjectRoutes } from "./objects.ts";
import { registerSearchRoutes } from "./search.ts";
import { registerAssociationRoutes } from "./associations.ts";
import { registerOwnerRoutes } from "./owners.ts";
import { registerOAuthRoutes } from "./oauth.ts";
import { registerPropertyRoutes } from "./properties_api.ts";
import { registerPipelineRoutes } from "./pipelines.ts";
import { registerWebhookSettingsRoutes } from "./webhooks_api.ts";
import {
  type HubSpotWebhookConfigInput,
  HubSpotWebhooks,
  type HubSpotWebhooksSnapshot,
} from "./webhooks.ts";
import { HubSpotStore, type HubSpotStoreSnapshot } from "./store.ts";
import { seedHubSpot } from "./seed.ts";
import {
  hubspotAccount,
  type HubSpotCredentials,
  hubspotCredentials,
  hubspotEnv,
  hubspotRoutingKeys,
} from "./account.ts";
import type { AccountDescriptor } from "../common/tenancy.ts";

export interface HubSpotRateLimit {
  /** Requests per rolling interval (default 100, Free/Starter private apps). */
  tenSecondly?: number;
  intervalMs?: number;
  /** Requests per day (default 250,000). */
  daily?: number;
  /** Search requests per second (default 5). */
  searchPerSecond?: number;
}

export interface HubSpotOptions extends BaseOptions {
  rateLimit?: HubSpotRateLimit;
  /** Max results reachable through one search query (default 10,000). */
  searchMaxResults?: number;
  /** Records changed within this many ms are not yet visible to search (default 0). */
  searchLagMs?: number;
  /** Lifetime of access tokens issued by /oauth/v1/token (default 1800 s). */
  tokenTtlSeconds?: number;
  /** Lifetime of the initial HUBSPOT_ACCESS_TOKEN (default: never expires). */
  initialTokenTtlSeconds?: number | null;
  webhooks?: HubSpotWebhookConfigInput;
  /**
   * Shape of injected 429s: the 10-second policy (SDK waits 10 s × attempt)
   * or the secondly/search one (SDK waits 1 s × attempt). Default TEN_SECONDLY_ROLLING.
   */
  fault429Policy?: "TEN_SECONDLY_ROLLING" | "SECONDLY";
}

export interface HsAuth {
  token: TokenInfo;
  /** Rate-limit bucket (app + portal). */
  bucket: string;
}

export type HsHandler = (ctx: RequestContext, auth: HsAuth) => Response | Promise<Response>;

export class HubSpotEmulator extends Emulator {
  readonly store: HubSpotStore;
  readonly errors: HsErrors;
  readonly webhooks: HubSpotWebhooks;
  readonly limiter: RollingWindowLimiter;
  readonly daily: DailyBudget;
  readonly searchLimiter: RollingWindowLimiter;
  searchMaxResults: number;
  searchLagMs: number;
  fault429Policy: "TEN_SECONDLY_ROLLING" | "SECONDLY";
  readonly issuedTokenTtlMs: number;
  readonly creds: HubSpotCredentials;
  /** Scopes the app was not granted (admin toggle): calls needing one answer 403
   * MISSING_SCOPES, as HubSpot does for an app installed without them. */
  readonly deniedScopes = new Set<string>();
  /** Requests HubSpot applies but whose answer never arrives (admin toggle, for "the create
   * timed out after the CRM made it"): the next `count` requests whose route contains
   * `routeFilter` run, then hang until the client gives up (at most `holdMs`). */
  lostAnswers: { routeFilter: string; count: number; holdMs: number } | null = null;
  #initialTtlMs: number | null;
  #admin: HubSpotAdminStore;

  constructor(opts: HubSpotOptions = {}) {
    super("hubspot", opts, (opts.tokenTtlSeconds ?? 1800) * 1000);
    this.issuedTokenTtlMs = (opts.tokenTtlSeconds ?? 1800) * 1000;
    this.#initialTtlMs = opts.initialTokenTtlSeconds == null
      ? null
      : opts.initialTokenTtlSeconds * 1000;
    this.creds = hubspotCredentials(this.rootSeed, this.account);
    this.errors = new HsErrors(this.prng.fork("correlation"));
    const rl = opts.rateLimit ?? {};
    this.limiter = new RollingWindowLimiter(rl.tenSecondly ?? 100, rl.intervalMs ?? 10_000);
    this.daily = new DailyBudget(rl.daily ?? 250_000);
    this.searchLimiter = new RollingWindowLimiter(rl.searchPerSecond ?? 5, 1000);
    this.searchMaxResults = opts.searchMaxResults ?? 10_000;
    this.searchLagMs = opts.searchLagMs ?? 0;
    this.fault429Policy = opts.fault429Policy ?? "TEN_SECONDLY_ROLLING";
    this.store = new HubSpotStore(this.now, this.prng.fork("store"));
    this.webhooks = new HubSpotWebhooks(this, opts.webhooks);
    this.store.onChange = (change) => this.webhooks.emit(change);
    this.store.sourceIdOf = (source) =>
      source === "INTEGRATION"
        ? String(this.creds.appId)
        : `userId:${this.store.owners[0]?.userId ?? 1}`;
    this.#admin = new HubSpotAdminStore(this);
    this.#issueInitialTokens();
    seedHubSpot(this.store, this.seed, this.records);

    registerOAuthRoutes(this);
    registerObjectRoutes(this);
    registerSearchRoutes(this);
    registerAssociationRoutes(this);
    registerOwnerRoutes(this);
    registerPropertyRoutes(this);
    registerPipelineRoutes(this);
    registerWebhookSettingsRoutes(this);
    registerHubSpotAdmin(this);
  }

  protected snapshotProvider(): unknown {
    return { store: this.store.snapshot(), webhooks: this.webhooks.snapshot() };
  }

  protected restoreProvider(state: unknown): void {
    const s = state as { store: HubSpotStoreSnapshot; webhooks: HubSpotWebhooksSnapshot };
    this.store.load(s.store);
    this.webhooks.load(s.webhooks);
  }

  protected providerStateVersion(): number {
    return this.store.version + this.webhooks.subscriptions.length + this.webhooks.updatedAt;
  }

  #issueInitialTokens(): void {
    const now = this.now();
    const c = this.creds;
    this.tokens.add({
      token: c.accessToken,
      kind: "access",
      createdAt: now,
      expiresAt: this.#initialTtlMs === null ? null : now + this.#initialTtlMs,
      clientId: c.clientId,
      refreshToken: c.refreshToken,
      scopes: [
        "crm.objects.contacts.read",
        "crm.objects.contacts.write",
        "crm.objects.companies.read",
        "crm.objects.companies.write",
        "crm.objects.deals.read",
        "crm.objects.deals.write",
        "crm.objects.owners.read",
      ],
    });
    this.tokens.add({
      token: c.refreshToken,
      kind: "refresh",
      createdAt: now,
      expiresAt: null,
      clientId: c.clientId,
    });
    this.tokens.add({ token: c.privateAppToken, kind: "api", createdAt: now, expiresAt: null });
  }

  get adminStore(): AdminStore {
    return this.#admin;
  }

  credentials(): Record<string, string> {
    return hubspotEnv(this.creds);
  }

  protected describeAccount(account: number): AccountDescriptor {
    return hubspotAccount(this.rootSeed, account);
  }

  protected createAccount(account: number): HubSpotEmulator {
    return new HubSpotEmulator({ ...this.options, account });
  }

  protected routingKeys(req: Request, url: URL): Promise<string[]> {
    return hubspotRoutingKeys(req, url);
  }

  protected override beforeClose(): void {
    this.webhooks.cancel();
  }

  protected override resetProviderState(): void {
    this.webhooks.cancel();
    this.tokens.clear();
    this.#issueInitialTokens();
    this.limiter.reset();
    this.daily.reset();
    this.searchLimiter.reset();
    this.deniedScopes.clear();
    this.lostAnswers = null;
  }

  /** HubSpot's 403 for a call whose scope the app lacks. */
  requireScope(scope: string): void {
    if (!this.deniedScopes.has(scope)) return;
    throw new HsError(
      403,
      "MISSING_SCOPES",
      "This app hasn't been granted all required scopes to make this call. Read more about required scopes here: https://developers.hubspot.com/scopes.",
      {
        errors: [{
          message: "One or more of the following scopes are required.",
          context: { requiredGranularScopes: [scope] },
        }],
        fields: { links: { scopes: "https://developers.hubspot.com/scopes" } },
      },
    );
  }

  // ---- request helpers -------------------------------------------------------

  /** Register a CRM route with auth, rate limiting and HubSpot error bodies. */
  route(
    method: string,
    pattern: string,
    handler: HsHandler,
    limit: "standard" | "search" = "standard",
  ): void {
    this.api.on(method, pattern, async (ctx) => {
      try {
        const auth = this.authenticate(ctx);
        const headers = limit === "search" ? this.#searchLimit(auth) : this.#standardLimit(auth);
        const res = await handler(ctx, auth);
        for (const [k, v] of Object.entries(headers)) res.headers.set(k, v);
        const lost = this.lostAnswers;
        if (lost && lost.count > 0 && ctx.route.includes(lost.routeFilter)) {
          lost.count--;
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, lost.holdMs);
            ctx.req.signal.addEventListener("abort", () => {
              clearTimeout(timer);
              resolve();
            }, { once: true });
          });
          return new Response(null, { status: 504 });
        }
        return res;
      } catch (e) {
        if (e instanceof HsError) return this.errors.response(e);
        throw e;
      }
    });
  }

  /** Register a route that needs no CRM token (OAuth, developer API). */
  open(
    method: string,
    pattern: string,
    handler: (ctx: RequestContext) => Response | Promise<Response>,
  ): void {
    this.api.on(method, pattern, async (ctx) => {
      try {
        return await handler(ctx);
      } catch (e) {
        if (e instanceof HsError) return this.errors.response(e);
        throw e;
      }
    });
  }

  authenticate(ctx: RequestContext): HsAuth {
    const h = ctx.req.headers.get("authorization");
    const m = h ? /^Bearer\s+(.+)$/i.exec(h.trim()) : null;
    const token = m?.[1]?.trim() ?? null;
    const check = this.tokens.check(token, this.now(), ["access", "api"]);
    if (!check.ok) {
      if (check.reason === "expired") {
        const ago = Math.max(0, Math.floor((this.now() - (check.info!.expiresAt ?? 0)) / 60_000));
        throw new HsError(
          401,
          "EXPIRED_AUTHENTICATION",
          `The OAuth token used to make this call expired ${ago} minute(s) ago.`,
        );
      }
      throw new HsError(
        401,
        "INVALID_AUTHENTICATION",
        check.reason === "missing"
          ? "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
          : "Authentication credentials not found. This API supports both API Key and OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
      );
    }
    const info = check.info;
    const bucket = info.kind === "api"
      ? `private-app:${info.token}`
      : `oauth:${info.clientId ?? "app"}`;
    return { token: info, bucket };
  }

  #standardLimit(auth: HsAuth): Record<string, string> {
    const now = this.now();
    const r = this.limiter.hit(auth.bucket, now);
    const usedDaily = this.daily.used(auth.bucket, now);
    const headers: Record<string, string> = {
      "X-HubSpot-RateLimit-Interval-Milliseconds": String(this.limiter.windowMs),
      "X-HubSpot-RateLimit-Max": String(this.limiter.max),
      "X-HubSpot-RateLimit-Remaining": String(r.remaining),
      "X-HubSpot-RateLimit-Daily": String(this.daily.limit),
      "X-HubSpot-RateLimit-Daily-Remaining": String(
        Math.max(0, this.daily.limit - usedDaily - (r.allowed ? 1 : 0)),
      ),
    };
    if (!r.allowed) {
      throw this.rateLimitError("TEN_SECONDLY_ROLLING", auth, headers);
    }
    const d = this.daily.spend(auth.bucket, now);
    if (!d.allowed) throw this.rateLimitError("DAILY", auth, headers);
    return headers;
  }

  #searchLimit(auth: HsAuth): Record<string, string> {
    const r = this.searchLimiter.hit(auth.bucket, this.now());
    if (!r.allowed) {
      throw new HsError(429, "RATE_LIMIT", "You have reached your secondly limit.", {
        fields: { errorType: "RATE_LIMIT", policyName: "SECONDLY" },
      });
    }
    return {};
  }

  rateLimitError(
    policy: "TEN_SECONDLY_ROLLING" | "DAILY",
    auth: HsAuth | null,
    headers: Record<string, string>,
  ): HsError {
    return new HsError(429, "RATE_LIMIT", `You have reached your ${policy.toLowerCase()} limit.`, {
      fields: {
        errorType: "RATE_LIMIT",
        policyName: policy,
        groupName: auth
          ? `publicapi:${auth.bucket}:${this.creds.portalId}`
          : `publicapi:${this.creds.portalId}`,
      },
      headers: { ...headers, "X-HubSpot-RateLimit-Remaining": "0" },
    });
  }

  /** Parse a JSON body with a zod schema; failures are HubSpot 400s. */
  async body<T extends z.ZodType>(ctx: RequestContext, schema: T): Promise<z.infer<T>> {
    const bad = (msg: string) =>
      this.errors.make(400, "VALIDATION_ERROR", `Invalid input JSON on line 1: ${msg}`);
    const raw = await readJson(ctx.req, bad);
    return parseWith(schema, raw, bad);
  }

  fail(status: number, category: string, message: string, extra: HsError["extra"] = {}): never {
    throw new HsError(status, category, message, extra);
  }

  // ---- provider hooks ----------------------------------------------------------

  protected override requiresAuth(route: string): boolean {
    return !route.includes("/oauth/") && !route.includes("/webhooks/v3/");
  }

  protected notFound(_ctx: RequestContext, methodMismatch: boolean): Response {
    if (methodMismatch) return this.errors.make(405, "METHOD_NOT_ALLOWED", "Method not allowed");
    return json({
      status: "error",
      message: "Resource not found",
      correlationId: this.errors.correlationId(),
      category: "OBJECT_NOT_FOUND",
    }, 404);
  }

  protected faultResponse(kind: FaultKind, _ctx: RequestContext): Response {
    if (kind === "429" && this.fault429Policy === "SECONDLY") {
      return this.errors.make(429, "RATE_LIMIT", "You have reached your secondly limit.", {
        fields: { errorType: "RATE_LIMIT", policyName: "SECONDLY" },
      });
    }
    if (kind === "429") {
      return this.errors.response(this.rateLimitError("TEN_SECONDLY_ROLLING", null, {
        "X-HubSpot-RateLimit-Interval-Milliseconds": String(this.limiter.windowMs),
        "X-HubSpot-RateLimit-Max": String(this.limiter.max),
      }));
    }
    if (kind === "401") {
      return this.errors.make(
        401,
        "EXPIRED_AUTHENTICATION",
        "The OAuth token used to make this call expired 0 minute(s) ago.",
      );
    }
    return this.errors.make(
      502,
      "INTERNAL_ERROR",
      "Bad Gateway: the upstream service did not respond in time.",
    );
  }

  protected internalError(_ctx: RequestContext, err: unknown): Response {
    return this.errors.make(500, "INTERNAL_ERROR", `Internal error: ${err}`);
  }

  /** Throw a ready-made response (used by handlers). */
  respond(res: Response): never {
    throw new HttpError(res);
  }

  reseed(seed: number, records: number): void {
    seedHubSpot(this.store, seed, records);
  }
}
