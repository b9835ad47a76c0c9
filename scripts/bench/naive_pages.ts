// The naive baseline's reads: pages of 100 contacts from the provider's plain list endpoint
// with plain fetch, turned into the RemoteRecord shape the engine's mapper takes.
//   HubSpot:    GET /crm/v3/objects/contacts?limit=100&properties=…&after=…  (paging.next.after)
//   Salesforce: GET /services/data/v62.0/query?q=SELECT … FROM Contact [WHERE Id > :last]
//               ORDER BY Id LIMIT 100, until a short page; then the same for Lead.
// `limit` stops the walk after about that many records (Salesforce: half Contacts, half Leads,
// so a prefix samples both); the last page may overshoot it by less than a page. `pageSize`
// (default 100) is the records asked for per call: HubSpot's list takes at most 100, a SOQL
// query page up to 2,000 (the careful baseline reads Salesforce at 2,000).
import type { RemoteRecord } from "../../supabase/functions/_shared/providers/types.ts";
import type { SandboxInfo } from "./sandboxes.ts";

export const NAIVE_PAGE = 100;
const SF_API = "/services/data/v62.0";

export interface NaivePages {
  /** The next page (possibly empty), or null when the walk is over. */
  next(): Promise<RemoteRecord[] | null>;
}

function iso(v: unknown): string {
  const s = String(v);
  const d = new Date(/^\d+$/.test(s) ? Number(s) : s.replace(/\+0000$/, "Z"));
  if (Number.isNaN(d.getTime())) throw new Error(`unparseable time ${s}`);
  return d.toISOString();
}

async function getJson(url: string, token: string): Promise<Record<string, unknown>> {
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  const body = await res.json();
  if (!res.ok) throw new Error(`GET ${url.slice(0, 120)}: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

function hubspotPages(
  sb: SandboxInfo,
  props: string[],
  limit: number,
  pageSize: number,
): NaivePages {
  const properties = [...new Set([...props, "lastmodifieddate"])].join(",");
  let after: string | undefined;
  let delivered = 0;
  let done = false;
  return {
    async next() {
      if (done || delivered >= limit) return null;
      const body = await getJson(
        `${sb.url}/crm/v3/objects/contacts?limit=${pageSize}&properties=${properties}${
          after ? `&after=${after}` : ""
        }`,
        sb.credentials.HUBSPOT_ACCESS_TOKEN,
      ) as {
        results: { id: string; properties: Record<string, string | null>; updatedAt: string }[];
        paging?: { next?: { after?: string } };
      };
      after = body.paging?.next?.after;
      done = !after;
      delivered += body.results.length;
      return body.results.map((o) => ({
        remoteId: o.id,
        remoteType: "contacts",
        modifiedAt: iso(o.properties.lastmodifieddate ?? o.updatedAt),
        properties: o.properties,
        deleted: false,
        mergedIds: [],
      }));
    },
  };
}

/** Salesforce fields the mappings name and the org has (one describe per sObject). */
async function salesforceSelect(sb: SandboxInfo, type: string, wanted: string[]) {
  const d = await getJson(
    `${sb.url}${SF_API}/sobjects/${type}/describe`,
    sb.credentials.SALESFORCE_ACCESS_TOKEN,
  ) as { fields: { name: string; relationshipName?: string | null }[] };
  const names = new Set(d.fields.map((f) => f.name.toLowerCase()));
  const rels = new Set(d.fields.flatMap((f) => f.relationshipName?.toLowerCase() ?? []));
  const ok = wanted.filter((w) => {
    const [head, ...rest] = w.toLowerCase().split(".");
    return rest.length === 0 ? names.has(head) : rels.has(head);
  });
  return [...new Set(["Id", "SystemModstamp", ...ok])].join(", ");
}

async function salesforcePages(
  sb: SandboxInfo,
  fields: Record<string, string[]>,
  limit: number,
  pageSize: number,
): Promise<NaivePages> {
  const types = ["Contact", "Lead"];
  const select: Record<string, string> = {};
  for (const t of types) select[t] = await salesforceSelect(sb, t, fields[t] ?? []);
  const quota = Math.ceil(limit / types.length);
  let type = 0;
  let last: string | null = null;
  let delivered = 0;
  return {
    async next() {
      if (type >= types.length) return null;
      const name = types[type];
      const where = last ? ` WHERE Id > '${last}'` : "";
      const soql = `SELECT ${select[name]} FROM ${name}${where} ORDER BY Id LIMIT ${pageSize}`;
      const body = await getJson(
        `${sb.url}${SF_API}/query?q=${encodeURIComponent(soql)}`,
        sb.credentials.SALESFORCE_ACCESS_TOKEN,
      ) as { records: Record<string, unknown>[] };
      const rows = body.records;
      delivered += rows.length;
      last = rows.length ? String(rows.at(-1)!.Id) : last;
      if (rows.length < pageSize || delivered >= quota) {
        type++;
        last = null;
        delivered = 0;
      }
      return rows.map((row) => {
        const { attributes: _a, ...properties } = row;
        return {
          remoteId: String(row.Id),
          remoteType: name,
          modifiedAt: iso(row.SystemModstamp),
          properties,
          deleted: false,
          mergedIds: [],
        };
      });
    },
  };
}

/** Set up outside the clock (Salesforce: the describes that pick the selectable fields). */
export async function naivePages(
  sb: SandboxInfo,
  fields: Record<string, string[]>,
  limit: number,
  pageSize = NAIVE_PAGE,
): Promise<NaivePages> {
  return sb.provider === "hubspot"
    ? hubspotPages(sb, fields.contacts ?? [], limit, pageSize)
    : await salesforcePages(sb, fields, limit, pageSize);
}
