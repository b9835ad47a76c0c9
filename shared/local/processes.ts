// Background processes of the local stack: started detached in their own session (so a
// whole tree, e.g. the gateway and its function workers, stops with one signal), tracked by
// pid files, stopped by pid and nothing else.
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

export function readPid(dir: string, name: string): number | null {
  try {
    const pid = Number(Deno.readTextFileSync(pidFile(dir, name)).trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

export function runningPid(dir: string, name: string): number | null {
  const pid = readPid(dir, name);
  return pid !== null && isAlive(pid) ? pid : null;
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
  await Deno.writeTextFile(pidFile(dir, svc.name), `${pid}\n`);
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

/** SIGTERM the process group, wait, then SIGKILL what is left. Returns true if it was running. */
export async function stopDetached(dir: string, name: string, graceMs = 8000): Promise<boolean> {
  const pid = readPid(dir, name);
  if (pid === null) return false;
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
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    if (isDead?.()) throw new Error(`${what} exited during start-up`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} not healthy after ${timeoutMs} ms`);
}
