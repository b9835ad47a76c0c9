// Delta debugging (ddmin) over a failing op list: drop chunks of ops while the run still fails,
// halving the chunk size until single ops. Every trial is a full run on a fresh sandbox and
// connection. The last barrier (`settle`, where the check happens) is never dropped, so a
// shrunk list still ends with a check. Faults make a run's outcome depend on
// timing, so a candidate must fail twice in a row to be taken.
import type { Op } from "./ops.ts";
import { type Faults, runOps, type RunOptions } from "./run.ts";

export const CI_FAULTS: Faults = {
  error5xxRate: 0.1,
  rate429: 0.05,
  hangRate: 0,
  webhookDropRate: 0.1,
  webhookDuplicateRate: 0.1,
  webhookReorderRate: 0.1,
};

export async function shrink(
  ops: Op[],
  o: Omit<RunOptions, "log">,
  log: (l: string) => void = () => {},
  maxTrials = 60,
): Promise<Op[]> {
  let trials = 0;
  const fails = async (cand: Op[]) => {
    for (let k = 0; k < 2; k++) {
      trials++;
      const r = await runOps(cand, o);
      if (r.ok) return false;
    }
    return true;
  };
  let cur = ops;
  let n = 2;
  while (trials < maxTrials) {
    const movable = cur.map((op, i) => (op.k === "settle" && i === cur.length - 1 ? -1 : i))
      .filter((i) => i >= 0);
    if (movable.length < 1) break;
    const size = Math.ceil(movable.length / n);
    let reduced = false;
    for (let s = 0; s < movable.length && trials < maxTrials; s += size) {
      const drop = new Set(movable.slice(s, s + size));
      const cand = cur.filter((_, i) => !drop.has(i));
      if (await fails(cand)) {
        log(`shrink: ${cur.length} -> ${cand.length} ops`);
        cur = cand;
        n = Math.max(n - 1, 2);
        reduced = true;
        break;
      }
    }
    if (!reduced) {
      if (size <= 1) break;
      n = Math.min(n * 2, movable.length);
    }
  }
  return cur;
}
