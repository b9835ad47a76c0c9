// A Salesforce undelete within the second of the app's delete (issue 15, chaos Salesforce seed 3
// app_wins; 20261207010100_crm_restore_same_second.sql). The sandbox's clock is frozen, so the
// CRM user's edit, the engine's delete and the undelete share one SystemModstamp second, as they
// can in a real org: the undeleted record reads back at the version its row already holds. The
// restore brings it back (docs/architecture.md §6): a soft-deleted row with its id, a
// hard-deleted one as a new row.
import assert from "node:assert/strict";
import { startSalesforce } from "../../shared/emulators/salesforce/mod.ts";
import { admin, cleanup, connect, db, type Sandbox } from "./_harness.ts";
import { asApp, awaitOutbox, pullNow, pushNow, stored } from "./_outbound.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test({
  name: "salesforce: an undelete in the second of the app's delete restores the record",
  ...opts,
  fn: async () => {
    const frozen = Date.now();
    const sf = await startSalesforce({
      port: 0,
      seed: 57,
      records: 6,
      log: () => {},
      now: () => frozen,
    });
    const sb: Sandbox = {
      provider: "salesforce",
      url: sf.url,
      credentials: sf.credentials,
      close: () => sf.close(),
    };
    const sql = db();
    const conn = await connect(sql, sb);
    try {
      await pullNow(conn, ["contacts"], "full");
      const rows = await sql<{ id: string; remote_id: string }[]>`
        select id, remote_id from crm.contacts
        where connection_id = ${conn} and kind = 'contact' and deleted_at is null
        order by remote_id limit 2`;
      assert.equal(rows.length, 2, "two Contacts in the mirror");
      const [soft, hard] = rows;

      // A CRM user's edit, read by the engine: the rows hold the frozen second's version.
      for (const r of rows) {
        await admin(sb.url, "PATCH", `/records/Contact/${r.remote_id}`, { Title: "Undeleted" });
      }
      await pullNow(conn);
      const second = new Date(Math.floor(frozen / 1000) * 1000).toISOString();
      const [{ n }] = await sql`select count(*)::int as n from crm.contacts
                                where connection_id = ${conn} and job_title = 'Undeleted'
                                  and remote_updated_at = ${second}::timestamptz`;
      assert.equal(n, 2, "both rows at the frozen second's version");

      // The app soft-deletes one and hard-deletes the other; the deletes are pushed and read back.
      await asApp(
        sql,
        conn,
        (tx) => tx`update crm.contacts set deleted_at = now() where id = ${soft.id}`,
      );
      await asApp(sql, conn, (tx) => tx`delete from crm.contacts where id = ${hard.id}`);
      // A worker woken by the outbox may hold the entries already: wait for the drain.
      await pushNow(conn);
      await awaitOutbox(sql, conn);
      for (const r of rows) {
        assert.equal((await stored(sb.url, "salesforce", "contacts", r.remote_id)).deleted, true);
      }
      await pullNow(conn);

      // A CRM user undeletes both, still within the second.
      for (const r of rows) {
        await admin(sb.url, "POST", `/records/Contact/${r.remote_id}/undelete`);
        const back = await stored(sb.url, "salesforce", "contacts", r.remote_id);
        assert.equal(back.deleted, false);
        assert.equal(new Date(String(back.props.SystemModstamp)).toISOString(), second);
      }
      await pullNow(conn);

      const after = await sql<
        { id: string; remote_id: string; live: boolean; job_title: string }[]
      >`
        select id, remote_id, deleted_at is null as live, job_title from crm.contacts
        where connection_id = ${conn} and remote_id in ${sql(rows.map((r) => r.remote_id))}
        order by remote_id`;
      assert.deepEqual(
        after.map((r) => [r.remote_id, r.live, r.job_title]),
        rows.map((r) => [r.remote_id, true, "Undeleted"]),
        `both records live again in the mirror: ${JSON.stringify(after)}`,
      );
      assert.equal(
        after.find((r) => r.remote_id === soft.remote_id)!.id,
        soft.id,
        "soft: same row",
      );
      assert.notEqual(
        after.find((r) => r.remote_id === hard.remote_id)!.id,
        hard.id,
        "hard: a new row",
      );
      const [{ queued }] = await sql`select count(*)::int as queued from crm.outbox
                                     where connection_id = ${conn} and state <> 'dead'`;
      assert.equal(queued, 0, "nothing pushed by the restores");
    } finally {
      await cleanup(sql, conn);
      await sql.end();
      await sb.close();
    }
  },
});
