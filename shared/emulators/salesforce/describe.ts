/**
 * Discovery resources: versions, version root, limits, describeGlobal,
 * sObject basic info and describe.
 * Docs: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_describe.htm
 */
import { json } from "../common/http.ts";
import type { SalesforceEmulator } from "./emulator.ts";
import { KEY_PREFIX } from "./ids.ts";
import { type FieldDef, type SfObject, SOBJECTS, WRITABLE } from "./schema.ts";
import { sobjectType } from "./sobjects.ts";

const SOAP_TYPE: Record<string, string> = {
  id: "tns:ID",
  reference: "tns:ID",
  boolean: "xsd:boolean",
  double: "xsd:double",
  int: "xsd:int",
  currency: "xsd:double",
  percent: "xsd:double",
  date: "xsd:date",
  datetime: "xsd:dateTime",
};

function fieldJson(d: FieldDef) {
  return {
    name: d.name,
    label: d.label,
    type: d.type,
    soapType: SOAP_TYPE[d.type] ?? "xsd:string",
    length: d.length ?? 0,
    byteLength: (d.length ?? 0) * 3,
    precision: d.type === "currency" ? 18 : 0,
    scale: d.type === "currency" ? 2 : 0,
    nillable: d.nillable,
    createable: d.createable,
    updateable: d.updateable,
    custom: !!d.custom,
    externalId: !!d.externalId,
    unique: !!d.unique,
    idLookup: d.name === "Id" || !!d.externalId,
    nameField: d.name === "Name",
    filterable: true,
    sortable: d.type !== "textarea",
    groupable: d.type !== "textarea" && d.type !== "double",
    calculated: false,
    autoNumber: false,
    caseSensitive: false,
    defaultValue: d.defaultValue ?? null,
    defaultedOnCreate: d.defaultValue !== undefined || !d.createable,
    referenceTo: d.referenceTo ?? [],
    relationshipName: d.relationshipName ?? null,
    restrictedPicklist: !!d.restrictedPicklist,
    dependentPicklist: false,
    picklistValues: (d.picklistValues ?? []).map((v) => ({
      active: true,
      defaultValue: v === d.defaultValue,
      label: v,
      validFor: null,
      value: v,
    })),
  };
}

function objectInfo(t: SfObject, version: string) {
  const writable = WRITABLE.includes(t);
  return {
    name: t,
    label: t,
    labelPlural: t === "Opportunity" ? "Opportunities" : `${t}s`,
    keyPrefix: KEY_PREFIX[t],
    custom: false,
    createable: writable,
    updateable: writable,
    deletable: writable,
    undeletable: writable,
    mergeable: ["Account", "Contact", "Lead"].includes(t),
    queryable: true,
    replicateable: true,
    retrieveable: true,
    searchable: true,
    triggerable: true,
    urls: {
      sobject: `/services/data/v${version}/sobjects/${t}`,
      describe: `/services/data/v${version}/sobjects/${t}/describe`,
      rowTemplate: `/services/data/v${version}/sobjects/${t}/{ID}`,
    },
  };
}

export function registerDescribeRoutes(sf: SalesforceEmulator): void {
  sf.open(
    "GET",
    "/services/data",
    () =>
      json(
        [56, 57, 58, 59, 60, 61, 62, 63, 64].map((v) => ({
          label: `v${v}.0`,
          url: `/services/data/v${v}.0`,
          version: `${v}.0`,
        })),
      ),
  );

  sf.route("GET", "", (_ctx, { version }) =>
    json({
      sobjects: `/services/data/v${version}/sobjects`,
      query: `/services/data/v${version}/query`,
      queryAll: `/services/data/v${version}/queryAll`,
      limits: `/services/data/v${version}/limits`,
      composite: `/services/data/v${version}/composite`,
      identity: `${sf.url}/id/${sf.creds.orgId}/${sf.creds.userId}`,
    }));

  sf.route("GET", "/limits", () => {
    const used = sf.daily.used(sf.creds.orgId, sf.now());
    return json({
      DailyApiRequests: { Max: sf.daily.limit, Remaining: Math.max(0, sf.daily.limit - used) },
      DailyBulkApiBatches: { Max: 15000, Remaining: 15000 },
      ConcurrentPerOrgLongTxn: { Max: 10, Remaining: 10 },
    });
  });

  sf.route(
    "GET",
    "/sobjects",
    (_ctx, { version }) =>
      json({
        encoding: "UTF-8",
        maxBatchSize: 200,
        sobjects: SOBJECTS.map((t) => objectInfo(t, version)),
      }),
  );

  sf.route("GET", "/sobjects/:type/describe", (ctx, { version }) => {
    const t = sobjectType(ctx);
    return json({
      ...objectInfo(t, version),
      fields: sf.store.schema.fieldsOf(t).map(fieldJson),
      childRelationships: [],
      recordTypeInfos: [],
    });
  });

  sf.route("GET", "/sobjects/:type", (ctx, { version }) => {
    const t = sobjectType(ctx);
    return json({ objectDescribe: objectInfo(t, version), recentItems: [] });
  });
}
