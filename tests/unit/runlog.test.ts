// Pages prepared for crm.save_inbound_page carry the adapter's errors too: their reasons can
// quote CRM text, and a NUL in one would make Postgres refuse the whole page.
import assert from "node:assert/strict";
import { preparePage } from "../../supabase/functions/_shared/sync/runlog.ts";

Deno.test("preparePage cleans the adapter's error reasons and ids", () => {
  const page = preparePage({
    records: [],
    errors: [
      { remoteId: "a\u0000b", reason: 'Invalid option: received "x\u0000y\ud800"' },
      { remoteId: null, reason: "no id" },
    ],
    checkpoint: null,
    watermark: null,
    done: true,
  }, []);
  assert.deepEqual(page.errors, [
    { remoteId: "ab", reason: 'Invalid option: received "xy\ufffd"' },
    { remoteId: null, reason: "no id" },
  ]);
  // What save_inbound_page is sent: JSON Postgres accepts.
  assert.ok(!JSON.stringify(page.errors).includes("\\u0000"));
});
