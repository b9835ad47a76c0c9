// The webhooks bench part's figures: summaries, ratios to the targets and the verdicts.
import assert from "node:assert/strict";
import {
  type AckRun,
  cpuPerRequest,
  fmtMs,
  summarize,
  vsTarget,
  webhookReport,
  webhookVerdicts,
} from "../../scripts/bench/webhook_figures.ts";

const ack = (p99: number, statuses: Record<string, number> = { "200": 100 }): AckRun => ({
  senders: 10,
  requests: 10,
  events: 100,
  latency: { n: 100, p50: 20, p99, max: p99 + 5 },
  statuses,
  wallMs: 1000,
  cpuMsPerRequest: { postgres: 2.5, functions: 1.25 },
  processes: 1,
});

Deno.test("bench webhooks: summaries and formatting", () => {
  const s = summarize(Array.from({ length: 101 }, (_, i) => i));
  assert.deepEqual(s, { n: 101, p50: 50, p99: 99, max: 100 });
  assert.ok(Number.isNaN(summarize([]).p50));
  assert.equal(fmtMs(58.34), "58.3 ms");
  assert.equal(fmtMs(12_400), "12.4 s");
  assert.equal(fmtMs(NaN), "-");
  assert.equal(vsTarget(58.3, 50), "58.3 ms ÷ 50.0 ms = 1.17×");
  assert.equal(vsTarget(400, 1000), "400.0 ms ÷ 1000.0 ms = 0.40×");
  assert.deepEqual(cpuPerRequest({ postgres: 500, gateway: 100 }, 200), {
    postgres: 2.5,
    gateway: 0.5,
  });
});

Deno.test("bench webhooks: verdicts against the targets", () => {
  const rows = {
    changes: 100,
    ratePerSecond: 10,
    latency: { n: 100, p50: 400, p99: 2_000, max: 2_500 },
    missing: 0,
    waitMs: 30_000,
  };
  const met = webhookVerdicts({ baseline: ack(10), concurrent: ack(45), rows });
  assert.deepEqual(met.map((v) => v.met), [true, true, true]);
  assert.match(met[0].value, /0\.90×$/);
  const missed = webhookVerdicts({
    baseline: ack(10),
    concurrent: ack(110),
    rows: { ...rows, latency: { ...rows.latency, p99: 3_500 } },
  });
  assert.deepEqual(missed.map((v) => v.met), [false, true, false]);
  // A refused request fails the ack verdict whatever the latency; a missing row fails both.
  const refused = webhookVerdicts({
    baseline: ack(10),
    concurrent: ack(20, { "200": 99, "500": 1 }),
    rows: { ...rows, missing: 1 },
  });
  assert.deepEqual(refused.map((v) => v.met), [false, false, false]);
  assert.match(refused[1].value, /1 of 100 not visible/);
  const skipped = webhookVerdicts({
    baseline: ack(10),
    concurrent: ack(20),
    rows: null,
    rowsSkipped: "no sandbox",
  });
  assert.equal(skipped[1].met, null);
  assert.ok(webhookReport({ baseline: ack(10), concurrent: ack(20), rows }).length >= 6);
});
