/**
 * Deterministic faults for exact requests, beside the common module's random ones: "the next
 * `times` requests `METHOD /path` answer `status`". Tests use them to fail one record's call
 * (a 429 after every retry, a 5xx) while the other records' calls go through.
 * Set with the admin API: `PUT /__admin/request-faults {"rules": [...]}` (replaces the rules),
 * `GET` lists what is left, `DELETE` clears them.
 */
import { z } from "zod";

export const RequestFaultSchema = z.object({
  method: z.string().transform((m) => m.toUpperCase()),
  /** Exact pathname, e.g. /api/v2/persons/12. */
  path: z.string().startsWith("/"),
  status: z.number().int().min(400).max(599),
  /** How many matching requests fail (then the rule is spent). */
  times: z.number().int().min(1).default(1),
  retryAfterSeconds: z.number().int().min(0).optional(),
  message: z.string().optional(),
}).strict();

export type RequestFault = z.infer<typeof RequestFaultSchema>;

export const RequestFaultsSchema = z.object({ rules: z.array(RequestFaultSchema).max(100) })
  .strict();

export class RequestFaults {
  #rules: RequestFault[] = [];
  /** How many requests the rules failed. */
  injected = 0;

  set(rules: RequestFault[]): void {
    this.#rules = rules.map((r) => ({ ...r }));
  }

  list(): RequestFault[] {
    return this.#rules.map((r) => ({ ...r }));
  }

  clear(): void {
    this.#rules = [];
    this.injected = 0;
  }

  /** The fault for this request, if a rule matches (spending one of its times). */
  take(method: string, path: string): RequestFault | null {
    const r = this.#rules.find((x) => x.method === method.toUpperCase() && x.path === path);
    if (!r) return null;
    r.times--;
    if (r.times <= 0) this.#rules = this.#rules.filter((x) => x !== r);
    this.injected++;
    return r;
  }
}
