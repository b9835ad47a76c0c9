// The chaos part (issue 15): the long version of the convergence harness (scripts/chaos/) on
// the bench stack, N seeded operations per provider on both sides with the issue's faults
// (5xx, 429, hung requests, webhook drops/duplicates/reorders, worker kills, gateway restarts,
// connections cut mid-statement, records that refuse writes), barriers as the generator places
// them. Figures per provider: operations/s while the faults ran (barriers excluded),
// convergence time after quiesce (faults off → the engine drained, a delta and a drift check
// run → both sides compared; median and max over the barriers), CRM API calls per operation
// (the sandbox's own count), and whether every barrier converged as the model says.
import { gatewayRestarter } from "../chaos/gateway.ts";
import type { Policy } from "../chaos/model.ts";
import { generate } from "../chaos/ops.ts";
import { type Faults, ISSUE_FAULTS, runOps, type RunResult } from "../chaos/run.ts";
import { CI_FAULTS } from "../chaos/shrink.ts";
import { need } from "../../tests/_support/env.ts";
import type { ProviderName } from "../../supabase/functions/_shared/providers/types.ts";

export interface ChaosBenchOptions {
  providers: ProviderName[];
  ops: number;
  seed: number;
  policy: Policy;
  faults: "issue" | "ci";
}

export interface ChaosBenchStack {
  url: string;
  dbUrl: string;
  encryptionKey: string;
}

export interface ChaosBenchResult {
  provider: ProviderName;
  /** The run, or why it could not finish (the other providers still run). */
  result: RunResult | { error: string };
}

export async function runChaosPart(
  stack: ChaosBenchStack,
  o: ChaosBenchOptions,
  log: (l: string) => void,
): Promise<ChaosBenchResult[]> {
  // The harness reads the stack from the environment, as on the test stack.
  Deno.env.set("SUPABASE_URL", stack.url);
  Deno.env.set("SUPABASE_DB_URL", stack.dbUrl);
  Deno.env.set("CRM_ENCRYPTION_KEY", stack.encryptionKey);
  // The harness's env is read once per process: it must be this stack's.
  if (need("SUPABASE_DB_URL") !== stack.dbUrl) throw new Error("the harness sees another stack");
  const faults: Faults = o.faults === "ci" ? CI_FAULTS : ISSUE_FAULTS;
  const out: ChaosBenchResult[] = [];
  for (const provider of o.providers) {
    const ops = generate({ provider, seed: o.seed, ops: o.ops });
    log(`${provider}: ${ops.length} ops, seed ${o.seed}, ${o.policy}, ${o.faults} faults`);
    try {
      const result = await runOps(ops, {
        provider,
        policy: o.policy,
        seed: o.seed,
        faults,
        pushWindow: "known",
        restartGateway: gatewayRestarter(stack.url),
        keepGoing: true,
        log,
      });
      out.push({ provider, result });
    } catch (e) {
      log(`${provider}: the run failed: ${(e as Error).stack ?? e}`);
      out.push({ provider, result: { error: (e as Error).message.split("\n")[0] } });
    }
  }
  return out;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[s.length >> 1] : NaN;
};

/** The figures table, and the problems of a run that did not converge. */
export function chaosReport(rs: ChaosBenchResult[]): string[] {
  const lines = [
    "| provider | ops | ops/s (faults on) | convergence after quiesce, median / max | API calls / op | barriers | faults hit | outcome |",
    "|---|---|---|---|---|---|---|---|",
  ];
  for (const { provider, result: r } of rs) {
    if ("error" in r) {
      lines.push(`| ${provider} | – | – | – | – | – | – | not measured: ${r.error} |`);
      continue;
    }
    const s = r.stats;
    lines.push(
      `| ${provider} | ${s.ops.toLocaleString("en")} | ${
        (s.ops / (s.opsMs / 1000)).toFixed(1)
      } | ` +
        `${(median(s.quiesceMs) / 1000).toFixed(1)} s / ${
          (Math.max(...s.quiesceMs) / 1000).toFixed(1)
        } s | ${(s.apiCalls / s.ops).toFixed(2)} | ${s.barriers} | ` +
        `${s.gatewayRestarts} gateway restarts, ${s.pgDropped.length} statements cut, ` +
        `${s.refusedDead} refused dead letters | ` +
        `${r.ok ? "converged as the model says" : `${r.problems.length} problems`} |`,
    );
  }
  for (const { provider, result: r } of rs) {
    if ("error" in r) continue;
    for (const p of r.problems.slice(0, 20)) {
      lines.push(`  ${provider} barrier ${p.barrier}${p.handle ? ` h${p.handle}` : ""}: ${p.what}`);
    }
    if (r.problems.length > 20) lines.push(`  ${provider}: … ${r.problems.length - 20} more`);
  }
  return lines;
}
