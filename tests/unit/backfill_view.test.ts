// The backfill view (shared/local/backfill_view.ts): through a pipe, one plain line per stream
// that changed and the final table; on a terminal, cli-progress bars (a count where the CRM
// gives no total), cleared at the end before the final table. The terminal is a fake stream.
import assert from "node:assert/strict";
import type { ProgressRow } from "../../shared/local/backfill_progress.ts";
import { duration, progressRenderer } from "../../shared/local/backfill_view.ts";

const T0 = new Date("2026-12-06T04:00:00Z");
const at = (s: number) => new Date(T0.getTime() + s * 1000);

function row(p: Partial<ProgressRow>): ProgressRow {
  return {
    connection_id: "00000000-0000-4000-8000-000000000001",
    provider: "hubspot",
    connection_name: "HubSpot test",
    object: "contacts",
    state: "running",
    records: 0,
    estimated_total: null,
    rate: null,
    eta_s: null,
    started_at: T0,
    finished_at: null,
    runs: 1,
    last_error: null,
    ...p,
  };
}

const pipedrive = (p: Partial<ProgressRow>) =>
  row({
    connection_id: "00000000-0000-4000-8000-000000000002",
    provider: "pipedrive",
    connection_name: "Pipedrive test",
    object: "deals",
    ...p,
  });

function fakeStream(tty: boolean) {
  const chunks: string[] = [];
  return {
    chunks,
    text: () => chunks.join(""),
    stream: { isTTY: tty, columns: 120, write: (s: string) => chunks.push(s) > 0 },
  };
}

// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]|\x1b[78]/;
/** The plain texts written between two cursor moves or line ends. */
const segments = (s: string) => s.split(new RegExp(`\r?\n|${ANSI.source}`));

Deno.test("through a pipe: one line per change, no ANSI, then the final table", () => {
  const out = fakeStream(false);
  const view = progressRenderer({ stream: out.stream, tty: false });
  view.update([row({ state: "waiting", started_at: null }), pipedrive({ state: "waiting" })]);
  view.update([row({ state: "waiting", started_at: null }), pipedrive({ state: "waiting" })]);
  view.update([
    row({ records: 400, estimated_total: 2000, rate: 200, eta_s: 8 }),
    pipedrive({ records: 100, rate: 50 }),
  ]);
  // Only the rate moved: nothing new to say.
  view.update([
    row({ records: 400, estimated_total: 2000, rate: 190, eta_s: 9 }),
    pipedrive({ records: 100, rate: 45 }),
  ]);
  const done = [
    row({ state: "done", records: 2000, estimated_total: 2000, rate: 500, finished_at: at(4) }),
    pipedrive({ state: "failed", records: 100, rate: 50, finished_at: at(2), last_error: "boom" }),
  ];
  view.update(done);
  view.end(done, "backfill done: 2,100 records processed in 4.0 s, 9 request(s)");
  const text = out.text();
  assert.ok(!ANSI.test(text), "no escape sequences in a log");
  const lines = text.trimEnd().split("\n");
  assert.deepEqual(lines.slice(0, 6), [
    "backfill: HubSpot test contacts waiting 0 records",
    "backfill: Pipedrive test deals waiting 0 records",
    "backfill: HubSpot test contacts running 400/2,000 (20%) 200/s ETA 8 s",
    "backfill: Pipedrive test deals running 100 records 50/s",
    "backfill: HubSpot test contacts done in 4.0 s 2,000/2,000 (100%)",
    "backfill: Pipedrive test deals failed: boom 100 records",
  ]);
  assert.equal(lines[6], "");
  assert.match(lines[7], /connection +object +state +records +estimate +rate +took/);
  assert.match(lines[8], /HubSpot test +contacts +done +2,000 +2,000 +500\/s +4\.0 s$/);
  assert.match(lines[9], /Pipedrive test +deals +failed +100 +- +50\/s +2\.0 s +boom$/);
  assert.equal(lines[10], "backfill done: 2,100 records processed in 4.0 s, 9 request(s)");
  assert.equal(lines.length, 11);
});

Deno.test("on a terminal: cli-progress bars, a count without a total, cleared before the table", () => {
  const out = fakeStream(true);
  const view = progressRenderer({ stream: out.stream, tty: true });
  view.update([
    row({ records: 500, estimated_total: 2000, rate: 250, eta_s: 6 }),
    pipedrive({ records: 300, rate: 100 }),
  ]);
  const drawn = out.text();
  assert.ok(ANSI.test(drawn), "the bars are drawn with cursor moves");
  // 16 cells, a quarter complete.
  assert.ok(drawn.includes("\u2588".repeat(4) + "\u2591".repeat(12)), drawn);
  const lines = segments(drawn);
  assert.ok(
    lines.some((l) => /HubSpot test +contacts .* 25% 500\/2,000 250\/s ETA 6 s *$/.test(l)),
  );
  assert.ok(lines.some((l) => /Pipedrive test +deals +300 records 100\/s *$/.test(l)));
  assert.ok(!/Pipedrive test[^\n]*\u2588/.test(drawn), "no bar without a total");

  view.update([
    row({ records: 2000, estimated_total: 2000, rate: 500, eta_s: 0 }),
    pipedrive({
      records: 900,
      rate: 150,
    }),
  ], "a stream failed (deals: 502); retrying in 2 s");
  const later = out.text().slice(drawn.length);
  assert.ok(later.includes("\u2588".repeat(16)), "the bar fills up");
  // What is written between two cursor moves fits an 80-column terminal.
  for (const l of segments(drawn + later)) {
    assert.ok(l.length <= 80, `wider than 80: ${l}`);
  }
  assert.ok(later.includes("a stream failed (deals: 502); retrying in 2 s"), "notes go above");

  const before = out.text().length;
  view.end([
    row({ state: "done", records: 2000, estimated_total: 2000, rate: 500, finished_at: at(4) }),
    pipedrive({ state: "done", records: 900, rate: 150, finished_at: at(6) }),
  ], "backfill done");
  const end = out.text().slice(before);
  // clearOnComplete: the bars are erased (cursor back up, clear below), then plain text.
  assert.ok(end.includes("\x1b[0J"), JSON.stringify(end.slice(0, 80)));
  const table = end.slice(end.lastIndexOf("\x1b[0J") + 4);
  assert.ok(!ANSI.test(table), "the final table is plain text");
  assert.match(table, /HubSpot test +contacts +done +2,000 +2,000 +500\/s +4\.0 s/);
  assert.match(table, /Pipedrive test +deals +done +900 +- +150\/s +6\.0 s/);
  assert.ok(table.trimEnd().endsWith("backfill done"));
});

Deno.test("halted (the stack is stopping), the bars write nothing more, not even a clear", () => {
  const out = fakeStream(true);
  const view = progressRenderer({ stream: out.stream, tty: true });
  view.update([row({ records: 500, estimated_total: 2000 })]);
  const drawn = out.text().length;
  view.halt();
  view.update([row({ records: 900, estimated_total: 2000 })]);
  assert.equal(out.text().length, drawn, "nothing written after the halt");
  view.end([row({ state: "done", records: 2000, finished_at: at(4) })], "backfill interrupted");
  const rest = out.text().slice(drawn);
  assert.ok(!ANSI.test(rest), "plain text after the halt");
  assert.match(rest, /^\n {2}connection[^]*backfill interrupted\n$/);
  assert.ok(!out.text().includes("\x1b[?7l"), "line wrapping is never switched off");
});

Deno.test("durations read at a glance", () => {
  assert.equal(duration(4.04), "4.0 s");
  assert.equal(duration(200), "3m 20s");
  assert.equal(duration(3900), "1h 05m");
});
