// npm run try -- crm|app|show [--provider hubspot|salesforce|pipedrive] [--value TEXT]
// The "try it" commands of `npm start` (shared/local/try_it.ts): edit the demo contact's job
// title in the CRM sandbox or in SQL as an app user, then watch both sides agree. Runs against
// the running stack of CRM_STACK_PROFILE (default: the developer's, `npm start`).
import { join } from "node:path";
import { parseArgs } from "node:util";
import postgres from "postgres";
import { type Profile, stackConfig } from "../shared/local/config.ts";
import { DEV_USER_ID } from "../shared/local/connect_sandboxes.ts";
import { readEnvFile } from "../shared/local/env_file.ts";
import {
  appValue,
  crmValue,
  editInApp,
  editInCrm,
  findDemo,
  type LastEdit,
  watchBoth,
} from "../shared/local/try_it.ts";

const USAGE = "usage: npm run try -- crm|app|show [--provider hubspot|salesforce|pipedrive] " +
  "[--value TEXT]";

function fail(msg: string): never {
  console.error(msg);
  Deno.exit(2);
}

const { values, positionals } = (() => {
  try {
    return parseArgs({
      args: Deno.args,
      options: { provider: { type: "string", default: "hubspot" }, value: { type: "string" } },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    return fail(`${(e as Error).message}\n${USAGE}`);
  }
})();
const command = positionals[0];
if (!["crm", "app", "show"].includes(command ?? "")) fail(USAGE);

const cfg = stackConfig((Deno.env.get("CRM_STACK_PROFILE") || "dev") as Profile);
const env = await readEnvFile(cfg.envFile);
if (!env.SUPABASE_DB_URL) fail(`no stack found (${cfg.envFile}); start it with npm start`);
const lastFile = join(cfg.dir, "try.json");
const sql = postgres(env.SUPABASE_DB_URL, { max: 1, onnotice: () => {}, connect_timeout: 5 });
const clock = () => new Date().toISOString().slice(11, 23);
const show = (v: string | null) => v === null ? "(empty)" : JSON.stringify(v);

try {
  if (command === "show") {
    const last = await Deno.readTextFile(lastFile).then((t) => JSON.parse(t) as LastEdit)
      .catch(() => null);
    const demo = last?.demo ?? await findDemo(sql, values.provider!);
    const since = last ? Date.parse(last.at) : Date.now();
    console.log(
      `${demo.provider} contact ${demo.remoteId} (${demo.name}), job title in Postgres and in the sandbox` +
        (last
          ? `; last edit: ${last.side === "crm" ? "in the sandbox" : "in SQL"} at ${
            last.at.slice(11, 23)
          } UTC`
          : ""),
    );
    const took = await watchBoth({
      sql,
      demo,
      since,
      expected: last?.value,
      on: (l) => console.log(`${clock()}  postgres ${show(l.app)}  ·  sandbox ${show(l.crm)}`),
    });
    if (took === null) {
      console.log("the two sides did not agree within 30 s: see the status view's errors column");
      Deno.exitCode = 1;
    } else {
      console.log(
        last
          ? `both sides agree, ${(took / 1000).toFixed(2)} s after the edit`
          : "both sides agree",
      );
    }
  } else {
    const demo = await findDemo(sql, values.provider!);
    const value = values.value ?? `${command === "crm" ? "CRM" : "App"} edit ${clock()}`;
    const before = command === "crm" ? await crmValue(demo) : await appValue(sql, demo);
    const at = new Date().toISOString();
    if (command === "crm") {
      const curl = await editInCrm(demo, value);
      console.log(
        `edited ${demo.provider} contact ${demo.remoteId} (${demo.name}) in the sandbox, as a CRM user:`,
      );
      console.log(`  ${curl}`);
    } else {
      const lines = await editInApp(sql, demo, value, DEV_USER_ID);
      console.log(
        `edited contact ${demo.remoteId} (${demo.name}) in Postgres, as an app user (psql "${env.SUPABASE_DB_URL}"):`,
      );
      for (const l of lines) console.log(`  ${l}`);
    }
    console.log(`job title ${show(before)} → ${show(value)}; now: npm run try -- show`);
    const last: LastEdit = { side: command as "crm" | "app", value, at, demo };
    await Deno.writeTextFile(lastFile, JSON.stringify(last, null, 2) + "\n");
  }
} catch (e) {
  console.error(`try ${command}: ${(e as Error).message}`);
  Deno.exitCode = 1;
} finally {
  await sql.end({ timeout: 1 });
}
