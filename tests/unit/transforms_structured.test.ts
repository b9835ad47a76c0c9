// The transforms beyond one scalar in, one scalar out: percent, flags, associations, Pipedrive
// labelled lists, names, per-row enum maps; and the decimal shift percent relies on.
import assert from "node:assert/strict";
import { shiftDecimal } from "../../supabase/functions/_shared/mapping/decimal.ts";
import {
  applyInbound,
  applyOutbound,
  isKnownTransform,
} from "../../supabase/functions/_shared/mapping/transforms.ts";

const ctx = { defaultRegion: "US" };
const inb = (spec: string, v: unknown, c: object = ctx) => applyInbound(spec, v, c);
const out = (spec: string, v: unknown, c: object = ctx) => applyOutbound(spec, v, c);

Deno.test("decimal shift moves the point in text, with exponents and signs", () => {
  const cases: [string, number, string | null][] = [
    ["12.5", -2, "0.125"],
    ["7", -2, "0.07"],
    ["100", -2, "1"],
    ["0.07", 2, "7"],
    ["0.125", 2, "12.5"],
    ["1e-7", 2, "0.00001"],
    ["2.5E3", -2, "25"],
    ["-0.5", 1, "-5"],
    ["-0", 0, "0"],
    [".5", 0, "0.5"],
    ["5.", 0, "5"],
    ["007.10", 0, "7.1"],
    ["", 0, null],
    [".", 0, null],
    ["1.2.3", 0, null],
    ["abc", 0, null],
  ];
  for (const [s, places, want] of cases) assert.equal(shiftDecimal(s, places), want, s);
});

Deno.test("lower and integer", () => {
  assert.deepEqual(inb("lower", "  MixedCase@X "), { value: "mixedcase@x" });
  assert.deepEqual(inb("lower", ""), { value: null });
  assert.deepEqual(out("lower", "ABC"), { value: "abc" });
  assert.deepEqual(inb("integer", "42"), { value: 42 });
  assert.deepEqual(inb("integer", "1,200"), { value: 1200 });
  assert.deepEqual(inb("integer", 3.0), { value: 3 });
  assert.deepEqual(inb("integer", "12345678901234567890"), { value: "12345678901234567890" });
  const half = inb("integer", "2.5");
  assert.equal(half.value, 3);
  assert.match(half.warning!, /rounded 2.5/);
  const bad = inb("integer", "many");
  assert.equal(bad.value, null);
  assert.match(bad.warning!, /not an integer/);
});

Deno.test("percent: remote 0..100 <-> fraction 0..1 without float noise; out of range is null", () => {
  assert.notEqual(57.7 / 100, 0.577, "the float division this transform avoids");
  assert.equal(inb("percent", 57.7).value, 0.577);
  assert.equal(inb("percent", "33.3").value, 0.333);
  assert.equal(inb("percent", 7).value, 0.07);
  assert.equal(inb("percent", "12.5").value, 0.125);
  assert.equal(inb("percent", "33.3%").value, 0.333);
  assert.equal(inb("percent", 100).value, 1);
  assert.equal(inb("percent", 0).value, 0);
  assert.deepEqual(inb("percent", null), { value: null });
  for (const bad of [150, "-1", "lots"]) {
    const r = inb("percent", bad);
    assert.equal(r.value, null, String(bad));
    assert.ok(r.warning, String(bad));
  }
  assert.notEqual(0.29 * 100, 29);
  assert.equal(out("percent", 0.29).value, 29);
  assert.equal(out("percent", 0.07).value, 7);
  assert.equal(out("percent", 0.125).value, 12.5);
  assert.equal(out("percent", "1").value, 100);
  assert.equal(out("percent", 1.5).value, null);
  assert.ok(out("percent", 1.5).warning);
});

Deno.test("not negates both ways; blank stays null; nonsense warns", () => {
  assert.deepEqual(inb("not", "true"), { value: false });
  assert.deepEqual(inb("not", false), { value: true });
  assert.deepEqual(inb("not", null), { value: null });
  assert.deepEqual(out("not", true), { value: false });
  const odd = inb("not", "maybe");
  assert.equal(odd.value, null);
  assert.ok(odd.warning);
});

Deno.test("deal_status: [closed, won] flags -> open | won | lost; outbound is skipped", () => {
  assert.deepEqual(inb("deal_status", ["false", "false"]), { value: "open" });
  assert.deepEqual(inb("deal_status", ["false", null]), { value: "open" });
  assert.deepEqual(inb("deal_status", ["true", "true"]), { value: "won" });
  assert.deepEqual(inb("deal_status", [true, false]), { value: "lost" });
  assert.deepEqual(inb("deal_status", [null, null]), { value: null });
  const noWon = inb("deal_status", ["true", null]);
  assert.equal(noWon.value, null);
  assert.match(noWon.warning!, /won flag/);
  assert.ok(inb("deal_status", ["perhaps", "true"]).warning);
  assert.equal(out("deal_status", "won").skip, true);
});

Deno.test("association: the first associated id as text", () => {
  assert.deepEqual(inb("association", ["456", "123"]), { value: "456" });
  assert.deepEqual(inb("association", [789]), { value: "789" });
  assert.deepEqual(inb("association", [{ id: 5 }]), { value: "5" });
  assert.deepEqual(inb("association", "12;34"), { value: "12" });
  assert.deepEqual(inb("association", 99), { value: "99" });
  assert.deepEqual(inb("association", []), { value: null });
  assert.deepEqual(inb("association", null), { value: null });
  assert.deepEqual(out("association", "5"), { value: ["5"] });
  assert.deepEqual(out("association", null), { value: null });
});

Deno.test("primary_email / primary_phone pick the primary entry of a labelled list, else the first", () => {
  const emails = [
    { value: "Other@Example.com", primary: false, label: "home" },
    { value: " Ada@Example.COM ", primary: true, label: "work" },
  ];
  assert.deepEqual(inb("primary_email", emails), { value: "ada@example.com" });
  assert.deepEqual(inb("primary_email", [{ value: "", primary: true }, { value: "B@x.io" }]), {
    value: "b@x.io",
  });
  assert.deepEqual(inb("primary_email", [{ value: "First@x.io" }, { value: "second@x.io" }]), {
    value: "first@x.io",
  });
  assert.deepEqual(inb("primary_email", []), { value: null });
  assert.deepEqual(inb("primary_email", "Plain@X.io"), { value: "plain@x.io" });
  assert.deepEqual(out("primary_email", "ada@example.com"), {
    value: [{ value: "ada@example.com", primary: true, label: "work" }],
  });

  const phones = [{ value: "020 7946 0958", primary: false }, {
    value: "(415) 555-2671",
    primary: true,
  }];
  assert.deepEqual(inb("primary_phone", phones), { value: "+14155552671" });
  assert.deepEqual(inb("primary_phone", phones, { ...ctx, options: { raw: true } }), {
    value: "(415) 555-2671",
  });
  const bad = inb("primary_phone", [{ value: "12345", primary: true }]);
  assert.equal(bad.value, null);
  assert.match(bad.warning!, /invalid phone number "12345"/);
  assert.deepEqual(inb("primary_phone", [{ value: "12345" }], { options: { raw: true } }), {
    value: "12345",
  });
  assert.deepEqual(out("primary_phone", "+14155552671"), {
    value: [{ value: "+14155552671", primary: true, label: "work" }],
  });
});

Deno.test("name_split and name_join", () => {
  assert.deepEqual(inb("name_split:first", "Ada King Lovelace"), { value: "Ada King" });
  assert.deepEqual(inb("name_split:last", "Ada King Lovelace"), { value: "Lovelace" });
  assert.deepEqual(inb("name_split:first", "Cher"), { value: null });
  assert.deepEqual(inb("name_split:last", null), { value: null });
  assert.ok(inb("name_split:middle", "A B").warning);
  assert.equal(out("name_split:first", "Ada").skip, true);
  assert.deepEqual(inb("name_join", ["Ada", " ", "Lovelace "]), { value: "Ada Lovelace" });
  assert.deepEqual(inb("name_join", [null, undefined]), { value: null });
  assert.equal(out("name_join", "Ada Lovelace").skip, true);
});

Deno.test("enum maps come from the mapping row's options.map", () => {
  const row = { options: { map: { open: "open", won: "won", lost: "lost", deleted: "lost" } } };
  assert.deepEqual(inb("enum:pipedrive_deal_status", "deleted", row), { value: "lost" });
  assert.deepEqual(out("enum:pipedrive_deal_status", "won", row), { value: "won" });
  assert.match(inb("enum:pipedrive_deal_status", "gone", row).warning!, /unmapped/);
});

Deno.test("text refuses objects instead of storing [object Object]", () => {
  const r = inb("text", { value: 1 });
  assert.equal(r.value, null);
  assert.match(r.warning!, /single value/);
  assert.deepEqual(inb("text", 42), { value: "42" });
});

Deno.test("every transform name the migration allows is known", () => {
  for (
    const name of [
      "text",
      "lower",
      "email_lower",
      "phone_e164",
      "primary_email",
      "primary_phone",
      "number",
      "integer",
      "percent",
      "currency",
      "date",
      "timestamp",
      "boolean",
      "not",
      "deal_status",
      "association",
      "name_join",
      "name_split:first",
      "name_split:last",
      "enum:some_map",
    ]
  ) {
    assert.ok(isKnownTransform(name), name);
    assert.equal(inb(name, null).warning, undefined, name);
  }
});
