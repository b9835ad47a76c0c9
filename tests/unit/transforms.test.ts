import assert from "node:assert/strict";
import {
  applyInbound,
  applyOutbound,
  joinName,
  splitName,
} from "../../supabase/functions/_shared/mapping/transforms.ts";

const ctx = {
  defaultRegion: "US",
  enumMaps: {
    lifecycle_stage: { lead: "lead", marketingqualifiedlead: "mql", customer: "customer" },
  },
};

Deno.test("phone_e164: national and international formats become E.164; invalid is a warning", () => {
  const cases: [string, string | null][] = [
    ["(415) 555-2671", "+14155552671"],
    ["415.555.2671", "+14155552671"],
    ["+44 20 7946 0958", "+442079460958"],
    ["0044 20 7946 0958", "+442079460958"],
    ["+49 30 901820", "+4930901820"],
  ];
  for (const [raw, want] of cases) {
    const r = applyInbound("phone_e164", raw, ctx);
    assert.equal(r.value, want, raw);
    assert.equal(r.warning, undefined, raw);
  }
  const gb = applyInbound("phone_e164", "020 7946 0958", { defaultRegion: "GB" });
  assert.equal(gb.value, "+442079460958");
  const bad = applyInbound("phone_e164", "12345", ctx);
  assert.equal(bad.value, null);
  assert.match(bad.warning!, /invalid phone number "12345"/);
  assert.deepEqual(applyInbound("phone_e164", "  ", ctx), { value: null });
});

Deno.test("email_lower trims and lowercases; malformed stays with a warning", () => {
  assert.deepEqual(applyInbound("email_lower", "  Ada.Lovelace@Example.COM ", ctx), {
    value: "ada.lovelace@example.com",
  });
  const bad = applyInbound("email_lower", "not-an-email", ctx);
  assert.equal(bad.value, "not-an-email");
  assert.ok(bad.warning);
});

Deno.test("numbers, amounts, dates and timestamps", () => {
  assert.equal(applyInbound("number", "42.5", ctx).value, 42.5);
  assert.equal(applyInbound("number", "1,200", ctx).value, 1200);
  assert.equal(applyInbound("number", "abc", ctx).value, null);
  assert.equal(applyInbound("currency", "1234.50", ctx).value, "1234.50");
  assert.equal(applyInbound("currency", 99.99, ctx).value, "99.99");
  assert.equal(applyInbound("currency", "$1,000", ctx).value, "1000");
  assert.equal(applyInbound("currency", "ten", ctx).value, null);
  assert.equal(applyInbound("date", "2026-03-01T15:00:00.000Z", ctx).value, "2026-03-01");
  assert.equal(applyInbound("date", "1772377200000", ctx).value, "2026-03-01");
  assert.equal(
    applyInbound("timestamp", "2026-03-01T15:00:00Z", ctx).value,
    "2026-03-01T15:00:00.000Z",
  );
  assert.equal(applyInbound("timestamp", 1772377200000, ctx).value, "2026-03-01T15:00:00.000Z");
  assert.equal(applyInbound("timestamp", "yesterday", ctx).value, null);
  assert.equal(applyInbound("boolean", "true", ctx).value, true);
  assert.equal(applyInbound("boolean", "0", ctx).value, false);
});

Deno.test("enum maps translate both ways; unmapped values are kept and reported", () => {
  assert.equal(applyInbound("enum:lifecycle_stage", "marketingqualifiedlead", ctx).value, "mql");
  assert.equal(applyOutbound("enum:lifecycle_stage", "mql", ctx).value, "marketingqualifiedlead");
  const odd = applyInbound("enum:lifecycle_stage", "evangelist", ctx);
  assert.equal(odd.value, "evangelist");
  assert.match(odd.warning!, /unmapped/);
  assert.match(applyInbound("nonsense", "x", ctx).warning!, /unknown transform/);
});

Deno.test("name split and join", () => {
  assert.deepEqual(splitName("Ada King Lovelace"), { first: "Ada King", last: "Lovelace" });
  assert.deepEqual(splitName("Cher"), { first: null, last: "Cher" });
  assert.deepEqual(splitName(""), { first: null, last: null });
  assert.equal(joinName("Ada", "Lovelace"), "Ada Lovelace");
  assert.equal(joinName(null, "Lovelace"), "Lovelace");
  assert.equal(joinName(null, ""), null);
});
