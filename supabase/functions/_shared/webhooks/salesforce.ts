// Salesforce Outbound Messaging: the SOAP `notifications` message as inbox rows, and the Ack.
// Docs: https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_om_outboundmessaging_understanding.htm
// Salesforce cannot sign a message: the listener URL carries a per-connection secret, and the
// message's OrganizationId must be the connection's org. At most 100 notifications per message;
// deletes send nothing (the drift check finds them).
//
// Parsed with fast-xml-parser with entity processing off: a DOCTYPE (the only place entities
// can be declared) is refused before parsing, so no entity is ever expanded; the five
// predefined escapes and character references in text are decoded by xmlText below.
import { XMLParser, XMLValidator } from "fast-xml-parser";
import type { InboxEvent, InboxObject, Normalized } from "./event.ts";
import { MAX_EVENTS_PER_REQUEST, refuse } from "./limits.ts";

export const ACK_ENVELOPE = `<?xml version="1.0" encoding="UTF-8"?>` +
  `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">` +
  `<soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">` +
  `<Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>`;

/** Salesforce object -> our object; other objects are acknowledged and not stored. */
const OBJECTS: Record<string, InboxObject> = {
  Contact: "contacts",
  Lead: "contacts",
  Account: "companies",
  Opportunity: "deals",
  User: "owners",
};

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: "@",
  removeNSPrefix: true,
  processEntities: false,
  htmlEntities: false,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  maxNestedTags: 20,
  isArray: (name, path) =>
    path === "Envelope.Body.notifications.Notification" || name === "Notification",
});

const PREDEFINED: Record<string, string> = { lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" };

/** Decodes the predefined escapes and character references of XML text (nothing else). */
export function xmlText(s: string): string {
  return s.replace(/&(#x[0-9A-Fa-f]{1,6}|#\d{1,7}|[a-z]{2,4});/g, (m, ref: string) => {
    if (ref[0] !== "#") return PREDEFINED[ref] ?? m;
    const cp = ref[1] === "x" ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
    return cp > 0 && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff)
      ? String.fromCodePoint(cp)
      : m;
  });
}

type Node = Record<string, unknown>;
const isNode = (v: unknown): v is Node => v !== null && typeof v === "object" && !Array.isArray(v);

function text(v: unknown): string | null {
  if (typeof v === "string") return xmlText(v);
  if (isNode(v) && typeof v["#text"] === "string") return xmlText(v["#text"]);
  return null;
}

export interface SalesforceMessage {
  organizationId: string;
  actionId: string | null;
  notifications: Array<{ id: string; type: string; fields: Record<string, string | null> }>;
}

/** The message's organisation and notifications (400 when it is not an Outbound Message). */
export function parseOutboundMessage(body: string): SalesforceMessage {
  if (/<!DOCTYPE|<!ENTITY/i.test(body)) refuse(400, "DOCTYPE and entity declarations are refused");
  if (XMLValidator.validate(body) !== true) return refuse(400, "body is not well-formed XML");
  let doc: unknown;
  try {
    doc = parser.parse(body);
  } catch {
    return refuse(400, "body is not well-formed XML");
  }
  const n = isNode(doc) && isNode(doc.Envelope) && isNode(doc.Envelope.Body) &&
      isNode(doc.Envelope.Body.notifications)
    ? doc.Envelope.Body.notifications
    : refuse(400, "body is not a SOAP notifications message");
  const organizationId = text(n.OrganizationId);
  if (!organizationId || !/^[A-Za-z0-9]{15,18}$/.test(organizationId)) {
    refuse(400, "message has no valid OrganizationId");
  }
  const list = n.Notification === undefined ? [] : n.Notification;
  if (!Array.isArray(list)) return refuse(400, "Notification is malformed");
  if (list.length > MAX_EVENTS_PER_REQUEST) {
    refuse(400, `more than ${MAX_EVENTS_PER_REQUEST} notifications in one message`);
  }
  const notifications = list.map((raw) => {
    if (!isNode(raw) || !isNode(raw.sObject)) return refuse(400, "Notification without sObject");
    const id = text(raw.Id);
    if (!id || id.length > 64) return refuse(400, "Notification without Id");
    const so = raw.sObject;
    const xsiType = typeof so["@type"] === "string" ? so["@type"] : "";
    const type = xsiType.includes(":") ? xsiType.slice(xsiType.indexOf(":") + 1) : xsiType;
    const fields: Record<string, string | null> = {};
    for (const [k, v] of Object.entries(so)) {
      if (k.startsWith("@")) continue;
      if (isNode(v) || Array.isArray(v)) {
        if (isNode(v) && v["@nil"] === "true") fields[k] = null;
        else if (text(v) !== null) fields[k] = text(v);
        else return refuse(400, `sObject field ${k.slice(0, 50)} is malformed`);
      } else fields[k] = text(v);
    }
    return { id, type, fields };
  });
  return { organizationId: organizationId!, actionId: text(n.ActionId), notifications };
}

/** Salesforce ids are 15 (case-sensitive) or 18 characters; both name the same org. */
export function sameOrg(a: string, b: string): boolean {
  return a.length >= 15 && b.length >= 15 && a.slice(0, 15) === b.slice(0, 15) &&
    (a.length === 15 || b.length === 15 || a === b);
}

/** Inbox rows of a verified message for one connection (every edit is an upsert). */
export function normalizeSalesforce(
  msg: SalesforceMessage,
  connectionId: string,
): Normalized<InboxEvent> {
  const events: InboxEvent[] = [];
  let skipped = 0;
  for (const n of msg.notifications) {
    const object = OBJECTS[n.type];
    const recordId = n.fields.Id;
    if (!object || !recordId) {
      skipped++;
      continue;
    }
    const stamp = n.fields.SystemModstamp ?? n.fields.LastModifiedDate ?? null;
    const t = stamp ? Date.parse(stamp) : NaN;
    events.push({
      provider: "salesforce",
      connection_id: connectionId,
      object,
      remote_id: recordId,
      event_type: "upsert",
      occurred_at: Number.isFinite(t) ? new Date(t).toISOString() : null,
      // Scoped by org: notification ids are the org's, and one connection's deliveries must
      // never be taken for repeats of another's.
      dedupe_key: `${msg.organizationId}:${n.id}`,
      payload: {
        notificationId: n.id,
        organizationId: msg.organizationId,
        actionId: msg.actionId,
        sObjectType: n.type,
        fields: n.fields,
      },
    });
  }
  return { events, skipped };
}
