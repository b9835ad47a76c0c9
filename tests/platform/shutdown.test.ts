// Ctrl-C of `npm start` (issue 16, point 2), with a whole stack of its own (a temporary folder,
// ports 50 above the test profile's) started by scripts/stack.ts through npm's launcher
// (scripts/deno.mjs) in its own process group, as a terminal runs it: SIGINT to the group stops every process of the stack, waits for them,
// removes the pid files, saves the sandboxes, and exits 0; a second Ctrl-C forces; SIGHUP (the
// terminal or pane closed) stops it too. Stale pid
// files (a dead pid, a pid now used by an unrelated process) are removed at the next start,
// and the unrelated process is left alone.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../../shared/local/config.ts";
import { startTime } from "../../shared/local/processes.ts";
import {
  assertGone,
  type Captured,
  cleanUp,
  members,
  spawnCaptured,
  stackGroups,
  until,
} from "./_stack.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const BASE = Number(Deno.env.get("CRM_STACK_PORT_BASE") || 25300) + 50;

type Run = Captured;

function startStack(dir: string): Run {
  // Through the launcher npm's scripts use (scripts/deno.mjs), as `npm start` runs it: the
  // command must end only once the stack is down.
  return spawnCaptured("setsid", {
    args: [
      "node",
      join(ROOT, "scripts", "deno.mjs"),
      "run",
      "-A",
      join(ROOT, "scripts", "stack.ts"),
      "start",
      "--no-connections",
      "--records",
      "3",
    ],
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      HOME: Deno.env.get("HOME") ?? "/root",
      NO_COLOR: "1",
      CRM_STACK_PROFILE: "test",
      CRM_STACK_DIR: dir,
      CRM_STACK_PORT_BASE: String(BASE),
    },
    cwd: ROOT,
    stdin: "null",
  });
}

async function up(dir: string): Promise<{ run: Run; groups: number[] }> {
  const run = startStack(dir);
  await until("the stack's env file", () => run.output().includes("stack.env"), run);
  // The command is in its status view (or its backfill) now.
  await new Promise((r) => setTimeout(r, 500));
  return { run, groups: stackGroups(dir, run.pid) };
}

Deno.test({
  ...opts,
  name:
    "shutdown: Ctrl-C stops every process of the stack, waits, saves the sandboxes; stale pid files are handled",
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "crm_stack_shutdown_" });
    await Deno.chmod(dir, 0o755); // the postgres OS user runs the cluster inside it
    const bystander = new Deno.Command("sleep", { args: ["300"] }).spawn();
    try {
      // 1. Ctrl-C to the group (what a terminal sends): everything stops, then the command ends.
      const a = await up(dir);
      assert.ok(members(a.groups).length >= 5, "the stack is running");
      Deno.kill(-a.run.pid, "SIGINT");
      const status = await a.run.status;
      assert.equal(status.code, 0, a.run.output());
      assertGone(dir, a.groups, a.run.output());
      assert.match(a.run.output(), /stack stopped/);
      for (const p of ["hubspot", "salesforce", "pipedrive"]) {
        assert.ok(existsSync(join(dir, "sandboxes", `${p}.json`)), `${p} sandbox saved`);
      }

      // 2. Stale pid files, as a crash leaves them: one names a dead pid, one a pid that is now
      // an unrelated live process. The next start replaces both and leaves that process alone.
      const dead = new Deno.Command("true").spawn();
      await dead.status;
      await Deno.mkdir(join(dir, "pids"), { recursive: true });
      await Deno.writeTextFile(join(dir, "pids", "pg_net_worker.pid"), `${dead.pid} 12345\n`);
      await Deno.writeTextFile(join(dir, "pids", "gateway.pid"), `${bystander.pid} 1\n`);
      assert.notEqual(startTime(bystander.pid), "1");
      const b = await up(dir);
      assert.match(b.run.output(), /removed the stale pid file of gateway/);
      assert.match(b.run.output(), /removed the stale pid file of pg_net_worker/);
      assert.match(b.run.output(), /sandboxes: loading their saved state/);
      assert.ok(!b.groups.includes(bystander.pid), "a new gateway was started");
      assert.ok(startTime(bystander.pid) !== null, "the unrelated process is alive");

      // 3. A second Ctrl-C forces: still nothing left behind.
      Deno.kill(-b.run.pid, "SIGINT");
      await new Promise((r) => setTimeout(r, 50));
      Deno.kill(-b.run.pid, "SIGINT");
      const forced = await b.run.status;
      assert.equal(forced.code, 130, b.run.output());
      assert.match(b.run.output(), /forcing: killing every process of the stack/);
      assertGone(dir, b.groups, b.run.output());
      assert.ok(startTime(bystander.pid) !== null, "the unrelated process was never signalled");

      // 4. The terminal or tmux pane closing (SIGHUP to the group) stops the stack the same way;
      // the start after a forced stop recovers Postgres by itself.
      const c = await up(dir);
      Deno.kill(-c.run.pid, "SIGHUP");
      const hup = await c.run.status;
      assert.equal(hup.code, 0, c.run.output());
      assertGone(dir, c.groups, c.run.output());
    } finally {
      try {
        bystander.kill("SIGKILL");
      } catch { /* gone */ }
      await bystander.status;
      await cleanUp(dir, ROOT, BASE);
    }
  },
});
