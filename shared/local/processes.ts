// Background processes of the local stack: started detached in their own session (so a
// whole tree, e.g. the gateway and its function workers, stops with one signal), tracked by
// pid files, stopped by pid and nothing else.
//
// A pid file holds the pid and the process's start time (field 22 of /proc/<pid>/stat, clock
// ticks since boot). A crash leaves the file behind, and the kernel may give the pid to an
// unrelated process later: a file whose pid is dead, or alive with another start time, is
// stale. It is removed and never signalled, so a stale file can neither keep a service from
// starting nor get somebody else's process killed. (Files without a start time, from before,
// are trusted while their pid lives.)
import { join } from "node:path";

export interface Service {
  name: string;
  cmd: string[];
  env?: Record<string, string>;
  cwd?: string;
}

export function pidFile(dir: string, name: string): string {
  return join(dir, "pids", `${name}.pid`);
}

export function isAlive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // A zombie has exited already; only its parent's wait() is missing.
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** When the process started (clock ticks since boot), or null when there is no such process. */
export function startTime(pid: number): string | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

function readPidFile(dir: string, name: string): { pid: number; started: string | null } | null {
  try {
    const [p, started] = Deno.readTextFileSync(pidFile(dir, name)).trim().split(/\s+/);
    const pid = Number(p);
    return Number.isInteger(pid) && pid > 0 ? { pid, started: started ?? null } : null;
  } catch {
    return null;
  }
}

/** The pid in the service's pid file while that file describes the processes it was written
 * for: the process alive with the same start time, or dead with members of its process group
 * still alive (Linux hands out no pid still in use as a process group id, so that group is
 * ours). Null otherwise. */
export function readPid(dir: string, name: string): number | null {
  const f = readPidFile(dir, name);
  if (!f) return null;
  if (f.started === null) return f.pid;
  const started = startTime(f.pid);
  if (started === null) return groupAlive(f.pid) ? f.pid : null;
  return started === f.started ? f.pid : null;
}

export function runningPid(dir: string, name: string): number | null {
  const pid = readPid(dir, name);
  return pid !== null && isAlive(pid) ? pid : null;
}

/** Removes the service's pid file when it is stale (see above); true if it removed one. */
export function clearStalePid(dir: string, name: string): boolean {
  const f = readPidFile(dir, name);
  if (!f) return false;
  const pid = readPid(dir, name);
  if (pid !== null && (isAlive(pid) || groupAlive(pid))) return false;
  try {
    Deno.removeSync(pidFile(dir, name));
  } catch { /* already gone */ }
  return true;
}

export async function startDetached(dir: string, svc: Service): Promise<number> {
  await Deno.mkdir(join(dir, "pids"), { recursive: true });
  await Deno.mkdir(join(dir, "logs"), { recursive: true });
  const log = join(dir, "logs", `${svc.name}.log`);
  const out = await new Deno.Command("sh", {
    args: [
      "-c",
      'log="$1"; shift; setsid "$@" >>"$log" 2>&1 </dev/null & echo $!',
      "sh",
      log,
      ...svc.cmd,
    ],
    env: svc.env,
    cwd: svc.cwd,
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const pid = Number(new TextDecoder().decode(out.stdout).trim());
  if (!out.success || !Number.isInteger(pid)) throw new Error(`could not start ${svc.name}`);
  // setsid execs in place, so this is the service's own pid (and process group).
  await Deno.writeTextFile(pidFile(dir, svc.name), `${pid} ${startTime(pid) ?? ""}`.trim() + "\n");
  return pid;
}

function signalGroup(pid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(-pid, signal);
  } catch {
    try {
      Deno.kill(pid, signal);
    } catch { /* already gone */ }
  }
}

function groupAlive(pgid: number): boolean {
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (fields[0] !== "Z" && Number(fields[2]) === pgid) return true;
    } catch { /* raced with exit */ }
  }
  return false;
}

/** SIGKILL the service's process group at once (a forced stop) and remove its pid file. */
export async function killDetached(dir: string, name: string): Promise<boolean> {
  const pid = readPid(dir, name);
  const was = pid !== null && groupAlive(pid);
  if (pid !== null) {
    signalGroup(pid, "SIGKILL");
    const deadline = Date.now() + 5000;
    while (groupAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  }
  await Deno.remove(pidFile(dir, name)).catch(() => {});
  return was;
}

/** SIGTERM the process group, wait, then SIGKILL what is left. Returns true if it was running. */
export async function stopDetached(dir: string, name: string, graceMs = 8000): Promise<boolean> {
  const pid = readPid(dir, name);
  if (pid === null) {
    // Stale (or no) pid file: nothing of ours to stop.
    await Deno.remove(pidFile(dir, name)).catch(() => {});
    return false;
  }
  const wasRunning = isAlive(pid) || groupAlive(pid);
  if (wasRunning) {
    signalGroup(pid, "SIGTERM");
    const deadline = Date.now() + graceMs;
    while (groupAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (groupAlive(pid)) signalGroup(pid, "SIGKILL");
    while (groupAlive(pid)) await new Promise((r) => setTimeout(r, 20));
  }
  await Deno.remove(pidFile(dir, name)).catch(() => {});
  return wasRunning;
}

export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 60_000,
  isDead?: () => boolean,
  signal?: AbortSignal,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    signal?.throwIfAborted();
    if (await check().catch(() => false)) return;
    if (isDead?.()) throw new Error(`${what} exited during start-up`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} not healthy after ${timeoutMs} ms`);
}
