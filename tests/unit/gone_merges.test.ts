// Which "gone" answers of a push wait for a merge instead of being settled as a CRM delete
// (sync/gone_merges.ts).
import assert from "node:assert/strict";
import {
  holdGoneMerges,
  MERGE_WAIT_S,
  type MergeState,
  type MergeStore,
} from "../../supabase/functions/_shared/sync/gone_merges.ts";
import type { Failure, OutboxEntry } from "../../supabase/functions/_shared/sync/outbox.ts";

const entry = (id: number, o: Partial<OutboxEntry> = {}): OutboxEntry => ({
  id,
  object: "contacts",
  recordId: `rec-${id}`,
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
const store = (s: Partial<MergeState>, asked: unknown[] = []): MergeStore => ({
  state: (_c, _o, gone) => {
    asked.push(gone);
    return Promise.resolve({ waiting: new Set(), mergedAway: new Set(), ...s });
  },
  retarget: () => Promise.resolve(0),
});
const byId = (...es: OutboxEntry[]) => new Map(es.map((e) => [e.id, e]));

Deno.test("a gone update waits while its merge is known: in the inbox, or already applied", async () => {
  const asked: unknown[] = [];
  const s = store({ waiting: new Set(["101"]), mergedAway: new Set(["rec-2"]) }, asked);
  const entries = byId(
    entry(1, { attempts: 4 }),
    entry(2, { attempts: 4 }),
    entry(3, { attempts: 4 }),
    entry(4, { op: "delete" }),
    entry(5),
  );
  const failed = [fail(1), fail(2), fail(3), fail(4), fail(5, "fix_data")];
  const moved = await holdGoneMerges(
    s,
    { id: "c" },
    "contacts",
    failed,
    entries,
  );
  assert.deepEqual(moved, ["rec-1", "rec-2"], "re-targeted once the failures are recorded");
  assert.deepEqual(asked, [[
    { recordId: "rec-1", remoteId: "101" },
    { recordId: "rec-2", remoteId: "102" },
    { recordId: "rec-3", remoteId: "103" },
  ]], "only gone updates are looked up");
  assert.deepEqual(failed.map((f) => f.action), ["hold", "hold", "gone", "gone", "fix_data"]);
  assert.equal(failed[0].retry_after_seconds, MERGE_WAIT_S);
  assert.match(failed[0].error, /merge event waits in the inbox/);
  assert.match(failed[1].error, /re-targeted to the survivor/);
});

Deno.test("a gone update with no merge known is a deletion, even its first", async () => {
  const entries = byId(entry(1, { attempts: 1 }));
  const failed = [fail(1)];
  assert.deepEqual(await holdGoneMerges(store({}), { id: "c" }, "contacts", failed, entries), []);
  assert.equal(failed[0].action, "gone");
});
