// WriteOp properties → Pipedrive v2 bodies (pure): custom field key forms, wire numbers, names,
// labelled lists, nulls on create vs update.
import assert from "node:assert/strict";
import {
  buildBody,
  completeWithStored,
  mergePrimary,
  needsStored,
} from "../../supabase/functions/_shared/providers/pipedrive_body.ts";

const KEY = "a".repeat(40);
const KEY2 = "b".repeat(40);

Deno.test("pipedrive body: custom fields in every accepted form, numbers on the wire", () => {
  const { body } = buildBody("deals", {
    title: "T",
    [`custom_fields.${KEY}`]: "x",
    [KEY2]: 3,
    value: "12.50",
    probability: "40",
    stage_id: "3",
    org_id: "17",
    person_id: "not-a-number",
    label_ids: ["1", 2],
    expected_close_date: "2027-01-02T00:00:00Z",
  }, "update");
  assert.deepEqual(body, {
    title: "T",
    value: 12.5,
    probability: 40,
    stage_id: 3,
    org_id: 17,
    person_id: "not-a-number",
    label_ids: [1, 2],
    expected_close_date: "2027-01-02",
    custom_fields: { [KEY]: "x", [KEY2]: 3 },
  });
});

Deno.test("pipedrive body: nulls are left out of creates, sent on updates; a null owner never", () => {
  const props = { name: "N", org_id: null, owner_id: null, [`custom_fields.${KEY}`]: null };
  assert.deepEqual(buildBody("organizations", props, "create").body, { name: "N" });
  assert.deepEqual(buildBody("organizations", props, "update").body, {
    name: "N",
    org_id: null,
    custom_fields: { [KEY]: null },
  });
});

Deno.test("pipedrive body: person names join; a half name on update needs the stored record", () => {
  assert.deepEqual(
    buildBody("persons", { first_name: "Ada", last_name: "Lovelace" }, "create").body,
    { name: "Ada Lovelace" },
  );
  assert.deepEqual(buildBody("persons", { first_name: "Ada" }, "create").body, { name: "Ada" });
  const half = buildBody("persons", { last_name: "Byron" }, "update");
  assert.ok(needsStored(half));
  assert.deepEqual(completeWithStored(half, { first_name: "Ada", last_name: "Lovelace" }), {
    name: "Ada Byron",
  });
  assert.ok(!needsStored(buildBody("persons", { job_title: "x" }, "update")));
});

Deno.test("pipedrive body: create lists keep given entries with labels; merges keep the others", () => {
  assert.deepEqual(
    buildBody("persons", { name: "A", emails: [{ value: "a@x.io", primary: true }] }, "create")
      .body.emails,
    [{ value: "a@x.io", primary: true, label: "work" }],
  );
  assert.equal(
    buildBody("persons", { name: "A", emails: [{ value: null, primary: true }] }, "create").body
      .emails,
    undefined,
  );
  const stored = [
    { value: "old@x.io", primary: true, label: "home" },
    { value: "two@x.io", primary: false, label: "other" },
  ];
  assert.deepEqual(mergePrimary(stored, [{ value: "new@x.io", primary: true }]), [
    { value: "new@x.io", primary: true, label: "home" },
    { value: "two@x.io", primary: false, label: "other" },
  ]);
  assert.deepEqual(mergePrimary(stored, [{ value: "", primary: true }]), [stored[1]]);
  assert.deepEqual(mergePrimary(null, [{ value: "n@x.io", primary: true, label: "work" }]), [
    { value: "n@x.io", primary: true, label: "work" },
  ]);
});

Deno.test("pipedrive body: an organization's annual revenue and a person's job title and notes", () => {
  // The mapper gives money as a decimal string; API v2 refuses a string for a numeric field.
  const org = buildBody(
    "organizations",
    { annual_revenue: "1234567.50", website: "a.example" },
    "update",
  );
  assert.deepEqual(org.body, { annual_revenue: 1234567.5, website: "a.example" });
  const person = buildBody("persons", { job_title: "Analyst", notes: "n" }, "update");
  assert.deepEqual(person.body, { job_title: "Analyst", notes: "n" });
});
