// What the bench reads from /proc (Linux only): CPU time and memory of a process, the peak
// reset, the function process of a stack, and the CPU of a whole Postgres cluster.
import { join } from "node:path";

let ticks = 100;
/** Clock ticks per second for /proc/<pid>/stat (getconf CLK_TCK; 100 on every Linux we run). */
export async function initClockTicks(): Promise<void> {
  try {
    const out = await new Deno.Command("getconf", { args: ["CLK_TCK"], stdout: "piped" }).output();
    ticks = Number(new TextDecoder().decode(out.stdout).trim()) || 100;
  } catch { /* keep 100 */ }
}

function statFields(pid: number): string[] {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // Fields after "(comm) ": index 0 is field 3 (state).
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/** User + system CPU of a process, ms; with `children`, also that of its reaped children. */
export function cpuMs(pid: number, children = false): number {
  const f = statFields(pid);
  const own = Number(f[11]) + Number(f[12]);
  const reaped = children ? Number(f[13]) + Number(f[14]) : 0;
  return ((own + reaped) * 1000) / ticks;
}

export function ppid(pid: number): number {
  return Number(statFields(pid)[1]);
}

/** VmRSS and VmHWM (peak RSS since start or the last reset), in MB. */
export function memoryMb(pid: number): { rss: number; hwm: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = (k: string) => Number(status.match(new RegExp(`^${k}:\\s+(\\d+) kB`, "m"))?.[1] ?? 0);
  return { rss: kb("VmRSS") / 1024, hwm: kb("VmHWM") / 1024 };
}

/** Resets VmHWM to the current RSS (proc(5): clear_refs "5"); false where not allowed. */
export function resetPeak(pid: number): boolean {
  try {
    Deno.writeTextFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
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
      const f = statFields(pid);
      if (Number(f[2]) === pgid && f[0] !== "Z") rest += cpuMs(pid);
    } catch { /* gone meanwhile */ }
  }
  return { leader, rest };
}
