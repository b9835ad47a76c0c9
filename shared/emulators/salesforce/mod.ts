/**
 * Salesforce sandbox. `startSalesforce()` starts an org emulator; point
 * jsforce at it with `instanceUrl` and `loginUrl` set to `url`.
 */
import { handleOf, type StartedEmulator } from "../common/emulator.ts";
import { SalesforceEmulator, type SalesforceOptions } from "./emulator.ts";
import type { SalesforceStore } from "./store.ts";

export { SalesforceEmulator, type SalesforceOptions } from "./emulator.ts";
export type { SalesforceStore } from "./store.ts";
export { ACK_ENVELOPE } from "./outbound.ts";

export type SalesforceSandbox = StartedEmulator<SalesforceStore> & { emulator: SalesforceEmulator };

export async function startSalesforce(opts: SalesforceOptions = {}): Promise<SalesforceSandbox> {
  const e = await new SalesforceEmulator(opts).start();
  return handleOf(e, e.store) as SalesforceSandbox;
}
