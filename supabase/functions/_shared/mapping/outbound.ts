// Outbound mapping: the inverse of the `outbound`/`both` rows of crm.field_mappings. A claimed
// outbox entry's row (canonical columns, as crm.claim_outbox returns it) and its changed fields
// become the provider properties of one write, through the outbound transforms (./transforms.ts).
//
// Decisions:
// - Only fields that changed are sent (all of a new record's); a field without an outbound
//   mapping is not sent (the triggers do not queue such fields in the first place).
// - A relation whose local id is set but whose remote id is still NULL (the related record is
//   not in the CRM yet) is left out: crm.complete_outbox queues it again once the related
//   record has its remote id, so it is never cleared in the CRM meanwhile.
// - A transform that cannot write a value back (derived fields such as deal_status, half of a
//   split name) skips the field with a note; multi-property mappings are inbound only.
import type { ObjectType, ProviderName } from "../providers/types.ts";
import { type FieldMappingRow, FieldMappingRowSchema, splitProperties } from "./mapper.ts";
import { applyOutbound, type TransformContext } from "./transforms.ts";

/** Remote-id columns of the mirror tables and the local id that stands behind each
 * (crm._mirror_refs in SQL). */
const RELATIONS: Record<string, string> = {
  company_remote_id: "company_id",
  owner_remote_id: "owner_id",
  primary_contact_remote_id: "primary_contact_id",
};

const CUSTOM = "custom.";

export interface OutboundPlan {
  remoteType: string;
  properties: Record<string, unknown>;
  /** Changed fields not sent, with why (no outbound mapping, not writable, relation pending). */
  skipped: { field: string; reason: string }[];
  warnings: { field: string; message: string }[];
}

export interface OutboundMapper {
  /** The remote object a row is written to, or null when nothing maps the object outbound. */
  remoteType(object: ObjectType, row: Record<string, unknown>): string | null;
  /** The properties to send for the changed `fields` of `row` (a new record's: all it has). */
  plan(object: ObjectType, row: Record<string, unknown>, fields: readonly string[]): OutboundPlan;
}

interface Compiled {
  column: string;
  property: string;
  transform: string;
  ctx: TransformContext;
}

export function createOutboundMapper(
  provider: ProviderName,
  mappings: readonly (FieldMappingRow | Record<string, unknown>)[],
  ctx: { defaultRegion?: string } = {},
): OutboundMapper {
  // object -> remote object -> outbound mappings
  const byObject = new Map<ObjectType, Map<string, Compiled[]>>();
  for (const raw of mappings) {
    const row = FieldMappingRowSchema.parse(raw);
    if (!row.enabled || row.direction === "inbound") continue;
    const properties = splitProperties(row.remote_property);
    const byRemote = byObject.get(row.object) ?? new Map<string, Compiled[]>();
    byObject.set(row.object, byRemote);
    const list = byRemote.get(row.remote_object) ?? [];
    byRemote.set(row.remote_object, list);
    list.push({
      column: row.column_name,
      // A comma list is read by a transform over several properties; nothing writes it back.
      property: properties.length === 1 ? properties[0] : "",
      transform: row.transform,
      ctx: { defaultRegion: ctx.defaultRegion, options: row.options },
    });
  }

  function remoteType(object: ObjectType, row: Record<string, unknown>): string | null {
    const byRemote = byObject.get(object);
    if (!byRemote || byRemote.size === 0) return null;
    // Salesforce keeps leads and contacts in one table, told apart by kind.
    if (provider === "salesforce" && object === "contacts") {
      const t = row.kind === "lead" ? "Lead" : "Contact";
      return byRemote.has(t) ? t : null;
    }
    return [...byRemote.keys()][0];
  }

  return {
    remoteType,
    plan(object, row, fields) {
      const type = remoteType(object, row);
      const out: OutboundPlan = {
        remoteType: type ?? "",
        properties: {},
        skipped: [],
        warnings: [],
      };
      const list = type ? byObject.get(object)!.get(type)! : [];
      const wanted = new Set(fields);
      const mapped = new Set(list.map((m) => m.column));
      for (const f of fields) {
        if (!mapped.has(f)) out.skipped.push({ field: f, reason: "no outbound mapping" });
      }
      for (const m of list) {
        if (!wanted.has(m.column)) continue;
        const value = valueOf(row, m.column);
        if (!m.property) {
          out.skipped.push({ field: m.column, reason: "a multi-property mapping is inbound only" });
          continue;
        }
        const local = RELATIONS[m.column];
        if (local && value == null && row[local] != null) {
          out.skipped.push({ field: m.column, reason: "the related record is not in the CRM yet" });
          continue;
        }
        const t = applyOutbound(m.transform, value ?? null, m.ctx);
        if (t.skip) {
          out.skipped.push({ field: m.column, reason: `${m.transform} cannot be written back` });
          continue;
        }
        if (t.warning) out.warnings.push({ field: m.column, message: t.warning });
        if (Object.hasOwn(out.properties, m.property)) {
          out.warnings.push({
            field: m.column,
            message: `${m.property} is mapped from several columns; ${m.column} wins`,
          });
        }
        out.properties[m.property] = t.value === undefined ? null : t.value;
      }
      return out;
    },
  };
}

function valueOf(row: Record<string, unknown>, field: string): unknown {
  if (!field.startsWith(CUSTOM)) return row[field];
  const custom = row.custom;
  return custom && typeof custom === "object"
    ? (custom as Record<string, unknown>)[field.slice(CUSTOM.length)]
    : undefined;
}
