// The A/B of crm.apply_inbound (issue 10, "apply_inbound that a newcomer can read"): a git
// ref's migrations against the working tree's, each in a fresh cluster of its own
// (./ab_cluster.ts), fed byte-identical pages of synthetic contacts (./records.ts):
//   backfill  pages of `size` new records until `records` rows exist;
//   delta     `deltaPages` pages of `size` existing records spread over the table, each with a
//             few fields changed (job title, lead status, lifecycle stage, a newer time).
// Decisions:
// * Only the SQL apply path: `select * from crm.apply_inbound(…)` per page, each in its own
//   autocommit transaction, timed from the bench process (the page's transfer is the same on
//   both sides). crm.apply_inbound's signature is the one thing both sides must share.
// * Pages alternate between the sides, the first side swapping every page, so the machine's
//   drift (other processes, the disk's fsync latency) falls on both alike: one after the other
//   at page granularity, on the same machine, in the same minutes.
// * Every answer is checked (a backfill page creates its records, a delta page updates them),
//   and at the end both databases must hold the same rows (a digest of the changed fields).
import type postgres from "postgres";
import type { AbSide } from "./ab_cluster.ts";
import { plainConnection } from "./connection.ts";
import { backfillPage, deltaPage } from "./records.ts";

export interface AbPhase {
  records: number;
  /** Wall time of each page, in page order. */
  pageMs: number[];
  /** Records of each page. */
  pageRecords: number[];
}

export interface AbSideResult {
  name: AbSide["name"];
  label: string;
  backfill: AbPhase;
  delta: AbPhase;
  rows: number;
  digest: string;
}

const APPLY = `select * from crm.apply_inbound($1::uuid, 'contacts', $2::text::jsonb)`;

async function apply(side: AbSide, connectionId: string, json: string) {
  const t0 = performance.now();
  const [r] = await side.sql.unsafe(APPLY, [connectionId, json]);
  return { ms: performance.now() - t0, r: r as Record<string, number> };
}

async function digest(sql: postgres.Sql, connectionId: string) {
  const [d] = await sql`
    select count(*)::int as rows,
           md5(string_agg(concat_ws('|', remote_id, remote_updated_at, job_title, lead_status,
                                    lifecycle_stage, phone, email), ',' order by remote_id)) as digest
    from crm.contacts where connection_id = ${connectionId}`;
  return { rows: d.rows as number, digest: String(d.digest) };
}

export async function runAb(
  sides: [AbSide, AbSide],
  opts: { records: number; deltaPages: number; size: number },
  log: (m: string) => void,
): Promise<AbSideResult[]> {
  const { records, deltaPages, size } = opts;
  const conns = [await plainConnection(sides[0].sql), await plainConnection(sides[1].sql)];
  const phase = (): AbPhase => ({ records: 0, pageMs: [], pageRecords: [] });
  const out = sides.map(() => ({ backfill: phase(), delta: phase() }));

  const page = async (
    p: number,
    json: string,
    n: number,
    which: "backfill" | "delta",
  ) => {
    for (const s of p % 2 === 0 ? [0, 1] : [1, 0]) {
      const { ms, r } = await apply(sides[s], conns[s], json);
      const got = which === "backfill" ? r.created : r.updated;
      if (got !== n) {
        throw new Error(
          `${sides[s].name}: ${which} page ${p} answered ${JSON.stringify(r)} for ${n} records`,
        );
      }
      const ph = out[s][which];
      ph.pageMs.push(ms);
      ph.pageRecords.push(n);
      ph.records += n;
    }
  };
  const progress = (which: string, p: number, total: number) => {
    if ((p + 1) % 10 !== 0 && p + 1 !== total) return;
    const last = (s: number) => {
      const ph = out[s][which as "backfill" | "delta"];
      return `${((ph.pageMs.at(-1)! / ph.pageRecords.at(-1)!) * 1000).toFixed(0)} µs/record`;
    };
    log(`${which} page ${p + 1}/${total}: ref ${last(0)}, tree ${last(1)}`);
  };

  const backfillPages = Math.ceil(records / size);
  for (let p = 0; p < backfillPages; p++) {
    const n = Math.min(size, records - p * size);
    await page(p, backfillPage(p * size, n), n, "backfill");
    progress("backfill", p, backfillPages);
  }
  for (let k = 0; k < deltaPages; k++) {
    const json = deltaPage(k, records, size, k + 1);
    await page(k, json, Math.min(size, records), "delta");
    progress("delta", k, deltaPages);
  }

  const digests = [await digest(sides[0].sql, conns[0]), await digest(sides[1].sql, conns[1])];
  return sides.map((s, i) => ({
    name: s.name,
    label: s.label,
    backfill: out[i].backfill,
    delta: out[i].delta,
    rows: digests[i].rows,
    digest: digests[i].digest,
  }));
}
