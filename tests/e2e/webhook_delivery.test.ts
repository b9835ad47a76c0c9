// Webhooks delivered for real, per provider: the engine registers the connection's
// subscriptions with the sandbox (crm.register_webhooks → setup job → worker: Pipedrive's
// /v1/webhooks, HubSpot's webhooks settings API, the Salesforce listener token, which the test
// then sets as the sandbox's Outbound Message URL as an admin would in Setup); a change made in
// the sandbox is delivered by the sandbox to the gateway's crm-webhook and appears in Postgres
// within a second. Registering twice leaves one set of subscriptions. With duplicated and
// reordered deliveries and a failing first attempt (retried by the sandbox), the end state is
// that of one clean delivery: a delta afterwards finds nothing to update.
import assert from "node:assert/strict";
import { startHubSpot } from "../../shared/emulators/hubspot/mod.ts";
import { startPipedrive } from "../../shared/emulators/pipedrive/mod.ts";
import { startSalesforce } from "../../shared/emulators/salesforce/mod.ts";
import { configureSandboxOutbound, salesforceListenerUrl } from "../../shared/local/webhooks.ts";
import { type ProviderName, PROVIDERS } from "../../supabase/functions/_shared/providers/types.ts";
import { need } from "../_support/env.ts";
import { admin, connect, db, type Sandbox, type Sql, triggerSync, until } from "./_harness.ts";
import { ADMIN_OBJECT } from "./_outbound.ts";
import { freshWebhookInstance, inboxSettled } from "./_webhooks.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

const REMOTE: Record<ProviderName, string> = {
  hubspot: "HUBSPOT_PORTAL_ID",
  salesforce: "SALESFORCE_ORG_ID",
  pipedrive: "PIPEDRIVE_COMPANY_ID",
};
/** Retry delays × this: a failed first attempt is retried after 0.6 s (HubSpot), 0.3 s
 * (Salesforce), 0.15 s (Pipedrive) instead of 1 min, 30 s, 3 s. */
const TIME_SCALE: Record<ProviderName, number> = {
  hubspot: 0.01,
  salesforce: 0.01,
  pipedrive: 0.05,
};
const FIRST_NAME: Record<ProviderName, string> = {
  hubspot: "firstname",
  salesforce: "FirstName",
  pipedrive: "first_name",
};
const edit = (p: ProviderName, name: string) =>
  p === "hubspot" ? { properties: { firstname: name } } : { [FIRST_NAME[p]]: name };
const created = (p: ProviderName, n: string) =>
  p === "hubspot"
    ? { properties: { email: `rt-${n}@example.com`, firstname: n, lastname: "Realtime" } }
    : p === "salesforce"
    ? { FirstName: n, LastName: "Realtime", Email: `rt-${n}@example.com` }
    : { name: `${n} Realtime`, first_name: n, last_name: "Realtime" };
const publicBase = () => `${need("SUPABASE_URL")}/functions/v1/crm-webhook`;

interface Scope {
  sb: Sandbox;
  sql: Sql;
  conn: string;
}

/** An in-process sandbox with fast retries, and a connection routed by its real account id. */
async function withWebhookConnection(
  provider: ProviderName,
  seed: number,
  fn: (s: Scope) => Promise<void>,
) {
  const base = { port: 0, seed, records: 20, log: () => {}, timeScale: TIME_SCALE[provider] };
  const started = provider === "hubspot"
    ? await startHubSpot({ ...base, rateLimit: { tenSecondly: 100_000, searchPerSecond: 10_000 } })
    : provider === "salesforce"
    ? await startSalesforce(base)
    : await startPipedrive({ ...base, rateLimit: { burst: 100_000 } });
  const sb: Sandbox = {
    provider,
    url: started.url,
    credentials: started.credentials,
    close: () => started.close(),
  };
  const sql = db();
  const remote = sb.credentials[REMOTE[provider]];
  await sql`delete from crm.connections where provider = ${provider} and remote_account_id = ${remote}`;
  const conn = await connect(sql, sb);
  await sql`update crm.connections set remote_account_id = ${remote} where id = ${conn}`;
  try {
    await fn({ sb, sql, conn });
  } finally {
    await sql`delete from crm.connections where id = ${conn}`;
    await sql.end();
    await sb.close();
  }
}

/** crm.register_webhooks, then the setup job's outcome. */
async function register(sql: Sql, conn: string): Promise<Record<string, unknown>> {
  const [{ job }] = await sql`select crm.register_webhooks(${conn}::uuid) as job`;
  const [queued] = await sql`select webhook_setup ->> 'state' as state from crm.connections
                             where id = ${conn}`;
  assert.ok(["queued", "registered", "manual_step"].includes(queued.state), queued.state);
  let last: Record<string, unknown> = {};
  await until("the setup job finishes", async () => {
    const [j] = await sql`select state, last_error from crm.jobs where id = ${job}`;
    last = j;
    return j.state === "done" || j.state === "dead";
  }, 90_000);
  assert.equal(last.state, "done", `setup job: ${JSON.stringify(last)}`);
  const [c] = await sql`select webhook_setup from crm.connections where id = ${conn}`;
  return c.webhook_setup;
}

/** Registers (twice: the second changes nothing) and, for Salesforce, sets the sandbox's
 * Outbound Message URL to the connection's listener. */
async function registerAndPoint(s: Scope) {
  const { sb, sql, conn } = s;
  if (sb.provider === "hubspot") {
    // Start from an app without subscriptions, so the registration has to create them.
    await admin(sb.url, "PUT", "/webhooks", { targetUrl: null, subscriptions: [] });
  }
  const first = await register(sql, conn);
  const snapshot = await subscriptionsOf(s);
  const second = await register(sql, conn);
  const again = await subscriptionsOf(s);
  console.log(
    `${sb.provider}: registered ${JSON.stringify(first.action)} then ${
      JSON.stringify(second.action)
    }; ${again.length} subscription(s)`,
  );
  assert.deepEqual(again, snapshot, "registering twice leaves the same subscriptions");
  assert.equal(new Set(again).size, again.length, "no subscription twice");
  if (sb.provider === "salesforce") {
    assert.equal(first.state, "manual_step");
    assert.equal(second.token, "kept", "the token is kept");
    assert.ok(!JSON.stringify(second).includes(await token(s)), "no secret in webhook_setup");
    const url = await salesforceListenerUrl(sql, need("CRM_ENCRYPTION_KEY"), conn, publicBase());
    await configureSandboxOutbound(sb.url, url!);
  } else {
    assert.equal(first.state, "registered");
    assert.equal(first.action, "registered");
    assert.equal(second.action, "unchanged", JSON.stringify(second));
    assert.ok(again.length > 0);
  }
}

async function token(s: Scope): Promise<string> {
  const url = await salesforceListenerUrl(s.sql, need("CRM_ENCRYPTION_KEY"), s.conn, "");
  return url!.replace("/salesforce/", "");
}

/** What the sandbox would call: one string per subscription (sorted). */
async function subscriptionsOf(s: Scope): Promise<string[]> {
  const { sb, sql, conn } = s;
  if (sb.provider === "hubspot") {
    const cfg = await admin(sb.url, "GET", "/webhooks");
    assert.equal(cfg.targetUrl, `${publicBase()}/hubspot`);
    return (cfg.subscriptions as { subscriptionType: string; propertyName?: string }[])
      .map((x) => `${x.subscriptionType}:${x.propertyName ?? "*"}`).sort();
  }
  if (sb.provider === "pipedrive") {
    const cfg = await admin(sb.url, "GET", "/webhooks");
    const hooks = cfg.webhooks as {
      id: number;
      subscription_url: string;
      event_object: string;
      http_auth_user: string;
    }[];
    return hooks.filter((h) => h.subscription_url === `${publicBase()}/pipedrive`)
      .map((h) => `${h.id}:${h.event_object}:${h.http_auth_user.length}`).sort();
  }
  const [r] = await sql`select webhook_token_hash from crm.connections where id = ${conn}`;
  return [r.webhook_token_hash];
}

async function contact(sql: Sql, conn: string, id: string) {
  const [r] = await sql`select first_name, deleted_at is not null as deleted from crm.contacts
                        where connection_id = ${conn} and remote_id = ${id}`;
  return r as { first_name: string | null; deleted: boolean } | undefined;
}

/** Milliseconds from now until `check` holds (polled every 50 ms by `until`). */
async function landed(what: string, check: () => Promise<boolean>, ms = 10_000): Promise<number> {
  const t0 = performance.now();
  await until(what, check, ms);
  return Math.round(performance.now() - t0);
}

/**
 * Waits until no worker is live: the warm-up then starts from nothing (crm-webhook and a worker
 * started by the delivery). The measured changes that follow come back to back, while the
 * previous step's worker may be on its way out (it hands late jobs over as it exits,
 * _shared/jobs/worker.ts).
 */
async function noWorkerLive(sql: Sql) {
  await until(
    "no worker is live",
    async () => (await sql`select live from crm._worker_counts()`)[0].live === 0,
    90_000,
  );
}

async function liveContacts(sql: Sql, conn: string): Promise<string[]> {
  const rows = await sql`select remote_id from crm.contacts
                         where connection_id = ${conn} and deleted_at is null and kind = 'contact'
                         order by remote_id`;
  return rows.map((r) => r.remote_id as string);
}

const idOf = (r: Record<string, unknown>) =>
  String(r.id ?? r.Id ?? (r.data as Record<string, unknown> | undefined)?.id);

for (const provider of PROVIDERS) {
  const obj = ADMIN_OBJECT[provider].contacts;

  Deno.test({
    name:
      `e2e ${provider}: registered webhooks deliver sandbox changes to Postgres within a second`,
    ...opts,
    fn: async () => {
      await withWebhookConnection(provider, 61, async (s) => {
        const { sb, sql, conn } = s;
        await triggerSync(sql, "all", conn);
        await registerAndPoint(s);
        const [a, gone, warm] = await liveContacts(sql, conn);

        // Warm-up: the first delivery starts crm-webhook and a worker.
        await noWorkerLive(sql);
        await admin(sb.url, "PATCH", `/records/${obj}/${warm}`, edit(provider, "Warm"));
        await landed(
          "the warm-up change",
          async () => (await contact(sql, conn, warm))?.first_name === "Warm",
          90_000,
        );

        const times: Record<string, number> = {};
        await admin(sb.url, "PATCH", `/records/${obj}/${a}`, edit(provider, "Live"));
        times.edit = await landed(
          "the edit",
          async () => (await contact(sql, conn, a))?.first_name === "Live",
        );
        const made = await admin(sb.url, "POST", `/records/${obj}`, created(provider, "Neu"));
        times.create = await landed(
          "the created record",
          async () => (await contact(sql, conn, idOf(made))) !== undefined,
        );
        // Salesforce sends no Outbound Message on delete (the drift check finds those).
        if (provider !== "salesforce") {
          await admin(sb.url, "DELETE", `/records/${obj}/${gone}`);
          times.delete = await landed(
            "the deletion",
            async () => (await contact(sql, conn, gone))?.deleted === true,
          );
        }
        console.log(`${provider}: sandbox change to row (ms): ${JSON.stringify(times)}`);
        for (const [what, ms] of Object.entries(times)) {
          assert.ok(ms < 1_000, `${what} landed after ${ms} ms, not within a second`);
        }
        const stats = (await admin(sb.url, "GET", "/webhooks/deliveries")).stats;
        assert.equal(stats.failedAttempts, 0, JSON.stringify(stats));
      });
    },
  });

  Deno.test({
    name: `e2e ${provider}: duplicated, reordered and retried deliveries end as one clean delivery`,
    ...opts,
    fn: async () => {
      await withWebhookConnection(provider, 62, async (s) => {
        const { sb, sql, conn } = s;
        await triggerSync(sql, "all", conn);
        await registerAndPoint(s);
        const [a, b, gone, warm] = await liveContacts(sql, conn);
        await admin(sb.url, "PATCH", `/records/${obj}/${warm}`, edit(provider, "Warm"));
        await landed(
          "the warm-up change",
          async () => (await contact(sql, conn, warm))?.first_name === "Warm",
          90_000,
        );
        await admin(sb.url, "DELETE", "/webhooks/deliveries");
        await admin(sb.url, "PUT", "/faults", {
          webhookDuplicateRate: 0.5,
          webhookReorderRate: 0.5,
          webhookReorderHoldMs: 150,
          seed: 7,
        });

        // Every first attempt fails: the receiver cannot route the deliveries (401) until the
        // connection's routing key is back; the sandbox retries them.
        const [held] = await sql`select remote_account_id, webhook_token_hash, webhook_user_hash
                                 from crm.connections where id = ${conn}`;
        if (provider === "hubspot") {
          await sql`update crm.connections set remote_account_id = ${`held-${conn}`}
                    where id = ${conn}`;
        } else if (provider === "salesforce") {
          await sql`update crm.connections set webhook_token_hash = null where id = ${conn}`;
        } else {
          await sql`update crm.connections set webhook_user_hash = null where id = ${conn}`;
        }
        // A crm-webhook instance that verified this connection's route remembers it for 10 s.
        await freshWebhookInstance();
        await admin(sb.url, "PATCH", `/records/${obj}/${a}`, edit(provider, "One"));
        await admin(sb.url, "PATCH", `/records/${obj}/${a}`, edit(provider, "Two"));
        await admin(sb.url, "PATCH", `/records/${obj}/${b}`, edit(provider, "Bee"));
        const made = await admin(sb.url, "POST", `/records/${obj}`, created(provider, "Fresh"));
        if (provider !== "salesforce") await admin(sb.url, "DELETE", `/records/${obj}/${gone}`);
        await until("a first attempt failed", async () => {
          const log = await admin(sb.url, "GET", "/webhooks/deliveries");
          return (log.deliveries as { status: number | null }[]).some((d) => d.status === 401);
        }, 10_000);
        await sql`update crm.connections
                  set remote_account_id = ${held.remote_account_id},
                      webhook_token_hash = ${held.webhook_token_hash},
                      webhook_user_hash = ${held.webhook_user_hash}
                  where id = ${conn}`;

        const idle = await admin(sb.url, "POST", "/webhooks/idle", { timeoutMs: 60_000 });
        assert.equal(idle.idle, true, JSON.stringify(idle));
        await until("the inbox is drained", () => inboxSettled(sql, conn), 30_000);
        const stats = idle.stats;
        console.log(`${provider}: deliveries under faults: ${JSON.stringify(stats)}`);
        assert.ok(stats.failedAttempts >= 1, "some first attempts failed");
        assert.equal(stats.gaveUp, 0, "every delivery got through in the end");
        assert.equal(stats.dropped, 0);

        // The state of one clean delivery: the last edit wins, the new record is there, the
        // deleted one is gone, nothing is left pending or dead.
        assert.equal((await contact(sql, conn, a))?.first_name, "Two");
        assert.equal((await contact(sql, conn, b))?.first_name, "Bee");
        assert.ok(await contact(sql, conn, idOf(made)), "the created record is there");
        if (provider !== "salesforce") {
          assert.equal((await contact(sql, conn, gone))?.deleted, true);
        }
        const events = await sql`select state, count(*)::int as n from crm.webhook_events
                                 where connection_id = ${conn} group by state order by state`;
        assert.deepEqual(events.map((e) => e.state), ["done"], JSON.stringify(events));

        // And what polling would have found: a delta now has nothing to create or update.
        const delta = await triggerSync(sql, "all", conn);
        for (const run of delta.runs) {
          assert.equal(run.status, "success", JSON.stringify(run));
          assert.equal(run.created, 0, `the delta found a missed record: ${JSON.stringify(run)}`);
          assert.equal(run.updated, 0, `the delta found a missed change: ${JSON.stringify(run)}`);
        }
      });
    },
  });
}
