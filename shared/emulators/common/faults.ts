/**
 * Fault injection. All decisions come from a seeded stream, so a given seed
 * and request sequence misbehave identically on every run.
 *
 * Request faults are decided once per API request (admin routes are never
 * faulted): added latency first, then at most one of hang / 5xx / 429 / 401.
 * Webhook faults are decided per delivery job (drop, duplicate, reorder).
 */
import { z } from "zod";
import { Prng } from "./prng.ts";

const rate = z.number().min(0).max(1);

export const FaultConfigSchema = z.object({
  /** Share of API requests answered with a provider-shaped 5xx. */
  error5xxRate: rate.default(0),
  /** Share of API requests answered with the provider's rate-limit error. */
  rate429: rate.default(0),
  /** Share of API requests rejected as unauthenticated (expired session). */
  unauthorizedRate: rate.default(0),
  /** Share of API requests that never get an answer (client must time out). */
  hangRate: rate.default(0),
  /** Share of API requests that are carried out but never answered: the change is applied and
   * the client times out not knowing it (an outcome-unknown write). */
  lostAnswerRate: rate.default(0),
  /** Added latency per API request, in ms (plus up to `latencyJitterMs`). */
  latencyMs: z.number().min(0).max(600_000).default(0),
  latencyJitterMs: z.number().min(0).max(600_000).default(0),
  /** Only fault routes whose "METHOD /pattern" key contains this text. */
  routeFilter: z.string().nullable().default(null),
  /** Share of webhook deliveries silently lost. */
  webhookDropRate: rate.default(0),
  /** Share of webhook deliveries sent twice. */
  webhookDuplicateRate: rate.default(0),
  /** Share of webhook deliveries held back so later ones overtake them. */
  webhookReorderRate: rate.default(0),
  /** How long a reordered delivery is held when nothing else is queued (real ms). */
  webhookReorderHoldMs: z.number().min(0).max(60_000).default(100),
  /** Re-seed the fault stream (defaults to the emulator seed). */
  seed: z.number().int().optional(),
}).strict();

export type FaultConfig = z.infer<typeof FaultConfigSchema>;
export type FaultConfigInput = z.input<typeof FaultConfigSchema>;

export type RequestFault = "ok" | "hang" | "lost_answer" | "5xx" | "429" | "401";

export interface RequestDecision {
  latencyMs: number;
  fault: RequestFault;
}

export class Faults {
  #config: FaultConfig;
  #prng: Prng;
  #baseSeed: number;
  /** How many faults of each kind were injected. */
  readonly injected: Record<string, number> = {};

  constructor(seed: number, initial: FaultConfigInput = {}) {
    this.#baseSeed = seed;
    this.#config = FaultConfigSchema.parse(initial);
    this.#prng = new Prng(this.#config.seed ?? seed).fork("faults");
  }

  get config(): FaultConfig {
    return { ...this.#config };
  }

  /** Merge a partial configuration into the current one. */
  update(partial: FaultConfigInput): FaultConfig {
    const next = FaultConfigSchema.parse({ ...this.#config, ...partial });
    if (partial.seed !== undefined) this.#prng = new Prng(partial.seed).fork("faults");
    this.#config = next;
    return this.config;
  }

  /** Back to no faults; the stream restarts from the base seed. */
  reset(seed = this.#baseSeed): void {
    this.#baseSeed = seed;
    this.#config = FaultConfigSchema.parse({});
    this.#prng = new Prng(seed).fork("faults");
    for (const k of Object.keys(this.injected)) delete this.injected[k];
  }

  #note(kind: string): void {
    this.injected[kind] = (this.injected[kind] ?? 0) + 1;
  }

  decideRequest(route: string): RequestDecision {
    const c = this.#config;
    if (c.routeFilter && !route.includes(c.routeFilter)) return { latencyMs: 0, fault: "ok" };
    let latencyMs = c.latencyMs;
    if (c.latencyJitterMs > 0) latencyMs += Math.floor(this.#prng.next() * c.latencyJitterMs);
    const total = c.hangRate + c.lostAnswerRate + c.error5xxRate + c.rate429 + c.unauthorizedRate;
    if (total <= 0) return { latencyMs, fault: "ok" };
    const r = this.#prng.next();
    let acc = c.hangRate;
    let fault: RequestFault = "ok";
    if (r < acc) fault = "hang";
    else if (r < (acc += c.lostAnswerRate)) fault = "lost_answer";
    else if (r < (acc += c.error5xxRate)) fault = "5xx";
    else if (r < (acc += c.rate429)) fault = "429";
    else if (r < (acc += c.unauthorizedRate)) fault = "401";
    if (fault !== "ok") this.#note(fault);
    return { latencyMs, fault };
  }

  dropWebhook(): boolean {
    const hit = this.#prng.chance(this.#config.webhookDropRate);
    if (hit) this.#note("webhookDrop");
    return hit;
  }

  duplicateWebhook(): boolean {
    const hit = this.#prng.chance(this.#config.webhookDuplicateRate);
    if (hit) this.#note("webhookDuplicate");
    return hit;
  }

  reorderWebhook(): boolean {
    const hit = this.#prng.chance(this.#config.webhookReorderRate);
    if (hit) this.#note("webhookReorder");
    return hit;
  }
}
