// The chaos model's judgment of a push in flight (scripts/chaos/model.ts): a field the app did not
// edit is raced only when the push writes it along (a Pipedrive person's name halves).
import assert from "node:assert/strict";
import { type Effect, expect } from "../../scripts/chaos/model.ts";

const base = { live: true, v: { first_name: "F0", last_name: "L0" } };
const appFirst: Effect = { side: "app", kind: "edit", op: 1, at: 1000, v: { first_name: "AF1" } };
const crmBoth = (inFlight: ("first_name" | "last_name")[]): Effect => ({
  side: "crm",
  kind: "edit",
  op: 2,
  at: 2000,
  v: { first_name: "CF2", last_name: "CL2" },
  raced: inFlight,
  inFlight,
});
const values = (s: Set<string | null> | undefined) => [...(s ?? [])].sort();

Deno.test("chaos model: a CRM edit of a half the push writes along allows the half it read", () => {
  const e = expect("newest_wins", ["first_name", "last_name"], base, [
    appFirst,
    crmBoth(["first_name", "last_name"]),
  ]);
  assert.deepEqual(values(e.fields.last_name), ["CL2", "L0"]);
  assert.deepEqual(values(e.fields.first_name), ["AF1", "CF2"]);
});

Deno.test("chaos model: a CRM edit of a field no push writes takes the CRM's value only", () => {
  const e = expect("newest_wins", ["first_name", "last_name"], base, [appFirst, crmBoth([])]);
  assert.deepEqual(values(e.fields.last_name), ["CL2"]);
  assert.deepEqual(values(e.fields.first_name), ["CF2"]);
});

Deno.test("chaos model: the half read is the CRM's previous edit of it, if any", () => {
  const earlier: Effect = { side: "crm", kind: "edit", op: 0, at: 500, v: { last_name: "CL0" } };
  const e = expect("crm_wins", ["first_name", "last_name"], base, [
    earlier,
    appFirst,
    crmBoth(["first_name", "last_name"]),
  ]);
  assert.deepEqual(values(e.fields.last_name), ["CL0", "CL2"]);
});
