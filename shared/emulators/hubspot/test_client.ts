/**
 * Test helper: an official HubSpot SDK client pointed at a sandbox.
 *
 * The SDK keeps its retry/limiter decorators in a process-wide singleton
 * (ApiDecoratorService) that every `new Client()` overwrites, and applies them
 * to the API objects when they are first touched. So the discoveries a test
 * uses are touched right after construction, before any other client exists.
 */
import { Client } from "@hubspot/api-client";

export function hubspotClient(
  basePath: string,
  accessToken: string,
  numberOfApiCallRetries = 0,
): Client {
  const client = new Client({ accessToken, basePath, numberOfApiCallRetries });
  // Materialise the discoveries now, while this client's decorators are active.
  void client.crm.contacts.basicApi;
  void client.crm.companies.basicApi;
  void client.crm.deals.basicApi;
  void client.crm.owners.ownersApi;
  void client.crm.associations.v4.basicApi;
  void client.crm.properties.coreApi;
  void client.crm.pipelines.pipelinesApi;
  void client.oauth.tokensApi;
  return client;
}
