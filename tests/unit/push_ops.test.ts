// Claimed outbox entries → provider writes: what is sent, what is settled without a call, and
// what is held.
import assert from "node:assert/strict";
import { createOutboundMapper } from "../../supabase/functions/_shared/mapping/outbound.ts";
import type { OutboxEntry } from "../../supabase/functions/_shared/sync/outbox.ts";
import { HELD_CREATE_RETRY_S, planPush } from "../../supabase/functions/_shared/sync/push_ops.ts";
import { seededMappings } from "../providers/_seeded_mappings.ts";

const mapper = createOutboundMapper("hubspot", seededMappings("hubspot"));

function entry(id: number, o: Partial<OutboxEntry>): OutboxEntry {
  return {
    id,
    object: "contacts",
    recordId: `00000000-0000-4000-8000-00000000000${id}`,
    remoteId: "501",
    op: "update",
    changedColumns: ["first_name"],
    attempts: 1,
    lease: `lease-${id}`,
    uncertain: false,
    record: { first_name: "Ada", last_name: "Lovelace", phone_raw: "555" },
    ...o,
  };
}

Deno.test("creates carry the external id; updates only the changed fields; deletes the remote id", () => {
  const b = planPush(
    "contacts",
    [
      entry(1, {
        op: "insert",
        remoteId: null,
        changedColumns: ["first_name", "last_name"],
        uncertain: true,
      }),
      entry(2, {}),
      entry(3, { op: "delete", record: null, remoteId: "777", changedColumns: [] }),
    ],
    mapper,
    () => null,
  );
  assert.deepEqual(b.ops, [
    {
      kind: "create",
      ref: "1",
      remoteType: "contacts",
      externalId: "00000000-0000-4000-8000-000000000001",
      properties: { firstname: "Ada", lastname: "Lovelace" },
      uncertain: true,
    },
    {
      kind: "update",
      ref: "2",
      remoteType: "contacts",
      remoteId: "501",
      properties: { firstname: "Ada" },
    },
    { kind: "delete", ref: "3", remoteType: "contacts", remoteId: "777" },
  ]);
  assert.deepEqual([...b.byRef.keys()], ["1", "2", "3"]);
  assert.deepEqual(b.completed, []);
  assert.deepEqual(b.failed, []);
});

Deno.test("settled without a call: nothing to send, never in the CRM, already gone", () => {
  const b = planPush(
    "contacts",
    [
      entry(1, { changedColumns: ["phone_raw"] }),
      entry(2, { op: "delete", remoteId: null, record: null, changedColumns: [] }),
      entry(3, { record: null }),
    ],
    mapper,
    () => null,
  );
  assert.deepEqual(b.ops, []);
  assert.deepEqual(b.completed.map((c) => c.id), [1, 2, 3]);
  assert.deepEqual(b.skipped, [{
    record_id: "00000000-0000-4000-8000-000000000001",
    field: "phone_raw",
    reason: "no outbound mapping",
  }]);
});

Deno.test("creates of a type without its external-id property are held, other ops go on", () => {
  const b = planPush(
    "contacts",
    [
      entry(1, { op: "insert", remoteId: null }),
      entry(2, {}),
    ],
    mapper,
    (type) => type === "contacts" ? "no permission" : null,
  );
  assert.deepEqual(b.ops.map((o) => o.kind), ["update"]);
  assert.deepEqual(b.failed, [{
    id: 1,
    lease: "lease-1",
    action: "retry",
    error: "create held: no permission",
    retry_after_seconds: HELD_CREATE_RETRY_S,
  }]);
});

Deno.test("an object nothing maps outbound is a dead letter, not a silent drop", () => {
  const none = createOutboundMapper("hubspot", []);
  const b = planPush("contacts", [entry(1, {})], none, () => null);
  assert.equal(b.ops.length, 0);
  assert.equal(b.failed[0].action, "dead_letter");
  assert.match(b.failed[0].error, /no outbound field mappings for contacts/);
});
