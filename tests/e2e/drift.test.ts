// The drift check end to end, per provider: after a sync, records change, appear and disappear
// in the sandbox without any webhook reaching us; an inbound job of mode drift (what the hourly
// cron crm-drift-check enqueues) lists only ids and modification times, fetches only what
// differs, confirms the deletions by id, and reports it in sync_log (mode drift). Unchanged
// records are never read again. Then the same with webhooks delivering from the sandbox to
// crm-webhook through the gateway, 30 % of the deliveries dropped: the drift check repairs every
// dropped change and fetches nothing the webhooks had delivered.
import assert from "node:assert/strict";
import { type ProviderName, PROVIDERS } from "../../supabase/functions/_shared/providers/types.ts";
import { connectionCredentials } from "../../shared/local/connections.ts";
import type { Sql as EngineSql } from "../../supabase/functions/_shared/db.ts";
import { loadConnections } from "../../supabase/functions/_shared/sync/connections.ts";
import { createSyncContext } from "../../supabase/functions/_shared/sync/context.ts";
import { type DriftSummary, runDrift } from "../../supabase/functions/_shared/sync/drift.ts";
import { encryptJson, importKey } from "../../supabase/functions/_shared/crypto.ts";
import { sha256Hex } from "../../supabase/functions/_shared/webhooks/limits.ts";
import { need } from "../_support/env.ts";
import {
  admin,
  awaitJobs,
  cleanup,
  db,
  type Sandbox,
  type Sql,
  startSandbox,
  triggerSync,
  until,
  withConnection,
} from "./_harness.ts";
import { ADMIN_OBJECT } from "./_outbound.ts";
import { hookUrl, inboxSettled, randomSecret } from "./_webhooks.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

const edit = (p: ProviderName, name: string) =>
  p === "hubspot"
    ? { properties: { firstname: name } }
    : p === "salesforce"
    ? { FirstName: name }
    : { first_name: name };

const create = (p: ProviderName, n: number) =>
  p === "hubspot"
    ? { properties: { firstname: `New${n}`, lastname: "Drift", email: `drift${n}@example.com` } }
    : p === "salesforce"
    ? { FirstName: `New${n}`, LastName: "Drift", Email: `drift${n}@example.com` }
    : {
      name: `New${n} Drift`,
      first_name: `New${n}`,
      last_name: "Drift",
      emails: [{ value: `drift${n}@example.com`, primary: true, label: "work" }],
    };

/** The routes that read records by id (the repair), per provider. */
const READ_BY_ID: Record<ProviderName, (route: string) => boolean> = {
  hubspot: (r) => r === "POST /crm/v3/objects/:objectType/batch/read",
  salesforce: () => false,
  pipedrive: () => false,
};

async function counters(url: string): Promise<Record<string, number>> {
  const c = await admin(url, "GET", "/counters") as { routes: Record<string, { total: number }> };
  return Object.fromEntries(Object.entries(c.routes).map(([k, v]) => [k, v.total]));
}

async function drift(sql: Sql, conn: string) {
  const [{ t0 }] = await sql`select clock_timestamp() as t0`;
  const [{ n }] = await sql`select crm.enqueue_inbound(array['contacts'], 'drift', ${conn}::uuid,
                                                       'manual') as n`;
  assert.ok(Number(n) > 0, "no drift job was queued");
  await awaitJobs(sql, conn, t0);
  return await sql`select id, status, mode, trigger, details, updated, created, deleted
                   from crm.sync_log
                   where connection_id = ${conn} and direction = 'inbound' and mode = 'drift'
                     and started_at >= ${t0}
                   order by id`;
}

for (const provider of PROVIDERS) {
  Deno.test({
    name: `e2e ${provider}: the drift check repairs only what differs, and says so in sync_log`,
    ...opts,
    fn: async () => {
      await withConnection(
        provider,
        { seed: 83, records: 60, unlimited: true },
        async ({ sb, sql, conn }) => {
          await triggerSync(sql, "contacts", conn);
          const obj = ADMIN_OBJECT[provider].contacts;
          const rows = await sql`select remote_id from crm.contacts
                                 where connection_id = ${conn} and deleted_at is null
                                   and kind = 'contact' order by remote_id`;
          const ids = rows.map((r) => r.remote_id as string);
          assert.ok(ids.length >= 20);
          const [{ live }] = await sql`select count(*)::int as live from crm.contacts
                                       where connection_id = ${conn} and deleted_at is null`;

          // A clean check first: nothing differs, nothing is fetched.
          await admin(sb.url, "DELETE", "/counters");
          const clean = await drift(sql, conn);
          assert.equal(clean.length, 1, JSON.stringify(clean));
          assert.equal(clean[0].status, "success", JSON.stringify(clean[0]));
          const d0 = clean[0].details.drift;
          assert.equal(d0.compared, live, JSON.stringify(d0));
          assert.deepEqual(
            [d0.missing, d0.stale, d0.tombstoned, d0.fetched, d0.candidates, d0.deleted],
            [0, 0, 0, 0, 0, 0],
            JSON.stringify(d0),
          );
          const c0 = await counters(sb.url);
          for (const [route, n] of Object.entries(c0)) {
            assert.ok(!READ_BY_ID[provider](route) || n === 0, `${route} read ${n} records`);
          }

          // Changes no webhook reported: 3 edits, 2 creations, 2 deletions.
          const edited = ids.slice(0, 3);
          const gone = ids.slice(5, 7);
          for (const [i, id] of edited.entries()) {
            await admin(sb.url, "PATCH", `/records/${obj}/${id}`, edit(provider, `Drifted${i}`));
          }
          const made: string[] = [];
          for (const n of [1, 2]) {
            const r = await admin(sb.url, "POST", `/records/${obj}`, create(provider, n));
            made.push(String(r.id ?? r.Id));
          }
          for (const id of gone) await admin(sb.url, "DELETE", `/records/${obj}/${id}`);

          await admin(sb.url, "DELETE", "/counters");
          const runs = await drift(sql, conn);
          assert.equal(runs.length, 1, JSON.stringify(runs));
          const run = runs[0];
          assert.equal(run.status, "success", JSON.stringify(run));
          assert.equal(run.mode, "drift");
          assert.equal(run.trigger, "manual");
          const d = run.details.drift;
          assert.equal(d.stale, 3, JSON.stringify(d));
          assert.equal(d.missing, 2, JSON.stringify(d));
          assert.equal(d.candidates, 2, JSON.stringify(d));
          assert.equal(d.deleted, 2, JSON.stringify(d));
          // Fetched: the 5 differing records, plus the candidates' reads (none found).
          assert.equal(d.fetched, 5, JSON.stringify(d));
          assert.ok(d.api_calls > 0 && d.bytes > 0, JSON.stringify(d));
          assert.deepEqual(run.details.drift_walk.stale, 3);
          assert.equal(Number(run.updated), 3);
          assert.equal(Number(run.created), 2);
          assert.equal(Number(run.deleted), 2);
          if (provider === "hubspot") {
            // One batch read for the 5 differing records, one for the 2 candidates.
            const c = await counters(sb.url);
            assert.equal(c["POST /crm/v3/objects/:objectType/batch/read"], 2, JSON.stringify(c));
          }

          const state = await sql`select remote_id, first_name, deleted_at is not null as deleted
                                  from crm.contacts where connection_id = ${conn}
                                    and remote_id = any(${[...edited, ...made, ...gone]})
                                  order by remote_id`;
          const by = new Map(state.map((r) => [r.remote_id as string, r]));
          edited.forEach((id, i) => assert.equal(by.get(id)?.first_name, `Drifted${i}`));
          made.forEach((id) => assert.equal(by.get(id)?.deleted, false, `created ${id}`));
          gone.forEach((id) => assert.equal(by.get(id)?.deleted, true, `deleted ${id}`));
          // The walk's staging is gone once it finished.
          const [{ seen, walks }] = await sql`
            select (select count(*)::int from crm.drift_seen where connection_id = ${conn}) as seen,
                   (select count(*)::int from crm.drift_walks where connection_id = ${conn}) as walks`;
          assert.deepEqual([seen, walks], [0, 0]);

          // Repaired: the next check finds nothing.
          const again = await drift(sql, conn);
          const d2 = again[0].details.drift;
          assert.deepEqual(
            [d2.missing, d2.stale, d2.tombstoned, d2.fetched, d2.deleted],
            [0, 0, 0, 0, 0],
            JSON.stringify(d2),
          );
        },
      );
    },
  });
}

/** The remote account webhooks are routed by, per provider. */
const ACCOUNT: Record<ProviderName, string> = {
  hubspot: "HUBSPOT_PORTAL_ID",
  salesforce: "SALESFORCE_ORG_ID",
  pipedrive: "PIPEDRIVE_COMPANY_ID",
};

/**
 * A connection that syncs from the sandbox and receives its webhooks (credentials set up as
 * _webhooks.ts webhookConnection does), and the sandbox's deliveries pointed at crm-webhook
 * through its admin API, dropping `dropRate` of them. A connection of the same remote account
 * left by an earlier run is removed first.
 */
async function hookedConnection(sql: Sql, sb: Sandbox, dropRate: number): Promise<string> {
  const p = sb.provider;
  const account = sb.credentials[ACCOUNT[p]];
  await sql`delete from crm.connections where provider = ${p} and remote_account_id = ${account}`;
  const token = randomSecret();
  const user = `crm-${randomSecret(8)}`;
  const password = randomSecret();
  const hook: Record<string, string> = p === "hubspot"
    ? { webhook_secret: sb.credentials.HUBSPOT_CLIENT_SECRET }
    : p === "salesforce"
    ? { webhook_token: token }
    : { webhook_user: user, webhook_password: password };
  const credentials = { ...connectionCredentials(p, { ...sb.credentials }, sb.url), ...hook };
  const key = await importKey(need("CRM_ENCRYPTION_KEY"));
  const id = crypto.randomUUID();
  const stored = await encryptJson(key, credentials, id);
  const settings = { base_url: sb.url, default_phone_region: "US" };
  await sql`
    insert into crm.connections (id, account_id, provider, remote_account_id, name, settings,
                                 credentials, webhook_token_hash, webhook_user_hash)
    values (${id}, ${crypto.randomUUID()}, ${p}, ${account}, ${`drift ${p}`},
            ${sql.json(settings as never)}, convert_to(${stored}, 'UTF8'),
            ${hook.webhook_token ? await sha256Hex(hook.webhook_token) : null},
            ${hook.webhook_user ? await sha256Hex(hook.webhook_user) : null})`;
  if (p === "hubspot") {
    await admin(sb.url, "PUT", "/webhooks", { targetUrl: hookUrl("/hubspot") });
  } else if (p === "salesforce") {
    await admin(sb.url, "PUT", "/outbound", {
      url: hookUrl(`/salesforce/${token}`),
      objects: ["Contact"],
    });
  } else {
    await admin(sb.url, "PUT", "/webhooks", {
      url: hookUrl("/pipedrive"),
      httpAuthUser: user,
      httpAuthPassword: password,
    });
  }
  await admin(sb.url, "PUT", "/faults", { webhookDropRate: dropRate, seed: 1313 });
  return id;
}

for (const provider of PROVIDERS) {
  Deno.test({
    name: `e2e ${provider}: with 30 % of webhook deliveries dropped, the drift check repairs ` +
      "every dropped change and nothing else",
    ...opts,
    fn: async () => {
      const sb = await startSandbox(provider, { seed: 97, records: 40, unlimited: true });
      const sql = db();
      let conn: string | null = null;
      try {
        conn = await hookedConnection(sql, sb, 0.3);
        await triggerSync(sql, "contacts", conn);
        const obj = ADMIN_OBJECT[provider].contacts;
        const rows = await sql`select remote_id from crm.contacts
                               where connection_id = ${conn} and deleted_at is null
                                 and kind = 'contact' order by remote_id`;
        const ids = rows.map((r) => r.remote_id as string);
        assert.ok(ids.length >= 24);

        // 12 edits, 4 creations, 4 deletions, each delivered (or not) by the sandbox.
        const edited = ids.slice(0, 12);
        const gone = ids.slice(14, 18);
        for (const [i, id] of edited.entries()) {
          await admin(sb.url, "PATCH", `/records/${obj}/${id}`, edit(provider, `Hooked${i}`));
        }
        const made: string[] = [];
        for (const n of [11, 12, 13, 14]) {
          const r = await admin(sb.url, "POST", `/records/${obj}`, create(provider, n));
          made.push(String(r.id ?? r.Id));
        }
        for (const id of gone) await admin(sb.url, "DELETE", `/records/${obj}/${id}`);
        await admin(sb.url, "POST", "/webhooks/idle", { timeoutMs: 30_000 });
        await until("the delivered webhooks are processed", () => inboxSettled(sql, conn!), 60_000);

        // What the webhooks did not bring.
        const before = await sql`select remote_id, first_name, deleted_at is not null as deleted
                                 from crm.contacts where connection_id = ${conn}
                                   and remote_id = any(${[...edited, ...made, ...gone]})`;
        const row = new Map(before.map((r) => [r.remote_id as string, r]));
        const staleIds = edited.filter((id, i) => row.get(id)?.first_name !== `Hooked${i}`);
        const missingIds = made.filter((id) => !row.has(id));
        const liveGone = gone.filter((id) => row.get(id) && !row.get(id)!.deleted);
        const dropped = staleIds.length + missingIds.length + liveGone.length;
        assert.ok(dropped > 0, "no change was lost: the drop rate did not bite");
        assert.ok(
          dropped < edited.length + made.length + gone.length,
          "every change was lost: no webhook arrived",
        );

        const reads0 = await counters(sb.url);
        const runs = await drift(sql, conn);
        assert.equal(runs.length, 1, JSON.stringify(runs));
        assert.equal(runs[0].status, "success", JSON.stringify(runs[0]));
        const d = runs[0].details.drift;
        assert.equal(d.stale, staleIds.length, JSON.stringify({ d, staleIds }));
        assert.equal(d.missing, missingIds.length, JSON.stringify({ d, missingIds }));
        assert.equal(d.deleted, liveGone.length, JSON.stringify({ d, liveGone }));
        // Only the records the webhooks missed were fetched.
        assert.equal(d.fetched, staleIds.length + missingIds.length, JSON.stringify(d));
        if (provider === "hubspot") {
          const c = await counters(sb.url);
          const route = "POST /crm/v3/objects/:objectType/batch/read";
          const reads = (c[route] ?? 0) - (reads0[route] ?? 0);
          assert.equal(
            reads,
            (staleIds.length + missingIds.length ? 1 : 0) + (liveGone.length ? 1 : 0),
          );
        }

        const after = await sql`select remote_id, first_name, deleted_at is not null as deleted
                                from crm.contacts where connection_id = ${conn}
                                  and remote_id = any(${[...edited, ...made, ...gone]})`;
        const now = new Map(after.map((r) => [r.remote_id as string, r]));
        edited.forEach((id, i) => assert.equal(now.get(id)?.first_name, `Hooked${i}`, id));
        made.forEach((id) => assert.equal(now.get(id)?.deleted, false, `created ${id}`));
        gone.forEach((id) => assert.equal(now.get(id)?.deleted, true, `deleted ${id}`));
      } finally {
        await admin(sb.url, "DELETE", "/faults").catch(() => {});
        if (conn) await cleanup(sql, conn);
        await sql.end();
        await sb.close();
      }
    },
  });
}

Deno.test({
  name: "e2e hubspot: a drift check cut at its budget after every page resumes where it stopped",
  ...opts,
  fn: async () => {
    await withConnection(
      "hubspot",
      { seed: 89, records: 450, unlimited: true },
      async ({ sb, sql, conn }) => {
        await triggerSync(sql, "contacts", conn);
        const ids = (await sql`select remote_id from crm.contacts
                               where connection_id = ${conn} and deleted_at is null
                               order by remote_id`).map((r) => r.remote_id as string);
        const [{ live }] = await sql`select count(*)::int as live from crm.contacts
                                     where connection_id = ${conn} and deleted_at is null`;
        // Changes on the first and the last pages, and one deletion.
        await admin(sb.url, "PATCH", `/records/contacts/${ids[1]}`, edit("hubspot", "Early"));
        await admin(sb.url, "PATCH", `/records/contacts/${ids.at(-2)}`, edit("hubspot", "Late"));
        await admin(sb.url, "DELETE", `/records/contacts/${ids[200]}`);

        const key = await importKey(need("CRM_ENCRYPTION_KEY"));
        const { connections } = await loadConnections(sql as unknown as EngineSql, key, {
          connectionId: conn,
        });
        const runs: DriftSummary[] = [];
        for (let i = 0; i < 20; i++) {
          // A new context per run, as a new worker request has: nothing carried in memory.
          const ctx = await createSyncContext(
            sql as unknown as EngineSql,
            key,
            connections[0],
            () => {},
            { lane: "backfill" },
          );
          // The CPU budget runs out as soon as this run made one CRM call.
          const calls0 = ctx.calls();
          const r = await runDrift(sql as unknown as EngineSql, ctx, {
            object: "contacts",
            trigger: "manual",
            deadline: Date.now() + 60_000,
            cpuLeftMs: () => (ctx.calls() > calls0 ? 0 : 1),
            pageSize: 100,
          });
          runs.push(r);
          assert.equal(r.status, "success", JSON.stringify(r));
          if (!r.more) break;
        }
        assert.ok(runs.length >= 5, `${runs.length} runs: the budget did not cut the walk`);
        const walk = runs.at(-1)!.drift_walk!;
        assert.equal(walk.compared, live - 1, JSON.stringify(walk));
        assert.equal(walk.stale, 2, JSON.stringify(walk));
        assert.equal(walk.deleted, 1, JSON.stringify(walk));
        assert.equal(walk.fetched, 2, JSON.stringify(walk));
        assert.equal(
          runs.reduce((n, r) => n + r.drift.compared, 0),
          live - 1,
          "a page compared twice or skipped",
        );
        const rows = await sql`select remote_id, first_name, deleted_at is not null as deleted
                               from crm.contacts where connection_id = ${conn}
                                 and remote_id = any(${[ids[1], ids.at(-2)!, ids[200]]})`;
        const by = new Map(rows.map((r) => [r.remote_id as string, r]));
        assert.equal(by.get(ids[1])?.first_name, "Early");
        assert.equal(by.get(ids.at(-2)!)?.first_name, "Late");
        assert.equal(by.get(ids[200])?.deleted, true);
        const logged = await sql`select count(*)::int as n from crm.sync_log
                                 where connection_id = ${conn} and mode = 'drift'
                                   and status = 'success'`;
        assert.equal(logged[0].n, runs.length, "one sync_log row per run");
      },
    );
  },
});
