// What Postgres must hold after a sync, computed straight from a sandbox's store (the
// provider's raw records) with the mapping rules written out here independently of the
// engine's mapper: names trimmed, emails trimmed and lower-cased, raw phones kept, ids as text.
import { admin } from "./_harness.ts";
import type { ProviderName } from "../../supabase/functions/_shared/providers/types.ts";

export interface ExpectedContact {
  remote_id: string;
  kind: "contact" | "lead";
  first_name: string | null;
  last_name: string | null;
  email: string | null;
  phone_raw: string | null;
  owner_remote_id: string | null;
  deleted: boolean;
}

const t = (v: unknown): string | null => {
  if (v === null || v === undefined) return null;
  const s = String(v).trim();
  return s === "" ? null : s;
};
const lower = (v: unknown) => t(v)?.toLowerCase() ?? null;
type Row = Record<string, unknown>;

function primary(list: unknown): unknown {
  if (!Array.isArray(list) || list.length === 0) return null;
  return (list.find((e) => (e as Row).primary) as Row ?? list[0] as Row).value;
}

export async function expectedContacts(
  provider: ProviderName,
  url: string,
): Promise<Map<string, ExpectedContact>> {
  const out = new Map<string, ExpectedContact>();
  if (provider === "hubspot") {
    for (const r of await admin(url, "GET", "/store?object=contacts") as Row[]) {
      const p = r.properties as Row;
      out.set(String(r.id), {
        remote_id: String(r.id),
        kind: "contact",
        first_name: t(p.firstname),
        last_name: t(p.lastname),
        email: lower(p.email),
        phone_raw: t(p.phone),
        owner_remote_id: t(p.hubspot_owner_id),
        deleted: Boolean(r.archived) || r.mergedInto !== null,
      });
    }
  } else if (provider === "salesforce") {
    for (const type of ["Contact", "Lead"]) {
      for (const r of await admin(url, "GET", `/store?object=${type}`) as Row[]) {
        out.set(String(r.Id), {
          remote_id: String(r.Id),
          kind: type === "Lead" ? "lead" : "contact",
          first_name: t(r.FirstName),
          last_name: t(r.LastName),
          email: lower(r.Email),
          phone_raw: t(r.Phone),
          owner_remote_id: t(r.OwnerId),
          deleted: Boolean(r.IsDeleted),
        });
      }
    }
  } else {
    for (const r of await admin(url, "GET", "/store?object=person") as Row[]) {
      out.set(String(r.id), {
        remote_id: String(r.id),
        kind: "contact",
        first_name: t(r.first_name),
        last_name: t(r.last_name),
        email: lower(primary(r.emails)),
        phone_raw: t(primary(r.phones)),
        owner_remote_id: t(r.owner_id),
        deleted: Boolean(r.is_deleted),
      });
    }
  }
  return out;
}

/** Live record ids per object in the sandbox store (deleted, archived and merged excluded). */
export async function liveIds(
  provider: ProviderName,
  url: string,
  object: string,
): Promise<Set<string>> {
  const names: Record<ProviderName, Record<string, string[]>> = {
    hubspot: { companies: ["companies"], deals: ["deals"] },
    salesforce: { companies: ["Account"], deals: ["Opportunity"] },
    pipedrive: { companies: ["organization"], deals: ["deal"] },
  };
  const ids = new Set<string>();
  for (const name of names[provider][object]) {
    for (const r of await admin(url, "GET", `/store?object=${name}`) as Row[]) {
      const deleted = provider === "hubspot"
        ? Boolean(r.archived) || (r.mergedInto ?? null) !== null
        : provider === "salesforce"
        ? Boolean(r.IsDeleted)
        : Boolean(r.is_deleted);
      if (!deleted) ids.add(String(r.id ?? r.Id));
    }
  }
  return ids;
}
