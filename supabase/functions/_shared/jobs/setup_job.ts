// The handler of setup jobs (one per connection, lane 20). Payload {webhooks: true}: register
// the connection's webhook subscriptions (../webhooks/subscribe.ts), enqueued by
// crm.register_webhooks (admins, crm-connect, the local stack). The outcome is written to
// crm.connections.webhook_setup and the job's details (secrets masked), and turned into the
// job's:
//   registered / already in place / Salesforce token ready   → done
//   the configuration is missing (public URL, HubSpot app),  → dead (an admin fixes it, then
//   or the CRM refused the request itself (4xx)                calls crm.register_webhooks again)
//   the CRM refused the connection's credentials             → dead, connection in status error
//   the connection's rate budget is paused                   → deferred until it reopens
//   anything else (timeouts, 5xx, network)                   → retry with the queue's backoff
import type { Sql } from "../db.ts";
import { ProviderError } from "../providers/types.ts";
import { errorMessage, recordFailure } from "../sync/connections.ts";
import type { Logger } from "../sync/context.ts";
import { storeWebhookSecrets } from "../webhooks/credentials.ts";
import type { Env } from "../webhooks/public_url.ts";
import { registerWebhooks, SubscribeConfigError } from "../webhooks/subscribe.ts";
import type { ContextCache } from "./contexts.ts";
import type { Job } from "./queue.ts";
import type { JobBudget, JobHandler, JobOutcome } from "./worker.ts";

export interface SetupDeps {
  sql: Sql;
  contexts: ContextCache;
  key: CryptoKey;
  log: Logger;
  env?: Env;
}

async function recordSetup(sql: Sql, connectionId: string, outcome: Record<string, unknown>) {
  await sql`
    update crm.connections
    set webhook_setup = ${sql.json({ ...outcome, at: new Date().toISOString() } as never)}::jsonb
    where id = ${connectionId}`;
}

/** What kind of failure the admin is looking at (webhook_setup.reason). */
export function failureReason(e: unknown): string {
  if (e instanceof SubscribeConfigError) return "configuration";
  if (e instanceof ProviderError) {
    if (e.action === "revoked") return "credentials_refused";
    if (e.action === "fatal") return "refused_by_crm";
    if (e.pausedUntil) return "rate_budget_paused";
  }
  return "transient";
}

export function setupJobHandler(d: SetupDeps): JobHandler {
  const env = d.env ?? ((name: string) => Deno.env.get(name));
  return async (job: Job, budget: JobBudget): Promise<JobOutcome> => {
    if (job.payload.webhooks !== true) {
      return { outcome: "done", details: { skipped: "nothing to set up in this job's payload" } };
    }
    const ctx = await d.contexts.get(job.connectionId, "delta");
    if (typeof ctx === "string") {
      await recordSetup(d.sql, job.connectionId, { state: "failed", error: ctx });
      return { outcome: "dead", error: ctx };
    }
    const provider = ctx.conn.provider;
    try {
      const r = await registerWebhooks({
        conn: ctx.conn,
        budget: { beforeRequest: ctx.budget.beforeRequest, observe: ctx.budget.observe },
        fields: ctx.mapper.fields(),
        env,
        storeSecrets: async (patch) => {
          // The cached context sees the new secrets too (a later token refresh of this worker
          // merges into them rather than over them).
          ctx.conn.credentials = await storeWebhookSecrets(d.sql, d.key, ctx.conn.id, patch);
        },
        log: (msg, extra) =>
          d.log(msg, { connection_id: ctx.conn.id, provider, job_id: job.id, ...extra }),
        deadline: budget.deadline,
      });
      const details = {
        provider,
        action: r.action,
        endpoint: r.shown ?? r.endpoint,
        ...r.details,
      };
      await recordSetup(d.sql, job.connectionId, {
        state: r.action === "manual" ? "manual_step" : "registered",
        ...details,
      });
      return { outcome: "done", details };
    } catch (e) {
      // Secret-free: errorMessage redacts query secrets, and the requests rethrow transport
      // failures without their URL's query (http/redact.ts). `reason` classifies it.
      const error = errorMessage(e);
      const failed = (extra: Record<string, unknown> = {}) =>
        recordSetup(d.sql, job.connectionId, {
          state: "failed",
          provider,
          reason: failureReason(e),
          error,
          attempt: job.attempts + 1,
          ...extra,
        });
      if (e instanceof SubscribeConfigError) {
        await failed({ fix: "configuration" });
        return { outcome: "dead", error };
      }
      if (e instanceof ProviderError && e.action === "revoked") {
        const f = await recordFailure(d.sql, ctx.conn, e);
        await failed({ revoked: true });
        return { outcome: "dead", error: f.message };
      }
      // A refusal other than the credentials' (a bad request, the CRM's webhook limit, the
      // app's developer key): retrying the same request cannot help.
      if (e instanceof ProviderError && e.action === "fatal") {
        await failed();
        return { outcome: "dead", error };
      }
      if (e instanceof ProviderError && e.pausedUntil) {
        return { outcome: "defer", until: new Date(e.pausedUntil), reason: error };
      }
      await failed();
      return { outcome: "retry", error };
    }
  };
}
