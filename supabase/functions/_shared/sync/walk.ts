// The parts of an inbound walk that the sync (./inbound.ts) and live reads (./live.ts) share:
// what the adapter's capabilities mean for a stream, and reading one page (fetch within the
// run's budget, map, serialise). The engine names no provider: everything provider-specific
// comes from ProviderAdapter.capabilities.
import type { Mapper } from "../mapping/mapper.ts";
import type {
  ChangePage,
  ObjectType,
  ProviderAdapter,
  RemoteRecord,
  Watermark,
} from "../providers/types.ts";
import { type PreparedPage, preparePage } from "./runlog.ts";

export type WalkMode = "delta" | "full";

/** Objects the provider cannot filter by modification time are always walked whole. */
export function streamMode(adapter: ProviderAdapter, object: ObjectType, mode: WalkMode): WalkMode {
  return adapter.capabilities.alwaysFull.includes(object) ? "full" : mode;
}

/**
 * Whether a finished walk must list deletions apart (adapter.deletedSince): only for providers
 * whose walk does not carry them and whose listing exists, and only after a complete full walk,
 * because such listings are not bounded by time (HubSpot's archive listing reads the whole
 * archive), so a delta would cost O(archive).
 */
export function listsDeletionsAfter(adapter: ProviderAdapter, mode: WalkMode): boolean {
  return adapter.capabilities.deletions === "listed-on-full" && mode === "full";
}

export interface ReadOptions {
  pageSize?: number;
  /** The run's deadline (epoch ms): see ListOptions.deadline. */
  deadline: number;
  signal?: AbortSignal;
  /** See ListOptions.countTotal. */
  countTotal?: boolean;
}

/** Maps raw records and serialises them as one page for crm.save_inbound_page. */
export function mapPage(mapper: Mapper, object: ObjectType, page: ChangePage): PreparedPage {
  return preparePage(page, page.records.map((r) => mapper.inbound(object, r)));
}

/** Reads one page from a checkpoint: the adapter's call within the run's budget, then mapped
 * and serialised, so a writer never waits for the mapping. */
export function pageReader(
  adapter: ProviderAdapter,
  mapper: Mapper,
  object: ObjectType,
  from: Watermark | null,
  o: ReadOptions,
): (checkpoint: unknown) => Promise<PreparedPage> {
  const opts = {
    pageSize: o.pageSize,
    deadline: o.deadline,
    signal: o.signal,
    countTotal: o.countTotal,
  };
  return async (checkpoint) =>
    mapPage(mapper, object, await adapter.changesSince(object, from, checkpoint, opts));
}

/** The deletion listing of a finished full walk as one page (null when there is none). */
export async function deletionPage(
  adapter: ProviderAdapter,
  mapper: Mapper,
  object: ObjectType,
  o: ReadOptions,
): Promise<PreparedPage | null> {
  // Since the epoch: the listing reads the whole archive anyway (see listsDeletionsAfter), and
  // a deletion older than the last full walk that no delta saw must still be applied.
  const gone: RemoteRecord[] = await adapter.deletedSince(object, new Date(0).toISOString(), {
    deadline: o.deadline,
    signal: o.signal,
  });
  if (gone.length === 0) return null;
  // Read whole, the listing is exactly what remains of the walk: its estimate ends at its count.
  return mapPage(mapper, object, {
    records: gone,
    errors: [],
    checkpoint: null,
    watermark: null,
    done: true,
    total: gone.length,
  });
}
