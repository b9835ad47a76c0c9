/**
 * Sandbox snapshots: a sandbox's state written to one JSON file when it stops and read back
 * when it starts, so a restart of the local stack keeps what was synced and edited instead of
 * regenerating the sandbox from its seed (which would leave the mirror in Postgres describing
 * records the sandbox no longer has).
 *
 * Kept: records of every object (ids, values, modification times, deletions and merges),
 * creation counters (no id is handed out twice), users/owners, custom properties and fields
 * (the external-id property the engine creates included), associations, webhook subscriptions
 * and their id counters, and issued tokens. Not kept, on purpose: injected faults and latency,
 * rate-limit windows and daily counts, request counters, webhook deliveries in flight, and the
 * accounts other than account 0 (`--accounts`, used by benchmarks only).
 *
 * Files are written to a temporary name and renamed, so a crash while saving leaves the
 * previous snapshot whole.
 */
import { dirname, join } from "node:path";

export const SNAPSHOT_FORMAT = 1;

export interface SnapshotFile {
  format: number;
  provider: string;
  /** Seed and records per object the sandbox was first generated with. */
  seed: number;
  records: number;
  savedAt: string;
  state: unknown;
}

/** Emulators that can save and load their state. */
export interface Snapshottable {
  readonly name: string;
  seed: number;
  records: number;
  snapshot(): unknown;
  restoreSnapshot(state: unknown): void;
  /** Changes whenever the state does (cheap; decides whether a periodic save is needed). */
  stateVersion(): number;
}

export function snapshotPath(dir: string, provider: string): string {
  return join(dir, `${provider}.json`);
}

export async function saveSnapshot(dir: string, e: Snapshottable): Promise<string> {
  const file = snapshotPath(dir, e.name);
  const body: SnapshotFile = {
    format: SNAPSHOT_FORMAT,
    provider: e.name,
    seed: e.seed,
    records: e.records,
    savedAt: new Date().toISOString(),
    state: e.snapshot(),
  };
  await Deno.mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.${Deno.pid}.tmp`;
  await Deno.writeTextFile(tmp, JSON.stringify(body));
  await Deno.rename(tmp, file);
  return file;
}

/** The snapshot of `provider` in `dir`, or null when there is none. A file that is unreadable
 * or of another format throws: the caller decides (main.ts refuses to start on it rather than
 * regenerating the sandbox over data the mirror still holds). */
export async function readSnapshot(dir: string, provider: string): Promise<SnapshotFile | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(snapshotPath(dir, provider));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  const body = JSON.parse(text) as SnapshotFile;
  if (body.format !== SNAPSHOT_FORMAT || body.provider !== provider) {
    throw new Error(
      `${snapshotPath(dir, provider)}: not a format-${SNAPSHOT_FORMAT} ${provider} snapshot`,
    );
  }
  return body;
}

/** Maps of maps as arrays of entries (JSON has no Map). */
export function mapEntries<V>(m: Map<string, V>): Array<[string, V]> {
  return [...m.entries()];
}
