// Which "gone" answers of a push wait for a merge event instead of being settled as a CRM delete
// (sync/gone_merges.ts).
import assert from "node:assert/strict";
import {
  FIRST_GONE_WAIT_S,
  holdGoneMerges,
  MERGE_WAIT_S,
  type PendingMerges,
} from "../../supabase/functions/_shared/sync/gone_merges.ts";
import type { Failure, OutboxEntry } from "../../supabase/functions/_shared/sync/outbox.ts";

const entry = (id: number, o: Partial<OutboxEntry>): OutboxEntry => ({
  id,
  object: "contacts",
  recordId: crypto.randomUUID(),
  remoteId: String(100 + id),
  op: "update",
  changedColumns: ["first_name"],
  attempts: 1,
  lease: crypto.randomUUID(),
  uncertain: false,
  record: null,
  ...o,
});
const fail = (id: number, action: Failure["action"] = "gone"): Failure => ({
  id,
  lease: "l",
  action,
  error: "404 from Pipedrive",
});

Deno.test("a gone update waits while its record's merge event is in the inbox", async () => {
  const asked: string[][] = [];
  const pending: PendingMerges = (_c, _o, ids) => {
    asked.push(ids);
    return Promise.resolve(new Set(["101"]));
  };
  const entries = new Map([
    [1, entry(1, { attempts: 4 })],
    [2, entry(2, { attempts: 4 })],
    [3, entry(3, { op: "delete" })],
    [4, entry(4, {})],
  ]);
  const failed = [fail(1), fail(2), fail(3), fail(4, "fix_data")];
  const held = await holdGoneMerges(
    pending,
    { id: "c", provider: "hubspot" },
    "contacts",
    failed,
    entries,
  );
  assert.equal(held, 1);
  assert.deepEqual(asked, [["101", "102"]], "only gone updates are looked up");
  assert.equal(failed[0].action, "retry");
  assert.equal(failed[0].retry_after_seconds, MERGE_WAIT_S);
  assert.match(failed[0].error, /merge event waits in the inbox/);
  assert.deepEqual(failed.slice(1).map((f) => f.action), ["gone", "gone", "fix_data"]);
});

Deno.test("Pipedrive: an entry's first gone waits for a merge event on its way", async () => {
  const none: PendingMerges = () => Promise.resolve(new Set());
  const entries = new Map([[1, entry(1, { attempts: 1 })], [2, entry(2, { attempts: 2 })]]);
  const failed = [fail(1), fail(2)];
  const conn = { id: "c", provider: "pipedrive" as const };
  assert.equal(await holdGoneMerges(none, conn, "contacts", failed, entries), 1);
  assert.equal(failed[0].action, "retry");
  assert.equal(failed[0].retry_after_seconds, FIRST_GONE_WAIT_S);
  assert.equal(failed[1].action, "gone", "the second gone is a deletion");
  // Other providers resolve merged ids themselves (HubSpot) or report merges in the record
  // (Salesforce MasterRecordId): their first gone is settled at once.
  const sf = [fail(1)];
  await holdGoneMerges(none, { id: "c", provider: "salesforce" }, "contacts", sf, entries);
  assert.equal(sf[0].action, "gone");
});
