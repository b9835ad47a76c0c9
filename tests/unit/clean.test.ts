// Text Postgres rejects (NUL, lone UTF-16 surrogates) is cleaned where CRM data enters the
// mapper, with a warning naming the record, column and property, for every provider.
import assert from "node:assert/strict";
import {
  type Cleaning,
  cleanString,
  cleanValue,
} from "../../supabase/functions/_shared/mapping/clean.ts";
import { createMapper } from "../../supabase/functions/_shared/mapping/mapper.ts";
import type { RemoteRecord } from "../../supabase/functions/_shared/providers/types.ts";
import { seededMappings } from "../providers/_seeded_mappings.ts";

const none = (): Cleaning => ({ nul: false, surrogate: false });

Deno.test("cleanString: NUL removed, lone surrogates become U+FFFD, pairs kept", () => {
  const f = none();
  assert.equal(cleanString("A\u0000B", f), "AB");
  assert.deepEqual(f, { nul: true, surrogate: false });
  const g = none();
  assert.equal(cleanString("A\ud800B", g), "A\ufffdB");
  assert.deepEqual(g, { nul: false, surrogate: true });
  // A low surrogate alone, one at the end, and a reversed pair are all lone.
  assert.equal(cleanString("\udc00x\ud83d"), "\ufffdx\ufffd");
  assert.equal(cleanString("\ude00\ud83d"), "\ufffd\ufffd");
  // Valid pairs (emoji, CJK extension B) and ordinary text are returned as they are.
  const h = none();
  for (const ok of ["Ada 😀", "𠀋 名前", "Zoë O'Brien", "", "\u2028"]) {
    assert.equal(cleanString(ok, h), ok);
  }
  assert.deepEqual(h, none());
  // Both at once, next to a valid pair.
  assert.equal(cleanString("😀\u0000\ud800😀"), "😀\ufffd😀");
  // What Postgres would get is valid JSON text again.
  assert.equal(JSON.stringify(cleanString("A\ud800")), '"A\ufffd"');
});

Deno.test("cleanValue: nested arrays and objects, keys too; untouched values keep identity", () => {
  const clean = { emails: [{ value: "a@b.c", primary: true }], n: 3 };
  assert.equal(cleanValue(clean, none()), clean);
  const f = none();
  const out = cleanValue({ emails: [{ value: "a\u0000@b.c" }], "k\ud800": 1, n: null }, f);
  assert.deepEqual(out, { emails: [{ value: "a@b.c" }], "k\ufffd": 1, n: null });
  assert.deepEqual(f, { nul: true, surrogate: true });
});

const AT = "2026-03-02T10:00:00.000Z";
const rec = (remoteType: string, remoteId: string, properties: Record<string, unknown>) =>
  ({
    remoteId,
    remoteType,
    modifiedAt: AT,
    properties,
    deleted: false,
    mergedIds: [],
  }) satisfies RemoteRecord;

Deno.test("mapper: every provider's text is cleaned with a warning naming record and field", () => {
  const cases = [
    {
      mapper: createMapper("hubspot", seededMappings("hubspot"), { defaultRegion: "US" }),
      record: rec("contacts", "101", {
        firstname: "A\u0000B",
        lastname: "L\ud800x 😀",
        email: "ada@example.com",
        lastmodifieddate: AT,
      }),
      first: "firstname",
      last: "lastname",
    },
    {
      mapper: createMapper("salesforce", seededMappings("salesforce"), { defaultRegion: "US" }),
      record: rec("Contact", "003000000000001AAA", {
        Id: "003000000000001AAA",
        SystemModstamp: "2026-03-02T10:00:00.000+0000",
        FirstName: "A\u0000B",
        LastName: "L\ud800x 😀",
        Email: "ada@example.com",
      }),
      first: "FirstName",
      last: "LastName",
    },
    {
      mapper: createMapper("pipedrive", seededMappings("pipedrive"), { defaultRegion: "DE" }),
      record: rec("contacts", "9", {
        id: 9,
        first_name: "A\u0000B",
        last_name: "L\ud800x 😀",
        emails: [{ value: "ada@example.com", primary: true, label: "work" }],
        update_time: "2026-03-02T10:00:00Z",
      }),
      first: "first_name",
      last: "last_name",
    },
  ];
  for (const c of cases) {
    const { record, warnings } = c.mapper.inbound("contacts", c.record);
    assert.equal(record.first_name, "AB");
    assert.equal(record.last_name, "L\ufffdx 😀");
    assert.equal(record.email, "ada@example.com");
    const id = c.record.remoteId;
    assert.deepEqual(
      warnings.filter((w) => /Postgres cannot store/.test(w.message)),
      [
        {
          remoteId: id,
          column: "first_name",
          message: `${c.first}: NUL characters removed (Postgres cannot store them)`,
        },
        {
          remoteId: id,
          column: "last_name",
          message:
            `${c.last}: lone UTF-16 surrogates replaced with U+FFFD (Postgres cannot store them)`,
        },
      ],
    );
    // The whole mapped record is text Postgres takes.
    const json = JSON.stringify(record);
    assert.ok(!json.includes("\\u0000") && json.isWellFormed() && !/\\ud[89ab]/i.test(json));
  }
});
