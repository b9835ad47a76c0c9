// providers/iso.ts returns text unparsed when it is already canonical; it must give exactly
// what Date gives for every input, including days and times Date rolls over or rejects.
import assert from "node:assert/strict";
import { isoFromSalesforce, isoFromText } from "../../supabase/functions/_shared/providers/iso.ts";

function viaDate(s: string): string | null {
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

const pad = (n: number, w: number) => String(n).padStart(w, "0");

function samples(): string[] {
  const out = [
    "2024-02-29T00:00:00.000Z",
    "2023-02-29T00:00:00.000Z",
    "2024-02-30T12:00:00.000Z",
    "2100-02-29T00:00:00.000Z",
    "2000-02-29T00:00:00.000Z",
    "2024-04-31T10:00:00.000Z",
    "2024-13-01T00:00:00.000Z",
    "2024-00-10T00:00:00.000Z",
    "2024-01-00T00:00:00.000Z",
    "2024-01-01T24:00:00.000Z",
    "2024-01-01T23:60:00.000Z",
    "2024-01-01T23:59:60.000Z",
    "0000-01-01T00:00:00.000Z",
    "9999-12-31T23:59:59.999Z",
    "2024-01-01T00:00:00Z",
    "2024-01-01T00:00:00.000+01:00",
    "2024-01-01 00:00:00.000Z",
    "2024-1-01T00:00:00.000Z",
    "2024-01-01T00:00:00.0000Z",
    "2024-01-01T0a:00:00.000Z",
    "2024-01-01",
    "",
    "not a date",
  ];
  let seed = 7;
  const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) % 2147483648) % n;
  for (let i = 0; i < 20_000; i++) {
    out.push(
      `${pad(1900 + rnd(300), 4)}-${pad(rnd(14), 2)}-${pad(rnd(33), 2)}T${pad(rnd(26), 2)}:` +
        `${pad(rnd(62), 2)}:${pad(rnd(62), 2)}.${pad(rnd(1000), 3)}Z`,
    );
  }
  return out;
}

Deno.test("isoFromText gives what Date gives", () => {
  for (const s of samples()) assert.equal(isoFromText(s), viaDate(s), s);
});

Deno.test("isoFromSalesforce gives what Date gives for +0000 datetimes", () => {
  for (const s of samples()) {
    const sf = s.endsWith("Z") ? `${s.slice(0, -1)}+0000` : s;
    assert.equal(isoFromSalesforce(sf), viaDate(sf.replace(/\+0000$/, "Z")), sf);
  }
});
