/**
 * Outbound Messages (workflow "created, and every time it's edited"):
 * SOAP `notifications` with up to 100 `Notification`s per message and object,
 * OrganizationId/ActionId/SessionId/EnterpriseUrl/PartnerUrl, record fields
 * read at send time (Salesforce delivers the latest data, not the state at
 * the change). The listener must answer 200 with
 * `<notificationsResponse><Ack>true</Ack></notificationsResponse>`; anything
 * else is retried: 30 s doubling to 2 h, then every 2 h for 24 h (× timeScale).
 * Deletes do not trigger workflow, so they send nothing. Messages can repeat
 * and arrive out of order.
 * Docs: https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_om_outboundmessaging_understanding.htm
 */
import { z } from "zod";
import type { DeliveryJob } from "../common/webhook_queue.ts";
import type { SalesforceEmulator } from "./emulator.ts";
import { KEY_PREFIX, makeId } from "./ids.ts";
import { type SfObject, WRITABLE } from "./schema.ts";
import type { SfChange } from "./store.ts";
import { parseSfTime } from "./values.ts";

function delays(): number[] {
  const out: number[] = [];
  let total = 0;
  let d = 30_000;
  while (total + d <= 24 * 3_600_000) {
    out.push(d);
    total += d;
    d = Math.min(d * 2, 7_200_000);
  }
  return out;
}
export const OUTBOUND_RETRY_DELAYS_MS = delays();

export const OutboundConfigSchema = z.object({
  /** Listener URL; put a shared secret in it (Salesforce cannot sign requests). */
  url: z.string().url().nullable().default(null),
  objects: z.array(z.enum(WRITABLE as unknown as [SfObject, ...SfObject[]])).default([...WRITABLE]),
  /** Fields per object (default: every field). Id is always sent. */
  fields: z.record(z.string(), z.array(z.string())).optional(),
  /** Send only when a record is created (default: created and every edit). */
  onCreateOnly: z.boolean().default(false),
  includeSessionId: z.boolean().default(false),
  maxBatchSize: z.number().int().min(1).max(100).default(100),
  batchWindowMs: z.number().int().min(0).max(60_000).default(0),
  timeoutMs: z.number().int().min(1).max(120_000).default(60_000),
  retryDelaysMs: z.array(z.number().min(0)).max(40).optional(),
}).strict();
export type OutboundConfigInput = z.input<typeof OutboundConfigSchema>;
type Config = z.infer<typeof OutboundConfigSchema>;

const ACK_RE = /<(?:\w+:)?Ack>\s*true\s*<\/(?:\w+:)?Ack>/;

function xml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(
    /"/g,
    "&quot;",
  ).replace(/'/g, "&apos;");
}

function soapValue(v: unknown, type: string): string {
  if (type === "datetime") {
    const t = parseSfTime(v);
    return t === null ? xml(String(v)) : new Date(t).toISOString();
  }
  return xml(String(v));
}

export class OutboundMessages {
  config: Config;
  #pending = new Map<SfObject, Array<{ notificationId: string; recordId: string }>>();
  #timer: number | undefined;
  #nextNotification = 1;
  readonly actionIds: Record<string, string> = {};

  constructor(private sf: SalesforceEmulator, initial: OutboundConfigInput = {}) {
    this.config = OutboundConfigSchema.parse(initial);
    WRITABLE.forEach((
      t,
      i,
    ) => (this.actionIds[t] = makeId(KEY_PREFIX.OutboundMessage, 100 + i, "0A")));
  }

  /** Endpoint configuration and the notification counter, for a sandbox snapshot: ids must
   * not start again at 1 (the engine's inbox would take new notifications for repeats). */
  snapshot(): { config: Config; nextNotification: number } {
    return { config: this.config, nextNotification: this.#nextNotification };
  }

  load(s: { config: Config; nextNotification: number }): void {
    this.config = s.config;
    this.#nextNotification = s.nextNotification;
  }

  configure(input: OutboundConfigInput): Config {
    for (const [obj, names] of Object.entries(input.fields ?? {})) {
      const t = WRITABLE.find((w) => w === obj);
      if (!t) throw new Error(`unknown object ${obj}`);
      for (const n of names) {
        if (!this.sf.store.schema.field(t, n)) throw new Error(`unknown field ${obj}.${n}`);
      }
    }
    this.config = OutboundConfigSchema.parse(input);
    return this.config;
  }

  onChange(c: SfChange): void {
    const cfg = this.config;
    if (!cfg.url || !cfg.objects.includes(c.type)) return;
    if (c.kind === "delete") return;
    if (cfg.onCreateOnly && c.kind !== "create") return;
    let list = this.#pending.get(c.type);
    if (!list) this.#pending.set(c.type, list = []);
    list.push({
      notificationId: makeId(KEY_PREFIX.OutboundNotification, this.#nextNotification++, "0N"),
      recordId: c.id,
    });
    if (list.length >= cfg.maxBatchSize) return this.flush();
    if (this.#timer === undefined) {
      this.sf.queue.retain();
      this.#timer = setTimeout(() => this.flush(), cfg.batchWindowMs);
    }
  }

  flush(): void {
    const timer = this.#timer;
    this.#timer = undefined;
    for (const [type, list] of this.#pending) {
      while (list.length > 0) {
        this.sf.queue.enqueue(this.#job(type, list.splice(0, this.config.maxBatchSize)));
      }
    }
    this.#pending.clear();
    if (timer !== undefined) {
      clearTimeout(timer);
      this.sf.queue.release();
    }
  }

  cancel(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.sf.queue.release();
    }
    this.#timer = undefined;
    this.#pending.clear();
  }

  #job(type: SfObject, items: Array<{ notificationId: string; recordId: string }>): DeliveryJob {
    return {
      label: `salesforce outbound ${type} ×${items.length}`,
      policy: {
        delaysMs: this.config.retryDelaysMs ?? OUTBOUND_RETRY_DELAYS_MS,
        timeoutMs: this.config.timeoutMs,
      },
      isSuccess: (status, body) => status === 200 && ACK_RE.test(body),
      build: () => {
        const url = this.config.url;
        if (!url) return null;
        const body = this.envelope(type, items);
        if (!body) return null;
        return {
          url,
          method: "POST",
          body,
          headers: {
            "content-type": "text/xml; charset=utf-8",
            "soapaction": '""',
            "user-agent": "Salesforce OutboundMessaging",
          },
        };
      },
    };
  }

  /** The SOAP message for these notifications (null when every record is gone). */
  envelope(
    type: SfObject,
    items: Array<{ notificationId: string; recordId: string }>,
  ): string | null {
    const schema = this.sf.store.schema;
    const names = this.config.fields?.[type] ?? schema.fieldsOf(type).map((d) => d.name);
    const defs = ["Id", ...names.filter((n) => n !== "Id")].map((n) => schema.field(type, n)!);
    const notes: string[] = [];
    for (const it of items) {
      const r = this.sf.store.find(type, it.recordId);
      if (!r || r.isDeleted) continue;
      const fieldsXml = defs
        .filter((d) => r.fields[d.name] !== null && r.fields[d.name] !== undefined)
        .map((d) => `<sf:${d.name}>${soapValue(r.fields[d.name], d.type)}</sf:${d.name}>`)
        .join("");
      notes.push(
        `<Notification><Id>${it.notificationId}</Id><sObject xsi:type="sf:${type}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">${fieldsXml}</sObject></Notification>`,
      );
    }
    if (notes.length === 0) return null;
    const base = this.sf.url;
    const org = this.sf.creds.orgId;
    const session = this.config.includeSessionId
      ? `<SessionId>${xml(this.sf.creds.accessToken)}</SessionId>`
      : `<SessionId xsi:nil="true"/>`;
    return `<?xml version="1.0" encoding="UTF-8"?>` +
      `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">` +
      `<soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound">` +
      `<OrganizationId>${org}</OrganizationId><ActionId>${
        this.actionIds[type]
      }</ActionId>${session}` +
      `<EnterpriseUrl>${xml(base)}/services/Soap/c/62.0/${org}</EnterpriseUrl>` +
      `<PartnerUrl>${xml(base)}/services/Soap/u/62.0/${org}</PartnerUrl>` +
      notes.join("") +
      `</notifications></soapenv:Body></soapenv:Envelope>`;
  }
}

/** The acknowledgement a listener must return. */
export const ACK_ENVELOPE = `<?xml version="1.0" encoding="UTF-8"?>` +
  `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">` +
  `<soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack></notificationsResponse></soapenv:Body>` +
  `</soapenv:Envelope>`;
