// One session of its own against the stack database: the tests that need two real sessions
// (locks, claims, races) open one per side.
import postgres from "postgres";
import { need } from "./env.ts";

export type Sql = ReturnType<typeof postgres>;

export const openSession = (): Sql =>
  postgres(need("SUPABASE_DB_URL"), { max: 1, onnotice: () => {}, prepare: false });
export type Tx = postgres.TransactionSql;
