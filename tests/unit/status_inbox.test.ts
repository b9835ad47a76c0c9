import assert from "node:assert/strict";
import { inboxLine } from "../../shared/local/status_view.ts";

Deno.test("status view: the webhook inbox backlog line", () => {
  assert.equal(
    inboxLine({
      inbox_pending: "1200",
      inbox_processing: 3,
      inbox_dead: "0",
      inbox_age: "00:02:05.123456",
    }),
    "    webhook inbox: 1,200 pending · 3 processing · 0 dead · oldest pending 00:02:05",
  );
  assert.equal(
    inboxLine({ inbox_pending: 0, inbox_processing: 0, inbox_dead: 2, inbox_age: null }),
    "    webhook inbox: 0 pending · 0 processing · 2 dead · oldest pending -",
  );
});
