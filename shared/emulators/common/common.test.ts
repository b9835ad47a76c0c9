/** Shared pieces: PRNG, data generator, phone ground truth, table index, limiter, router, tokens. */
import { parsePhoneNumberFromString } from "libphonenumber-js";
import { assert, assertEquals, assertGreater, assertNotEquals } from "./assert.ts";
import { generateDataset } from "./generator.ts";
import { generatePhone, PHONE_REGIONS } from "./phones.ts";
import { Prng } from "./prng.ts";
import { RollingWindowLimiter } from "./rate_limit.ts";
import { Router } from "./router.ts";
import { type Row, Table } from "./table.ts";
import { isoOffset, isoSeconds, isoString } from "./time_format.ts";
import { TokenStore } from "./tokens.ts";

Deno.test("prng: same seed same stream, forks are independent", () => {
  const a = new Prng(7), b = new Prng(7);
  assertEquals(
    Array.from({ length: 5 }, () => a.nextUint32()),
    Array.from({ length: 5 }, () => b.nextUint32()),
  );
  assertNotEquals(new Prng(7).fork("x").uuid(), new Prng(7).fork("y").uuid());
  assertEquals(new Prng(7).fork("x").uuid(), new Prng(7).fork("x").uuid());
  assert(
    /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(
      new Prng(1).uuid(),
    ),
  );
});

Deno.test("generator: deterministic, with duplicates, odd casing, invalid emails and shared timestamps", () => {
  const d1 = generateDataset({ seed: 3, records: 2000 });
  const d2 = generateDataset({ seed: 3, records: 2000 });
  assertEquals(JSON.stringify(d1), JSON.stringify(d2));
  assertNotEquals(
    JSON.stringify(generateDataset({ seed: 4, records: 50 })),
    JSON.stringify(generateDataset({ seed: 3, records: 50 })),
  );
  const quirks = new Map<string, number>();
  for (const p of d1.people) quirks.set(p.emailQuirk, (quirks.get(p.emailQuirk) ?? 0) + 1);
  for (const q of ["duplicate", "odd-case", "invalid", "plus-tag", "padded"]) {
    assertGreater(quirks.get(q) ?? 0, 0, q);
  }
  const dup = d1.people.find((p) => p.emailQuirk === "duplicate")!;
  assertEquals(dup.email!.toLowerCase(), d1.people[dup.duplicateOf!].email!.toLowerCase());
  assert(d1.people.some((p) => p.email === null));
  assert(
    d1.people.some((p) => /[\u0080-\uffff]/.test(p.firstName + p.lastName)),
    "non-ASCII names",
  );
  const stamps = new Map<number, number>();
  for (const p of d1.people) stamps.set(p.updatedAt, (stamps.get(p.updatedAt) ?? 0) + 1);
  assertGreater(Math.max(...stamps.values()), 10, "bulk-edit timestamps shared by many records");
  assert(
    d1.deals.some((d) => d.status === "won") && d1.deals.some((d) => d.status === "lost") &&
      d1.deals.some((d) => d.pipelineIndex === 1),
  );
  assert(d1.people.every((p) => p.updatedAt >= p.createdAt && p.updatedAt <= d1.anchor));
});

Deno.test("phones: many notations; ground truth agrees with libphonenumber", () => {
  const p = new Prng(11);
  const formats = new Set<string>();
  let valid = 0, invalid = 0, national = 0;
  for (let i = 0; i < 3000; i++) {
    const ph = generatePhone(p, PHONE_REGIONS[i % PHONE_REGIONS.length]);
    formats.add(ph.raw.replace(/\d/g, "9"));
    const parsed = parsePhoneNumberFromString(ph.raw, ph.region as never);
    if (ph.e164) {
      valid++;
      if (!ph.international) national++;
      assert(parsed?.isValid(), `${ph.raw} (${ph.region}) should be valid`);
      assertEquals(parsed!.number, ph.e164);
      // "+49 (0)30 …" carries the country code but libphonenumber needs the region to drop "(0)".
      if (ph.international && !ph.raw.includes("(0)")) {
        assertEquals(parsePhoneNumberFromString(ph.raw)?.number, ph.e164);
      }
    } else {
      invalid++;
      assert(!parsed?.isValid(), `${ph.raw} should be invalid`);
    }
  }
  assertGreater(formats.size, 40);
  assertGreater(invalid, 100);
  assertGreater(national, valid / 3);
});

Deno.test("table: both orders stay sorted under random writes; bounds", () => {
  const t = new Table<Row>();
  const p = new Prng(5);
  for (let i = 0; i < 2000; i++) {
    t.insert({ id: `r${i}`, seq: t.takeSeq(), modifiedAt: p.int(0, 500) }, i % 2 === 0);
  }
  t.reindex();
  for (let i = 0; i < 3000; i++) {
    const r = t.get(`r${p.int(0, 1999)}`);
    if (!r) continue;
    if (p.chance(0.05)) t.remove(r);
    else t.touch(r, p.chance(0.5) ? 1000 + i : p.int(0, 1500));
  }
  const mods = t.byModified.map((r) => [r.modifiedAt, r.seq]);
  const sorted = [...mods].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  assertEquals(mods, sorted);
  assertEquals(t.byModified.length, t.size);
  assertEquals(t.bySeq.map((r) => r.seq), [...t.bySeq.map((r) => r.seq)].sort((a, b) => a - b));
  const lo = t.modifiedLowerBound(700), hi = t.modifiedUpperBound(800);
  assert(t.byModified.slice(lo, hi).every((r) => r.modifiedAt >= 700 && r.modifiedAt <= 800));
  assert(lo === 0 || t.byModified[lo - 1].modifiedAt < 700);
  assert(hi === t.size || t.byModified[hi].modifiedAt > 800);
});

Deno.test("rolling window limiter, router, tokens, timestamp formats", () => {
  const l = new RollingWindowLimiter(3, 1000);
  assertEquals([0, 1, 2, 3].map((i) => l.hit("k", 100 + i).allowed), [true, true, true, false]);
  assert(l.hit("k", 1101).allowed);
  assert(l.hit("other", 102).allowed);

  const r = new Router();
  r.get("/a/:x/b", () => new Response("1")).post("/a/:x/b", () => new Response("2"));
  const m = r.match("GET", "/a/x%2Fy/b");
  assert("handler" in m && m.params.x === "x/y" && m.route === "GET /a/:x/b");
  const miss = r.match("DELETE", "/a/1/b");
  assert(!("handler" in miss) && miss.methodMismatch);

  const tokens = new TokenStore(new Prng(1), 1000);
  const t = tokens.issue("access", "tok", 0);
  assertEquals(tokens.check("tok", 999, ["access"]).ok, true);
  const expired = tokens.check("tok", 1000, ["access"]);
  assert(!expired.ok && expired.reason === "expired");
  tokens.setAccessTtl(null, 5, true);
  assertEquals(t.expiresAt, null);
  tokens.revoke();
  const revoked = tokens.check("tok", 5, ["access"]);
  assert(!revoked.ok && revoked.reason === "revoked");

  for (const ms of [0, 951_782_400_000, Date.UTC(2024, 1, 29, 23, 59, 59, 7), 4_102_444_800_000]) {
    assertEquals(isoString(ms), new Date(ms).toISOString());
  }
  assertEquals(isoSeconds(Date.UTC(2024, 0, 2, 3, 4, 5, 678)), "2024-01-02T03:04:05Z");
  assertEquals(isoOffset(Date.UTC(2024, 0, 2, 3, 4, 5)), "2024-01-02T03:04:05.000+0000");
});
