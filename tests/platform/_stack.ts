// What the platform tests need to watch a whole stack started by scripts/stack.ts in a folder
// of its own: the process groups it made, and that none of them is left after it stopped.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";

/** Pids of every process in the given process groups (zombies aside). */
export function members(groups: number[]): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (f[0] !== "Z" && groups.includes(Number(f[2]))) out.push(Number(e.name));
    } catch { /* exited meanwhile */ }
  }
  return out;
}

/** The stack's process groups: the command's (`commandGroup`), each service's, Postgres's. */
export function stackGroups(dir: string, commandGroup: number): number[] {
  const groups = [commandGroup];
  for (const s of ["emulators", "gateway", "pg_net_worker"]) {
    const f = join(dir, "pids", `${s}.pid`);
    groups.push(Number(Deno.readTextFileSync(f).trim().split(/\s+/)[0]));
  }
  const postmaster = Number(
    Deno.readTextFileSync(join(dir, "pg", "data", "postmaster.pid")).split("\n")[0],
  );
  const stat = Deno.readTextFileSync(`/proc/${postmaster}/stat`);
  groups.push(Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]));
  return groups;
}

/** A process's command line, for messages ("?" once it is gone). */
function commandLine(pid: number): string {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").join(" ").trim();
  } catch {
    return "?";
  }
}

export function assertGone(dir: string, groups: number[], out: string) {
  const left = members(groups);
  assert.deepEqual(
    left,
    [],
    `processes of the stack left: ${left.map((p) => `${p} ${commandLine(p)}`).join("; ")}\n${out}`,
  );
  const pids = existsSync(join(dir, "pids")) ? [...Deno.readDirSync(join(dir, "pids"))] : [];
  assert.deepEqual(pids.map((p) => p.name), [], "pid files left");
  assert.ok(!existsSync(join(dir, "pg", "data", "postmaster.pid")), "postgres still running");
}

/** Stops whatever a failed run left, by the folder's own pid files, and removes the folder. */
export async function cleanUp(dir: string, root: string, portBase: number) {
  await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(root, "scripts", "stack.ts"), "down"],
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      HOME: Deno.env.get("HOME") ?? "/root",
      CRM_STACK_PROFILE: "test",
      CRM_STACK_DIR: dir,
      CRM_STACK_PORT_BASE: String(portBase),
    },
    stdout: "null",
    stderr: "null",
  }).output().catch(() => {});
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

export interface Captured {
  pid: number;
  child: Deno.ChildProcess;
  /** stdout and stderr so far, interleaved as they came. */
  output: () => string;
  /** Settles once the process exited and its output is read to the end. */
  status: Promise<Deno.CommandStatus>;
  exited: () => boolean;
}

/** Spawns a command with its output captured as it comes (stdout and stderr piped). */
export function spawnCaptured(cmd: string, o: Deno.CommandOptions): Captured {
  const child = new Deno.Command(cmd, { ...o, stdout: "piped", stderr: "piped" }).spawn();
  let text = "";
  const drain = async (s: ReadableStream<Uint8Array>) => {
    for await (const chunk of s.pipeThrough(new TextDecoderStream())) text += chunk;
  };
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  let exited = false;
  const status = child.status.then(async (s) => {
    exited = true;
    await drained;
    return s;
  });
  return { pid: child.pid, child, output: () => text, status, exited: () => exited };
}

/** Waits until `check` holds; fails with the output when the command ended or `ms` passed. */
export async function until(what: string, check: () => boolean, run: Captured, ms = 180_000) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline || run.exited()) {
      throw new Error(`${what} not seen:\n${run.output()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
