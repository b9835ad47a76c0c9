// The provider ceiling (issue 10): the records/s a backfill can reach under each provider's
// documented rate limits, whatever the engine does, and the engine's headroom over it (its
// measured records/s ÷ the ceiling; above 1× the provider, not the engine, sets the pace).
// Sources: /work/shared/DESIGN.md §5 (summarised from the providers' docs) and the sandboxes'
// defaults in shared/emulators, which enforce the same numbers unless the bench lifts them.

/** HubSpot private apps: 100 requests per rolling 10 s on Free/Starter, 190 on Pro/Enterprise
 * (DESIGN.md §5; the HubSpot sandbox's default `tenSecondly` is 100). */
export const HUBSPOT_TEN_SECONDLY = { freeStarter: 100, proEnterprise: 190 };
/** HubSpot search: 5 requests/s per account, at most 200 results a page (DESIGN.md §5; the
 * sandbox's `searchPerSecond` default is 5). Searches count against the 10-second window too,
 * which at 10 or 19 requests/s does not bind before 5/s does. */
export const HUBSPOT_SEARCH = { perSecond: 5, page: 200 };
/** HubSpot's plain list endpoint (GET /crm/v3/objects/<type>): at most 100 a page. */
export const HUBSPOT_LIST_PAGE = 100;
/** HubSpot's daily request limit on Free/Starter private apps (250,000; the sandbox's default).
 * A list walk of n records spends n/100 requests of it, so it binds only past 25M records. */
export const HUBSPOT_DAILY = 250_000;

/** Salesforce has no per-second limit: an org gets a rolling 24 h allocation of API requests.
 * Assumed: Enterprise Edition, 100,000 + 1,000 per Salesforce license (the App Limits
 * cheatsheet, "API Request Limits and Allocations"), with 50 licenses = 150,000 calls/24 h.
 * (A Developer Edition org, the sandbox's default, gets 15,000.) */
export const SALESFORCE_DAILY = { base: 100_000, perLicense: 1_000, licenses: 50 };
/** Records per REST query page: the default batch size of query/queryAll, 2,000 (the sandbox's
 * `queryBatchSize` default; the engine's SOQL pages use LIMIT 2000). */
export const SALESFORCE_QUERY_PAGE = 2_000;
const DAY_S = 86_400;

export interface Ceiling {
  /** What limits it, in words, for the report. */
  name: string;
  recordsPerSecond: number;
  /** How it is derived, e.g. "5 requests/s × 200". */
  formula: string;
}

export function salesforceDailyCalls(): number {
  const d = SALESFORCE_DAILY;
  return d.base + d.perLicense * d.licenses;
}

export function ceilings(provider: "hubspot" | "salesforce"): Ceiling[] {
  if (provider === "hubspot") {
    const t = HUBSPOT_TEN_SECONDLY;
    return [
      {
        name: "search",
        recordsPerSecond: HUBSPOT_SEARCH.perSecond * HUBSPOT_SEARCH.page,
        formula: `${HUBSPOT_SEARCH.perSecond} requests/s × ${HUBSPOT_SEARCH.page}`,
      },
      {
        name: "list, Free/Starter burst",
        recordsPerSecond: (t.freeStarter / 10) * HUBSPOT_LIST_PAGE,
        formula: `${t.freeStarter} requests/10 s × ${HUBSPOT_LIST_PAGE}`,
      },
      {
        name: "list, Pro/Enterprise burst",
        recordsPerSecond: (t.proEnterprise / 10) * HUBSPOT_LIST_PAGE,
        formula: `${t.proEnterprise} requests/10 s × ${HUBSPOT_LIST_PAGE}`,
      },
    ];
  }
  const calls = salesforceDailyCalls();
  return [{
    name: "daily budget spent on the backfill alone",
    recordsPerSecond: (calls * SALESFORCE_QUERY_PAGE) / DAY_S,
    formula: `${calls.toLocaleString("en")} calls/24 h × ${
      SALESFORCE_QUERY_PAGE.toLocaleString("en")
    } (Enterprise, ${SALESFORCE_DAILY.licenses} licenses)`,
  }];
}

/** Notes printed under the ceilings: what else limits, and what does not. */
export function ceilingNotes(provider: "hubspot" | "salesforce"): string[] {
  if (provider === "hubspot") {
    return [
      `the daily limit (${
        HUBSPOT_DAILY.toLocaleString("en")
      } requests, Free/Starter) binds only past 25M records a day on the list walk; this part`,
      "lifts the limits (settings.rate_limits): the ceiling part below runs them for real",
    ];
  }
  return [
    "no per-second limit: a backfill of fewer than budget × 2,000 records is not rate-limited at",
    "all; the figure is the rate at which it would spend the whole day's budget (the engine's",
    "default pacing is 25 requests/s × 2,000 = 50,000 records/s)",
  ];
}

/** HubSpot's search route and its plain list route, as the sandbox's counters name them. */
export const HUBSPOT_ROUTES = {
  search: "POST /crm/v3/objects/:objectType/search",
  list: "GET /crm/v3/objects/:objectType",
};

/**
 * The documented ceiling of the API a HubSpot walk actually used, read from the sandbox's
 * per-route counters: the plain list (Free/Starter burst × 100, the sandbox's own limit) when it
 * made more list calls than searches, else search (5/s × 200).
 */
export function hubspotWalkCeiling(
  routes: Record<string, { total: number }>,
): Ceiling & { api: "list" | "search" } {
  const [search, list] = ceilings("hubspot");
  const n = (r: string) => routes[r]?.total ?? 0;
  return n(HUBSPOT_ROUTES.list) > n(HUBSPOT_ROUTES.search)
    ? { ...list, api: "list" }
    : { ...search, api: "search" };
}
