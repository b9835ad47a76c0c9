// The "gateway restarted" fault's capability: the restart of the stack whose gateway
// SUPABASE_URL names (the test or the bench profile; never the development stack, whose
// gateway may run with file watching), or none when it names neither.
import { stackConfig } from "../../shared/local/config.ts";
import { restartGateway } from "../../shared/local/stack.ts";

export function gatewayRestarter(
  url = Deno.env.get("SUPABASE_URL") ?? "",
): ((hard: boolean) => Promise<void>) | undefined {
  for (const profile of ["test", "bench"] as const) {
    const cfg = stackConfig(profile);
    if (url === `http://127.0.0.1:${cfg.gatewayPort}`) {
      return (hard) => restartGateway(cfg, { hard });
    }
  }
  return undefined;
}
