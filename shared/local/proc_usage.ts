// CPU time and memory of processes, read from /proc (Linux only): for the gateway's CPU limit
// and its stats, and for the bench (scripts/bench/procstat.ts).
//
// CPU is that of the process's main thread (/proc/<pid>/task/<pid>/stat), not the whole
// process: `deno run` executes JavaScript and polls its async I/O on the main thread, while V8's
// GC and compiler helpers run on threads of their own. Supabase's edge-runtime likewise charges a
// worker the CPU of its isolate's thread only (crates/cpu_timer: a CLOCK_THREAD_CPUTIME_ID
// timer), so a concurrent GC is not billed to the request; time spent waiting on I/O is on no
// thread at all ("does not include async I/O", supabase.com/docs/guides/functions/limits).

/** proc(5): utime and stime are in clock ticks, sysconf(_SC_CLK_TCK); USER_HZ is 100 on Linux. */
const TICKS_PER_SECOND = await clockTicks();

async function clockTicks(): Promise<number> {
  try {
    const out = await new Deno.Command("getconf", { args: ["CLK_TCK"], stdout: "piped" }).output();
    return Number(new TextDecoder().decode(out.stdout).trim()) || 100;
  } catch {
    return 100;
  }
}

/** The fields of a /proc stat file after "(comm) " (comm may hold spaces and parentheses):
 * index 0 is field 3 (state), so ppid is 1, pgrp 2, utime 11, stime 12, cutime 13, cstime 14. */
export function statFields(path: string): string[] {
  const stat = Deno.readTextFileSync(path);
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/** User + system CPU of the process's main thread so far, ms (10 ms resolution). Throws once
 * the process is gone. */
export function mainThreadCpuMs(pid: number): number {
  const f = statFields(`/proc/${pid}/task/${pid}/stat`);
  return ((Number(f[11]) + Number(f[12])) * 1000) / TICKS_PER_SECOND;
}

/** User + system CPU of a whole process (all threads), ms; with `children`, also that of the
 * children it reaped. Throws once the process is gone. */
export function processCpuMs(pid: number, children = false): number {
  const f = statFields(`/proc/${pid}/stat`);
  const own = Number(f[11]) + Number(f[12]);
  const reaped = children ? Number(f[13]) + Number(f[14]) : 0;
  return ((own + reaped) * 1000) / TICKS_PER_SECOND;
}

/** VmRSS and VmHWM (peak RSS since start or the last reset), MB. Throws once the process is
 * gone. */
export function memoryMb(pid: number): { rss: number; hwm: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = (k: string) => Number(status.match(new RegExp(`^${k}:\\s+(\\d+) kB`, "m"))?.[1] ?? 0);
  return { rss: kb("VmRSS") / 1024, hwm: kb("VmHWM") / 1024 };
}

/** Peak resident set size (VmHWM) in MB, rounded to 0.1, or null once the process is gone. */
export function peakRssMb(pid: number): number | null {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const kb = status.match(/^VmHWM:\s+(\d+) kB/m)?.[1];
    return kb === undefined ? null : Math.round(Number(kb) / 102.4) / 10;
  } catch {
    return null;
  }
}

/** Starts VmHWM again from the current RSS (proc(5): clear_refs "5"); false where not allowed. */
export function resetPeakRss(pid: number): boolean {
  try {
    Deno.writeTextFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}
