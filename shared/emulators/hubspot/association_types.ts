/**
 * HubSpot-defined association type ids for the synced object pairs.
 * Docs: https://developers.hubspot.com/docs/api/crm/associations/v4
 * (section "Association type id values").
 */
import type { HsObjectType } from "./properties.ts";

interface PairTypes {
  unlabeled: number;
  /** "Primary" association type id, where HubSpot defines one. */
  primary?: number;
  /** v3-style association type name, e.g. contact_to_company. */
  name: string;
  /** Upper-case name used in webhook associationType, e.g. CONTACT_TO_COMPANY. */
  webhookName: string;
}

const TABLE: Record<string, PairTypes> = {
  "contacts>companies": {
    unlabeled: 279,
    primary: 1,
    name: "contact_to_company",
    webhookName: "CONTACT_TO_COMPANY",
  },
  "companies>contacts": {
    unlabeled: 280,
    primary: 2,
    name: "company_to_contact",
    webhookName: "COMPANY_TO_CONTACT",
  },
  "deals>contacts": { unlabeled: 3, name: "deal_to_contact", webhookName: "DEAL_TO_CONTACT" },
  "contacts>deals": { unlabeled: 4, name: "contact_to_deal", webhookName: "CONTACT_TO_DEAL" },
  "deals>companies": {
    unlabeled: 341,
    primary: 5,
    name: "deal_to_company",
    webhookName: "DEAL_TO_COMPANY",
  },
  "companies>deals": {
    unlabeled: 342,
    primary: 6,
    name: "company_to_deal",
    webhookName: "COMPANY_TO_DEAL",
  },
};

export function pairTypes(from: HsObjectType, to: HsObjectType): PairTypes | undefined {
  return TABLE[`${from}>${to}`];
}

export interface AssociationTypeSpec {
  category: "HUBSPOT_DEFINED";
  typeId: number;
  label: string | null;
}

/** Association types as v4 reports them for one edge. */
export function typesFor(
  from: HsObjectType,
  to: HsObjectType,
  primary: boolean,
): AssociationTypeSpec[] {
  const t = pairTypes(from, to);
  if (!t) return [];
  const out: AssociationTypeSpec[] = [];
  if (primary && t.primary !== undefined) {
    out.push({ category: "HUBSPOT_DEFINED", typeId: t.primary, label: "Primary" });
  }
  out.push({ category: "HUBSPOT_DEFINED", typeId: t.unlabeled, label: null });
  return out;
}

/** Interpret a requested type id: 'unlabeled' | 'primary' | null (unknown). */
export function classifyTypeId(
  from: HsObjectType,
  to: HsObjectType,
  typeId: number,
): "unlabeled" | "primary" | null {
  const t = pairTypes(from, to);
  if (!t) return null;
  if (typeId === t.unlabeled) return "unlabeled";
  if (t.primary !== undefined && typeId === t.primary) return "primary";
  return null;
}
