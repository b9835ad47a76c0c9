// The outbound part's naive baseline, the seeds' way: one PATCH per changed record, sequential,
// through each provider's official SDK, from the bench process:
//   HubSpot    PATCH /crm/v3/objects/contacts/{id}   (@hubspot/api-client basicApi.update)
//   Salesforce PATCH /sobjects/Contact/{id}          (jsforce sobject().update)
//   Pipedrive  PATCH /api/v2/persons/{id}            (pipedrive v2 PersonsApi.updatePerson;
//              v2 persons take `name` only: the app's first name and its row's last name)
// Paced evenly at the provider's documented limit (one request every window ÷ limit: the
// fastest a one-at-a-time client goes without 429s and without the fresh window's burst, which
// would flatter a short subset); Salesforce has no per-second limit, so nothing paces it.
import { Client } from "@hubspot/api-client";
import jsforce from "jsforce/core";
import * as v2 from "pipedrive/v2";
import type { ProviderName } from "../../supabase/functions/_shared/providers/types.ts";
import { API_VERSION } from "../../supabase/functions/_shared/providers/salesforce.ts";
import { documentedPace } from "./outbound_figures.ts";

export interface NaiveResult {
  records: number;
  wallMs: number;
  failed: number;
  firstError: string | null;
}

export interface NaiveRecord {
  remoteId: string;
  lastName: string | null;
  /** contact | lead (Salesforce Contact or Lead). */
  kind: string;
}

type Patch = (r: NaiveRecord, firstName: string) => Promise<unknown>;

function patcher(provider: ProviderName, url: string, creds: Record<string, string>): Patch {
  const base = url.replace(/\/$/, "");
  if (provider === "hubspot") {
    const hs = new Client({
      accessToken: creds.accessToken,
      basePath: base,
      numberOfApiCallRetries: 0,
    });
    return (r, firstName) =>
      hs.crm.contacts.basicApi.update(r.remoteId, { properties: { firstname: firstName } });
  }
  if (provider === "salesforce") {
    const conn = new jsforce.Connection({
      instanceUrl: creds.instanceUrl ?? base,
      accessToken: creds.accessToken,
      version: API_VERSION,
    });
    return async (r, firstName) => {
      const type = r.kind === "lead" ? "Lead" : "Contact";
      const res = await conn.sobject(type).update({ Id: r.remoteId, FirstName: firstName });
      if (!res.success) throw new Error(JSON.stringify(res.errors));
      return res;
    };
  }
  const persons = new v2.PersonsApi(
    new v2.Configuration({ apiKey: creds.apiToken, basePath: `${base}/api/v2` }),
  );
  return (r, firstName) =>
    persons.updatePerson({
      id: Number(r.remoteId),
      UpdatePersonRequest: { name: [firstName, r.lastName].filter(Boolean).join(" ") },
    });
}

/** One PATCH per record, one at a time, evenly paced (see the header). */
export async function runNaivePush(
  provider: ProviderName,
  url: string,
  creds: Record<string, string>,
  records: readonly NaiveRecord[],
  prefix: string,
): Promise<NaiveResult> {
  const patch = patcher(provider, url, creds);
  const pace = documentedPace(provider);
  const gapMs = pace ? pace.windowMs / pace.limit : 0;
  let failed = 0;
  let firstError: string | null = null;
  const t0 = performance.now();
  let next = t0;
  for (const [i, r] of records.entries()) {
    const wait = next - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    next = Math.max(performance.now(), next) + gapMs;
    try {
      await patch(r, `${prefix} ${i}`);
    } catch (e) {
      failed++;
      firstError ??= String((e as Error)?.message ?? e).slice(0, 200);
    }
  }
  return { records: records.length, wallMs: performance.now() - t0, failed, firstError };
}
