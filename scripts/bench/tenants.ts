// The issue-11 parts' sandboxes and connections: starts ./tenant_server.ts (documented rate
// limits on, many accounts per process), reads the accounts' credentials from the sandboxes'
// admin listing (GET /__admin/accounts, shared/emulators/common/tenancy.ts), registers one
// crm.connections row per account (each its own app tenant, credentials encrypted as the
// functions read them) and removes them again.
import { fileURLToPath } from "node:url";
import type postgres from "postgres";
import { connectionCredentials, storeCredentials } from "../../shared/local/connections.ts";
import { importKey } from "../../supabase/functions/_shared/crypto.ts";
import type { ProviderName } from "../../supabase/functions/_shared/providers/types.ts";
import { admin, startReadyChild } from "./sandboxes.ts";

const SERVER = fileURLToPath(new URL("./tenant_server.ts", import.meta.url).href);

export interface TenantSpec {
  accounts: number;
  /** Records per object of account 0. */
  records: number;
  /** Records per object of every other account. */
  tenantRecords: number;
}

export interface TenantSandboxes {
  pid: number;
  seededMs: number;
  urls: Partial<Record<ProviderName, string>>;
  /** Account 0 of each provider, from the ready line (needs no admin listing). */
  first: Partial<Record<ProviderName, Account>>;
  close(): Promise<void>;
}

export async function startTenantSandboxes(
  specs: Partial<Record<ProviderName, TenantSpec>>,
): Promise<TenantSandboxes> {
  const child = await startReadyChild(SERVER, [JSON.stringify(specs)], "the tenant sandboxes");
  const ready = child.ready as
    & { seededMs: number }
    & Record<ProviderName, { url: string; credentials: Record<string, string> }>;
  const urls: TenantSandboxes["urls"] = {};
  const first: TenantSandboxes["first"] = {};
  for (const p of Object.keys(specs) as ProviderName[]) {
    urls[p] = ready[p].url;
    first[p] = {
      provider: p,
      url: ready[p].url,
      account: 0,
      id: "0",
      credentials: ready[p].credentials,
      requests: null,
      byStatus: null,
    };
  }
  return {
    pid: child.pid,
    seededMs: ready.seededMs,
    urls,
    first,
    close: child.close,
  };
}

export interface Account {
  provider: ProviderName;
  url: string;
  account: number;
  /** portalId / orgId / companyId. */
  id: string;
  credentials: Record<string, string>;
  requests: number | null;
  byStatus: Record<string, number> | null;
}

interface Listing {
  count: number;
  accounts: Omit<Account, "provider" | "url">[];
}

/** Accounts [from, from + n) of a sandbox, from its admin listing, a page at a time. */
export async function listAccounts(
  provider: ProviderName,
  url: string,
  n: number,
  from = 0,
): Promise<Account[]> {
  const out: Account[] = [];
  while (out.length < n) {
    const page = await admin(
      url,
      "GET",
      `/accounts?from=${from + out.length}&limit=${Math.min(1000, n - out.length)}`,
    ) as Listing;
    if (page.accounts.length === 0) break;
    out.push(...page.accounts.map((a) => ({ ...a, provider, url })));
  }
  if (out.length < n) throw new Error(`${provider} sandbox lists ${out.length} of ${n} accounts`);
  return out;
}

/** 429s the sandbox served to each of the given accounts (its per-account counters). */
export async function throttledByAccount(accounts: readonly Account[]): Promise<number> {
  let total = 0;
  const byUrl = Map.groupBy(accounts, (a) => `${a.provider} ${a.url}`);
  for (const group of byUrl.values()) {
    const first = Math.min(...group.map((a) => a.account));
    const last = Math.max(...group.map((a) => a.account));
    const fresh = await listAccounts(group[0].provider, group[0].url, last - first + 1, first);
    const wanted = new Set(group.map((a) => a.account));
    for (const a of fresh) if (wanted.has(a.account)) total += a.byStatus?.["429"] ?? 0;
  }
  return total;
}

export interface Registered {
  id: string;
  accountId: string;
  provider: ProviderName;
}

/**
 * One connection per sandbox account, each its own app tenant (account_id), syncing `objects`
 * at the connection's default pacing (no settings.rate_limits: the shared budget and the
 * sandboxes' real limits decide).
 */
export async function registerTenants(
  sql: postgres.Sql,
  base64Key: string,
  accounts: readonly Account[],
  objects: Partial<Record<ProviderName, string[]>>,
): Promise<Registered[]> {
  const key = await importKey(base64Key);
  const rows = accounts.map((a) => ({
    id: crypto.randomUUID(),
    account_id: crypto.randomUUID(),
    provider: a.provider,
    remote_account_id: `bench-${a.provider}-${a.id}-${a.account}`,
    name: `bench ${a.provider} account ${a.account}`,
    settings: {
      base_url: a.url,
      default_phone_region: "US",
      objects: objects[a.provider] ?? ["contacts"],
    },
  }));
  for (let i = 0; i < rows.length; i += 500) {
    const chunk = rows.slice(i, i + 500).map((r) => ({ ...r, settings: sql.json(r.settings) }));
    await sql`insert into crm.connections ${
      sql(chunk, "id", "account_id", "provider", "remote_account_id", "name", "settings")
    }`;
  }
  for (const [i, a] of accounts.entries()) {
    await storeCredentials(
      sql,
      key,
      rows[i].id,
      connectionCredentials(a.provider, a.credentials, a.url),
    );
  }
  return rows.map((r) => ({ id: r.id, accountId: r.account_id, provider: r.provider }));
}

/** Removes the bench's connections and everything they own (ON DELETE CASCADE). */
export async function dropConnections(sql: postgres.Sql, ids: readonly string[]): Promise<void> {
  await sql`delete from crm.connections where id = any(${ids as string[]}::uuid[])`;
}
