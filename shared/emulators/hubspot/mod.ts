/**
 * HubSpot CRM sandbox. `startHubSpot()` starts an emulator on a local port;
 * point `new Client({ accessToken, basePath: url })` at it.
 */
import { handleOf, type StartedEmulator } from "../common/emulator.ts";
import { HubSpotEmulator, type HubSpotOptions } from "./emulator.ts";
import type { HubSpotStore } from "./store.ts";

export { HubSpotEmulator, type HubSpotOptions } from "./emulator.ts";
export type { HubSpotStore } from "./store.ts";
export * as signature from "./signature.ts";

export type HubSpotSandbox = StartedEmulator<HubSpotStore> & { emulator: HubSpotEmulator };

export async function startHubSpot(opts: HubSpotOptions = {}): Promise<HubSpotSandbox> {
  const e = await new HubSpotEmulator(opts).start();
  return handleOf(e, e.store) as HubSpotSandbox;
}
