// `npm run try -- crm|app|show`: the three "try it" commands `npm start` prints. They edit one
// contact's job title (the sandbox connection's contact with the lowest remote id) on one side
// and watch it arrive on the other:
//   crm   as a CRM user, through the sandbox's admin API (PATCH /__admin/records/...), which
//         emits the provider's webhook as the real CRM would;
//   app   as an app user, in SQL: role authenticated with the account's JWT claims, so RLS and
//         the needs_sync trigger apply exactly as for supabase-js;
//   show  both sides every 200 ms until they agree, and how long after the edit that was.
// Each command prints what it does (the HTTP request, the SQL) so it can be done by hand.
import type postgres from "postgres";

/** Per provider: the sandbox admin API's object name and its job-title field. */
const CRM_FIELD: Record<string, { object: string; field: string }> = {
  hubspot: { object: "contacts", field: "jobtitle" },
  salesforce: { object: "Contact", field: "Title" },
  pipedrive: { object: "person", field: "job_title" },
};

export interface Demo {
  connectionId: string;
  accountId: string;
  provider: string;
  baseUrl: string;
  contactId: string;
  remoteId: string;
  name: string;
}

export interface LastEdit {
  side: "crm" | "app";
  value: string;
  at: string;
  demo: Demo;
}

/** The demo contact: the provider's sandbox connection, its live contact of lowest remote id. */
export async function findDemo(sql: postgres.Sql, provider: string): Promise<Demo> {
  if (!CRM_FIELD[provider]) throw new Error(`unknown provider ${provider}`);
  const [r] = await sql`
    select k.id::text as connection_id, k.account_id::text, k.provider,
           k.settings ->> 'base_url' as base_url, c.id::text as contact_id, c.remote_id,
           concat_ws(' ', c.first_name, c.last_name) as name
    from crm.connections k
    join crm.contacts c on c.connection_id = k.id
    where k.provider = ${provider} and k.status = 'active' and k.settings ? 'base_url'
      and c.deleted_at is null and c.remote_id is not null
    order by k.created_at, length(c.remote_id), c.remote_id
    limit 1`;
  if (!r) {
    throw new Error(`no synced ${provider} sandbox contact yet (is npm start running and synced?)`);
  }
  return {
    connectionId: r.connection_id,
    accountId: r.account_id,
    provider: r.provider,
    baseUrl: r.base_url,
    contactId: r.contact_id,
    remoteId: r.remote_id,
    name: r.name,
  };
}

function adminUrl(d: Demo): string {
  const { object } = CRM_FIELD[d.provider];
  return `${d.baseUrl}/__admin/records/${object}/${encodeURIComponent(d.remoteId)}`;
}

/** The job title the sandbox holds now. */
export async function crmValue(d: Demo, fetcher: typeof fetch = fetch): Promise<string | null> {
  const res = await fetcher(adminUrl(d), { signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`sandbox answered ${res.status} for ${adminUrl(d)}`);
  const body = await res.json() as Record<string, unknown>;
  const { field } = CRM_FIELD[d.provider];
  const props = (body.properties ?? body) as Record<string, unknown>;
  const v = props[field];
  return v == null || v === "" ? null : String(v);
}

export async function appValue(sql: postgres.Sql, d: Demo): Promise<string | null> {
  const [r] = await sql`select job_title from crm.contacts where id = ${d.contactId}::uuid`;
  return r?.job_title ?? null;
}

/** Edits the job title in the sandbox as a CRM user; returns the curl line it amounts to. */
export async function editInCrm(d: Demo, value: string, fetcher: typeof fetch = fetch) {
  const body = JSON.stringify({ [CRM_FIELD[d.provider].field]: value });
  const res = await fetcher(adminUrl(d), {
    method: "PATCH",
    headers: { "content-type": "application/json" },
    body,
    signal: AbortSignal.timeout(5000),
  });
  if (!res.ok) throw new Error(`sandbox answered ${res.status}: ${await res.text()}`);
  await res.body?.cancel();
  return `curl -X PATCH ${adminUrl(d)} -H 'content-type: application/json' -d '${body}'`;
}

/** The SQL an app user runs (as shown and as executed, with the values inline as literals). */
export function appEditSql(d: Demo, value: string, userId: string): string[] {
  const claims = JSON.stringify({
    sub: userId,
    role: "authenticated",
    app_metadata: { account_id: d.accountId },
  });
  const lit = (s: string) => `'${s.replaceAll("'", "''")}'`;
  return [
    "begin;",
    "set local role authenticated;",
    `select set_config('request.jwt.claims', ${lit(claims)}, true);`,
    `update crm.contacts set job_title = ${lit(value)} where id = ${lit(d.contactId)};`,
    "commit;",
  ];
}

export async function editInApp(sql: postgres.Sql, d: Demo, value: string, userId: string) {
  const lines = appEditSql(d, value, userId);
  // The statements between begin and commit, in one transaction of postgres.js.
  const [changed] = await sql.begin(async (tx) => {
    let last: postgres.RowList<postgres.Row[]> | null = null;
    for (const s of lines.slice(1, -1)) last = await tx.unsafe(s);
    return [last?.count ?? 0];
  });
  if (changed !== 1) throw new Error("the update changed no row (RLS or a deleted contact?)");
  return lines;
}

export interface ShowLine {
  ms: number;
  app: string | null;
  crm: string | null;
}

/** Polls both sides until they agree on `expected` (or on anything, without it); calls `on`
 * when either side changes. Resolves with the time it took, or null after `timeoutMs`. */
export async function watchBoth(o: {
  sql: postgres.Sql;
  demo: Demo;
  since: number;
  expected?: string;
  timeoutMs?: number;
  on: (l: ShowLine) => void;
  fetcher?: typeof fetch;
}): Promise<number | null> {
  let last = "";
  const until = Date.now() + (o.timeoutMs ?? 30_000);
  for (;;) {
    const [app, crm] = await Promise.all([
      appValue(o.sql, o.demo),
      crmValue(o.demo, o.fetcher),
    ]);
    const ms = Date.now() - o.since;
    const key = JSON.stringify([app, crm]);
    if (key !== last) o.on({ ms, app, crm });
    last = key;
    if (app === crm && (o.expected === undefined || app === o.expected)) return ms;
    if (Date.now() > until) return null;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The lines `npm start` shows once synced: empty without a sandbox connection to try. */
export function tryItLines(sandboxProviders: string[]): string[] {
  const provider = ["hubspot", "salesforce", "pipedrive"].find((p) => sandboxProviders.includes(p));
  if (!provider) return [];
  const flag = provider === "hubspot" ? "" : ` --provider ${provider}`;
  return [
    `try it   npm run try -- crm${flag}   edit a contact's job title in the sandbox`,
    `         npm run try -- app${flag}   edit it in SQL as an app user`,
    `         npm run try -- show${flag}  watch both sides agree`,
  ];
}
