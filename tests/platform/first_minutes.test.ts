// A new user's first minutes (issue 16), through a pseudo-terminal of 80×24 as a terminal runs
// `npm start`: the backfill's progress is drawn while it runs, then the status view, which fits
// the screen and prints the "try it" commands; those commands work as printed (npm run try --
// crm|app|show, each side's edit reaches the other); Ctrl-C typed into the terminal stops every
// process of the stack. The pty is util-linux `script` (bsdutils, essential on Debian).
import assert from "node:assert/strict";
import { ROOT } from "../../shared/local/config.ts";
import { assertGone, cleanUp, members, spawnCaptured, stackGroups, until } from "./_stack.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
// Ports of a stack of its own: 75 above the test profile's (the shutdown test uses +50).
const BASE = Number(Deno.env.get("CRM_STACK_PORT_BASE") || 25300) + 75;
const CLEAR = "\x1b[2J\x1b[H";

function stackEnv(dir: string): Record<string, string> {
  return {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: Deno.env.get("HOME") ?? "/root",
    TERM: "xterm",
    CRM_STACK_PROFILE: "test",
    CRM_STACK_DIR: dir,
    CRM_STACK_PORT_BASE: String(BASE),
  };
}

/** `npm start`'s command under a pty sized 80×24, in a session of its own. */
function startInPty(dir: string) {
  const start = `node scripts/deno.mjs run -A scripts/stack.ts start --records 20`;
  const run = spawnCaptured("setsid", {
    args: ["script", "-qfec", `stty cols 80 rows 24; exec ${start}`, "/dev/null"],
    clearEnv: true,
    env: stackEnv(dir),
    cwd: ROOT,
    stdin: "piped",
  });
  const writer = run.child.stdin.getWriter();
  return {
    ...run,
    type: (s: string) => writer.write(new TextEncoder().encode(s)),
    close: () => writer.close().catch(() => {}),
  };
}

/** The session the pty's command runs in: the child of `script`. */
function ptySession(scriptPid: number): number {
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(f[1]) === scriptPid) return Number(f[2]);
    } catch { /* exited meanwhile */ }
  }
  throw new Error("the pty's command is not running");
}

/** `npm run try -- …` exactly as the view prints it. */
async function tryIt(dir: string, args: string[]) {
  const out = await new Deno.Command("npm", {
    args: ["run", "try", "--", ...args],
    clearEnv: true,
    env: stackEnv(dir),
    cwd: ROOT,
    stdin: "null",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return { code: out.code, text };
}

Deno.test({
  ...opts,
  name:
    "first minutes: npm start in an 80×24 terminal shows progress, then a status view that fits; the try-it commands work; Ctrl-C stops everything",
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "crm_first_minutes_" });
    await Deno.chmod(dir, 0o755); // the postgres OS user runs the cluster inside it
    const run = startInPty(dir);
    try {
      await until(
        "the status view with the try-it lines",
        () => {
          const screens = run.output().split(CLEAR);
          return screens.length > 1 && screens.at(-1)!.includes("npm run try -- show");
        },
        run,
        240_000,
      );
      const text = run.output();
      const firstView = text.indexOf("connection object");
      assert.ok(firstView > 0, text);
      // The backfill's progress bars (cli-progress) are drawn before the view, then its table.
      assert.match(text.slice(0, firstView), /HubSpot.* contacts +█+ 100% 20\/20/);
      assert.match(text.slice(0, firstView), /Pipedrive.* contacts +.*20/);
      assert.match(text, /backfill done: [\d,]+ records/);

      // The latest complete screen fits the terminal.
      const screens = text.split(CLEAR).filter((s) => s.includes("npm run try -- show"));
      const screen = screens.at(-1)!.replace(/\r/g, "").replace(/\n$/, "").split("\n");
      assert.ok(screen.length <= 24, `${screen.length} rows:\n${screen.join("\n")}`);
      for (const l of screen) assert.ok([...l].length <= 80, `wider than 80: ${l}`);
      for (const p of ["hubspot", "pipedrive", "salesforce"]) {
        assert.ok(screen.some((l) => l.startsWith(p)), `${p} has its lines`);
      }
      assert.ok(screen.some((l) => /^cron +next /.test(l)), "next cron runs");

      // The three commands, as printed: each side's edit reaches the other.
      for (const side of ["crm", "app"]) {
        const edit = await tryIt(dir, [side]);
        assert.equal(edit.code, 0, edit.text);
        assert.match(edit.text, /now: npm run try -- show/);
        const show = await tryIt(dir, ["show"]);
        assert.equal(show.code, 0, show.text);
        assert.match(show.text, /both sides agree, [\d.]+ s after the edit/);
      }

      // Ctrl-C typed into the terminal: everything stops, then the command returns.
      const groups = [...stackGroups(dir, ptySession(run.pid))];
      assert.ok(members(groups).length >= 5, "the stack is running");
      await run.type("\x03");
      const status = await run.status;
      assert.equal(status.code, 0, run.output().slice(-2000));
      assert.match(run.output(), /stack stopped/);
      assertGone(dir, groups, run.output().slice(-2000));
    } finally {
      await run.close();
      if (!run.exited()) {
        try {
          Deno.kill(-run.pid, "SIGKILL");
        } catch { /* gone */ }
      }
      await run.status.catch(() => {});
      await cleanUp(dir, ROOT, BASE);
    }
  },
});
