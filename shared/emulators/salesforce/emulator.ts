/**
 * Salesforce emulator: one org reachable as both login URL and instance URL.
 *
 * Auth: `Authorization: Bearer <access token>`; expired, revoked or unknown
 * tokens get 401 INVALID_SESSION_ID (jsforce then refreshes through
 * /services/oauth2/token). Every API response carries
 * `Sforce-Limit-Info: api-usage=N/LIMIT`; past the daily limit requests get
 * 403 REQUEST_LIMIT_EXCEEDED. API versions 31.0–64.0 are served (the path
 * decides the version, as in Salesforce).
 * Writes name their user: API saves the integration user (CreatedById,
 * LastModifiedById), admin-API saves another org user (GET /__admin/users).
 * Custom fields are per org: the `customFields` option and the Tooling API
 * (./tooling.ts) add them; a reset goes back to the option's.
 * Docs: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/
 */
import { type AdminStore, type BaseOptions, Emulator, type FaultKind } from "../common/emulator.ts";
import { HttpError, json } from "../common/http.ts";
import { DailyBudget } from "../common/rate_limit.ts";
import type { RequestContext } from "../common/router.ts";
import type { TokenInfo } from "../common/tokens.ts";
import { invalidSession, notFound, SfError } from "./errors.ts";
import type { AccountDescriptor } from "../common/tenancy.ts";
import {
  salesforceAccount,
  type SalesforceCredentials,
  salesforceCredentials,
  salesforceEnv,
  salesforceRoutingKeys,
} from "./account.ts";
import { SalesforceStore, type SalesforceStoreSnapshot } from "./store.ts";
import { seedSalesforce } from "./seed.ts";
import { registerOAuthRoutes } from "./oauth.ts";
import { registerQueryRoutes } from "./query.ts";
import { registerSObjectRoutes } from "./sobjects.ts";
import { registerCollectionRoutes } from "./collections.ts";
import { registerDescribeRoutes } from "./describe.ts";
import { type OutboundConfigInput, OutboundMessages } from "./outbound.ts";
import { registerSalesforceAdmin, SalesforceAdminStore } from "./admin.ts";
import { type CustomFieldInput, CustomFields, registerToolingRoutes } from "./tooling.ts";

export interface SalesforceOptions extends BaseOptions {
  /** Daily API request limit (default 15,000, a Developer Edition org). */
  dailyApiRequests?: number;
  /** Session lifetime of issued access tokens (default 7200 s). */
  tokenTtlSeconds?: number;
  /** Lifetime of the initial SALESFORCE_ACCESS_TOKEN (default: never expires). */
  initialTokenTtlSeconds?: number | null;
  /** Default query batch size (default 2000; `Sforce-Query-Options: batchSize=` overrides per call). */
  queryBatchSize?: number;
  outbound?: OutboundConfigInput;
  /** Custom fields the org has from the start (and after every reset), as the Tooling API's
   * CustomField body, e.g. `{FullName: "Contact.Crm_Sync_Id__c", Metadata: {type: "Text",
   * length: 36, externalId: true, unique: true}}`. */
  customFields?: CustomFieldInput[];
}

export interface SfAuth {
  token: TokenInfo;
  version: string;
}

export type SfHandler = (ctx: RequestContext, auth: SfAuth) => Response | Promise<Response>;

export class SalesforceEmulator extends Emulator {
  readonly store: SalesforceStore;
  readonly daily: DailyBudget;
  readonly outbound: OutboundMessages;
  readonly issuedTokenTtlMs: number;
  queryBatchSize: number;
  readonly creds: SalesforceCredentials;
  /** Permissions of the API user (admin API: PUT /__admin/permissions). */
  readonly permissions = { customizeApplication: true };
  readonly customFields: CustomFields;
  #initialTtlMs: number | null;
  #admin: SalesforceAdminStore;

  constructor(opts: SalesforceOptions = {}) {
    super("salesforce", opts, (opts.tokenTtlSeconds ?? 7200) * 1000);
    this.issuedTokenTtlMs = (opts.tokenTtlSeconds ?? 7200) * 1000;
    this.#initialTtlMs = opts.initialTokenTtlSeconds == null
      ? null
      : opts.initialTokenTtlSeconds * 1000;
    this.creds = salesforceCredentials(this.rootSeed, this.account);
    this.daily = new DailyBudget(opts.dailyApiRequests ?? 15_000);
    this.queryBatchSize = opts.queryBatchSize ?? 2000;
    this.store = new SalesforceStore(this.now, this.prng.fork("store"));
    this.outbound = new OutboundMessages(this, opts.outbound);
    this.store.onChange = (change) => this.outbound.onChange(change);
    this.#admin = new SalesforceAdminStore(this);
    this.customFields = new CustomFields(this);
    for (const body of opts.customFields ?? []) this.customFields.create(body);
    this.store.initialCustom = this.store.schema.custom();
    this.customFields.clear();
    this.#issueInitialTokens();
    seedSalesforce(this.store, this.seed, this.records);

    registerOAuthRoutes(this);
    registerDescribeRoutes(this);
    registerQueryRoutes(this);
    registerCollectionRoutes(this);
    registerSObjectRoutes(this);
    registerToolingRoutes(this);
    registerSalesforceAdmin(this);
  }

  protected snapshotProvider(): unknown {
    return {
      store: this.store.snapshot(),
      outbound: this.outbound.snapshot(),
      customFields: this.customFields.snapshot(),
    };
  }

  protected restoreProvider(state: unknown): void {
    const s = state as {
      store: SalesforceStoreSnapshot;
      outbound: ReturnType<OutboundMessages["snapshot"]>;
      customFields: ReturnType<CustomFields["snapshot"]>;
    };
    this.store.load(s.store);
    this.outbound.load(s.outbound);
    this.customFields.load(s.customFields);
  }

  protected providerStateVersion(): number {
    return this.store.version + JSON.stringify(this.outbound.config).length;
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
      subject: c.userId,
    });
    this.tokens.add({
      token: c.refreshToken,
      kind: "refresh",
      createdAt: now,
      expiresAt: null,
      clientId: c.clientId,
      subject: c.userId,
    });
  }

  get instanceUrl(): string {
    return this.url;
  }

  get adminStore(): AdminStore {
    return this.#admin;
  }

  credentials(): Record<string, string> {
    return salesforceEnv(this.creds, this.url);
  }

  protected describeAccount(account: number): AccountDescriptor {
    return salesforceAccount(this.rootSeed, account, this.url);
  }

  protected createAccount(account: number): SalesforceEmulator {
    return new SalesforceEmulator({ ...this.options, account });
  }

  protected routingKeys(req: Request, url: URL): Promise<string[]> {
    return salesforceRoutingKeys(req, url);
  }

  protected override beforeClose(): void {
    this.outbound.cancel();
  }

  protected override resetProviderState(): void {
    this.outbound.cancel();
    this.tokens.clear();
    this.#issueInitialTokens();
    this.daily.reset();
    this.permissions.customizeApplication = true;
    this.customFields.clear();
  }

  reseed(seed: number, records: number): void {
    this.customFields.clear();
    seedSalesforce(this.store, seed, records);
  }

  // ---- request helpers -------------------------------------------------------

  limitHeader(): Record<string, string> {
    const used = this.daily.used(this.creds.orgId, this.now());
    return { "Sforce-Limit-Info": `api-usage=${used}/${this.daily.limit}` };
  }

  /** Register a REST route under /services/data/vXX.X with auth and limits. */
  route(method: string, path: string, handler: SfHandler): void {
    this.api.on(method, `/services/data/:version${path}`, async (ctx) => {
      try {
        const version = this.#version(ctx.params.version);
        const token = this.authenticate(ctx);
        const spend = this.daily.spend(this.creds.orgId, this.now());
        if (!spend.allowed) {
          throw SfError.one(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.");
        }
        const res = await handler(ctx, { token, version });
        for (const [k, v] of Object.entries(this.limitHeader())) res.headers.set(k, v);
        return res;
      } catch (e) {
        if (e instanceof SfError) return e.response(e.status === 401 ? {} : this.limitHeader());
        throw e;
      }
    });
  }

  /** Route without session auth (OAuth endpoints, identity). */
  open(
    method: string,
    path: string,
    handler: (ctx: RequestContext) => Response | Promise<Response>,
  ): void {
    this.api.on(method, path, async (ctx) => {
      try {
        return await handler(ctx);
      } catch (e) {
        if (e instanceof SfError) return e.response();
        throw e;
      }
    });
  }

  #version(raw: string): string {
    const m = /^v(\d+)\.0$/.exec(raw);
    if (!m || Number(m[1]) < 31 || Number(m[1]) > 64) throw notFound();
    return `${m[1]}.0`;
  }

  authenticate(ctx: RequestContext): TokenInfo {
    const h = ctx.req.headers.get("authorization");
    const m = h ? /^(Bearer|OAuth)\s+(.+)$/i.exec(h.trim()) : null;
    const check = this.tokens.check(m?.[2]?.trim(), this.now(), ["access"]);
    if (!check.ok) throw invalidSession();
    return check.info;
  }

  /** Read a JSON body; malformed JSON is Salesforce's JSON_PARSER_ERROR. */
  async body(ctx: RequestContext): Promise<unknown> {
    const text = await ctx.req.text();
    try {
      return JSON.parse(text);
    } catch (e) {
      throw SfError.one(400, "JSON_PARSER_ERROR", `Unexpected character: ${(e as Error).message}`);
    }
  }

  respond(res: Response): never {
    throw new HttpError(res);
  }

  // ---- provider hooks ----------------------------------------------------------

  protected override requiresAuth(route: string): boolean {
    return route.includes("/services/data/:version");
  }

  protected notFound(_ctx: RequestContext, methodMismatch: boolean): Response {
    if (methodMismatch) {
      return json([{
        errorCode: "METHOD_NOT_ALLOWED",
        message: "HTTP Method not allowed for this resource",
      }], 405);
    }
    return notFound().response();
  }

  protected faultResponse(kind: FaultKind, _ctx: RequestContext): Response {
    // Salesforce has no 429: its request limit answers 403 REQUEST_LIMIT_EXCEEDED.
    if (kind === "429") {
      return SfError.one(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.").response(
        this.limitHeader(),
      );
    }
    if (kind === "401") return invalidSession().response();
    return SfError.one(
      500,
      "UNKNOWN_EXCEPTION",
      `An unexpected error occurred. Please include this ErrorId if you contact support: ${
        this.prng.digits(9)
      }-${this.prng.digits(5)} (${this.prng.digits(10)})`,
    ).response(this.limitHeader());
  }

  protected internalError(_ctx: RequestContext, err: unknown): Response {
    return SfError.one(500, "UNKNOWN_EXCEPTION", `An unexpected error occurred: ${err}`).response();
  }
}
