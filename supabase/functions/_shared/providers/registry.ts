// Provider name -> adapter factory. The engine looks adapters up here and never imports a
// provider module directly.
import { createHubSpotAdapter } from "./hubspot.ts";
import { createPipedriveAdapter } from "./pipedrive.ts";
import { createSalesforceAdapter } from "./salesforce.ts";
import type { ObjectType, ProviderAdapter, ProviderDeps, ProviderName } from "./types.ts";

/** Remote properties to read, by object (HubSpot, Pipedrive) or by sObject (Salesforce). */
export type FieldSelection = Record<string, string[]>;

export const ADAPTERS: Record<
  ProviderName,
  (deps: ProviderDeps, fields: FieldSelection) => ProviderAdapter
> = {
  hubspot: (deps, fields) =>
    createHubSpotAdapter(deps, fields as Partial<Record<ObjectType, string[]>>),
  salesforce: (deps, fields) => createSalesforceAdapter(deps, fields),
  pipedrive: (deps) => createPipedriveAdapter(deps),
};

export function createAdapter(
  provider: ProviderName,
  deps: ProviderDeps,
  fields: FieldSelection = {},
): ProviderAdapter {
  const make = ADAPTERS[provider];
  if (!make) throw new Error(`unknown provider ${provider}`);
  return make(deps, fields);
}
