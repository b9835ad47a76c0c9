/**
 * Shared emulator core: `Deno.serve` lifecycle, request pipeline (route
 * match → injected latency/faults → handler → counters) and the admin API
 * pieces common to all providers. Provider modules subclass `Emulator` and
 * register their API routes on `this.api` and extra admin routes on
 * `this.admin`.
 */
import { OAuthPolicy, type OAuthPolicyInput, OAuthPolicySchema } from "./oauth.ts";
import { z } from "zod";
import { Counters } from "./counters.ts";
import { type FaultConfigInput, FaultConfigSchema, Faults } from "./faults.ts";
import { Refusals, RefusalsSchema } from "./refusals.ts";
import { drainBody, HttpError, json, sleep } from "./http.ts";
import { Prng } from "./prng.ts";
import { type RequestContext, Router } from "./router.ts";
import { type AccountDescriptor, accountSeed, Tenancy } from "./tenancy.ts";
import { type TokenInfo, TokenStore } from "./tokens.ts";
import { WebhookQueue } from "./webhook_queue.ts";

export interface BaseOptions {
  /** 0 (default) = random free port. */
  port?: number;
  hostname?: string;
  seed?: number;
  /** Records per object generated at start (default 25). */
  records?: number;
  /** Multiplier for webhook retry delays (1 = provider timing). */
  timeScale?: number;
  /** Initial faults. */
  faults?: FaultConfigInput;
  /** Clock (epoch ms); tests may pass a controllable one. */
  now?: () => number;
  /** Log sink for diagnostics (default: silent). */
  log?: (line: string) => void;
  /** Keep bodies of the last N webhook deliveries for inspection (default 1000). */
  keepWebhookBodies?: number;
  /** Accounts (portals / orgs / companies) served by this process (default 1). */
  accounts?: number;
  /** Records per object of accounts 1..N-1 (default 10); account 0 has `records`. */
  tenantRecords?: number;
  /** Which account this instance is (set by the tenancy; default 0). */
  account?: number;
  /** OAuth behaviour: consent, registered redirect URIs, refresh-token rotation (./oauth.ts). */
  oauth?: OAuthPolicyInput;
}

export interface StartedEmulator<S> {
  url: string;
  port: number;
  credentials: Record<string, string>;
  store: S;
  counters: Counters;
  faults: Faults;
  webhooks: WebhookQueue;
  /** The emulator object itself (admin operations in-process). */
  emulator: Emulator;
  close(): Promise<void>;
}

/** Error for the admin API (plain `{error}` JSON bodies). */
export class AdminError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** Record operations the admin API exposes, implemented per provider. */
export interface AdminStore {
  objects(): string[];
  dump(object?: string): unknown;
  get(object: string, id: string): unknown | undefined;
  create(object: string, data: Record<string, unknown>): unknown;
  update(object: string, id: string, data: Record<string, unknown>): unknown;
  remove(object: string, id: string): unknown;
  merge(object: string, primaryId: string, mergedId: string): unknown;
  /** Set the modification time of a selection of records; returns their ids. */
  setModified(object: string, selection: ModifiedSelection, modifiedAt: number): string[];
  reseed(seed: number, records: number): void;
}

export const ModifiedSelectionSchema = z.object({
  ids: z.array(z.union([z.string(), z.number()]).transform(String)).optional(),
  /** Number of records to pick when `ids` is absent (default: all). */
  count: z.number().int().min(0).optional(),
  /** Which records to pick by current modification time. */
  pick: z.enum(["oldest", "newest", "random"]).default("oldest"),
});
export type ModifiedSelection = z.infer<typeof ModifiedSelectionSchema>;

const SetModifiedSchema = ModifiedSelectionSchema.extend({
  modifiedAt: z.union([z.number(), z.string()]),
});

const SeedSchema = z.object({
  seed: z.number().int().optional(),
  records: z.number().int().min(0).max(2_000_000).optional(),
}).strict();

const MergeSchema = z.object({
  primaryId: z.union([z.string(), z.number()]).transform(String),
  mergedId: z.union([z.string(), z.number()]).transform(String),
});

const TokenTtlSchema = z.object({
  accessTtlSeconds: z.number().min(0).nullable(),
  applyToExisting: z.boolean().default(true),
});

export function parseTime(v: number | string): number {
  if (typeof v === "number") return v;
  const n = Number(v);
  if (Number.isFinite(n) && /^\d+$/.test(v.trim())) return n;
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new AdminError(400, `invalid timestamp: ${v}`);
  return t;
}

export type FaultKind = "5xx" | "429" | "401";

/** Query parameter selecting the account of an admin request (default 0; `all` for writes). */
export const ACCOUNT_PARAM = "account";

const AccountsQuerySchema = z.object({
  from: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(10_000).default(100),
});

export abstract class Emulator {
  readonly name: string;
  /** Account number within the process (0 = the one printed on the ready line). */
  readonly account: number;
  /** The process seed (account seeds derive from it). */
  readonly rootSeed: number;
  readonly options: BaseOptions;
  seed: number;
  records: number;
  readonly prng: Prng;
  readonly faults: Faults;
  /** Records whose API updates are refused permanently (./refusals.ts). */
  readonly refusals = new Refusals();
  readonly counters = new Counters();
  readonly queue: WebhookQueue;
  readonly tokens: TokenStore;
  readonly oauth: OAuthPolicy;
  readonly api = new Router();
  readonly admin = new Router();
  readonly now: () => number;
  readonly log: (line: string) => void;
  timeScale: number;
  url = "";
  port = 0;
  #server?: Deno.HttpServer;
  #closing = new AbortController();
  #startOptions: { port: number; hostname: string };
  #tenancy?: Tenancy<Emulator>;

  constructor(name: string, opts: BaseOptions, tokenTtlMs: number | null) {
    this.name = name;
    this.options = opts;
    this.account = opts.account ?? 0;
    this.rootSeed = opts.seed ?? 1;
    this.seed = this.account === 0 ? this.rootSeed : accountSeed(this.rootSeed, this.account);
    this.records = this.account === 0 ? opts.records ?? 25 : opts.tenantRecords ?? 10;
    this.timeScale = opts.timeScale ?? 1;
    this.now = opts.now ?? Date.now;
    this.log = opts.log ?? (() => {});
    this.prng = new Prng(this.seed).fork(name);
    this.faults = new Faults(this.seed, opts.faults ?? {});
    this.tokens = new TokenStore(this.prng.fork("tokens"), tokenTtlMs);
    this.oauth = new OAuthPolicy(opts.oauth);
    this.queue = new WebhookQueue({
      faults: this.faults,
      timeScale: this.timeScale,
      maxConcurrency: 10,
      keepBodies: opts.keepWebhookBodies,
      log: this.log,
    });
    this.#startOptions = { port: opts.port ?? 0, hostname: opts.hostname ?? "127.0.0.1" };
    this.#registerCommonAdmin();
  }

  // ---- provider hooks -------------------------------------------------------

  abstract get adminStore(): AdminStore;
  abstract credentials(): Record<string, string>;
  /** Response for an unknown API path (provider-shaped 404). */
  protected abstract notFound(ctx: RequestContext, methodMismatch: boolean): Response;
  /** Response for an injected fault. */
  protected abstract faultResponse(kind: FaultKind, ctx: RequestContext): Response;
  /** Response for an unexpected exception. */
  protected abstract internalError(ctx: RequestContext, err: unknown): Response;
  /** Whether a route needs a session (injected 401s only hit those). */
  protected requiresAuth(_route: string): boolean {
    return true;
  }

  // ---- snapshots (./snapshot.ts) ---------------------------------------------

  /** The provider's records, schema and webhook configuration as plain JSON data. */
  protected abstract snapshotProvider(): unknown;
  /** Replace the provider's state with a snapshot's. */
  protected abstract restoreProvider(state: unknown): void;
  /** A number that changes with every change of the provider's records. */
  protected abstract providerStateVersion(): number;

  /** Account 0's state: the provider's, plus the tokens issued so far. */
  snapshot(): unknown {
    return { provider: this.snapshotProvider(), tokens: this.tokens.all() };
  }

  restoreSnapshot(state: unknown): void {
    const s = state as { provider: unknown; tokens: TokenInfo[] };
    if (!s || typeof s !== "object" || !Array.isArray(s.tokens)) {
      throw new Error(`${this.name}: not a sandbox snapshot`);
    }
    this.restoreProvider(s.provider);
    for (const t of s.tokens) this.tokens.add(t);
    // The seeded stream would mint tokens the snapshot already holds.
    this.tokens.useStream(this.prng.fork(`tokens-after-restore:${this.now()}`));
  }

  stateVersion(): number {
    return this.providerStateVersion();
  }

  /** Provider state reset (tokens, rate limits, …) on admin reset. */
  protected resetProviderState(): void {}

  /** Credentials and routing keys of account `i`, without creating it. */
  protected abstract describeAccount(account: number): AccountDescriptor;
  /** A new instance for account `i` (same options, `account: i`). */
  protected abstract createAccount(account: number): Emulator;
  /** Routing keys an API request carries (bearer token, client id, …). */
  protected abstract routingKeys(req: Request, url: URL): string[] | Promise<string[]>;

  /** The accounts of this process; only account 0 (the one that serves) has it. */
  get tenancy(): Tenancy<Emulator> | undefined {
    if (this.account !== 0) return undefined;
    this.#tenancy ??= new Tenancy<Emulator>(Math.max(1, this.options.accounts ?? 1), this, {
      describe: (i) => this.describeAccount(i),
      create: (i) => {
        const a = this.createAccount(i);
        a.url = this.url;
        a.port = this.port;
        a.onStarted();
        return a;
      },
    });
    return this.#tenancy;
  }

  /** Account `i` of this process (created on first use). */
  accountAt(account: number): Emulator {
    const t = this.tenancy;
    if (!t) throw new Error("only account 0 hosts the accounts");
    return t.get(account);
  }

  // ---- lifecycle -------------------------------------------------------------

  async start(): Promise<this> {
    const { port, hostname } = this.#startOptions;
    let resolveListen!: (addr: Deno.NetAddr) => void;
    const listening = new Promise<Deno.NetAddr>((r) => (resolveListen = r));
    this.#server = Deno.serve({
      port,
      hostname,
      onListen: (addr) => resolveListen(addr as Deno.NetAddr),
      onError: (err) => {
        this.log(`${this.name}: unhandled ${err}`);
        return new Response("internal error", { status: 500 });
      },
    }, (req) => this.handle(req));
    const addr = await listening;
    this.port = addr.port;
    this.url = `http://${hostname}:${addr.port}`;
    this.onStarted();
    return this;
  }

  /** Called once the URL is known (providers derive instance URLs etc.). */
  protected onStarted(): void {}

  /** Provider cleanup before shutdown (timers etc.). */
  protected beforeClose(): void {}

  /**
   * Stop serving. Waits for in-flight requests; idle keep-alive connections
   * held by other processes can keep a graceful shutdown waiting for their
   * timeout (~90 s), so the wait is bounded by `graceMs` (then the caller,
   * e.g. main.ts, simply exits).
   */
  async close(graceMs = 3000): Promise<void> {
    for (const a of this.#tenancy?.created() ?? []) {
      if (a === this) continue;
      a.beforeClose();
      a.#closing.abort();
      await a.queue.close();
    }
    this.beforeClose();
    this.#closing.abort();
    await this.queue.close();
    if (this.#server) {
      const server = this.#server;
      this.#server = undefined;
      let timer: number | undefined;
      const finished = await Promise.race([
        server.shutdown().then(() => true),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(false), graceMs))),
      ]);
      clearTimeout(timer);
      if (!finished) {
        this.log(
          `${this.name}: connections still open after ${graceMs} ms; not waiting any longer`,
        );
      }
    }
  }

  get closingSignal(): AbortSignal {
    return this.#closing.signal;
  }

  // ---- request pipeline ------------------------------------------------------

  /** Answer one request; the answer leaves only after the request body was read. */
  async handle(req: Request): Promise<Response> {
    const res = await (await this.#accountFor(req)).#dispatch(req);
    await drainBody(req);
    return res;
  }

  /** The account an API request is for (admin requests choose theirs with ?account=). */
  async #accountFor(req: Request): Promise<Emulator> {
    const t = this.tenancy;
    if (!t || t.count === 1) return this;
    const url = new URL(req.url);
    if (url.pathname === "/__admin" || url.pathname.startsWith("/__admin/")) return this;
    return t.resolve(await this.routingKeys(req, url));
  }

  async #dispatch(req: Request): Promise<Response> {
    const url = new URL(req.url);
    if (url.pathname === "/__admin" || url.pathname.startsWith("/__admin/")) {
      return await this.#handleAdmin(req, url);
    }
    const m = this.api.match(req.method, url.pathname);
    if (!("handler" in m)) {
      const ctx: RequestContext = { req, url, params: {}, route: `${req.method} (unmatched)` };
      const res = this.notFound(ctx, m.methodMismatch);
      this.counters.record(ctx.route, res.status);
      return res;
    }
    const ctx: RequestContext = { req, url, params: m.params, route: m.route };
    const decision = this.faults.decideRequest(m.route);
    if (decision.fault === "401" && !this.requiresAuth(m.route)) decision.fault = "ok";
    if (decision.latencyMs > 0) await sleep(decision.latencyMs, this.#closing.signal);
    let res: Response;
    if (decision.fault === "hang") {
      // Never answer: wait until the client gives up or the emulator closes.
      this.counters.record(m.route, 0);
      await waitForAbort(req.signal, this.#closing.signal);
      return new Response(null, { status: 504 });
    } else if (decision.fault !== "ok" && decision.fault !== "lost_answer") {
      res = this.faultResponse(decision.fault, ctx);
    } else {
      try {
        res = await m.handler(ctx);
      } catch (e) {
        if (e instanceof HttpError) res = e.response;
        else {
          this.log(`${this.name}: ${ctx.route} failed: ${(e as Error)?.stack ?? e}`);
          res = this.internalError(ctx, e);
        }
      }
    }
    if (decision.fault === "lost_answer") {
      // Applied, then never answered: the client gives up without knowing the outcome.
      this.counters.record(m.route, 0);
      await waitForAbort(req.signal, this.#closing.signal);
      return new Response(null, { status: 504 });
    }
    this.counters.record(m.route, res.status);
    return res;
  }

  async #handleAdmin(req: Request, url: URL): Promise<Response> {
    const t = this.tenancy;
    const selected = url.searchParams.get(ACCOUNT_PARAM);
    if (!t) return await this.#handleAdminHere(req, url);
    if (url.pathname === "/__admin/accounts" && req.method === "GET") {
      const q = AccountsQuerySchema.safeParse(Object.fromEntries(url.searchParams));
      if (!q.success) return json({ error: q.error.issues.map((i) => i.message).join("; ") }, 400);
      return json({
        count: t.count,
        from: q.data.from,
        limit: q.data.limit,
        accounts: t.list(q.data.from, q.data.limit),
      });
    }
    if (selected === null || selected === "0") return await this.#handleAdminHere(req, url);
    if (selected === "all") return await this.#handleAdminAll(t, req, url);
    const i = Number(selected);
    if (!t.has(i)) {
      return json({ error: `no account ${selected} (accounts: 0..${t.count - 1} or all)` }, 404);
    }
    return await t.get(i).#handleAdminHere(req, url);
  }

  /**
   * `?account=all`: the same admin write on every account in turn (creating them all), e.g.
   * faults, rate limits or a reset for a whole scale test. Reads are per account.
   */
  async #handleAdminAll(t: Tenancy<Emulator>, req: Request, url: URL): Promise<Response> {
    if (req.method === "GET" || req.method === "HEAD") {
      return json({ error: "account=all applies to writes only; read one account at a time" }, 400);
    }
    const body = await req.text();
    const byStatus: Record<string, number> = {};
    const errors: Array<{ account: number; status: number; body: unknown }> = [];
    for (let i = 0; i < t.count; i++) {
      const one = new Request(req.url, {
        method: req.method,
        headers: req.headers,
        body: body === "" ? undefined : body,
      });
      const res = await t.get(i).#handleAdminHere(one, url);
      byStatus[res.status] = (byStatus[res.status] ?? 0) + 1;
      if (res.status >= 400 && errors.length < 10) {
        errors.push({ account: i, status: res.status, body: await res.json().catch(() => null) });
      } else await res.body?.cancel();
    }
    return json(
      { accounts: t.count, byStatus, errors },
      errors.length > 0 ? errors[0].status : 200,
    );
  }

  async #handleAdminHere(req: Request, url: URL): Promise<Response> {
    const m = this.admin.match(req.method, url.pathname);
    if (!("handler" in m)) {
      return json({
        error: m.methodMismatch ? "method not allowed" : `no admin route ${url.pathname}`,
      }, m.methodMismatch ? 405 : 404);
    }
    try {
      return await m.handler({ req, url, params: m.params, route: m.route });
    } catch (e) {
      if (e instanceof AdminError) return json({ error: e.message }, e.status);
      if (e instanceof HttpError) return e.response;
      if (e instanceof z.ZodError) {
        return json({
          error: e.issues.map((i) => `${i.path.join(".") || "(body)"}: ${i.message}`).join("; "),
        }, 400);
      }
      this.log(`${this.name}: admin ${url.pathname} failed: ${(e as Error)?.stack ?? e}`);
      return json({ error: String(e) }, 500);
    }
  }

  // ---- admin -------------------------------------------------------------------

  /** Read an admin JSON body (empty body = {}). */
  async adminBody(req: Request): Promise<unknown> {
    const text = await req.text();
    if (text.trim() === "") return {};
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new AdminError(400, `invalid JSON: ${(e as Error).message}`);
    }
  }

  /** Full reset to the seeded initial state (webhook configuration is kept). */
  reset(seed = this.seed, records = this.records): void {
    this.seed = seed;
    this.records = records;
    this.queue.cancelAll();
    this.queue.clearLog();
    this.counters.reset();
    this.faults.reset(seed);
    this.refusals.clear();
    this.resetProviderState();
    this.adminStore.reseed(seed, records);
  }

  #registerCommonAdmin(): void {
    const a = this.admin;
    a.get("/__admin", () =>
      json({
        name: this.name,
        account: this.account,
        url: this.url,
        seed: this.seed,
        records: this.records,
        timeScale: this.timeScale,
        objects: this.adminStore.objects(),
      }));
    a.get("/__admin/health", () => json({ ok: true }));
    a.get("/__admin/credentials", () => json(this.credentials()));
    a.get("/__admin/oauth", () => json(this.oauth.snapshot()));
    a.put("/__admin/oauth", async ({ req }) => {
      this.oauth.set(OAuthPolicySchema.parse(await this.adminBody(req)));
      return json(this.oauth.snapshot());
    });

    a.post("/__admin/reset", async ({ req }) => {
      const body = SeedSchema.parse(await this.adminBody(req));
      this.reset(body.seed ?? this.seed, body.records ?? this.records);
      return json({
        ok: true,
        seed: this.seed,
        records: this.records,
        credentials: this.credentials(),
      });
    });
    a.post("/__admin/seed", async ({ req }) => {
      const body = SeedSchema.parse(await this.adminBody(req));
      this.seed = body.seed ?? this.seed;
      this.records = body.records ?? this.records;
      this.adminStore.reseed(this.seed, this.records);
      return json({ ok: true, seed: this.seed, records: this.records });
    });
    a.get(
      "/__admin/store",
      ({ url }) => json(this.adminStore.dump(url.searchParams.get("object") ?? undefined)),
    );

    a.get(
      "/__admin/counters",
      () => json({ ...this.counters.snapshot(), faultsInjected: this.faults.injected }),
    );
    a.delete("/__admin/counters", () => {
      this.counters.reset();
      return json({ ok: true });
    });

    a.get("/__admin/faults", () => json(this.faults.config));
    a.put("/__admin/faults", async ({ req }) => {
      const body = FaultConfigSchema.parse(await this.adminBody(req));
      this.faults.reset(body.seed ?? this.seed);
      return json(this.faults.update(body));
    });
    a.patch("/__admin/faults", async ({ req }) => {
      const raw = z.record(z.string(), z.unknown()).parse(await this.adminBody(req));
      // partial() keeps the fields' defaults: merge only the keys the caller sent.
      const parsed = FaultConfigSchema.partial().parse(raw);
      const sent = Object.fromEntries(Object.entries(parsed).filter(([k]) => k in raw));
      return json(this.faults.update(sent));
    });
    a.delete("/__admin/faults", () => {
      this.faults.reset(this.seed);
      return json(this.faults.config);
    });

    a.get("/__admin/refusals", () => json(this.refusals.snapshot()));
    a.put("/__admin/refusals", async ({ req }) => {
      this.refusals.set(RefusalsSchema.parse(await this.adminBody(req)));
      return json(this.refusals.snapshot());
    });
    a.delete("/__admin/refusals", () => {
      this.refusals.clear();
      return json(this.refusals.snapshot());
    });

    a.get("/__admin/webhooks/deliveries", ({ url }) => {
      const limit = Number(url.searchParams.get("limit") ?? 100);
      const all = this.queue.deliveries;
      return json({
        stats: this.queue.stats,
        pending: this.queue.pending,
        deliveries: all.slice(Math.max(0, all.length - limit)),
      });
    });
    a.delete("/__admin/webhooks/deliveries", () => {
      this.queue.clearLog();
      return json({ ok: true });
    });
    a.post("/__admin/webhooks/idle", async ({ req }) => {
      const body = z.object({ timeoutMs: z.number().min(0).max(600_000).default(30_000) }).parse(
        await this.adminBody(req),
      );
      const idle = await this.queue.idle(body.timeoutMs);
      return json({ idle, pending: this.queue.pending, stats: this.queue.stats });
    });

    a.get("/__admin/tokens", () => json(this.tokens.list()));
    a.post(
      "/__admin/tokens/expire",
      () => json({ expired: this.tokens.expireAccessTokens(this.now()) }),
    );
    a.put("/__admin/tokens", async ({ req }) => {
      const body = TokenTtlSchema.parse(await this.adminBody(req));
      this.tokens.setAccessTtl(
        body.accessTtlSeconds === null ? null : body.accessTtlSeconds * 1000,
        this.now(),
        body.applyToExisting,
      );
      return json({ ok: true, accessTtlSeconds: body.accessTtlSeconds });
    });
    a.post("/__admin/tokens/revoke", async ({ req }) => {
      const body = z.object({ kind: z.enum(["access", "refresh", "api", "all"]).default("all") })
        .parse(await this.adminBody(req));
      return json({
        revoked: this.tokens.revoke((t) => body.kind === "all" || t.kind === body.kind),
      });
    });

    const objectOf = (params: Record<string, string>): string => {
      const o = params.object;
      if (!this.adminStore.objects().includes(o)) {
        throw new AdminError(
          404,
          `unknown object "${o}" (known: ${this.adminStore.objects().join(", ")})`,
        );
      }
      return o;
    };
    a.get("/__admin/records/:object", ({ params }) => json(this.adminStore.dump(objectOf(params))));
    a.get("/__admin/records/:object/:id", ({ params }) => {
      const r = this.adminStore.get(objectOf(params), params.id);
      if (r === undefined) throw new AdminError(404, `no ${params.object} ${params.id}`);
      return json(r);
    });
    a.post("/__admin/records/:object/merge", async ({ req, params }) => {
      const body = MergeSchema.parse(await this.adminBody(req));
      return json(this.adminStore.merge(objectOf(params), body.primaryId, body.mergedId));
    });
    a.post("/__admin/records/:object/set-modified", async ({ req, params }) => {
      const body = SetModifiedSchema.parse(await this.adminBody(req));
      const ids = this.adminStore.setModified(objectOf(params), body, parseTime(body.modifiedAt));
      return json({ updated: ids.length, ids: ids.length <= 1000 ? ids : undefined });
    });
    a.post("/__admin/records/:object", async ({ req, params }) => {
      const body = z.record(z.string(), z.unknown()).parse(await this.adminBody(req));
      return json(this.adminStore.create(objectOf(params), body), 201);
    });
    a.patch("/__admin/records/:object/:id", async ({ req, params }) => {
      const body = z.record(z.string(), z.unknown()).parse(await this.adminBody(req));
      return json(this.adminStore.update(objectOf(params), params.id, body));
    });
    a.delete(
      "/__admin/records/:object/:id",
      ({ params }) => json(this.adminStore.remove(objectOf(params), params.id)),
    );
  }
}

function waitForAbort(a: AbortSignal, b: AbortSignal): Promise<void> {
  if (a.aborted || b.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      a.removeEventListener("abort", done);
      b.removeEventListener("abort", done);
      resolve();
    };
    a.addEventListener("abort", done, { once: true });
    b.addEventListener("abort", done, { once: true });
  });
}

/** Wrap a started emulator in the public handle shape. */
export function handleOf<E extends Emulator, S>(e: E, store: S): StartedEmulator<S> {
  return {
    url: e.url,
    port: e.port,
    credentials: e.credentials(),
    store,
    counters: e.counters,
    faults: e.faults,
    webhooks: e.queue,
    emulator: e,
    close: () => e.close(),
  };
}
