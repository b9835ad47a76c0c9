/**
 * Pipedrive sandbox. `startPipedrive()` starts a company emulator; point the
 * SDK at it with `new Configuration({ apiKey, basePath: url + "/api/v2" })`
 * (v1 endpoints: `basePath: url + "/v1"`).
 */
import { handleOf, type StartedEmulator } from "../common/emulator.ts";
import { PipedriveEmulator, type PipedriveOptions } from "./emulator.ts";
import type { PipedriveStore } from "./store.ts";

export { PipedriveEmulator, type PipedriveOptions } from "./emulator.ts";
export type { PipedriveStore } from "./store.ts";

export type PipedriveSandbox = StartedEmulator<PipedriveStore> & { emulator: PipedriveEmulator };

export async function startPipedrive(opts: PipedriveOptions = {}): Promise<PipedriveSandbox> {
  const e = await new PipedriveEmulator(opts).start();
  return handleOf(e, e.store) as PipedriveSandbox;
}
