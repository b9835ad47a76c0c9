// The "Postgres connection dropped mid-statement" fault: polls (up to `windowMs`) for one of
// the engine's backends (the functions' postgres.js connections) running a statement, and
// terminates it in the very statement that saw it active, so the cut lands in that statement
// unless it finished in the microseconds between (an idle-connection drop, the weaker case).
// An idle backend is never picked. Returns the head of the statement seen running, or null when
// none ran in the window.
import type postgres from "postgres";

type Sql = ReturnType<typeof postgres>;

export async function dropInFlight(
  sql: Sql,
  windowMs = 3000,
  /** The engine's backends: postgres.js's default application name, which the functions keep. */
  app = "postgres.js",
): Promise<string | null> {
  const end = Date.now() + windowMs;
  while (Date.now() < end) {
    const [hit] = await sql`
      select left(regexp_replace(query, '\\s+', ' ', 'g'), 80) as query,
             pg_terminate_backend(pid) as killed
      from pg_stat_activity
      where datname = current_database() and backend_type = 'client backend'
        and pid <> pg_backend_pid() and state = 'active'
        and application_name = ${app}
      limit 1`;
    if (hit?.killed) return hit.query as string;
    await new Promise((r) => setTimeout(r, 5));
  }
  return null;
}
