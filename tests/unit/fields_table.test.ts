// docs/fields.md is generated from the field-mapping seed (scripts/fields_table.ts): the
// committed file must equal what the migrations seed today, and the SQL reader must follow the
// statement shapes the migrations use (and refuse the ones it does not understand).
import assert from "node:assert/strict";
import { join } from "node:path";
import { FIELDS_MD, fieldsMarkdown, seededMappings } from "../../scripts/fields_table.ts";

Deno.test("docs/fields.md matches the field mappings the migrations seed", () => {
  const want = fieldsMarkdown(seededMappings());
  const have = Deno.readTextFileSync(FIELDS_MD);
  assert.equal(
    have,
    want,
    "docs/fields.md is stale: run `deno run -A scripts/fields_table.ts --write`",
  );
});

Deno.test("the seed includes the later migrations (HubSpot contact company written, Pipedrive job title)", () => {
  const rows = seededMappings();
  const find = (p: string, r: string, c: string) =>
    rows.find((m) => m.provider === p && m.remote_object === r && m.column_name === c);
  assert.equal(find("hubspot", "contacts", "company_remote_id")?.direction, "both");
  assert.deepEqual(
    [
      find("pipedrive", "persons", "job_title")?.remote_property,
      find("pipedrive", "persons", "job_title")?.direction,
    ],
    ["job_title", "both"],
  );
  assert.equal(find("pipedrive", "organizations", "domain")?.remote_property, "website");
  // No duplicate (provider, remote object, column): the table's rows are the seed's keys.
  const keys = rows.map((m) => `${m.provider}|${m.remote_object}|${m.column_name}`);
  assert.equal(new Set(keys).size, keys.length);
});

function tempMigrations(files: Record<string, string>): string {
  const dir = Deno.makeTempDirSync({ prefix: "fields_table_" });
  for (const [name, sql] of Object.entries(files)) Deno.writeTextFileSync(join(dir, name), sql);
  return dir;
}

const BASE = `-- a comment naming crm.field_mappings; with a semicolon
insert into crm.field_mappings
  (provider, object, remote_object, column_name, remote_property, direction, transform, options)
select v.provider, v.object, v.remote_object, v.column_name, v.remote_property, v.direction,
       v.transform, v.options::jsonb
from (values
  ('pipedrive', 'contacts', 'persons', 'first_name', 'first_name', 'both', 'text', '{}'),
  ('pipedrive', 'deals', 'deals', 'status', 'status', 'both', 'enum:x', '{"map": {"a": "b"}}')
) as v(provider, object, remote_object, column_name, remote_property, direction, transform, options)
on conflict on constraint field_mappings_unique do nothing;
create function f() returns void language sql as $$ select 1; select 2 $$;
`;

Deno.test("the reader applies inserts in order, first row of a key wins, and updates", () => {
  const dir = tempMigrations({
    "1_base.sql": BASE,
    "2_more.sql": `insert into crm.field_mappings
  (provider, object, remote_object, column_name, remote_property, direction, transform, options)
values ('pipedrive', 'contacts', 'persons', 'first_name', 'other', 'inbound', 'text', '{}'),
  ('pipedrive', 'contacts', 'persons', 'job_title', 'job_title', 'both', 'text', '{}')
on conflict on constraint field_mappings_unique do nothing;
update crm.field_mappings set direction = 'inbound', updated_at = now()
where connection_id is null and provider = 'pipedrive' and column_name = 'status';`,
  });
  try {
    const rows = seededMappings(dir);
    assert.deepEqual(
      rows.map((r) => [r.column_name, r.remote_property, r.direction, r.transform]),
      [
        ["first_name", "first_name", "both", "text"],
        ["status", "status", "inbound", "enum:x"],
        ["job_title", "job_title", "both", "text"],
      ],
    );
    const md = fieldsMarkdown(rows);
    assert.match(md, /\| `job_title` \| `job_title` \| both ⇄ \| `text` \|/);
    assert.match(md, /\| `status` \| `status` \| inbound ← \| `enum:x` \|/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("the reader refuses statements it does not understand rather than skip them", () => {
  for (
    const bad of [
      "delete from crm.field_mappings where provider = 'pipedrive';",
      "update crm.field_mappings set transform = 'lower' where connection_id is null and column_name = 'status';",
      "update crm.field_mappings set direction = 'inbound' where column_name = 'status';",
      "update crm.field_mappings set direction = 'inbound' where connection_id is null and column_name = 'nope';",
    ]
  ) {
    const dir = tempMigrations({ "1_base.sql": BASE, "2_bad.sql": bad });
    try {
      assert.throws(() => seededMappings(dir), /field_mappings|teach/, bad);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  }
});
