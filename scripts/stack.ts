// npm run stack:up | stack:down | start — thin entry point over shared/local/stack.ts.
import { stackConfig } from "../shared/local/config.ts";
import { down, up } from "../shared/local/stack.ts";
import { runStatusView } from "../shared/local/status_view.ts";

const cfg = stackConfig("dev");
const cmd = Deno.args[0];

switch (cmd) {
  case "up": {
    await up(cfg, { watch: true });
    console.log(`stack is up; connection details in ${cfg.envFile}`);
    break;
  }
  case "reset": {
    // Throws the local database away and rebuilds it from the migrations.
    await down(cfg);
    await Deno.remove(cfg.pgDir, { recursive: true }).catch(() => {});
    await up(cfg, { watch: true });
    console.log("stack was reset");
    break;
  }
  case "down":
    await down(cfg);
    console.log("stack is down");
    break;
  case "start": {
    const env = await up(cfg, { watch: true });
    let stopping = false;
    const stop = async () => {
      if (stopping) return;
      stopping = true;
      console.log("\nstopping…");
      await down(cfg);
      Deno.exit(0);
    };
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
    await runStatusView(cfg, env);
    break;
  }
  default:
    console.error("usage: stack.ts up|down|reset|start");
    Deno.exit(2);
}
