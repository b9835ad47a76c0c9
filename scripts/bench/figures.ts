// The bench's derived figures: the fewest API calls a walk needs at each page size, rates,
// extrapolations and the targets of issue 5, item 10.
import type { ProviderName } from "../../supabase/functions/_shared/providers/types.ts";
import type { BaselineResult } from "./baseline.ts";
import type { CarefulResult } from "./careful.ts";
import { type Ceiling, ceilings, hubspotWalkCeiling } from "./ceiling.ts";
import type { EngineResult } from "./engine_run.ts";

/** Page sizes of the engine's full walks (supabase/functions/_shared/providers/*.ts). */
export const ENGINE_PAGE: Record<"hubspot" | "salesforce", number> = {
  hubspot: 100, // the plain list endpoint (basicApi.getPage, `after` cursor): at most 100 a page
  salesforce: 2000, // PAGE: SOQL LIMIT 2000 (one query batch, no nextRecordsUrl)
};

export const TARGETS = { callRatio: 1.05, peakMb: 150, speedUp: 20 };

/**
 * Pages a keyset walk over n records needs at page size p: it only knows it is done after a
 * short page, so n = 400 at p = 200 takes 3 calls. (A cursor-paged list endpoint that says
 * whether more follows, like HubSpot's plain list, needs ceil(n / p).)
 */
export function keysetPages(n: number, p: number): number {
  return Math.floor(n / p) + 1;
}

export function listPages(n: number, p: number): number {
  return Math.max(1, Math.ceil(n / p));
}

export interface Sizes {
  /** What the engine's walk returns, per sObject (HubSpot: one type). */
  engine: Record<string, number>;
  /** What the baseline's plain list returns, per sObject. */
  naive: Record<string, number>;
}

/** The minimum for the engine: data pages at its page size, nothing else (HubSpot's list says
 * whether more follows; Salesforce's SOQL keyset walk ends on a short page). */
export function engineMinimum(provider: ProviderName, sizes: Sizes): number {
  const p = ENGINE_PAGE[provider as "hubspot" | "salesforce"];
  const pages = provider === "hubspot" ? listPages : keysetPages;
  return Object.values(sizes.engine).reduce((s, n) => s + pages(n, p), 0);
}

/** The baseline makes one call per page of 100, so its full-run count is computed exactly. */
export function naiveCalls(provider: ProviderName, sizes: Sizes, page: number): number {
  const n = Object.values(sizes.naive);
  return provider === "hubspot"
    ? listPages(n[0], page)
    : n.reduce((s, x) => s + keysetPages(x, page), 0);
}

export interface Derived {
  engineRate: number;
  naiveRate: number;
  naiveRecords: number;
  naiveWallMs: number;
  speedUp: number;
  /** The careful baseline (multi-row upsert per page of 100) over every record. */
  carefulRate: number;
  /** Engine records/s ÷ careful records/s. */
  vsCareful: number;
  /** Each documented ceiling and the engine's headroom over it (engine records/s ÷ ceiling). */
  headroom: (Ceiling & { ratio: number })[];
  callsMade: number;
  callsMin: number;
  callRatio: number;
  met: { calls: boolean; memory: boolean; speedUp: boolean };
}

export function derive(
  provider: ProviderName,
  sizes: Sizes,
  engine: EngineResult,
  baseline: BaselineResult,
  careful: CarefulResult,
): Derived {
  const engineRate = engine.landed / (engine.wallMs / 1000);
  const naiveRate = baseline.records / (baseline.wallMs / 1000);
  const naiveRecords = Object.values(sizes.naive).reduce((s, n) => s + n, 0);
  const callsMade = engine.counters.total;
  const callsMin = engineMinimum(provider, sizes);
  const callRatio = callsMade / callsMin;
  const speedUp = engineRate / naiveRate;
  const carefulRate = careful.records / (careful.wallMs / 1000);
  return {
    engineRate,
    naiveRate,
    naiveRecords,
    naiveWallMs: (naiveRecords / naiveRate) * 1000,
    speedUp,
    carefulRate,
    vsCareful: engineRate / carefulRate,
    headroom: walkFirst(provider, engine)
      .map((c) => ({ ...c, ratio: engineRate / c.recordsPerSecond })),
    callsMade,
    callsMin,
    callRatio,
    met: {
      calls: callRatio <= TARGETS.callRatio,
      memory: engine.memory.peakMb > 0 && engine.memory.peakMb < TARGETS.peakMb,
      speedUp: speedUp >= TARGETS.speedUp,
    },
  };
}

/** The provider's ceilings, the one of the API the engine's walk used first (HubSpot: read from
 * the sandbox's per-route counters). */
function walkFirst(provider: ProviderName, engine: EngineResult): Ceiling[] {
  const all = ceilings(provider as "hubspot" | "salesforce");
  if (provider !== "hubspot") return all;
  const walk = hubspotWalkCeiling(engine.counters.routes);
  return [all.find((c) => c.name === walk.name)!, ...all.filter((c) => c.name !== walk.name)];
}
