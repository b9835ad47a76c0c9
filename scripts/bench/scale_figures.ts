// The pure figures of the issue-11 benchmarks (scale, shared budget, ceiling): quantiles, the
// fairness ratio, speed-ups and where they flatten, the rolling-window throughput of a measured
// interval and the records/s of a walk once its first window has passed, with the targets each
// is judged against. Everything here is computed from measurements passed in, so it is unit
// tested (tests/unit/bench_figures.test.ts).

export const SCALE_TARGETS = {
  /** No tenant waits more than this many times the median wait. */
  fairness: 3,
  /** Peak RSS per worker process at full scale ÷ at the small round: "flat". */
  memoryGrowth: 1.2,
  /** A doubling of workers that gains less than this is where the speed-up flattens. */
  flattenGain: 1.1,
};

export const BUDGET_TARGETS = {
  /** Combined throughput ÷ the documented ceiling of the classes in use. */
  throughput: 0.95,
  /** 429s the sandbox served to our own traffic. */
  throttled: 0,
  /** Live reads' p99 wait, ms. */
  liveP99Ms: 2_000,
};

export const CEILING_TARGET = 0.95;

/** The q-quantile (0..1) by linear interpolation between order statistics; NaN when empty. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const pos = Math.min(1, Math.max(0, q)) * (s.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

/** Longest ÷ median: how much longer the unluckiest tenant waited than the typical one. */
export function fairnessRatio(waitsMs: readonly number[]): number {
  const med = quantile(waitsMs, 0.5);
  return med > 0 ? Math.max(...waitsMs) / med : NaN;
}

export interface Round {
  workers: number;
  /** Enqueue until every stream's job finished. */
  makespanMs: number;
}

export interface SpeedUp {
  workers: number;
  makespanMs: number;
  /** makespan with the fewest workers ÷ this makespan. */
  speedUp: number;
  /** This speed-up ÷ that of the previous worker count (NaN for the first). */
  gain: number;
}

export function speedUps(rounds: readonly Round[]): SpeedUp[] {
  const sorted = [...rounds].sort((a, b) => a.workers - b.workers);
  const base = sorted[0]?.makespanMs ?? NaN;
  return sorted.map((r, i) => ({
    workers: r.workers,
    makespanMs: r.makespanMs,
    speedUp: base / r.makespanMs,
    gain: i === 0 ? NaN : sorted[i - 1].makespanMs / r.makespanMs,
  }));
}

/** The first worker count whose step up from the previous gained less than `minGain` (the
 * speed-up has flattened there), or null when every step gained at least that. */
export function flattensAt(
  s: readonly SpeedUp[],
  minGain = SCALE_TARGETS.flattenGain,
): number | null {
  return s.find((x) => Number.isFinite(x.gain) && x.gain < minGain)?.workers ?? null;
}

/** CPU time of each component over a wall interval, as a share of the machine's CPUs. */
export function utilisation(
  cpuMs: Record<string, number>,
  wallMs: number,
  cpus: number,
): { shares: Record<string, number>; total: number } {
  const shares = Object.fromEntries(
    Object.entries(cpuMs).map(([k, v]) => [k, v / (wallMs * cpus)]),
  );
  return { shares, total: Object.values(shares).reduce((a, b) => a + b, 0) };
}

/** A share of the CPUs at or above which the machine counts as saturated. */
export const SATURATED = 0.85;

/** Streams of a round that waited for a lease takeover (their worker died mid-job), and how
 * long the round took for all but the slowest 1 %. */
export interface Stragglers {
  takenOver: number;
  p99Ms: number;
  makespanMs: number;
}

/**
 * Why the speed-up stops growing, in words, from the round where it flattened: streams that
 * waited for a lease takeover set its makespan, or else the utilisation of the CPUs while the
 * work ran (full, or which component is busiest when they are not).
 */
export function flattenReason(
  u: { shares: Record<string, number>; total: number },
  st?: Stragglers,
): string {
  const top = Object.entries(u.shares).sort((a, b) => b[1] - a[1]);
  const pct = (x: number) => `${Math.round(x * 100)} %`;
  const list = top.map(([k, v]) => `${k} ${pct(v)}`).join(", ");
  const cpu = u.total >= SATURATED
    ? `the CPUs are saturated (${pct(u.total)} busy: ${list}); more workers only queue for them`
    : `the CPUs are not saturated (${
      pct(u.total)
    } busy: ${list}); the limit is elsewhere (waits on I/O, the queue, wake-ups)`;
  if (st && st.takenOver > 0) {
    const sec = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    return `${st.takenOver} stream(s) waited for a lease takeover after their worker died ` +
      `mid-job, which sets the makespan (${sec(st.makespanMs)}; 99 % of the streams were synced ` +
      `in ${sec(st.p99Ms)}); while the work ran, ${cpu}`;
  }
  return cpu;
}

export interface Sample {
  /** ms since some origin. */
  t: number;
  /** A cumulative count at t (requests served, rows landed). */
  count: number;
}

/** The count at time t, read from cumulative samples by linear interpolation. */
export function countAt(samples: readonly Sample[], t: number): number {
  if (samples.length === 0) return NaN;
  if (t <= samples[0].t) return samples[0].count;
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1];
    const b = samples[i];
    if (t <= b.t) return a.count + ((b.count - a.count) * (t - a.t)) / Math.max(1, b.t - a.t);
  }
  return samples[samples.length - 1].count;
}

/**
 * The measured interval of a rolling-window limit: from `from` for a whole number of windows
 * that end by `to` (a rolling limit of L per W allows at most k·L in k·W, but more in a
 * fraction of a window, so only whole windows compare with the documented rate). Null when
 * not even one window fits.
 */
export function wholeWindows(
  from: number,
  to: number,
  windowMs: number,
): { from: number; to: number; windows: number } | null {
  const windows = Math.floor((to - from) / windowMs);
  return windows >= 1 ? { from, to: from + windows * windowMs, windows } : null;
}

/** Events per second over [from, to] from cumulative samples. */
export function rateBetween(samples: readonly Sample[], from: number, to: number): number {
  return ((countAt(samples, to) - countAt(samples, from)) / (to - from)) * 1000;
}

/**
 * A walk's sustained records/s: from the end of its first window (the first `windowMs` after
 * its first record, when a fresh rolling window lets a burst through) to its last record.
 * Null when the walk is shorter than two windows.
 */
export function sustainedRate(
  landed: readonly Sample[],
  windowMs: number,
): { rate: number; from: number; to: number } | null {
  const first = landed.find((s) => s.count > 0);
  const total = landed.at(-1)?.count ?? 0;
  const last = landed.find((s) => s.count >= total);
  if (!first || !last) return null;
  const from = first.t + windowMs;
  if (last.t - from < windowMs) return null;
  return { rate: rateBetween(landed, from, last.t), from, to: last.t };
}

/** A class of requests the budget keeps apart, with its documented ceiling. */
export interface RequestClass {
  name: string;
  /** Requests per second the documentation allows. */
  ceilingPerSecond: number;
  /** Sandbox route keys ("METHOD /pattern") counted in it; null: every route not in another. */
  routes: readonly string[] | null;
}

/** Requests per class from a sandbox's per-route counters (2xx only: served work). */
export function servedByClass(
  routes: Record<string, { byStatus: Record<string, number> }>,
  classes: readonly RequestClass[],
): Record<string, number> {
  const out: Record<string, number> = Object.fromEntries(classes.map((c) => [c.name, 0]));
  const rest = classes.find((c) => c.routes === null);
  for (const [route, c] of Object.entries(routes)) {
    const ok = Object.entries(c.byStatus)
      .filter(([s]) => s.startsWith("2"))
      .reduce((a, [, v]) => a + v, 0);
    const cls = classes.find((k) => k.routes?.includes(route)) ?? rest;
    if (cls) out[cls.name] += ok;
  }
  return out;
}

/** Combined requests/s over the sum of the ceilings of the classes that had demand. */
export function combinedRatio(
  perSecond: Record<string, number>,
  classes: readonly RequestClass[],
  used: ReadonlySet<string>,
): { rate: number; ceiling: number; ratio: number } {
  const inUse = classes.filter((c) => used.has(c.name));
  const rate = inUse.reduce((a, c) => a + (perSecond[c.name] ?? 0), 0);
  const ceiling = inUse.reduce((a, c) => a + c.ceilingPerSecond, 0);
  return { rate, ceiling, ratio: rate / ceiling };
}

/** One function process: requests it served in a round and its peak RSS. */
export interface ProcPeak {
  requests: number;
  peakMb: number;
}

/**
 * Peak RSS growth from a small round to a full one, like for like: a process's peak grows with
 * the work it does in its life (how many requests it served), so processes are compared with
 * those that served as many requests; the largest ratio over the request counts both rounds have
 * is the growth (the conservative one). Without a common count, the rounds' maxima are compared.
 */
export function memoryGrowth(
  small: readonly ProcPeak[],
  full: readonly ProcPeak[],
): { ratio: number; requests: number | null; smallMb: number; fullMb: number } {
  const maxBy = (ps: readonly ProcPeak[]) => {
    const m = new Map<number, number>();
    for (const p of ps) m.set(p.requests, Math.max(m.get(p.requests) ?? 0, p.peakMb));
    return m;
  };
  const a = maxBy(small.filter((p) => p.peakMb > 0 && p.requests > 0));
  const b = maxBy(full.filter((p) => p.peakMb > 0 && p.requests > 0));
  let best: { ratio: number; requests: number | null; smallMb: number; fullMb: number } | null =
    null;
  for (const [k, fullMb] of b) {
    const smallMb = a.get(k);
    if (smallMb === undefined) continue;
    const ratio = fullMb / smallMb;
    if (!best || ratio > best.ratio) best = { ratio, requests: k, smallMb, fullMb };
  }
  if (best) return best;
  const smallMb = Math.max(0, ...a.values());
  const fullMb = Math.max(0, ...b.values());
  return { ratio: fullMb / smallMb, requests: null, smallMb, fullMb };
}
