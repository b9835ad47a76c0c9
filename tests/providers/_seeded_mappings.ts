// The default field mappings exactly as the migration seeds them, parsed out of its SQL so the
// mapper tests follow the migration instead of a hand-kept copy.
import type { FieldMappingRow } from "../../supabase/functions/_shared/mapping/mapper.ts";
import type { ProviderName } from "../../supabase/functions/_shared/providers/types.ts";

const MIGRATION = new URL(
  "../../supabase/migrations/20261122010400_crm_field_mappings.sql",
  import.meta.url,
);

const TUPLE = new RegExp(
  String.raw`\(\s*` + Array(8).fill(String.raw`'([^']*)'`).join(String.raw`\s*,\s*`) +
    String.raw`\s*\)`,
  "g",
);

export function seededMappings(provider?: ProviderName): FieldMappingRow[] {
  const sql = Deno.readTextFileSync(MIGRATION);
  const start = sql.indexOf("from (values");
  const end = sql.indexOf(") as v(provider", start);
  if (start < 0 || end < 0) throw new Error("seed block not found in the migration");
  const rows: FieldMappingRow[] = [];
  for (const m of sql.slice(start, end).matchAll(TUPLE)) {
    const [, p, object, remote_object, column_name, remote_property, direction, transform, opts] =
      m;
    if (provider && p !== provider) continue;
    rows.push({
      provider: p,
      object: object as FieldMappingRow["object"],
      remote_object,
      column_name,
      remote_property,
      direction: direction as FieldMappingRow["direction"],
      transform,
      options: JSON.parse(opts),
      enabled: true,
    });
  }
  return rows;
}
