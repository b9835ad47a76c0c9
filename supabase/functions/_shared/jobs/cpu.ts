// CPU time spent by this function instance, so a request can stop well under the platform's
// 2 s of CPU per request (https://supabase.com/docs/guides/functions/limits) and hand over.
// Deno 2.1 does not implement process.cpuUsage() (it warns and answers zeros), so the meter
// reads the process's utime + stime from /proc/self/stat (all threads, GC included: it can only
// over-count, which is the safe side; resolution one clock tick, 10 ms). Where /proc cannot be
// read (a sandbox without file access), it falls back to timer lag: a 10 ms interval that fires
// late was kept waiting by synchronous work, and the lag is counted as CPU. That fallback
// misses short bursts between I/O waits, so workers also keep a wall-clock budget.

export interface CpuMeter {
  /** CPU milliseconds used since the meter was created. */
  usedMs(): number;
  /** How it measures: "procfs" or "timer-lag". */
  readonly source: "procfs" | "timer-lag";
  stop(): void;
}

/** Linux's USER_HZ: /proc reports times in clock ticks of 1/100 s on every current kernel. */
const TICKS_PER_SECOND = 100;

/** utime + stime of this process in ms, or null when /proc cannot be read. */
export function procCpuMs(read: (path: string) => string = Deno.readTextFileSync): number | null {
  let stat: string;
  try {
    stat = read("/proc/self/stat");
  } catch {
    return null;
  }
  // Field 2 (comm) may contain spaces and parentheses: count fields after its last ')'.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return null;
  return ((utime + stime) * 1000) / TICKS_PER_SECOND;
}

export function createCpuMeter(
  o: { read?: (path: string) => string; now?: () => number } = {},
): CpuMeter {
  const start = procCpuMs(o.read);
  if (start !== null) {
    return {
      source: "procfs",
      usedMs: () => (procCpuMs(o.read) ?? start) - start,
      stop() {},
    };
  }
  const now = o.now ?? (() => performance.now());
  const INTERVAL = 10;
  let lag = 0;
  let expected = now() + INTERVAL;
  const timer = setInterval(() => {
    const t = now();
    lag += Math.max(0, t - expected);
    expected = t + INTERVAL;
  }, INTERVAL);
  Deno.unrefTimer(timer);
  return {
    source: "timer-lag",
    usedMs: () => lag + Math.max(0, now() - expected),
    stop: () => clearInterval(timer),
  };
}
