// "The function killed after the 2xx and before processing loses nothing": a signed delivery is
// acknowledged, the crm-webhook process is killed (SIGKILL) the moment the answer is in, with no
// worker allowed to run (max_workers 0) and the inbox job its background enqueue may have queued
// cancelled; the events are stored, pending, and the row is unchanged. The safety net (the
// crm-inbox cron command, run by hand) then applies them.
import assert from "node:assert/strict";
import {
  admin,
  gatewayStats,
  triggerSync,
  until,
  withConnection,
  withSettings,
} from "./_harness.ts";
import { deliverHubSpot, receiveHubSpotWebhooks } from "./_webhook_sender.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test({
  name: "e2e hubspot: crm-webhook killed right after its 2xx loses nothing",
  ...opts,
  fn: async () => {
    await withConnection("hubspot", { seed: 83, records: 5 }, async ({ sb, sql, conn }) => {
      await triggerSync(sql, "all", conn);
      const [{ remote_id: id }] = await sql`select remote_id from crm.contacts
                                             where connection_id = ${conn} and kind = 'contact'
                                             order by remote_id limit 1`;
      const receiver = await receiveHubSpotWebhooks(sql, conn);
      await admin(sb.url, "PATCH", `/records/contacts/${id}`, {
        properties: { firstname: "Survived The Kill" },
      });
      await withSettings(sql, { max_workers: 0 }, async () => {
        const res = await deliverHubSpot(receiver, [id]);
        const answer = await res.json();
        assert.equal(res.status, 200, JSON.stringify(answer));
        assert.equal(answer.inserted, 1);
        // Killed now: whatever of its background work (the inbox job's enqueue) had not run
        // never will. Every live process of the function goes, so none can finish it.
        const procs = (await gatewayStats())["crm-webhook"].processes
          .filter((p) => p.state !== "exited");
        assert.ok(procs.length > 0, "a crm-webhook process served the delivery");
        for (const p of procs) Deno.kill(p.pid, "SIGKILL");
        // And what it did enqueue is taken back: the worst case is no job at all.
        await sql`select crm.cancel_jobs(${conn}::uuid, 'inbox')`;
        const stored = await sql`select state from crm.webhook_events
                                 where connection_id = ${conn} and remote_id = ${id}`;
        assert.deepEqual(stored.map((r) => r.state), ["pending"], "stored, not processed");
        const [row] = await sql`select first_name from crm.contacts
                                where connection_id = ${conn} and remote_id = ${id}`;
        assert.notEqual(row.first_name, "Survived The Kill", "nothing applied yet");
        await until(
          "the gateway saw the kill",
          async () =>
            (await gatewayStats())["crm-webhook"].processes.every((p) =>
              !procs.some((k) => k.pid === p.pid) || p.state === "exited"
            ),
          10_000,
        );
      });
      // The safety net: the crm-inbox cron job's command, run by hand.
      const [{ n }] = await sql`select crm.enqueue_inbox(p_trigger => 'cron') as n`;
      assert.ok(n >= 1, "the cron safety net queued the connection's inbox job");
      await until("the stored event is applied", async () => {
        const [row] = await sql`select first_name from crm.contacts
                                where connection_id = ${conn} and remote_id = ${id}`;
        return row.first_name === "Survived The Kill";
      }, 30_000);
      const states = await sql`select state from crm.webhook_events
                               where connection_id = ${conn}`;
      assert.deepEqual(states.map((r) => r.state), ["done"]);
      // The function answers again (a new process).
      const again = await deliverHubSpot(receiver, [id]);
      assert.equal(again.status, 200, await again.text());
    });
  },
});
