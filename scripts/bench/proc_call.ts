// Calls a crm function by its parameter NAMES, read from pg_proc, so the bench keeps working
// when a migration adds a parameter (a lease token, a default) to crm.begin_inbound_run or
// crm.save_inbound_page. A parameter the caller does not name is left to its default; one
// without a default is taken from `from` (e.g. begin_inbound_run's row: `p_lease_token` from
// its `lease_token` column); anything else fails with a message naming it.
import type postgres from "postgres";

interface Param {
  name: string;
  type: string;
  hasDefault: boolean;
}

async function params(sql: postgres.Sql, fn: string): Promise<Param[]> {
  const rows = await sql`
    select p.proargnames as names, p.proargmodes as modes, p.pronargs::int as nargs,
           p.pronargdefaults::int as ndefaults,
           array(select format_type(t, null) from unnest(p.proargtypes::oid[]) t) as types
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname = 'crm' and p.proname = ${fn}`;
  if (rows.length !== 1) throw new Error(`crm.${fn}: expected one function, found ${rows.length}`);
  const r = rows[0];
  // proargnames also lists OUT/TABLE columns; input parameters are those of mode i/b/v.
  const names = (r.names as string[]).filter((_, i) =>
    !r.modes || ["i", "b", "v"].includes((r.modes as string[])[i])
  );
  return (r.types as string[]).map((type, i) => ({
    name: names[i],
    type,
    hasDefault: i >= r.nargs - r.ndefaults,
  }));
}

export async function callByName(
  sql: postgres.Sql,
  fn: string,
  args: Record<string, unknown>,
  from: Record<string, unknown> = {},
): Promise<postgres.Row[]> {
  const ps = await params(sql, fn);
  const parts: string[] = [];
  const values: unknown[] = [];
  for (const p of ps) {
    const key = p.name.replace(/^p_/, "");
    let value: unknown;
    if (p.name in args) value = args[p.name];
    else if (key in from) value = from[key];
    else if (p.hasDefault) continue;
    else throw new Error(`crm.${fn} has a parameter ${p.name} the bench does not know`);
    values.push(value);
    // jsonb goes as text: postgres.js would send an object, and a string as a JSON scalar.
    const cast = p.type === "jsonb" ? "::text::jsonb" : `::${p.type}`;
    parts.push(`"${p.name}" => $${values.length}${cast}`);
  }
  return await sql.unsafe(
    `select * from crm."${fn}"(${parts.join(", ")})`,
    values as postgres.ParameterOrJSON<never>[],
  );
}

export async function functionExists(sql: postgres.Sql, fn: string): Promise<boolean> {
  const [r] = await sql`
    select count(*)::int as n from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname = 'crm' and p.proname = ${fn}`;
  return r.n > 0;
}
