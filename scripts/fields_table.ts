// The synced-fields table (docs/fields.md), generated from the provider-default field mappings
// seeded by the migrations. `deno run -A scripts/fields_table.ts` prints it; `--write` rewrites
// docs/fields.md. tests/fields_table.test.ts fails when the committed file and the seed differ.
//
// The seed is read from the SQL, not from a database, so the table can be checked without a
// stack. Only the statement shapes the migrations use are understood: `insert into
// crm.field_mappings ... values (...)` rows and `update crm.field_mappings set direction|enabled
// = '...' where <col> = '...' and ...`. Any other statement on crm.field_mappings (a delete, an
// update of another column) throws, so a new migration cannot change the seed unseen.
import { join } from "node:path";

export interface Mapping {
  provider: string;
  object: string;
  remote_object: string;
  column_name: string;
  remote_property: string;
  direction: string;
  transform: string;
  enabled: boolean;
}

const ROOT = join(import.meta.dirname ?? ".", "..");
const MIGRATIONS = join(ROOT, "supabase", "migrations");
export const FIELDS_MD = join(ROOT, "docs", "fields.md");

/** SQL without comments (quoted strings kept as they are). */
function stripComments(sql: string): string {
  let out = "";
  let i = 0;
  while (i < sql.length) {
    const c = sql[i];
    if (c === "'") {
      const end = sql.indexOf("'", i + 1);
      const stop = end < 0 ? sql.length : end + 1;
      out += sql.slice(i, stop);
      i = stop;
    } else if (c === "-" && sql[i + 1] === "-") {
      const nl = sql.indexOf("\n", i);
      i = nl < 0 ? sql.length : nl;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** Top-level statements (split on `;` outside quotes and $$ bodies). */
function statements(sql: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quote = false, dollar = false;
  for (let i = 0; i < sql.length; i++) {
    const c = sql[i];
    if (!dollar && c === "'") quote = !quote;
    if (!quote && c === "$" && sql[i + 1] === "$") {
      dollar = !dollar;
      cur += "$$";
      i++;
      continue;
    }
    if (!quote && !dollar && c === ";") {
      out.push(cur.trim());
      cur = "";
    } else cur += c;
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

/** The parenthesised tuples of quoted strings in a VALUES list, in order. */
function tuples(values: string): string[][] {
  const rows: string[][] = [];
  const tuple = /\(\s*('(?:[^']|'')*'(?:\s*,\s*'(?:[^']|'')*')*)\s*\)/g;
  for (const m of values.matchAll(tuple)) {
    rows.push([...m[1].matchAll(/'((?:[^']|'')*)'/g)].map((s) => s[1].replaceAll("''", "'")));
  }
  return rows;
}

const KEY = (m: Pick<Mapping, "provider" | "remote_object" | "column_name">) =>
  `${m.provider}|${m.remote_object}|${m.column_name}`;

function applyInsert(stmt: string, file: string, seed: Map<string, Mapping>) {
  const cols = stmt.match(/insert\s+into\s+crm\.field_mappings\s*\(([^)]*)\)/i)?.[1]
    .split(",").map((s) => s.trim());
  if (!cols) throw new Error(`${file}: insert into crm.field_mappings without a column list`);
  // `select v.* from (values ...) as v(...)` (the first seed) or a plain `values ...`.
  const vCols = stmt.match(/\)\s*as\s+v\s*\(([^)]*)\)/i)?.[1].split(",").map((s) => s.trim());
  const order = vCols ?? cols;
  const body = stmt.slice(stmt.search(/\bvalues\b/i));
  for (const t of tuples(body)) {
    if (t.length !== order.length) {
      throw new Error(
        `${file}: a field_mappings row has ${t.length} values, expected ${order.length}`,
      );
    }
    const row = Object.fromEntries(order.map((c, i) => [c, t[i]]));
    const m: Mapping = {
      provider: row.provider,
      object: row.object,
      remote_object: row.remote_object,
      column_name: row.column_name,
      remote_property: row.remote_property,
      direction: row.direction ?? "both",
      transform: row.transform ?? "text",
      enabled: true,
    };
    // `on conflict do nothing`: the first row of a key wins.
    if (!seed.has(KEY(m))) seed.set(KEY(m), m);
  }
}

function applyUpdate(stmt: string, file: string, seed: Map<string, Mapping>) {
  const m = stmt.match(/update\s+crm\.field_mappings\s+set\s+([\s\S]*?)\s+where\s+([\s\S]*)$/i);
  if (!m) throw new Error(`${file}: unsupported update of crm.field_mappings`);
  const sets: Record<string, string> = {};
  for (const part of m[1].split(",").map((s) => s.trim())) {
    const a = part.match(/^(\w+)\s*=\s*(?:'([^']*)'|(true|false|now\(\)))$/i);
    if (!a) throw new Error(`${file}: unsupported assignment in field_mappings update: ${part}`);
    if (a[1] === "updated_at") continue;
    if (a[1] !== "direction" && a[1] !== "enabled") {
      throw new Error(`${file}: field_mappings update sets ${a[1]}: teach scripts/fields_table.ts`);
    }
    sets[a[1]] = a[2] ?? a[3];
  }
  const where: Record<string, string> = {};
  let defaultsOnly = false;
  for (const cond of m[2].split(/\s+and\s+/i).map((s) => s.trim())) {
    if (/^connection_id\s+is\s+null$/i.test(cond)) {
      defaultsOnly = true;
      continue;
    }
    const c = cond.match(/^(\w+)\s*=\s*'([^']*)'$/);
    if (!c) throw new Error(`${file}: unsupported condition in field_mappings update: ${cond}`);
    where[c[1]] = c[2];
  }
  if (!defaultsOnly) throw new Error(`${file}: field_mappings update not limited to defaults`);
  let hit = 0;
  for (const row of seed.values()) {
    const r = row as unknown as Record<string, string>;
    if (!Object.entries(where).every(([k, v]) => r[k] === v)) continue;
    if (sets.direction) row.direction = sets.direction;
    if (sets.enabled) row.enabled = sets.enabled === "true";
    hit++;
  }
  if (hit === 0) throw new Error(`${file}: a field_mappings update matches no seeded row`);
}

/** The provider defaults after every migration, in migration order. */
export function seededMappings(dir = MIGRATIONS): Mapping[] {
  const files = [...Deno.readDirSync(dir)].filter((f) => f.isFile && f.name.endsWith(".sql"))
    .map((f) => f.name).sort();
  const seed = new Map<string, Mapping>();
  for (const file of files) {
    const sql = stripComments(Deno.readTextFileSync(join(dir, file)));
    if (!/crm\.field_mappings/i.test(sql)) continue;
    for (const stmt of statements(sql)) {
      if (/^insert\s+into\s+crm\.field_mappings\b/i.test(stmt)) applyInsert(stmt, file, seed);
      else if (/^update\s+crm\.field_mappings\b/i.test(stmt)) applyUpdate(stmt, file, seed);
      else if (/^(delete\s+from|truncate)\s+(table\s+)?crm\.field_mappings\b/i.test(stmt)) {
        throw new Error(`${file}: ${stmt.slice(0, 40)}…: teach scripts/fields_table.ts`);
      }
    }
  }
  return [...seed.values()].filter((m) => m.enabled);
}

const PROVIDERS = ["hubspot", "salesforce", "pipedrive"];
const OBJECTS = ["contacts", "companies", "deals", "owners"];
const TITLE: Record<string, string> = {
  hubspot: "HubSpot",
  salesforce: "Salesforce",
  pipedrive: "Pipedrive",
};
const ARROW: Record<string, string> = {
  both: "both ⇄",
  inbound: "inbound ←",
  outbound: "outbound →",
};

/** docs/fields.md's text. */
export function fieldsMarkdown(rows: Mapping[]): string {
  const out = [
    "# Synced fields",
    "",
    "<!-- Generated by `deno run -A scripts/fields_table.ts --write` from the provider-default",
    "field mappings the migrations seed; tests/fields_table.test.ts fails when they disagree. -->",
    "",
    "Which CRM property feeds which column of the mirror tables (`crm.contacts`, `crm.companies`,",
    "`crm.deals`, `crm.owners`), per provider, in each direction:",
    "",
    "- **inbound ←**: read from the CRM into the mirror only; an app's edit of the column is not",
    "  sent (it is not queued, and the next change in the CRM overwrites it).",
    "- **outbound →**: written to the CRM only.",
    "- **both ⇄**: read and written; an edit on both sides since the last agreed value is a",
    "  conflict (see docs/architecture.md).",
    "",
    "These are the defaults. A connection can override, disable or add mappings (custom",
    "properties map to `custom.<key>`) with rows in `crm.field_mappings`; the mappings in force",
    "for a connection are `select * from crm.effective_field_mappings('<connection id>')`.",
    "Owners are read only. A property not listed here is not synced.",
    "",
  ];
  for (const p of PROVIDERS) {
    out.push(`## ${TITLE[p]}`, "");
    for (const o of OBJECTS) {
      const list = rows.filter((r) => r.provider === p && r.object === o)
        .sort((a, b) =>
          a.remote_object.localeCompare(b.remote_object) ||
          a.column_name.localeCompare(b.column_name)
        );
      if (!list.length) continue;
      const remotes = [...new Set(list.map((r) => r.remote_object))];
      out.push(`### ${o} (${remotes.join(", ")})`, "");
      const many = remotes.length > 1;
      out.push(
        many
          ? "| CRM object | column | CRM property | direction | transform |"
          : "| column | CRM property | direction | transform |",
        many ? "|---|---|---|---|---|" : "|---|---|---|---|",
      );
      for (const r of list) {
        const cells = [
          `\`${r.column_name}\``,
          `\`${r.remote_property}\``,
          ARROW[r.direction] ?? r.direction,
          `\`${r.transform}\``,
        ];
        if (many) cells.unshift(r.remote_object);
        out.push(`| ${cells.join(" | ")} |`);
      }
      out.push("");
    }
  }
  return out.join("\n");
}

if (import.meta.main) {
  const md = fieldsMarkdown(seededMappings());
  if (Deno.args.includes("--write")) {
    Deno.mkdirSync(join(ROOT, "docs"), { recursive: true });
    Deno.writeTextFileSync(FIELDS_MD, md);
    console.log(`wrote ${FIELDS_MD}`);
  } else {
    console.log(md);
  }
}
