// CPU time and peak memory of a function process, read from /proc (Linux only), for the
// gateway's CPU limit and its stats.
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

/** User + system CPU of the process's main thread so far, ms (10 ms resolution). Throws once
 * the process is gone. */
export function mainThreadCpuMs(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/task/${pid}/stat`);
  // Fields after "(comm) ": index 0 is field 3 (state), so utime (14) and stime (15) are 11, 12.
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(f[11]) + Number(f[12])) * 1000) / TICKS_PER_SECOND;
}

/** Peak resident set size (VmHWM) in MB, or null once the process is gone. */
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
