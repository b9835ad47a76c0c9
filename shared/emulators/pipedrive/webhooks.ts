/**
 * Pipedrive webhooks v2: one POST per event with `{data, previous, meta}`.
 * Docs: https://pipedrive.readme.io/docs/guide-for-webhooks-v2
 * - `meta` carries action (create/change/delete), entity, entity_id and the
 *   other ids as strings, change_source (app/api), attempt, timestamp…;
 * - `previous` holds only the changed fields' old values (change), the whole
 *   object (delete) or null (create); `data` is null on delete;
 * - merges send a delete for the merged item (meta.merged_to_id) and a change
 *   for the surviving one;
 * - HTTP Basic auth (http_auth_user/password) is the only authentication;
 * - failures (non-2xx, no answer in 10 s) are retried 3 times after 3, 30 and
 *   150 s (× timeScale). Webhooks v1 payloads are not emulated.
 */
import { z } from "zod";
import type { DeliveryJob } from "../common/webhook_queue.ts";
import { PdError } from "./errors.ts";
import type { PipedriveEmulator } from "./emulator.ts";
import { webhookData } from "./serialize.ts";
import type { PdChange } from "./store.ts";

export const PIPEDRIVE_RETRY_DELAYS_MS = [3_000, 30_000, 150_000];
const MAX_WEBHOOKS = 40;

export interface PdWebhook {
  id: number;
  subscription_url: string;
  event_action: string;
  event_object: string;
  user_id: number;
  http_auth_user: string | null;
  http_auth_password: string | null;
  version: string;
  name: string | null;
  is_active: boolean;
  add_time: number;
  last_delivery_time: number | null;
  last_http_status: number | null;
}

export const AdminWebhookSchema = z.object({
  url: z.string().url(),
  httpAuthUser: z.string().nullable().default(null),
  httpAuthPassword: z.string().nullable().default(null),
  eventAction: z.enum(["create", "change", "delete", "*"]).default("*"),
  eventObject: z.string().default("*"),
  timeoutMs: z.number().int().min(1).max(120_000).optional(),
  retryDelaysMs: z.array(z.number().min(0)).max(10).optional(),
}).strict();

export class PipedriveWebhooks {
  #hooks: PdWebhook[] = [];
  #nextId = 1;
  timeoutMs = 10_000;
  retryDelaysMs: number[] = PIPEDRIVE_RETRY_DELAYS_MS;

  constructor(private pd: PipedriveEmulator) {}

  list(): PdWebhook[] {
    return [...this.#hooks];
  }

  /** The webhooks and the id counter, for a sandbox snapshot. */
  snapshot(): { hooks: PdWebhook[]; nextId: number } {
    return { hooks: this.#hooks, nextId: this.#nextId };
  }

  load(s: { hooks: PdWebhook[]; nextId: number }): void {
    this.#hooks = s.hooks;
    this.#nextId = s.nextId;
  }

  add(
    input: Omit<
      PdWebhook,
      "id" | "is_active" | "add_time" | "last_delivery_time" | "last_http_status"
    >,
  ): PdWebhook {
    const bad = (m: string) => new PdError(400, m, { errorCode: 400 });
    try {
      new URL(input.subscription_url);
    } catch {
      throw bad("subscription_url must be a valid URL");
    }
    if (!["create", "change", "delete", "*"].includes(input.event_action)) {
      throw bad("event_action must be one of create, change, delete, *");
    }
    if (!input.event_object) throw bad("event_object is required");
    if (input.version !== "2.0") {
      throw bad("This sandbox emulates webhooks v2 only: create the webhook with version '2.0'");
    }
    if (this.#hooks.length >= MAX_WEBHOOKS) {
      throw bad(`The maximum of ${MAX_WEBHOOKS} webhooks is reached`);
    }
    const w: PdWebhook = {
      ...input,
      id: this.#nextId++,
      is_active: true,
      add_time: this.pd.now(),
      last_delivery_time: null,
      last_http_status: null,
    };
    this.#hooks.push(w);
    return w;
  }

  remove(id: number): boolean {
    const n = this.#hooks.length;
    this.#hooks = this.#hooks.filter((w) => w.id !== id);
    return this.#hooks.length !== n;
  }

  clear(): void {
    this.#hooks = [];
  }

  toJson(w: PdWebhook): Record<string, unknown> {
    const t = (
      ms: number | null,
    ) => (ms === null ? null : new Date(ms).toISOString().slice(0, 19).replace("T", " "));
    return {
      id: w.id,
      company_id: this.pd.creds.companyId,
      owner_id: w.user_id,
      user_id: w.user_id,
      event_action: w.event_action,
      event_object: w.event_object,
      subscription_url: w.subscription_url,
      is_active: w.is_active ? 1 : 0,
      add_time: t(w.add_time),
      remove_time: null,
      type: "general",
      http_auth_user: w.http_auth_user,
      http_auth_password: w.http_auth_password ? "********" : null,
      additional_data: {},
      remove_reason: null,
      last_delivery_time: t(w.last_delivery_time),
      last_http_status: w.last_http_status,
      admin_id: 1,
      version: w.version,
      name: w.name,
    };
  }

  emit(c: PdChange): void {
    const hooks = this.#hooks.filter((w) =>
      w.is_active && (w.event_action === "*" || w.event_action === c.action) &&
      (w.event_object === "*" || w.event_object === c.entity)
    );
    if (hooks.length === 0) return;
    const r = this.pd.store.get(c.entity, c.id);
    if (!r) return;
    const current = webhookData(r);
    const data = c.action === "delete" ? null : current;
    const previous = c.action === "delete" ? { ...current, is_deleted: false } : c.previous;
    const ev = this.pd.prng.fork(
      `event:${this.pd.queue.stats.enqueued}:${c.entity}:${c.id}:${this.pd.now()}`,
    );
    const correlationId = ev.uuid();
    const timestamp = new Date(this.pd.now()).toISOString();
    const owner = r.data.owner_id;
    for (const w of hooks) {
      const eventId = ev.uuid();
      const meta = (attempt: number) => ({
        action: c.action,
        company_id: String(this.pd.creds.companyId),
        correlation_id: correlationId,
        entity_id: String(c.id),
        entity: c.entity,
        id: eventId,
        is_bulk_edit: !!c.isBulkEdit,
        timestamp,
        type: "general",
        user_id: String(c.userId),
        version: "2.0",
        webhook_id: String(w.id),
        webhook_owner_id: String(w.user_id),
        change_source: c.source,
        permitted_user_ids: [
          ...new Set(["1", owner === null || owner === undefined ? "1" : String(owner)]),
        ],
        attempt,
        host: `${this.pd.creds.companyDomain}.pipedrive.com`,
        ...(c.mergedToId ? { merged_to_id: String(c.mergedToId) } : {}),
      });
      this.pd.queue.enqueue(
        this.#job(
          w,
          `${c.action}.${c.entity} ${c.id}`,
          (attempt) => JSON.stringify({ data, previous, meta: meta(attempt) }),
        ),
      );
    }
  }

  #job(w: PdWebhook, label: string, body: (attempt: number) => string): DeliveryJob {
    return {
      label: `pipedrive ${label} → webhook ${w.id}`,
      policy: { delaysMs: this.retryDelaysMs, timeoutMs: this.timeoutMs },
      isSuccess: (status) => {
        w.last_delivery_time = this.pd.now();
        w.last_http_status = status;
        return status >= 200 && status < 300;
      },
      build: (attempt) => {
        if (!this.#hooks.includes(w)) return null;
        const headers: Record<string, string> = {
          "content-type": "application/json",
          "user-agent": "Pipedrive Webhooks",
        };
        if (w.http_auth_user !== null) {
          const raw = new TextEncoder().encode(`${w.http_auth_user}:${w.http_auth_password ?? ""}`);
          headers.authorization = `Basic ${btoa(String.fromCharCode(...raw))}`;
        }
        return { url: w.subscription_url, method: "POST", headers, body: body(attempt) };
      },
    };
  }
}
