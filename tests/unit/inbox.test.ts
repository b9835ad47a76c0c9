// The inbox drain's pure parts: coalescing a batch of webhook events into the ids to re-read
// per object (merges add the ids they name; payload values are never taken as the record), and
// the job outcome of a drain's summary.
import assert from "node:assert/strict";
import { inboxOutcome } from "../../supabase/functions/_shared/jobs/inbox_job.ts";
import {
  coalesceEvents,
  type InboxEvent,
  type InboxSummary,
  mergedIds,
  survivorOf,
} from "../../supabase/functions/_shared/sync/inbox.ts";

let next = 1;
const ev = (o: Partial<InboxEvent>): InboxEvent => ({
  id: next++,
  lease: crypto.randomUUID(),
  object: "contacts",
  remote_id: "1",
  event_type: "upsert",
  payload: {},
  ...o,
});

Deno.test("events of one record are one id to re-read, whatever their number or order", () => {
  const events = [
    ev({ remote_id: "7" }),
    ev({ remote_id: "8" }),
    ev({ remote_id: "7", event_type: "delete" }),
    ev({ remote_id: "7" }),
    ev({ object: "deals", remote_id: "7" }),
  ];
  const { groups, ignored } = coalesceEvents("hubspot", events);
  assert.deepEqual(ignored, []);
  assert.deepEqual(groups.get("contacts")!.ids, ["7", "8"]);
  assert.equal(groups.get("contacts")!.events.length, 4, "every event is completed with its group");
  assert.deepEqual(groups.get("deals")!.ids, ["7"]);
});

Deno.test("merge events add the ids they name (HubSpot mergedObjectIds, Pipedrive merged_to_id)", () => {
  const hs = coalesceEvents("hubspot", [
    ev({
      remote_id: "10",
      event_type: "merge",
      payload: { mergedObjectIds: [11, 12], primaryObjectId: 10, newObjectId: 13 },
    }),
  ]);
  assert.deepEqual(hs.groups.get("contacts")!.ids, ["10", "11", "12", "13"]);
  const pd = coalesceEvents("pipedrive", [
    ev({ remote_id: "5", event_type: "merge", payload: { data: { id: 5, merged_to_id: 9 } } }),
  ]);
  assert.deepEqual(pd.groups.get("contacts")!.ids, ["5", "9"]);
  // Only merges name other records: an update's payload ids are not read.
  const up = coalesceEvents("hubspot", [ev({ remote_id: "3", payload: { mergedObjectIds: [4] } })]);
  assert.deepEqual(up.groups.get("contacts")!.ids, ["3"]);
  assert.deepEqual(mergedIds(null), []);
  assert.deepEqual(mergedIds({ mergedObjectIds: [{ x: 1 }, 1.5, 2] }), ["2"]);
});

Deno.test("a Pipedrive v2 merge: the loser's delete event names its survivor in meta", () => {
  // As Pipedrive sends it (and the receiver stores it): data null, the whole object in
  // previous, meta.merged_to_id a string.
  const payload = {
    data: null,
    previous: { id: 5, first_name: "Lo", is_deleted: false },
    meta: { action: "delete", entity: "person", entity_id: "5", merged_to_id: "9" },
  };
  const pd = coalesceEvents("pipedrive", [
    ev({ remote_id: "5", event_type: "merge", payload }),
    ev({ remote_id: "9" }),
  ]);
  const g = pd.groups.get("contacts")!;
  assert.deepEqual(g.ids, ["5", "9"], "the survivor is read with the loser");
  assert.deepEqual([...g.mergedInto], [["5", "9"]], "the loser is a merge tombstone, not a delete");
  assert.equal(survivorOf(payload), "9");
  // A plain delete names no survivor; a merge naming itself or a malformed id is no merge.
  const del = coalesceEvents("pipedrive", [
    ev({ remote_id: "6", event_type: "delete", payload: { meta: { merged_to_id: "9" } } }),
    ev({ remote_id: "7", event_type: "merge", payload: { meta: { merged_to_id: "7" } } }),
    ev({ remote_id: "8", event_type: "merge", payload: { meta: { merged_to_id: "x" } } }),
  ]);
  assert.deepEqual([...del.groups.get("contacts")!.mergedInto], []);
  assert.equal(survivorOf({ meta: { merged_to_id: null } }), null);
});

Deno.test("events without an object or a well-formed id are ignored, with the reason", () => {
  const { groups, ignored } = coalesceEvents("salesforce", [
    ev({ object: null }),
    ev({ remote_id: null }),
    ev({ remote_id: "003' OR Id != '" }),
    ev({ remote_id: "003000000000001AAA" }),
    ev({ event_type: "merge", remote_id: "003000000000002", payload: { merged_to_id: "x y" } }),
  ]);
  assert.equal(ignored.length, 3);
  assert.match(ignored[0].note, /no object/);
  assert.match(ignored[1].note, /no valid record id/);
  assert.match(ignored[2].note, /no valid record id/);
  assert.deepEqual(groups.get("contacts")!.ids, ["003000000000001AAA", "003000000000002"]);
  const hs = coalesceEvents("hubspot", [ev({ remote_id: "12a" }), ev({ object: "tickets" })]);
  assert.equal(hs.ignored.length, 2);
  assert.equal(hs.groups.size, 0);
});

const summary = (s: Partial<InboxSummary>): InboxSummary => ({
  status: "success",
  more: false,
  done: 0,
  ignored: 0,
  retrying: 0,
  dead: 0,
  runs: [],
  ...s,
});

Deno.test("a drain's summary becomes the job's outcome", () => {
  assert.equal(inboxOutcome(summary({})).outcome, "done");
  assert.equal(inboxOutcome(summary({ more: true })).outcome, "more");
  const paused = inboxOutcome(
    summary({ status: "failed", error: "429", paused_until: "2030-01-01T00:00:00Z" }),
  );
  assert.equal(paused.outcome, "defer");
  assert.equal(
    inboxOutcome(summary({ status: "failed", error: "401", revoked: true })).outcome,
    "dead",
  );
  // Other failures: the events carry their own backoff; the job itself is done.
  const failed = inboxOutcome(summary({ status: "failed", error: "500", retrying: 3 }));
  assert.equal(failed.outcome, "done");
  assert.equal((failed as { details: Record<string, unknown> }).details.error, "500");
});
