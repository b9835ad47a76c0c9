#!/usr/bin/env node
// The npm scripts' Deno: runs the project's Deno binary (npm package `deno`) and stays until it
// has exited, then ends with its status. The package's own launcher (node_modules/.bin/deno)
// waits in spawnSync and dies at the first Ctrl-C, so npm and the shell gave the prompt back
// while `npm start` was still stopping the stack, and a tmux pane running npm closed under it
// (issue 16, point 2). A terminal's Ctrl-C reaches Deno directly (same process group), so
// SIGINT is not passed on (a second one would force the stop); SIGTERM and SIGHUP, which may
// be sent to this process alone, are.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import process from "node:process";

const require = createRequire(import.meta.url);
let exe = join(dirname(require.resolve("deno/package.json")), "deno");
if (!existsSync(exe)) exe = require("deno/install_api.cjs").runInstall();

const child = spawn(exe, process.argv.slice(2), { stdio: "inherit" });
const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"];
for (const s of SIGNALS) {
  process.on(s, () => {
    if (s !== "SIGINT") child.kill(s);
  });
}
child.on("error", (e) => {
  console.error(`could not run deno: ${e.message}`);
  process.exit(1);
});
child.on("exit", (code, signal) => {
  if (signal) {
    // End the way Deno ended, so npm and the shell see the same.
    for (const s of SIGNALS) process.removeAllListeners(s);
    process.kill(process.pid, signal);
  } else process.exit(code ?? 1);
});
