// Synthetic canonical contact records for the SQL-only figures (the bad page and the A/B of
// crm.apply_inbound): the shape the engine's HubSpot mapper hands crm.save_inbound_page — the
// keys of the default HubSpot contact mappings (supabase/migrations/*_crm_field_mappings.sql),
// kind, a millisecond remote_updated_at — with deterministic values, so both sides of an A/B
// get byte-identical pages. Relations name owners/companies that are not mirrored, as in the
// bench's contacts-only backfill (they resolve to NULL, after the same lookups).

const FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken"];
const LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson"];
const STAGES = ["subscriber", "lead", "marketingqualifiedlead", "opportunity", "customer"];
const STATUSES = ["NEW", "OPEN", "IN_PROGRESS", "CONNECTED", "UNQUALIFIED"];
const T0 = Date.parse("2026-01-01T00:00:00.000Z");

export type Canonical = Record<string, string | null>;

/** Contact number `i` (0-based) in version `v` (0 = as backfilled; each later version is one
 * hour newer and changes job title, lead status and lifecycle stage). */
export function contact(i: number, v = 0): Canonical {
  const first = FIRST[i % FIRST.length];
  const last = LAST[Math.floor(i / FIRST.length) % LAST.length];
  const local = String(i % 10_000_000).padStart(7, "0");
  return {
    remote_id: String(1_000_001 + i),
    remote_updated_at: new Date(T0 + i * 1_000 + v * 3_600_000).toISOString(),
    kind: "contact",
    first_name: first,
    last_name: last,
    email: `${first}.${last}.${i}@example.com`.toLowerCase(),
    phone: `+1415${local}`,
    phone_raw: `(415) ${local.slice(0, 3)}-${local.slice(3)}`,
    company_name: `Company ${i % 997}`,
    company_remote_id: String(5_000_000 + (i % 997)),
    owner_remote_id: String(70_000 + (i % 13)),
    lifecycle_stage: STAGES[(i + v) % STAGES.length],
    lead_status: STATUSES[(i + v) % STATUSES.length],
    job_title: v === 0 ? `Engineer ${i % 31}` : `Engineer ${i % 31}, v${v}`,
    last_activity_at: i % 3 === 0 ? null : new Date(T0 - i * 60_000).toISOString(),
  };
}

/** The value the bad page carries: crm.contacts.phone must be E.164 (contacts_phone_e164). */
export const REJECTED_PHONE = "not a phone";

/** `size` new contacts from number `from`; with `bad` set, the one at that offset carries a
 * phone its column rejects. Returned as the JSON text the engine sends. */
export function backfillPage(from: number, size: number, bad?: number): string {
  const page = Array.from({ length: size }, (_, k) => contact(from + k));
  if (bad !== undefined) page[bad] = { ...page[bad], phone: REJECTED_PHONE };
  return JSON.stringify(page);
}

/** Delta page `k` over `total` existing contacts: `size` of them spread over the whole table
 * (numbers k, k + s, k + 2s, … with s = ⌊total/size⌋, so no number repeats within a page),
 * each in version `version` with a few fields changed; with `bad` set, the one at that offset
 * carries a phone its column rejects. */
export function deltaPage(
  k: number,
  total: number,
  size: number,
  version: number,
  bad?: number,
): string {
  const stride = Math.max(1, Math.floor(total / size));
  const n = Math.min(size, total);
  const page = Array.from({ length: n }, (_, j) => contact((k + j * stride) % total, version));
  if (bad !== undefined) page[bad] = { ...page[bad], phone: REJECTED_PHONE };
  return JSON.stringify(page);
}
