// npm run chaos -- --seed S --ops N [--providers hubspot,salesforce,pipedrive]
//   [--policy newest_wins|crm_wins|app_wins|manual] [--seeds K] [--faults issue|ci|none]
//   [--shrink] [--replay file.json] [--without kind,kind]
// Runs seeded random operations on both sides of a connection on the test stack (source
// .local/test/stack.env first; see README), checks convergence and the model at every barrier,
// and on failure prints a trace per differing record and (with --shrink) a reduced op list
// written to tests/chaos/regressions/.
import { parseArgs } from "node:util";
import { parseEnv } from "../shared/local/env_file.ts";
import { type ProviderName, PROVIDERS } from "../supabase/functions/_shared/providers/types.ts";
import type { Policy } from "./chaos/model.ts";
import { generate, type Op } from "./chaos/ops.ts";
import { type Faults, ISSUE_FAULTS, runOps } from "./chaos/run.ts";
import { CI_FAULTS, shrink } from "./chaos/shrink.ts";
import { gatewayRestarter } from "./chaos/gateway.ts";

// The test stack's environment (`KEEP_TEST_STACK=1 npm test -- pgtap` leaves one up), unless
// the caller exported one. Never the development stack: the run pauses the stack's sync crons.
if (!Deno.env.get("SUPABASE_DB_URL")) {
  const file = ".local/test/stack.env";
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch {
    console.error(`no test stack (${file}): run KEEP_TEST_STACK=1 npm test -- pgtap first`);
    Deno.exit(2);
  }
  for (const [k, v] of Object.entries(parseEnv(text))) Deno.env.set(k, v);
}

const { values: a } = parseArgs({
  args: Deno.args,
  options: {
    seed: { type: "string", default: "1" },
    seeds: { type: "string", default: "1" },
    ops: { type: "string", default: "200" },
    providers: { type: "string", default: PROVIDERS.join(",") },
    policy: { type: "string", default: "newest_wins" },
    faults: { type: "string", default: "issue" },
    shrink: { type: "boolean", default: false },
    replay: { type: "string" },
    "push-window": { type: "string", default: "strict" },
    // Drops these op kinds from the generated lists (a sub-list is a valid list), e.g. to look
    // past a known finding: --without app_assoc.
    without: { type: "string", default: "" },
  },
});

const providers = a.providers!.split(",") as ProviderName[];
const policies = a.policy!.split(",") as Policy[];
const faults: Faults = a.faults === "none"
  ? {
    error5xxRate: 0,
    rate429: 0,
    hangRate: 0,
    webhookDropRate: 0,
    webhookDuplicateRate: 0,
    webhookReorderRate: 0,
  }
  : a.faults === "ci"
  ? CI_FAULTS
  : ISSUE_FAULTS;
const restartGateway = gatewayRestarter();
if (!restartGateway) console.error("chaos: not the test stack's gateway: no gateway restarts");
const seed0 = Number(a.seed);
let failed = 0;
for (let s = seed0; s < seed0 + Number(a.seeds); s++) {
  for (const provider of providers) {
    for (const policy of policies) {
      let ops: Op[];
      let opts = {
        provider,
        policy,
        seed: s,
        faults,
        pushWindow: a["push-window"] as "strict" | "known",
      };
      if (a.replay) {
        const fx = JSON.parse(await Deno.readTextFile(a.replay));
        ops = fx.ops;
        opts = { ...opts, ...fx.options };
      } else ops = generate({ provider, seed: s, ops: Number(a.ops) });
      const without = new Set(a.without!.split(",").filter(Boolean));
      ops = ops.filter((op) => !without.has(op.k));
      const r = await runOps(ops, { ...opts, restartGateway, log: (l) => console.error(l) });
      const st = r.stats;
      console.log(
        `seed ${opts.seed} ${opts.provider} ${opts.policy}: ${
          r.ok ? "clean" : `${r.problems.length} problems`
        } ` +
          `(${st.ops} ops, ${st.barriers} barriers, ${st.records} records, ${st.conflicts} ` +
          `conflicts, ${st.raced} push-window races (${st.inFlight} in flight), ` +
          `${st.apiCalls} API calls, ` +
          `${(st.ms / 1000).toFixed(1)} s)`,
      );
      const q = [...st.quiesceMs].sort((x, y) => x - y);
      console.log(
        `  figures: ${(st.ops / (st.opsMs / 1000)).toFixed(1)} ops/s while faults ran; ` +
          `convergence after quiesce median ${q[q.length >> 1]} ms, max ${q[q.length - 1]} ms; ` +
          `${(st.apiCalls / st.ops).toFixed(2)} CRM API calls per op`,
      );
      console.log(
        `  faults: ${st.gatewayRestarts} gateway restarts; ${st.pgDropped.length} engine ` +
          `statements cut (${st.pgMissed} drops found none running); ${st.refusedDead} dead ` +
          `letters of refused records`,
      );
      for (const q of st.pgDropped) console.error(`  cut: ${q}`);
      if (r.ok) continue;
      failed++;
      for (const p of r.problems) {
        console.log(`  barrier ${p.barrier}${p.handle ? ` h${p.handle}` : ""}: ${p.what}`);
      }
      for (const [h, lines] of Object.entries(r.traces)) {
        console.log(`  trace h${h}:`);
        for (const l of lines) console.log(`    ${l}`);
      }
      if (a.shrink) {
        const small = await shrink(ops, { ...opts, restartGateway }, (l) => console.error(l));
        const file =
          `tests/chaos/regressions/${opts.provider}-${opts.policy}-seed${opts.seed}.json`;
        await Deno.mkdir("tests/chaos/regressions", { recursive: true });
        await Deno.writeTextFile(
          file,
          JSON.stringify({ options: opts, ops: small }, null, 1) + "\n",
        );
        console.log(`  shrunk to ${small.length} ops: ${file}`);
      }
    }
  }
}
console.log(failed ? `chaos: ${failed} failing runs` : "chaos: all runs clean");
Deno.exit(failed ? 1 : 0);
