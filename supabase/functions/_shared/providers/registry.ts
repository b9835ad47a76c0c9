// Provider name -> adapter factory. The engine looks adapters up here and never imports a
// provider module directly. Each provider's module (and its SDK: jsforce alone is ~28 MB of
// heap) is imported on first use, so a function serving one CRM never loads the other two.
import type { ProviderAdapter, ProviderDeps, ProviderName } from "./types.ts";

/** Remote properties to read, by object (HubSpot, Pipedrive) or by sObject (Salesforce). */
export type FieldSelection = Record<string, string[]>;

type Factory = (deps: ProviderDeps, fields: FieldSelection) => ProviderAdapter;

export const ADAPTERS: Record<ProviderName, () => Promise<Factory>> = {
  hubspot: async () => {
    const { createHubSpotAdapter } = await import("./hubspot.ts");
    return (deps, fields) => createHubSpotAdapter(deps, fields);
  },
  salesforce: async () => (await import("./salesforce.ts")).createSalesforceAdapter,
  pipedrive: async () => {
    const { createPipedriveAdapter } = await import("./pipedrive.ts");
    return (deps) => createPipedriveAdapter(deps);
  },
};

export async function createAdapter(
  provider: ProviderName,
  deps: ProviderDeps,
  fields: FieldSelection = {},
): Promise<ProviderAdapter> {
  const load = ADAPTERS[provider];
  if (!load) throw new Error(`unknown provider ${provider}`);
  return (await load())(deps, fields);
}
