// The seeded field mappings end to end against the three sandboxes: each API accepts the
// mapper's field selection, and every record of every object maps to the canonical columns,
// with warnings only for values the mirror tables cannot hold (phones that are not valid for
// the default region, malformed emails the sandboxes seed on purpose).
import assert from "node:assert/strict";
import { walkChanges } from "./_support.ts";
import { seededMappings } from "./_seeded_mappings.ts";
import { startHubSpot } from "../../shared/emulators/hubspot/mod.ts";
import { startPipedrive } from "../../shared/emulators/pipedrive/mod.ts";
import { startSalesforce } from "../../shared/emulators/salesforce/mod.ts";
import { createMapper } from "../../supabase/functions/_shared/mapping/mapper.ts";
import { createAdapter } from "../../supabase/functions/_shared/providers/registry.ts";
import {
  OBJECT_TYPES,
  type ObjectType,
  type ProviderDeps,
  type ProviderName,
} from "../../supabase/functions/_shared/providers/types.ts";

const BOOKKEEPING = ["remote_id", "remote_updated_at", "deleted", "merged_into", "merged_ids"];
const EXPECTED_WARNING = /^(phone: invalid phone number|email: malformed email)/;

function deps(
  baseUrl: string,
  credentials: Record<string, string>,
  logs: string[] = [],
): ProviderDeps {
  return {
    baseUrl,
    credentials,
    beforeRequest: () => Promise.resolve(),
    onTokens: () => Promise.resolve(),
    countCall: () => {},
    log: (msg, extra) => logs.push(`${msg} ${JSON.stringify(extra ?? {})}`),
  };
}

/**
 * Walks every object with the seeded mappings and checks the mapped records. `neverSet`:
 * columns the sandbox leaves empty.
 */
async function checkMappedWalk(
  provider: ProviderName,
  d: ProviderDeps,
  opts: { neverSet?: Partial<Record<ObjectType, string[]>> } = {},
) {
  const rows = seededMappings(provider);
  const mapper = createMapper(provider, rows, { defaultRegion: "US" });
  const adapter = await createAdapter(provider, d, mapper.fields());
  const out = {} as Record<ObjectType, Record<string, unknown>[]>;
  for (const object of OBJECT_TYPES) {
    const { seen } = await walkChanges(adapter, object);
    assert.ok(seen.length > 0, `${provider} ${object}: records`);
    const mapped = seen.map((r) => mapper.inbound(object, r));
    const records = mapped.map((m) => m.record);
    out[object] = records;

    const columns = new Set(
      rows.filter((r) => r.object === object && r.direction !== "outbound").map((r) =>
        r.column_name
      ),
    );
    const allowed = new Set([
      ...columns,
      ...BOOKKEEPING,
      ...(object === "contacts" ? ["kind"] : []),
    ]);
    for (const r of records) {
      assert.equal(typeof r.remote_id, "string");
      assert.ok(!Number.isNaN(Date.parse(r.remote_updated_at as string)));
      for (const k of Object.keys(r)) assert.ok(allowed.has(k), `${provider} ${object}: ${k}`);
      if (r.phone !== null && r.phone !== undefined) {
        assert.match(r.phone as string, /^\+[1-9][0-9]{6,14}$/);
      }
    }
    for (const c of columns) {
      if (opts.neverSet?.[object]?.includes(c)) continue;
      assert.ok(
        records.some((r) => r[c] !== null && r[c] !== undefined),
        `${provider} ${object}.${c} is set on some record`,
      );
    }
    const unexpected = mapped.flatMap((m) => m.warnings)
      .map((w) => `${w.column}: ${w.message}`).filter((w) => !EXPECTED_WARNING.test(w));
    assert.deepEqual(unexpected, [], `${provider} ${object}`);
  }

  const statuses = new Set(out.deals.map((r) => r.status));
  assert.ok(
    statuses.has("open") && (statuses.has("won") || statuses.has("lost")),
    [...statuses].join(),
  );
  for (const r of out.deals) {
    assert.ok(["open", "won", "lost", null].includes(r.status as string));
    const p = r.probability as number | null;
    assert.ok(p === null || (p >= 0 && p <= 1), `probability ${p}`);
  }
  return out;
}

Deno.test({
  name: "mapped walk: hubspot (associations become company and contact ids)",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const sb = await startHubSpot({
      port: 0,
      seed: 21,
      records: 150,
      rateLimit: { searchPerSecond: 50 },
    });
    try {
      const out = await checkMappedWalk(
        "hubspot",
        deps(sb.url, { accessToken: sb.credentials.HUBSPOT_ACCESS_TOKEN }),
        { neverSet: { contacts: ["last_activity_at"] } },
      );
      assert.ok(out.contacts.every((r) => r.kind === "contact"));
      assert.ok(out.owners.every((r) => typeof r.active === "boolean"));
    } finally {
      await sb.close();
    }
  },
});

Deno.test({
  name: "mapped walk: salesforce (Contact and Lead by kind, Account.Name through the relationship)",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const sb = await startSalesforce({ port: 0, seed: 21, records: 150 });
    try {
      const logs: string[] = [];
      const out = await checkMappedWalk(
        "salesforce",
        deps(sb.url, {
          accessToken: sb.credentials.SALESFORCE_ACCESS_TOKEN,
          instanceUrl: sb.url,
        }, logs),
        // The sandbox org has no Lead.LastActivityDate and no multi-currency CurrencyIsoCode:
        // the adapter leaves them out of the SOQL (one describe per sObject) and says so.
        { neverSet: { contacts: ["description", "last_activity_at"], deals: ["currency"] } },
      );
      const kinds = new Set(out.contacts.map((r) => r.kind));
      assert.deepEqual(kinds, new Set(["contact", "lead"]));
      assert.deepEqual(logs.filter((l) => l.includes("not in this org")), [
        `Lead fields not in this org, not read {"missing":["LastActivityDate"]}`,
        `Opportunity fields not in this org, not read {"missing":["CurrencyIsoCode"]}`,
      ]);
      assert.ok(out.deals.every((r) => !("currency" in r)), "an unread field is left alone");
    } finally {
      await sb.close();
    }
  },
});

Deno.test({
  name: "mapped walk: pipedrive (labelled lists, nested address, users by name split)",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const sb = await startPipedrive({ port: 0, seed: 21, records: 150 });
    try {
      const out = await checkMappedWalk(
        "pipedrive",
        deps(sb.url, { apiToken: sb.credentials.PIPEDRIVE_API_TOKEN }),
      );
      assert.ok(out.owners.some((r) => r.active === false), "inactive users stay, inactive");
      assert.ok(out.owners.every((r) => !("deleted" in r)));
    } finally {
      await sb.close();
    }
  },
});
