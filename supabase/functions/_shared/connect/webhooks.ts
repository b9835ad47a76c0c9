// The disconnect's webhook step: loads the account's connection (its API base and decrypted
// credentials) and removes its webhook subscriptions where the provider allows it
// (../webhooks/unsubscribe.ts), on the connection's rate budget. A failure (the CRM down, the
// credentials already refused) does not stop the disconnect: it is reported in the answer, and
// the routes are cleared by crm.disconnect_connection whatever happens here, so leftover
// webhooks are answered 401 and stored nowhere.
import { createBudgetGate } from "../sync/budget.ts";
import { errorMessage, loadConnections } from "../sync/connections.ts";
import type { ProviderName } from "../providers/types.ts";
import { type UnsubscribeResult, unsubscribeWebhooks } from "../webhooks/unsubscribe.ts";
import type { ConnectDeps } from "./handler.ts";

/** The longest the disconnect spends on webhook removal (each call has cfg.timeoutMs too). */
export const REMOVE_WEBHOOKS_BUDGET_MS = 20_000;

export type RemoveResult = Omit<UnsubscribeResult, "action"> & {
  action: UnsubscribeResult["action"] | "failed" | "none";
};

export async function removeWebhooks(
  d: Pick<ConnectDeps, "sql" | "key" | "cfg" | "log" | "webhookBase">,
  accountId: string,
  connectionId: string,
  provider: ProviderName,
): Promise<RemoveResult> {
  const { connections } = await loadConnections(d.sql, d.key, {
    connectionId,
    accountId,
    activeOnly: false,
  });
  const conn = connections[0];
  if (!conn) {
    // No usable credentials: already disconnected (its webhooks went then), or never stored.
    return {
      action: "none",
      removed: [],
      note: "no credentials stored (already disconnected): nothing to remove",
    };
  }
  const log = (msg: string, extra?: Record<string, unknown>) =>
    d.log(msg, { connection_id: connectionId, provider, ...extra });
  const budget = createBudgetGate(d.sql, conn, { lane: "interactive", log });
  try {
    return await unsubscribeWebhooks({
      provider,
      baseUrl: conn.baseUrl,
      credentials: conn.credentials,
      publicBase: d.webhookBase,
      budget: { beforeRequest: budget.beforeRequest, observe: budget.observe },
      log,
      timeoutMs: d.cfg.timeoutMs,
      deadline: Date.now() + REMOVE_WEBHOOKS_BUDGET_MS,
    });
  } catch (e) {
    const error = errorMessage(e).slice(0, 200);
    log("webhook removal failed", { error });
    return {
      action: "failed",
      removed: [],
      note: `the webhooks could not be removed (${error}); delete them in the CRM`,
    };
  } finally {
    await budget.flush().catch(() => {});
  }
}
