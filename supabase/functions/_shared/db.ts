// The engine's database handle: postgres.js over SUPABASE_DB_URL (set by the platform and by
// the local gateway). One small pool per function instance; callers pass it around.
import postgres from "postgres";

export type Sql = ReturnType<typeof postgres>;

export function connect(url = Deno.env.get("SUPABASE_DB_URL")): Sql {
  if (!url) throw new Error("SUPABASE_DB_URL is not set");
  // prepare:false keeps us compatible with Supavisor's transaction mode on the platform.
  return postgres(url, { max: 4, prepare: false, onnotice: () => {}, idle_timeout: 20 });
}
