/**
 * Records that refuse every update through the API, permanently: what a CRM does when a record
 * breaks a rule the integration cannot satisfy (a validation rule, a locked or required
 * property). Each provider answers with its documented validation error (HubSpot 400
 * VALIDATION_ERROR, Salesforce FIELD_CUSTOM_VALIDATION_EXCEPTION, Pipedrive 400 with
 * `success: false`). Creates and deletes are not refused, and nor are saves through the admin
 * API (a CRM user's edits): only the integration's writes fail. Unlike the request faults, a
 * refusal is not random and outlives `DELETE /__admin/faults`; `POST /__admin/reset` clears it.
 */
import { z } from "zod";

export const DEFAULT_REFUSAL = "This record fails a validation rule and cannot be saved";

export const RefusalsSchema = z.object({
  /** Record ids, as the API names them. */
  ids: z.array(z.string().min(1)).max(100_000),
  message: z.string().min(1).default(DEFAULT_REFUSAL),
}).strict();

export class Refusals {
  #ids = new Set<string>();
  message = DEFAULT_REFUSAL;
  /** Refused writes, per record id. */
  readonly refused: Record<string, number> = {};

  set(input: z.input<typeof RefusalsSchema>): void {
    const v = RefusalsSchema.parse(input);
    this.#ids = new Set(v.ids);
    this.message = v.message;
  }

  clear(): void {
    this.#ids.clear();
    this.message = DEFAULT_REFUSAL;
    for (const k of Object.keys(this.refused)) delete this.refused[k];
  }

  /** The message to refuse an API update of `id` with, counted; null when it is not refused. */
  check(id: string | number): string | null {
    const k = String(id);
    if (!this.#ids.has(k)) return null;
    this.refused[k] = (this.refused[k] ?? 0) + 1;
    return this.message;
  }

  snapshot() {
    return { ids: [...this.#ids], message: this.message, refused: { ...this.refused } };
  }
}
