// The bounded chaos run: 3 seeds × 150 ops per provider (one policy per seed:
// newest_wins, crm_wins, app_wins), CI faults (5xx, 429, webhook drops, duplicates, reorders; no
// hung requests, whose 30-second timeouts would dominate the run) plus the generated ones (worker
// kills, gateway restarts, statements cut, records the CRM refuses), then every shrunk regression
// list in tests/chaos/regressions replayed as it was found. See scripts/chaos/ and README.
import assert from "node:assert/strict";
import { PROVIDERS } from "../../supabase/functions/_shared/providers/types.ts";
import type { Policy } from "../../scripts/chaos/model.ts";
import { generate, type Op } from "../../scripts/chaos/ops.ts";
import { runOps, type RunOptions, type RunResult } from "../../scripts/chaos/run.ts";
import { CI_FAULTS } from "../../scripts/chaos/shrink.ts";
import { gatewayRestarter } from "../../scripts/chaos/gateway.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

function explain(r: RunResult): string {
  const lines = r.problems.map((p) => `barrier ${p.barrier} h${p.handle ?? "-"}: ${p.what}`);
  for (const [h, t] of Object.entries(r.traces)) lines.push(`h${h}:`, ...t.map((l) => `  ${l}`));
  return lines.join("\n");
}

const SEEDS: Array<[number, Policy]> = [[1, "newest_wins"], [2, "crm_wins"], [3, "app_wins"]];
// Part of `npm test`; CRM_CHAOS_SEEDS=0 leaves them out (a quick local run of the regression
// lists only).
const RUN_SEEDS = Deno.env.get("CRM_CHAOS_SEEDS") !== "0";

for (const provider of PROVIDERS) {
  for (const [seed, policy] of SEEDS) {
    Deno.test({
      name:
        `chaos ${provider} seed ${seed} ${policy}: 150 ops on both sides converge as the model says`,
      ...opts,
      ignore: !RUN_SEEDS,
      fn: async () => {
        const ops = generate({ provider, seed, ops: 150 });
        const r = await runOps(ops, {
          provider,
          policy,
          seed,
          faults: CI_FAULTS,
          pushWindow: "strict",
          restartGateway: gatewayRestarter(),
        });
        assert.ok(r.ok, explain(r));
        assert.ok(r.stats.barriers >= 2, JSON.stringify(r.stats));
      },
    });
  }
}

const dir = new URL("./regressions/", import.meta.url);
const files = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.endsWith(".json"));
for (const name of files.sort()) {
  const fx = JSON.parse(Deno.readTextFileSync(new URL(name, dir))) as {
    about: string;
    known?: string;
    options: Omit<RunOptions, "log">;
    ops: Op[];
  };
  Deno.test({
    name: `chaos regression ${name}: ${fx.about.slice(0, 80)}`,
    ...opts,
    // A fixture of a limit not fixed yet says why; it is kept so the fix can be checked.
    ignore: fx.known !== undefined,
    fn: async () => {
      // Runs three times: a race the list provokes does not fire on every run.
      for (let i = 0; i < 3; i++) {
        const r = await runOps(fx.ops, { ...fx.options, restartGateway: gatewayRestarter() });
        assert.ok(r.ok, explain(r));
      }
    },
  });
}
