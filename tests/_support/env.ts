// Connection details of the stack the tests run against: the environment `npm test` exports
// (the throw-away test stack), else the developer's `.local/stack.env` from `npm run stack:up`.
import { join } from "node:path";
import { ROOT } from "../../shared/local/config.ts";
import { parseEnv } from "../../shared/local/env_file.ts";

let cached: Record<string, string> | null = null;

export function stackEnv(): Record<string, string> {
  if (cached) return cached;
  if (Deno.env.get("SUPABASE_DB_URL")) {
    cached = Deno.env.toObject();
  } else {
    try {
      cached = parseEnv(Deno.readTextFileSync(join(ROOT, ".local", "stack.env")));
    } catch {
      throw new Error("no stack: run `npm run stack:up` first, or run the suite with `npm test`");
    }
  }
  return cached;
}

export function need(key: string): string {
  const v = stackEnv()[key];
  if (!v) throw new Error(`${key} missing from the stack environment`);
  return v;
}
