// crm.claim_outbox re-targets a merge loser's stranded entry (its push died after the merge was
// applied) to the survivor before it claims (20261208010100_crm_retarget_stranded_merges.sql),
// locking rows first. It must not stall behind an app transaction that holds the loser's row:
// the sweep gives up on that group after its lock_timeout, the claim puts the entry back
// (pending, not dropped, not pushed), and a later claim re-targets it. Two real sessions
// against the shared stack database, a connection of its own.
import assert from "node:assert/strict";
import { twoSessions } from "../_support/db.ts";

Deno.test("claim_outbox: a stranded merge entry whose row the app holds is put back, then re-targeted", async () => {
  await twoSessions("hubspot", { "conflict_policy": "app_wins" }, async (a, b, connectionId) => {
    await a.begin(async (tx) => {
      await tx`select set_config('crm.engine', 'on', true)`;
      await tx`
        insert into crm.contacts (connection_id, remote_id, remote_updated_at, first_name, last_name)
        values (${connectionId}::uuid, 'sm-l', '2026-01-01T00:00:00Z', 'LoserF', 'L'),
               (${connectionId}::uuid, 'sm-s', '2026-01-01T00:00:00Z', 'SurvF', 'S')`;
    });
    // The app edits the loser; a worker claims the push and dies (its lease is over).
    await a`update crm.contacts set first_name = 'AppF' where connection_id = ${connectionId}::uuid
            and remote_id = 'sm-l'`;
    const [dead] = await b`select id::text as id from crm.claim_outbox('killed-worker', 10,
                             '-1 minute', ${connectionId}::uuid)`;
    assert.ok(dead, "the edit was claimed");
    // The merge is applied; the claimed entry is left to its (dead) push.
    await b`select * from crm.apply_inbound(${connectionId}::uuid, 'contacts', ${
      b.json([
        {
          remote_id: "sm-s",
          remote_updated_at: "2026-01-02T00:00:00Z",
          first_name: "SurvF",
          last_name: "S",
        },
        {
          remote_id: "sm-l",
          remote_updated_at: "2026-01-02T00:00:00Z",
          deleted: true,
          merged_into: "sm-s",
        },
      ])
    })`;
    const entryOf = async () =>
      (await a`select state from crm.outbox where id = ${dead.id}::bigint`)[0]?.state ?? "gone";

    await a.begin(async (tx) => {
      // An app transaction holds the loser's row while the next claim runs.
      await tx`select 1 from crm.contacts where connection_id = ${connectionId}::uuid
               and remote_id = 'sm-l' for update`;
      const stalled = Symbol("stalled");
      let timer = 0;
      const claimed = await Promise.race([
        b`select record_id::text, pushed from crm.claim_outbox('next-worker', 10, '5 minutes',
                                                              ${connectionId}::uuid)`,
        new Promise<symbol>((r) => timer = setTimeout(() => r(stalled), 10_000)),
      ]).finally(() => clearTimeout(timer));
      assert.notEqual(claimed, stalled, "the claim waited for the app's transaction");
      assert.equal((claimed as unknown[]).length, 0, "nothing is pushed to the loser");
    });
    assert.equal(await entryOf(), "pending", "the entry is put back, not dropped");

    const [next] = await b`
      select t.remote_id, c.pushed from crm.claim_outbox('next-worker', 10, '5 minutes',
                                                         ${connectionId}::uuid) c
      join crm.contacts t on t.id = c.record_id`;
    assert.deepEqual(
      [next?.remote_id, next?.pushed],
      ["sm-s", { first_name: "AppF" }],
      "the edit goes to the survivor",
    );
    assert.equal(await entryOf(), "gone", "the loser's entry is gone");
    const [k] =
      await a`select field, resolution, split_part(reason, ':', 1) as reason from crm.conflicts
                        where connection_id = ${connectionId}::uuid`;
    assert.deepEqual({ ...k }, { field: "first_name", resolution: "local", reason: "merge" });
  });
});
