// One side of the A/B (./ab.ts): a fresh Postgres cluster of its own (pg_cron can live in one
// database per cluster only, and both sides need it in `postgres`, as on Supabase), built
// exactly as the stack builds its own — initdb with the bench profile's settings (fsync on),
// the bootstrap SQL, then `supabase db push` of the migrations — from either the working tree
// or a git ref. A ref's files come from `git archive <ref> supabase/config.toml
// supabase/migrations shared/local/sql` into the side's folder; the CLI and the extensions
// (pg_cron, the pg_net and Vault stand-ins) are this checkout's. Cron jobs are switched off, as
// in the bench database. Folders: .local/bench-ab-<side>, removed by stop() unless kept.
// Ports: see sideConfig.
import { join } from "node:path";
import postgres from "postgres";
import { dbUrl, ROOT, type StackConfig } from "../../shared/local/config.ts";
import {
  bootstrap,
  initCluster,
  pushMigrations,
  startCluster,
  stopCluster,
} from "../../shared/local/postgres.ts";

export interface AbSide {
  name: "ref" | "tree";
  /** What the side runs, for the report: "<ref> (<sha>)" or "working tree (<sha>[+changes])". */
  label: string;
  cfg: StackConfig;
  sql: postgres.Sql;
  stop(keep: boolean): Promise<void>;
}

async function git(args: string[]): Promise<string> {
  const out = await new Deno.Command("git", { args, cwd: ROOT, stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(out.stdout).trim();
  if (!out.success) {
    throw new Error(`git ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return text;
}

/** The ref's migrations, config and bootstrap SQL, unpacked under `into`. */
async function archive(commit: string, into: string): Promise<void> {
  await Deno.mkdir(into, { recursive: true });
  const git = new Deno.Command("git", {
    args: ["archive", commit, "supabase/config.toml", "supabase/migrations", "shared/local/sql"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const tar = new Deno.Command("tar", {
    args: ["-x", "-C", into],
    stdin: "piped",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  await git.stdout.pipeTo(tar.stdin);
  const [g, t] = await Promise.all([git.output(), tar.output()]);
  if (!g.success || !t.success) {
    throw new Error(
      `git archive ${commit} | tar failed: ${new TextDecoder().decode(g.stderr)}${
        new TextDecoder().decode(t.stderr)
      }`,
    );
  }
}

/** Where a side's cluster lives and listens: the bench profile's settings, its own folder, and
 * the port 18 (ref) or 19 (tree) above the bench database's (28340/28341 by default). */
export function sideConfig(base: StackConfig, name: AbSide["name"]): StackConfig {
  const dir = join(ROOT, ".local", `bench-ab-${name}`);
  return {
    ...base,
    dir,
    pgDir: join(dir, "pg"),
    pgData: join(dir, "pg", "data"),
    pgPort: base.pgPort + (name === "ref" ? 18 : 19),
  };
}

/** Stops a side's cluster left up by --keep (nothing if none). */
export async function stopSide(base: StackConfig, name: AbSide["name"]): Promise<boolean> {
  const cfg = sideConfig(base, name);
  try {
    await Deno.stat(join(cfg.pgData, "PG_VERSION"));
  } catch {
    return false;
  }
  return await stopCluster(cfg);
}

export async function startSide(
  base: StackConfig,
  name: AbSide["name"],
  ref: string | null,
  log: (m: string) => void,
): Promise<AbSide> {
  const cfg = sideConfig(base, name);
  const { dir, pgPort } = cfg;
  await stopSide(base, name);
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.mkdir(dir, { recursive: true });

  let root = ROOT;
  let label: string;
  if (ref === null) {
    const head = await git(["rev-parse", "--short", "HEAD"]);
    const dirty = await git([
      "status",
      "--porcelain",
      "--",
      "supabase/migrations",
      "shared/local/sql",
    ]);
    label = `working tree (${head}${dirty ? " + uncommitted changes" : ""})`;
  } else {
    const commit = await git(["rev-parse", "--verify", "--quiet", `${ref}^{commit}`])
      .catch(() => {
        throw new Error(`--ab: ${ref} is not a commit of this repository`);
      });
    root = join(dir, "src");
    await archive(commit, root);
    label = `${ref} (${commit.slice(0, 7)})`;
  }
  log(`${name}: ${label} on port ${pgPort}`);
  await initCluster(cfg);
  await startCluster(cfg);
  await bootstrap(cfg, root);
  await pushMigrations(cfg, root);
  const sql = postgres(dbUrl(cfg), { max: 1, onnotice: () => {} });
  await sql`select cron.alter_job(jobid, active := false) from cron.job`;
  return {
    name,
    label,
    cfg,
    sql,
    async stop(keep: boolean) {
      await sql.end();
      if (keep) return;
      await stopCluster(cfg);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}
