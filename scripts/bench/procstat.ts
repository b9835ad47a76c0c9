// What the bench reads from /proc (Linux only), on top of shared/local/proc_usage.ts (CPU time,
// memory and the peak reset of a process): the function processes of a stack, the CPU of a
// whole Postgres cluster and of a process group, the load average.
import { join } from "node:path";
import { memoryMb, processCpuMs, resetPeakRss, statFields } from "../../shared/local/proc_usage.ts";

/** User + system CPU of a process, ms; with `children`, also that of its reaped children. */
export const cpuMs = processCpuMs;
export const resetPeak = resetPeakRss;
export { memoryMb };

export function ppid(pid: number): number {
  return Number(statFields(`/proc/${pid}/stat`)[1]);
}

function pids(): number[] {
  return [...Deno.readDirSync("/proc")].filter((e) => /^\d+$/.test(e.name)).map((e) =>
    Number(e.name)
  );
}

/**
 * The process serving `slug` for the stack whose database listens on `pgPort`, found as
 * tests/e2e/resilience.test.ts does: the runner's command line names the function, its
 * environment the database port.
 */
export function functionPid(slug: string, pgPort: number): number | null {
  return functionPids(slug, pgPort)[0] ?? null;
}

/** Every process serving `slug` for the stack whose database listens on `pgPort` (the
 * gateway keeps a pool of them). */
export function functionPids(slug: string, pgPort: number): number[] {
  const out: number[] = [];
  for (const pid of pids()) {
    try {
      const cmd = Deno.readTextFileSync(`/proc/${pid}/cmdline`);
      if (!cmd.includes("function_runner.ts") || !cmd.includes(`/${slug}/`)) continue;
      const env = Deno.readTextFileSync(`/proc/${pid}/environ`);
      if (env.includes(`:${pgPort}/`)) out.push(pid);
    } catch { /* gone meanwhile */ }
  }
  return out;
}

/**
 * CPU used by a Postgres cluster so far, ms: the postmaster, the backends it already reaped
 * (its cutime/cstime) and the live ones. Differences between two readings are what a phase
 * cost the database.
 */
export function clusterCpuMs(pgData: string): number {
  const postmaster = Number(
    Deno.readTextFileSync(join(pgData, "postmaster.pid")).split("\n")[0].trim(),
  );
  let total = cpuMs(postmaster, true);
  for (const pid of pids()) {
    try {
      if (ppid(pid) === postmaster) total += cpuMs(pid);
    } catch { /* gone meanwhile */ }
  }
  return total;
}

/** The 1-minute load average: other work on the machine competes for the same CPUs. */
export function loadAverage(): number {
  return Number(Deno.readTextFileSync("/proc/loadavg").split(" ")[0]);
}

/** CPU of the bench process, the Postgres cluster and the sandbox from now on: call the result
 * to read the ms each spent since (read in that order, like every measurement here). */
export function cpuSince(pgData: string, sandboxPid: number): () => CpuSplit {
  const start = { bench: cpuMs(Deno.pid), pg: clusterCpuMs(pgData), sandbox: cpuMs(sandboxPid) };
  return () => ({
    bench: cpuMs(Deno.pid) - start.bench,
    pg: clusterCpuMs(pgData) - start.pg,
    sandbox: cpuMs(sandboxPid) - start.sandbox,
  });
}

export interface CpuSplit {
  bench: number;
  pg: number;
  sandbox: number;
}

/**
 * CPU used so far by a process group led by `pgid` (a service started with setsid, e.g. the
 * gateway and the function processes it spawns), ms: the leader's own, and the rest — its live
 * group members plus the children it already reaped (their CPU moves into its cutime/cstime).
 */
export function groupCpuMs(pgid: number): { leader: number; rest: number } {
  const leader = cpuMs(pgid);
  let rest = cpuMs(pgid, true) - leader;
  for (const pid of pids()) {
    if (pid === pgid) continue;
    try {
      const f = statFields(`/proc/${pid}/stat`);
      if (Number(f[2]) === pgid && f[0] !== "Z") rest += cpuMs(pid);
    } catch { /* gone meanwhile */ }
  }
  return { leader, rest };
}
