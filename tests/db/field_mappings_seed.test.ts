// The provider-default field mappings in the database equal what scripts/fields_table.ts reads
// out of the migrations (so docs/fields.md, checked against that reader, describes the
// database a migrated stack really has).
import assert from "node:assert/strict";
import postgres from "postgres";
import { need } from "../_support/env.ts";
import { seededMappings } from "../../scripts/fields_table.ts";

Deno.test("provider-default field mappings in the database = the seed docs/fields.md is made from", async () => {
  const sql = postgres(need("SUPABASE_DB_URL"), { max: 1, onnotice: () => {}, prepare: false });
  try {
    const rows = await sql<{ k: string }[]>`
      select concat_ws('|', provider, object, remote_object, column_name, remote_property,
                       direction, transform) as k
      from crm.field_mappings
      where connection_id is null and enabled
      order by 1`;
    const want = seededMappings().map((m) =>
      [
        m.provider,
        m.object,
        m.remote_object,
        m.column_name,
        m.remote_property,
        m.direction,
        m.transform,
      ].join("|")
    ).sort();
    assert.deepEqual(rows.map((r) => r.k).sort(), want);
  } finally {
    await sql.end();
  }
});
