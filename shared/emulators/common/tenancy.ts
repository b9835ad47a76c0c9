/**
 * Many accounts (HubSpot portals, Salesforce orgs, Pipedrive companies) behind one emulator
 * port, routed by credential as the providers route them: the token (or client id, username,
 * org id, app id) names the account; the URL does not.
 *
 * Decisions:
 * - Account 0 is the emulator that owns the server, built exactly as a single-account emulator
 *   (same seed-derived credentials and data), so a one-account process is unchanged.
 * - Account i > 0 is a full emulator instance of its own (store, tokens, rate-limit buckets,
 *   daily budget, counters, faults, webhook settings and queue), created on first use. Its
 *   seed is `accountSeed(seed, i)` and its credentials derive from that seed, so the same
 *   seed gives the same accounts across restarts. Until an account is used only its
 *   credential strings exist (a few hundred bytes in the index).
 * - Routing keys are namespaced strings (`token:…`, `client:…`, `user:…`, `org:…`, `app:…`,
 *   `devkey:…`). Tokens an account issues later (OAuth refresh, codes) are added to the index
 *   as they are minted. A request whose keys match no account goes to account 0, which
 *   answers the provider's 401 as before.
 */

/** What the listing and the router know of an account without creating it. */
export interface AccountDescriptor {
  /** portalId / orgId / companyId. */
  id: string;
  /** Same shape as account 0's `credentials()` (the env keys of the ready line). */
  credentials: Record<string, string>;
  /** Namespaced routing keys (`token:…`, `client:…`, …). */
  keys: string[];
}

/** The part of an emulator the tenancy drives. */
export interface TenantAccount {
  readonly account: number;
  readonly tokens: { onAdd?: (token: string) => void };
  readonly counters: { total: number; snapshot(): { byStatus: Record<string, number> } };
}

export interface TenancyHooks<A extends TenantAccount> {
  describe(account: number): AccountDescriptor;
  create(account: number): A;
}

/**
 * Seed of account `i`: injective in `i` (odd multiplier modulo 2^32), account 0 keeps the
 * process seed. Distinct seeds give distinct token streams, so credentials never collide.
 */
export function accountSeed(seed: number, account: number): number {
  return (seed + Math.imul(account, 0x9e3779b1)) >>> 0;
}

/** One row of GET /__admin/accounts. */
export interface AccountListing extends Omit<AccountDescriptor, "keys"> {
  account: number;
  /** Whether the account exists yet (it is created by its first request or admin call). */
  created: boolean;
  /** API requests it has served (null until created). */
  requests: number | null;
  byStatus: Record<string, number> | null;
}

export class Tenancy<A extends TenantAccount> {
  #index = new Map<string, number>();
  #accounts = new Map<number, A>();

  constructor(readonly count: number, root: A, private hooks: TenancyHooks<A>) {
    this.#accounts.set(0, root);
    for (let i = 0; i < count; i++) {
      for (const key of hooks.describe(i).keys) this.#addKey(key, i);
    }
    this.#watch(root);
  }

  #addKey(key: string, account: number): void {
    const owner = this.#index.get(key);
    if (owner !== undefined && owner !== account) {
      throw new Error(`routing key ${key} of account ${account} already belongs to ${owner}`);
    }
    this.#index.set(key, account);
  }

  #watch(a: A): void {
    a.tokens.onAdd = (token) => this.#index.set(`token:${token}`, a.account);
  }

  /** The account a request's routing keys name (first match wins), else account 0. */
  resolve(keys: Iterable<string>): A {
    for (const key of keys) {
      const i = this.#index.get(key);
      if (i !== undefined) return this.get(i);
    }
    return this.get(0);
  }

  has(account: number): boolean {
    return Number.isInteger(account) && account >= 0 && account < this.count;
  }

  /** Account `i`, created on first use. */
  get(account: number): A {
    let a = this.#accounts.get(account);
    if (a) return a;
    if (!this.has(account)) throw new RangeError(`no account ${account} (0..${this.count - 1})`);
    a = this.hooks.create(account);
    this.#accounts.set(account, a);
    this.#watch(a);
    return a;
  }

  /** Accounts created so far. */
  created(): A[] {
    return [...this.#accounts.values()];
  }

  list(from: number, limit: number): AccountListing[] {
    const out: AccountListing[] = [];
    for (let i = Math.max(0, from); i < Math.min(this.count, from + limit); i++) {
      const { keys: _keys, ...d } = this.hooks.describe(i);
      const a = this.#accounts.get(i);
      out.push({
        account: i,
        ...d,
        created: a !== undefined,
        requests: a ? a.counters.total : null,
        byStatus: a ? a.counters.snapshot().byStatus : null,
      });
    }
    return out;
  }
}
