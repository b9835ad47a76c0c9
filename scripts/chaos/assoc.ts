// The association the chaos harness changes on the CRM side, as a CRM user would (the sandbox
// admin API): a contact's company. HubSpot makes a company the contact's primary one (which
// sets `associatedcompanyid`), and clears it by removing that association; Salesforce and
// Pipedrive set the lookup field (`AccountId`, `org_id`).
import type { ProviderName } from "../../supabase/functions/_shared/providers/types.ts";

// deno-lint-ignore no-explicit-any
export type AdminCall = (method: string, path: string, body?: unknown) => Promise<any>;

const COMPANY_OBJECT: Record<ProviderName, string> = {
  hubspot: "companies",
  salesforce: "Account",
  pipedrive: "organization",
};

/** The CRM property of a contact that holds its company's id. */
export const COMPANY_PROP: Record<ProviderName, string> = {
  hubspot: "associatedcompanyid",
  salesforce: "AccountId",
  pipedrive: "org_id",
};

/** Creates `n` companies; their ids, as the CRM's API names them. */
export async function makeCompanies(
  call: AdminCall,
  p: ProviderName,
  n: number,
  tag: string,
): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const name = `Chaos ${tag} Co ${i}`;
    const body = p === "hubspot"
      ? { properties: { name, domain: `co${i}-${tag}.example.com` } }
      : p === "salesforce"
      ? { Name: name }
      : { name };
    const r = await call("POST", `/records/${COMPANY_OBJECT[p]}`, body);
    if (r.status >= 300) throw new Error(`company create: ${r.status} ${JSON.stringify(r.json)}`);
    ids.push(String(r.json.id ?? r.json.Id));
  }
  return ids;
}

/** A company id as read from a contact (Pipedrive may nest it as `{value}`). */
export function companyOf(v: unknown): string | null {
  if (v === null || v === undefined || v === "") return null;
  if (typeof v === "object") {
    const o = v as { value?: unknown; id?: unknown };
    return companyOf(o.value ?? o.id);
  }
  return String(v);
}

/** Sets the contact's company (null clears it). `current`: its company now. */
export async function setCompany(
  call: AdminCall,
  p: ProviderName,
  contact: string,
  current: string | null,
  company: string | null,
): Promise<{ status: number; json: unknown }> {
  if (p === "hubspot") {
    if (company === null) {
      if (current === null) return { status: 204, json: null };
      return await call("DELETE", "/associations", {
        fromType: "contacts",
        fromId: contact,
        toType: "companies",
        toId: current,
      });
    }
    return await call("PUT", "/associations", {
      fromType: "contacts",
      fromId: contact,
      toType: "companies",
      toId: company,
      primary: true,
    });
  }
  if (p === "salesforce") {
    return await call("PATCH", `/records/Contact/${contact}`, { AccountId: company });
  }
  return await call("PATCH", `/records/person/${contact}`, {
    org_id: company === null ? null : Number(company),
  });
}
