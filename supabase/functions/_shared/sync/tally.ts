// Counts of one inbound run as the engine sees them, kept in step with what
// crm.save_inbound_page records in sync_log, plus bounded samples of failures and warnings
// for the run's details (the full counts are exact; the samples are capped).
import type { ObjectType, RecordError } from "../providers/types.ts";
import type { Connection } from "./connections.ts";
import type { RunSummary } from "./inbound.ts";

const SAMPLE_CAP = 50;

export interface Warning {
  remoteId: string;
  column: string;
  message: string;
}

export interface PageOutcome {
  created: number;
  updated: number;
  unchanged: number;
  deleted: number;
  failed: number;
}

interface SaveRow {
  created: number;
  updated: number;
  unchanged: number;
  deleted: number;
  stale: number;
  conflicts: number;
  failed: { remote_id: string | null; reason: string }[];
  /** crm.apply_inbound statements the page took (1 when clean; more when it was split). */
  apply_calls?: number;
}

export class RunTally {
  processed = 0;
  created = 0;
  updated = 0;
  unchanged = 0;
  deleted = 0;
  failed = 0;
  conflicts = 0;
  warnings = 0;
  tombstoned = 0;
  applyCalls = 0;
  /** Why the full walk's sweep tombstoned nothing, when it refused to. */
  sweepSkipped: string | null = null;
  /** Why the retry of earlier failures did not run to the end (the failures wait for a later run). */
  retryError: string | null = null;
  failures: { remote_id: string | null; reason: string }[] = [];
  warningSamples: { remote_id: string; column: string; message: string }[] = [];
  #start: number;
  #recorded: number;

  constructor(
    readonly conn: Connection,
    readonly object: ObjectType,
    readonly calls: () => number,
  ) {
    this.#start = calls();
    this.#recorded = this.#start;
  }

  /** Counts the database does not see itself: adapter parse errors and API calls since last time. */
  pageExtras(errors: RecordError[]): Record<string, number> {
    const now = this.calls();
    const out = {
      api_calls: now - this.#recorded,
      processed: errors.length,
      failed: errors.length,
    };
    this.#recorded = now;
    this.processed += errors.length;
    this.failed += errors.length;
    for (const e of errors) this.#fail(e.remoteId, e.reason);
    return out;
  }

  addPage(row: SaveRow, recordCount: number, warnings: Warning[]): PageOutcome {
    const failedHere = row.failed.length;
    this.processed += recordCount;
    this.created += row.created;
    this.updated += row.updated;
    this.unchanged += row.unchanged + row.stale;
    this.deleted += row.deleted;
    this.conflicts += row.conflicts;
    this.applyCalls += row.apply_calls ?? 0;
    this.failed += failedHere;
    for (const f of row.failed) this.#fail(f.remote_id, f.reason);
    this.warnings += warnings.length;
    for (const w of warnings) {
      if (this.warningSamples.length < SAMPLE_CAP) {
        this.warningSamples.push({ remote_id: w.remoteId, column: w.column, message: w.message });
      }
    }
    return {
      created: row.created,
      updated: row.updated,
      unchanged: row.unchanged + row.stale,
      deleted: row.deleted,
      failed: failedHere,
    };
  }

  #fail(remoteId: string | null, reason: string) {
    if (this.failures.length < SAMPLE_CAP) this.failures.push({ remote_id: remoteId, reason });
  }

  details(more: boolean): Record<string, unknown> {
    return {
      more,
      warnings: this.warnings,
      warning_samples: this.warningSamples,
      conflicts: this.conflicts,
      tombstoned: this.tombstoned,
      apply_calls: this.applyCalls,
      ...(this.sweepSkipped ? { sweep_skipped: this.sweepSkipped } : {}),
      ...(this.retryError ? { retry_error: this.retryError } : {}),
    };
  }

  summary(
    runId: number | null,
    status: RunSummary["status"],
    extra: { error?: string; more?: boolean; revoked?: boolean },
  ): RunSummary {
    return {
      connection_id: this.conn.id,
      provider: this.conn.provider,
      object: this.object,
      run_id: runId,
      status,
      processed: this.processed,
      created: this.created,
      updated: this.updated,
      unchanged: this.unchanged,
      deleted: this.deleted + this.tombstoned,
      failed: this.failed,
      api_calls: this.calls() - this.#start,
      warnings: this.warnings,
      conflicts: this.conflicts,
      tombstoned: this.tombstoned,
      more: extra.more ?? false,
      ...(this.sweepSkipped ? { sweep_skipped: this.sweepSkipped } : {}),
      ...(extra.revoked ? { revoked: true } : {}),
      ...(extra.error ? { error: extra.error } : {}),
    };
  }
}
