// The gateway's function processes: a pool per function, one request per process at a time
// unless `requestsPerProcess` lets a process serve several at once (per_worker policy only), and
// the hosted CPU limit enforced on each process.
//
// Hosted behaviour this reproduces (Supabase docs, troubleshooting "546 - WORKER_LIMIT
// Exceeded", supabase.com/docs/guides/troubleshooting/edge-function-546-error-response): an
// isolate handles one request at a time and is bound to one function; a request goes to a free
// isolate, or a new one when all are busy. An isolate that has used half of its CPU (2 s) retires
// after its current request; one that reaches the whole of it is terminated at once and the
// request answers 546. In supabase/edge-runtime (crates/base/src/worker/supervisor/
// strategy_per_worker.rs) that is the per-worker policy: CPU accumulates over the isolate's
// life, the soft limit retires it, the hard limit shuts it down (ShutdownReason::CPUTime), and an
// isolate is only idle again once its responses are sent and every EdgeRuntime.waitUntil
// promise has settled, so background work is charged like the handler's. The per-request
// policy (strategy_per_request.rs) instead restarts the count at each request and has no soft
// limit; `cpuPolicy: "per_request"` gives that.
//
// Concurrency (requestsPerProcess > 1, per_worker only): in edge-runtime's worker pool
// (crates/base/src/worker/pool.rs, ActiveWorkerRegistry) a per_worker isolate is never marked
// in use, so concurrent requests to one function share its live isolate (round robin over the
// live ones); only per_request marks an isolate busy until its request ends. With it, a process
// takes up to requestsPerProcess requests whose answers are not yet relayed; a new one is
// started only when every live process is full. The CPU limits are unchanged: they are the
// process's (its whole life, per_worker), so the hard limit ends every request it is serving
// (each answers 546, as an isolate terminated at its limit does hosted), and the soft limit
// stops it from taking further requests and retires it once it is idle. The per-request
// figures of the stats then cover a busy period (first request in to last one settled).
//
// Differences, on purpose: the count starts when the process serves its first request, so the
// Deno boot and TypeScript import (far dearer here than an eszip load there) are never charged;
// the CPU is sampled (every SAMPLE_MS) from /proc rather than raised by a kernel timer, so a kill
// lands up to about SAMPLE_MS + 10 ms past the limit; a process stays busy until its waitUntil
// work ends (hosted, a new request may share an isolate with a previous one's background work).
import { mainThreadCpuMs, peakRssMb, resetPeakRss } from "./proc_usage.ts";

export type CpuPolicy = "per_worker" | "per_request";

/** Why a process ended: a limit (cpu, wall_clock, memory), a crash or failed boot, or the pool's
 * own housekeeping (retired after its soft limit or a source change, reaped when idle, stopped). */
export type ExitReason =
  | "cpu"
  | "wall_clock"
  | "memory"
  | "crash"
  | "boot"
  | "retired"
  | "reaped"
  | "stopped";

export interface PoolOptions {
  /** Builds the command of a new process for `slug` (env files are read per spawn). */
  command: (slug: string, entry: string) => Promise<Deno.Command>;
  /** Hard CPU limit per process, ms; 0 disables CPU limits. */
  cpuLimitMs: number;
  /** per_worker: a process that has used this much CPU takes no further request. */
  cpuSoftLimitMs: number;
  cpuPolicy: CpuPolicy;
  /** Processes per function; further requests wait for one to be free. */
  maxProcesses: number;
  /** Requests one process serves at once (per_worker only; per_request is always 1). */
  requestsPerProcess?: number;
  /** An idle process beyond the first of its function is stopped after this long. */
  idleTimeoutMs: number;
  log: (msg: string) => void;
}

export class BootError extends Error {}

/** One function process. Fields are read by the gateway; only the pool changes them. */
export interface Proc {
  readonly slug: string;
  readonly child: Deno.ChildProcess;
  port: number;
  state: "booting" | "idle" | "busy" | "exited";
  exit: ExitReason | null;
  status: Deno.CommandStatus | null;
  /** Main-thread CPU when the process became ready: its boot, never charged. */
  bootCpuMs: number;
  requestStartCpuMs: number;
  requests: number;
  cpuMsTotal: number;
  cpuMsMax: number;
  cpuMsLast: number;
  peakRssMb: number;
  startedAt: string;
  idleSince: number;
  retire: boolean;
  /** Its answer has gone out; the gateway is asking whether its background work is over. */
  settling: boolean;
  /** Requests taken and not yet released (answer relayed and background work settled). */
  open: number;
  /** Requests taken whose answer is not yet relayed (what requestsPerProcess bounds). */
  inflight: number;
}

interface Waiter {
  entry: string;
  resolve: (p: Promise<Proc>) => void;
  reject: (e: unknown) => void;
}

interface FunctionState {
  live: Set<Proc>;
  /** Spawns whose process does not exist yet (counted against maxProcesses). */
  starting: number;
  waiters: Waiter[];
  exited: Proc[];
  spawned: number;
  requests: number;
  kills: { cpu: number; wall_clock: number; memory: number };
}

const SAMPLE_MS = 25;
const SETTLE_GRACE_MS = 50;
// Share of the soft limit at which a shared process gets a successor booted ahead.
const SUCCESSOR_AT = 0.75;
// Exited processes kept per function for the stats (the bench reads peak RSS per worker).
const HISTORY = 200;
const KILLS: ExitReason[] = ["cpu", "wall_clock", "memory"];

export function createPool(opts: PoolOptions) {
  const perProcess = opts.cpuPolicy === "per_worker"
    ? Math.max(1, Math.floor(opts.requestsPerProcess ?? 1))
    : 1;
  const fns = new Map<string, FunctionState>();
  const busy = new Set<Proc>();
  let sampler: number | undefined;
  let closing = false;

  function fn(slug: string): FunctionState {
    let s = fns.get(slug);
    if (!s) {
      s = {
        live: new Set(),
        starting: 0,
        waiters: [],
        exited: [],
        spawned: 0,
        requests: 0,
        kills: { cpu: 0, wall_clock: 0, memory: 0 },
      };
      fns.set(slug, s);
    }
    return s;
  }

  function cpuOf(p: Proc): number | null {
    try {
      return mainThreadCpuMs(p.child.pid);
    } catch {
      return null;
    }
  }

  /** CPU charged against the limits: since boot (per_worker) or since the request began. */
  function charged(p: Proc, cpu: number): number {
    return cpu - (opts.cpuPolicy === "per_worker" ? p.bootCpuMs : p.requestStartCpuMs);
  }

  function signal(p: Proc, sig: Deno.Signal) {
    try {
      p.child.kill(sig);
    } catch { /* already gone */ }
  }

  /** Ends a process now. The reason sticks: the first one given is the one reported. */
  function kill(p: Proc, reason: ExitReason, detail = "") {
    if (p.state === "exited") return;
    const peak = peakRssMb(p.child.pid);
    if (peak !== null) p.peakRssMb = Math.max(p.peakRssMb, peak);
    p.exit ??= reason;
    if (KILLS.includes(reason)) opts.log(`${p.slug} pid ${p.child.pid}: ${detail}; terminated`);
    const graceful = reason === "retired" || reason === "reaped" || reason === "stopped";
    gone(p);
    signal(p, graceful ? "SIGTERM" : "SIGKILL");
  }

  /** Takes the process out of service (it may still be exiting). */
  function gone(p: Proc) {
    if (p.state === "exited") return;
    const s = fn(p.slug);
    p.state = "exited";
    busy.delete(p);
    if (busy.size === 0) stopSampler();
    s.live.delete(p);
    s.exited.push(p);
    if (s.exited.length > HISTORY) s.exited.shift();
    if (p.exit === "cpu" || p.exit === "wall_clock" || p.exit === "memory") s.kills[p.exit]++;
    // Room for one more process: the longest-waiting request gets it.
    const w = closing ? undefined : s.waiters.shift();
    if (w) w.resolve(start(p.slug, w.entry));
  }

  /** Starts a process and resolves once it serves (its port known, its boot CPU read). */
  async function spawn(slug: string, entry: string): Promise<Proc> {
    const s = fn(slug);
    s.spawned++;
    s.starting++;
    let child: Deno.ChildProcess;
    try {
      child = (await opts.command(slug, entry)).spawn();
    } finally {
      s.starting--;
    }
    const p: Proc = {
      slug,
      child,
      port: 0,
      state: "booting",
      exit: null,
      status: null,
      bootCpuMs: 0,
      requestStartCpuMs: 0,
      requests: 0,
      cpuMsTotal: 0,
      cpuMsMax: 0,
      cpuMsLast: 0,
      peakRssMb: 0,
      startedAt: new Date().toISOString(),
      idleSince: Date.now(),
      retire: false,
      settling: false,
      open: 0,
      inflight: 0,
    };
    s.live.add(p);
    child.status.then((status) => {
      p.status = status;
      // V8 aborts with SIGTRAP on a fatal error, and reaching the heap cap
      // (--max-old-space-size) is the one a function meets.
      const reason: ExitReason = status.signal === "SIGTRAP" ? "memory" : "crash";
      if (p.state !== "exited" && !closing) {
        p.exit ??= p.state === "booting" ? "boot" : reason;
        opts.log(
          `${slug} pid ${child.pid} exited (code ${status.code}${
            status.signal ? `, ${status.signal}` : ""
          })${p.exit === "memory" ? ": Memory limit exceeded" : ""}`,
        );
      }
      gone(p);
    });
    try {
      p.port = await readPort(slug, child.stdout);
    } catch (e) {
      p.exit ??= "boot";
      gone(p);
      signal(p, "SIGKILL");
      throw new BootError((e as Error).message);
    }
    p.bootCpuMs = cpuOf(p) ?? 0;
    return p;
  }

  /** A process for a request: a new one, booted and marked busy. */
  function start(slug: string, entry: string): Promise<Proc> {
    return spawn(slug, entry).then((p) => {
      if (p.state !== "booting") throw new BootError("function exited while starting");
      begin(p);
      // Requests that waited for this boot share it (requestsPerProcess > 1).
      const s = fn(slug);
      while (p.inflight < perProcess && s.waiters.length > 0) {
        begin(p);
        s.waiters.shift()!.resolve(Promise.resolve(p));
      }
      return p;
    });
  }

  function begin(p: Proc) {
    if (p.open === 0) p.requestStartCpuMs = cpuOf(p) ?? p.bootCpuMs;
    p.state = "busy";
    p.settling = false;
    p.open++;
    p.inflight++;
    p.requests++;
    fn(p.slug).requests++;
    busy.add(p);
    startSampler();
  }

  /** A busy process that can take one more request now (requestsPerProcess > 1). */
  function shareable(s: FunctionState): Proc | undefined {
    if (perProcess <= 1) return undefined;
    let best: Proc | undefined;
    for (const p of s.live) {
      if (p.state !== "busy" || p.retire || p.inflight >= perProcess) continue;
      const cpu = cpuOf(p);
      // Past the soft limit it takes nothing more; it retires once its requests are over.
      if (cpu === null || overSoftLimit(p, cpu)) {
        p.retire = cpu !== null;
        continue;
      }
      if (!best || p.inflight < best.inflight) best = p;
    }
    return best;
  }

  /** A ready, busy process for one request; waits (FIFO) when the function has maxProcesses. */
  function acquire(slug: string, entry: string, abort: AbortSignal): Promise<Proc> {
    const s = fn(slug);
    for (const p of s.live) {
      if (p.state !== "idle") continue;
      const cpu = cpuOf(p);
      if (cpu === null) {
        gone(p);
        continue;
      }
      if (p.retire || overSoftLimit(p, cpu)) {
        kill(p, "retired");
        continue;
      }
      begin(p);
      return Promise.resolve(p);
    }
    const shared = shareable(s);
    if (shared) {
      begin(shared);
      successor(s, shared, slug, entry);
      return Promise.resolve(shared);
    }
    // A process is booting with room for this request too: wait for it rather than boot
    // another (edge-runtime creates isolates one at a time per function under per_worker).
    const booting = [...s.live].filter((p) => p.state === "booting").length + s.starting;
    const boots = perProcess > 1 && booting * (perProcess - 1) > s.waiters.length;
    const room = !boots && s.live.size + s.starting < opts.maxProcesses;
    // A process that has just answered is usually free a moment later (its settle round trip),
    // and a caller's next request often arrives within that moment: wait for it briefly rather
    // than boot another process.
    const soon = perProcess <= 1 && [...s.live].some((p) => p.state === "busy" && p.settling);
    if (room && !soon) return start(slug, entry);
    return new Promise<Proc>((resolve, reject) => {
      const w: Waiter = {
        entry,
        resolve: (p) => {
          clearTimeout(grace);
          abort.removeEventListener("abort", onAbort);
          resolve(p);
        },
        reject,
      };
      const leave = () => {
        const i = s.waiters.indexOf(w);
        if (i >= 0) s.waiters.splice(i, 1);
      };
      const onAbort = () => {
        clearTimeout(grace);
        leave();
        reject(abort.reason);
      };
      const grace = room
        ? setTimeout(() => {
          leave();
          w.resolve(start(slug, entry));
        }, SETTLE_GRACE_MS)
        : undefined;
      abort.addEventListener("abort", onAbort, { once: true });
      s.waiters.push(w);
    });
  }

  /**
   * A shared process nearing its soft limit gets a successor booted ahead, idle until needed:
   * hosted, a new isolate loads from an eszip in milliseconds; here a boot is a Deno start and a
   * TypeScript import (hundreds of ms), which every request arriving after the retirement would
   * otherwise wait for. The boot is not charged, as elsewhere in this pool.
   */
  function successor(s: FunctionState, p: Proc, slug: string, entry: string) {
    if (opts.cpuPolicy !== "per_worker" || opts.cpuLimitMs <= 0) return;
    if (s.starting > 0 || s.live.size >= opts.maxProcesses) return;
    const cpu = cpuOf(p);
    if (cpu === null || cpu - p.bootCpuMs < SUCCESSOR_AT * opts.cpuSoftLimitMs) return;
    for (const q of s.live) {
      if (q === p || q.retire) continue;
      if (q.state === "booting") return;
      const c = cpuOf(q);
      if (c !== null && c - q.bootCpuMs < SUCCESSOR_AT * opts.cpuSoftLimitMs) return;
    }
    spawn(slug, entry).then((q) => {
      if (q.state !== "booting") return;
      q.state = "idle";
      q.idleSince = Date.now();
      // Requests that waited for this boot (their process retiring) take it, up to its room.
      while (q.inflight < perProcess && s.waiters.length > 0) {
        begin(q);
        s.waiters.shift()!.resolve(Promise.resolve(q));
      }
    }).catch((e) => opts.log(`${slug}: successor failed to boot: ${(e as Error).message}`));
  }

  function overSoftLimit(p: Proc, cpu: number): boolean {
    return opts.cpuPolicy === "per_worker" && opts.cpuLimitMs > 0 &&
      cpu - p.bootCpuMs >= opts.cpuSoftLimitMs;
  }

  /** The request and its background work are over: account for it, then reuse or retire. */
  function release(p: Proc) {
    if (p.state !== "busy") return;
    const cpu = cpuOf(p);
    if (cpu === null) return gone(p);
    // Past the hard limit between two samples: the answer went out, the process still goes.
    if (overHardLimit(p, cpu)) return;
    p.open = Math.max(0, p.open - 1);
    if (p.open > 0) return; // others still running on it (requestsPerProcess > 1)
    p.inflight = 0;
    record(p, cpu - p.requestStartCpuMs);
    busy.delete(p);
    if (busy.size === 0) stopSampler();
    if (p.retire || overSoftLimit(p, cpu)) return kill(p, "retired");
    const w = fn(p.slug).waiters.shift();
    if (w) {
      begin(p);
      return w.resolve(Promise.resolve(p));
    }
    p.state = "idle";
    p.idleSince = Date.now();
  }

  function record(p: Proc, cpuMs: number) {
    p.cpuMsLast = cpuMs;
    p.cpuMsTotal += cpuMs;
    p.cpuMsMax = Math.max(p.cpuMsMax, cpuMs);
    const peak = peakRssMb(p.child.pid);
    if (peak !== null) p.peakRssMb = Math.max(p.peakRssMb, peak);
  }

  function overHardLimit(p: Proc, cpu: number): boolean {
    if (opts.cpuLimitMs <= 0 || charged(p, cpu) < opts.cpuLimitMs) return false;
    if (p.state === "busy") record(p, cpu - p.requestStartCpuMs);
    kill(
      p,
      "cpu",
      `CPU Time exceeded (${
        Math.round(charged(p, cpu))
      } ms of ${opts.cpuLimitMs} ms, ${opts.cpuPolicy})`,
    );
    return true;
  }

  function sample() {
    for (const p of [...busy]) {
      const cpu = cpuOf(p);
      if (cpu !== null) overHardLimit(p, cpu);
    }
  }

  function startSampler() {
    if (sampler === undefined && opts.cpuLimitMs > 0) sampler = setInterval(sample, SAMPLE_MS);
  }

  function stopSampler() {
    if (sampler !== undefined) clearInterval(sampler);
    sampler = undefined;
  }

  // Hosted isolates are dropped once idle; here one stays warm per function, the rest go.
  const reaper = setInterval(() => {
    const now = Date.now();
    for (const s of fns.values()) {
      const idle = [...s.live].filter((p) => p.state === "idle")
        .sort((a, b) => b.idleSince - a.idleSince);
      for (const p of idle.slice(1)) {
        if (now - p.idleSince >= opts.idleTimeoutMs) kill(p, "reaped");
      }
    }
  }, Math.min(1000, opts.idleTimeoutMs));

  function view(p: Proc) {
    return {
      pid: p.child.pid,
      state: p.state,
      startedAt: p.startedAt,
      bootCpuMs: p.bootCpuMs,
      requests: p.requests,
      cpuMsTotal: p.cpuMsTotal,
      cpuMsMax: p.cpuMsMax,
      cpuMsLast: p.cpuMsLast,
      peakRssMb: p.state === "exited"
        ? p.peakRssMb
        : Math.max(p.peakRssMb, peakRssMb(p.child.pid) ?? 0),
      exit: p.exit,
    };
  }

  return {
    acquire,
    /** The answer has been relayed; only background work may remain. */
    responded(p: Proc) {
      p.settling = true;
      if (perProcess <= 1 || p.state !== "busy") return;
      p.inflight = Math.max(0, p.inflight - 1);
      // Room on a shared process: the longest-waiting request takes it.
      if (p.retire) return;
      const cpu = cpuOf(p);
      if (cpu === null || overSoftLimit(p, cpu)) return;
      const w = fn(p.slug).waiters.shift();
      if (w) {
        begin(p);
        w.resolve(Promise.resolve(p));
      }
    },
    release,
    kill,
    /** Live processes of `slug` (tests use them to prove isolation). */
    pids(slug: string): number[] {
      return [...(fns.get(slug)?.live ?? [])].filter((p) => p.state !== "booting")
        .map((p) => p.child.pid);
    },
    /** Processes started from now on run the new source; busy ones finish first. */
    retireAll() {
      for (const s of fns.values()) {
        for (const p of [...s.live]) {
          p.retire = true;
          if (p.state === "idle") kill(p, "retired");
        }
      }
    },
    stats() {
      const functions: Record<string, unknown> = {};
      for (const [slug, s] of fns) {
        const procs = [...s.live, ...s.exited].map(view);
        functions[slug] = {
          spawned: s.spawned,
          live: s.live.size,
          busy: [...s.live].filter((p) => p.state === "busy").length,
          waiting: s.waiters.length,
          requests: s.requests,
          kills: { ...s.kills },
          cpuMsMax: Math.max(0, ...procs.map((p) => p.cpuMsMax)),
          cpuMsTotal: procs.reduce((n, p) => n + p.cpuMsTotal, 0),
          peakRssMb: Math.max(0, ...procs.map((p) => p.peakRssMb)),
          processes: procs,
        };
      }
      return functions;
    },
    /** Forgets exited processes and zeroes the counters (the peak RSS of live ones too). */
    resetStats() {
      for (const s of fns.values()) {
        s.exited = [];
        s.spawned = s.live.size;
        s.requests = 0;
        s.kills = { cpu: 0, wall_clock: 0, memory: 0 };
        for (const p of s.live) {
          p.requests = p.open;
          p.cpuMsTotal = p.cpuMsMax = p.cpuMsLast = 0;
          p.peakRssMb = 0;
          resetPeakRss(p.child.pid);
        }
      }
    },
    async close() {
      closing = true;
      stopSampler();
      clearInterval(reaper);
      const all = [...fns.values()].flatMap((s) => {
        for (const w of s.waiters.splice(0)) w.reject(new Error("gateway closing"));
        return [...s.live];
      });
      for (const p of all) kill(p, "stopped");
      await Promise.all(all.map(async (p) => {
        const t = setTimeout(() => signal(p, "SIGKILL"), 12_000);
        await p.child.status;
        clearTimeout(t);
        await p.child.stdout.cancel().catch(() => {});
      }));
    },
  };
}

/** First stdout line is the runner's {"port":N}; the rest is the function's own output. */
async function readPort(slug: string, stdout: ReadableStream<Uint8Array>): Promise<number> {
  const reader = stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  while (true) {
    const { value, done } = await reader.read();
    if (done) throw new Error("function exited before it started serving");
    buf += value;
    const nl = buf.indexOf("\n");
    if (nl < 0) continue;
    const port = Number(JSON.parse(buf.slice(0, nl)).port);
    const rest = buf.slice(nl + 1);
    if (rest) Deno.stdout.writeSync(new TextEncoder().encode(rest));
    (async () => {
      for (;;) {
        const r = await reader.read().catch(() => ({ done: true, value: "" }));
        if (r.done) return;
        await Deno.stdout.write(new TextEncoder().encode(`[${slug}] ${r.value}`));
      }
    })();
    return port;
  }
}
