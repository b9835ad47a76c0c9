// Whether creates of a remote type may go out: only once its external-id property exists (the
// key that makes a create idempotent). The outcome of setting it up is kept per connection and
// remote type in crm.outbound_setup, so one worker's check serves every later push; a failed
// set-up (missing permission) is tried again after RECHECK_MS and holds creates meanwhile.
import type { Sql } from "../db.ts";
import type { ProviderName, ProviderWriter } from "../providers/types.ts";
import { errorMessage } from "./connections.ts";

const RECHECK_MS = 10 * 60_000;

/** The property's name as the CRM shows it, for the record of a set-up that failed. */
const PROPERTY: Record<ProviderName, string> = {
  hubspot: "crm_sync_id",
  salesforce: "Crm_Sync_Id__c",
  pipedrive: "crm_sync_id",
};

export interface ExternalIdGate {
  /** Makes sure the set-up of each type was checked (calls the CRM for unknown ones). */
  prepare(remoteTypes: Iterable<string>, opts: { deadline?: number }): Promise<void>;
  /** Why creates of `remoteType` are held, or null when they may go out. */
  hold(remoteType: string): string | null;
}

export function externalIdGate(
  sql: Sql,
  conn: { id: string; provider: ProviderName },
  writer: ProviderWriter,
): ExternalIdGate {
  const connectionId = conn.id;
  const known = new Map<string, string | null>();
  return {
    async prepare(types, opts) {
      for (const type of new Set(types)) {
        if (known.has(type)) continue;
        const [row] = await sql`
          select ok, error, checked_at from crm.outbound_setup
          where connection_id = ${connectionId} and remote_type = ${type}`;
        if (row && (row.ok || Date.now() - new Date(row.checked_at).getTime() < RECHECK_MS)) {
          known.set(type, row.ok ? null : row.error ?? "the external-id property is missing");
          continue;
        }
        let ok: boolean;
        let property = PROPERTY[conn.provider];
        let error: string | null = null;
        try {
          const r = await writer.ensureExternalId(type, { deadline: opts.deadline });
          ok = r.ok;
          if (r.ok) property = r.property;
          else error = `cannot create the external-id property on ${type}: ${r.reason}`;
        } catch (e) {
          // Not an answer about the property (the CRM was unreachable): hold this time only.
          known.set(
            type,
            `checking the external-id property on ${type} failed: ${errorMessage(e)}`,
          );
          continue;
        }
        await sql`select crm.record_outbound_setup(${connectionId}, ${type}, ${property},
                                                   ${ok}, ${error})`;
        known.set(type, error);
      }
    },
    hold: (type) => known.get(type) ?? null,
  };
}
