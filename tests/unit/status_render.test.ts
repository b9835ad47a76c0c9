// The status view's drawing (shared/local/status_render.ts): 80×24 with three connections and
// the "try it" lines, only current errors, failed runs shown as failed, the next cron runs; a
// pipe gets one line per changed fact.
import assert from "node:assert/strict";
import type { StatusModel, StreamStatus } from "../../shared/local/status_data.ts";
import { errorMessage, nextCronRun } from "../../shared/local/status_data.ts";
import { changedLines, factLines, renderScreen } from "../../shared/local/status_render.ts";
import { tryItLines } from "../../shared/local/try_it.ts";

const AT = new Date("2026-12-05T10:00:30Z");
const OBJECTS = ["contacts", "companies", "deals", "owners"];

function model(edit: (m: StatusModel) => void = () => {}): StatusModel {
  const conns = [
    ["c1", "HubSpot sandbox", "hubspot"],
    ["c2", "Pipedrive sandbox", "pipedrive"],
    ["c3", "Salesforce sandbox", "salesforce"],
  ];
  const streams: StreamStatus[] = conns.flatMap(([id, name, provider]) =>
    OBJECTS.map((object) => ({
      connectionId: id,
      connection: name,
      provider,
      object,
      enabled: true,
      records: 2000,
      run: { status: "success", at: new Date("2026-12-05T10:00:01Z") },
      outboxPending: 0,
      dead: 0,
      errors: [],
    }))
  );
  const m: StatusModel = {
    at: AT,
    engine: {
      liveWorkers: 1,
      maxWorkers: 8,
      due: 0,
      running: 1,
      waiting: 12,
      dead: 0,
      oldestDueS: null,
    },
    connections: conns.map(([id, name, provider]) => ({
      id,
      name,
      provider,
      status: "active",
      inboxPending: 0,
      inboxOldestS: null,
      webhookP50S: 0.07,
      outboundErrors: [],
    })),
    streams,
    cron: [
      { name: "crm-inbox", schedule: "* * * * *", next: nextCronRun("* * * * *", AT), last: null },
      {
        name: "crm-outbound",
        schedule: "*/10 * * * *",
        next: nextCronRun("*/10 * * * *", AT),
        last: { status: "succeeded", at: AT },
      },
    ],
    net: { queued: 0, lastHour: 120, failed: 0 },
  };
  edit(m);
  return m;
}

const services = { emulators: true, gateway: true, pg_net_worker: true };
const notes = ["backfill done: 24,000 records processed in 41.0 s, 52 request(s)"];

Deno.test("status view: three connections, the notes and the try-it lines fit 80×24", () => {
  const lines = renderScreen(model(), {
    width: 80,
    height: 23,
    notes,
    services,
    tryIt: tryItLines(["hubspot", "pipedrive"]),
  });
  assert.ok(lines.length <= 23, `${lines.length} lines`);
  for (const l of lines) assert.ok(l.length <= 80, `too wide: ${l}`);
  const text = lines.join("\n");
  assert.match(text, /connection +object +rows +inbound +out +dead +webhooks +errors/);
  assert.equal(lines.filter((l) => / (contacts|companies|deals|owners) /.test(l)).length, 12);
  assert.match(text, /npm run try -- crm /);
  assert.match(text, /npm run try -- show /);
  assert.match(text, /cron +next inbox 10:01 · outbound 10:10/);
  assert.match(text, /workers 1\/8 · 0 due · 1 running · 12 waiting · 0 dead/);
  assert.match(
    text,
    /^services sandboxes ✓ gateway ✓ pg_net ✓ · calls 0 queued, 120\/h, 0 failed$/m,
  );
});

Deno.test("status view: a failed run shows FAIL and its error; old errors are not shown", () => {
  const m = model((m) => {
    m.streams[2].run = { status: "failed", at: AT };
    m.streams[2].errors = ["HTTP 500 from the CRM"];
    m.streams[5].dead = 3;
    m.connections[2].inboxPending = 4;
    m.connections[2].inboxOldestS = 2.5;
    m.connections[1].outboundErrors = ["HTTP 403 on write"];
    m.cron[0].last = { status: "failed", at: AT };
  });
  const lines = renderScreen(m, { services: { ...services, gateway: false } });
  const text = lines.join("\n");
  // The row shows as much of the error as fits, the whole one is listed under the table.
  assert.match(text, /\n +deals +2,000 +FAIL 10:00 +0 +0 +HTTP 500 from the …\n/);
  assert.match(text, /\n {2}hubspot deals: HTTP 500 from the CRM\n/);
  assert.match(
    text,
    /\npipedrive +contacts +2,000 +ok 10:00 +0 +0 +p50 0\.1s push: HTTP 403 on …\n/,
  );
  assert.match(text, /\n +companies +2,000 +ok 10:00 +0 +3 +-\n/);
  assert.match(text, /\n {2}pipedrive contacts: push: HTTP 403 on write$/);
  assert.ok(lines.some((l) => /^salesforce +contacts .* 4·2\.5s /.test(l)));
  assert.equal(lines.filter((l) => / -$/.test(l)).length, 10, "the other rows show no error");
  assert.ok(
    lines.some((l) =>
      /^services sandboxes ✓ gateway DOWN pg_net ✓ · calls 0 queued, 120\/h, 0 failed$/.test(l)
    ),
  );
  assert.ok(lines.some((l) => /FAILED last: crm-inbox/.test(l)));
});

Deno.test("status view: a long table is cut with a pointer to crm.sync_status()", () => {
  const m = model((m) => {
    m.streams = [...m.streams, ...m.streams, ...m.streams];
  });
  const lines = renderScreen(m, { height: 20, notes });
  assert.equal(lines.length, 20);
  assert.match(lines.at(-1)!, /… \d+ more: select \* from crm\.sync_status\(\)/);
});

Deno.test("status view through a pipe: one line per changed fact, stamped", () => {
  const a = factLines(model(), { services });
  assert.equal(changedLines(a, a, AT).length, 0, "nothing changed, nothing printed");
  const b = factLines(model((m) => (m.streams[0].records = 2001)), { services });
  assert.deepEqual(changedLines(a, b, AT), [
    "10:00:30 hubspot contacts: 2,001 rows · inbound ok 10:00 · out 0 · dead 0 · errors -",
  ]);
  const c = factLines(model((m) => (m.net.failed = 2)), { services });
  assert.deepEqual(changedLines(a, c, AT), [
    "10:00:30 pg_net: 2 failed call(s) in the last hour",
  ]);
  const first = changedLines(new Map(), a, AT);
  assert.ok(first.length > 12 && first.every((l) => l.startsWith("10:00:30 ")));
  assert.ok(first.every((l) => !l.includes("\x1b")), "no escape sequences in a pipe");
});

Deno.test("status data: next cron runs in UTC, error messages out of JSON", () => {
  const at = new Date("2026-12-05T23:59:30Z");
  assert.equal(nextCronRun("0 6 * * *", at)?.toISOString(), "2026-12-06T06:00:00.000Z");
  assert.equal(nextCronRun("*/5 * * * *", at)?.toISOString(), "2026-12-06T00:00:00.000Z");
  assert.equal(nextCronRun("30 seconds", at), null);
  assert.equal(errorMessage(JSON.stringify(JSON.stringify({ message: "boom" }))), "boom");
  assert.equal(errorMessage("plain"), "plain");
});

Deno.test("try it: the commands name a provider only when HubSpot is not connected", () => {
  assert.match(tryItLines(["hubspot"]).join("\n"), /npm run try -- crm {2}/);
  assert.match(tryItLines(["salesforce"])[0], /npm run try -- crm --provider salesforce/);
  assert.deepEqual(tryItLines([]), []);
});
