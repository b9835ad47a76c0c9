/**
 * GET /services/data/vXX.X/query?q= and /queryAll?q= with server-side
 * cursors: results beyond one batch (default 2000, `Sforce-Query-Options:
 * batchSize=N` with 200 ≤ N ≤ 2000) return `done: false` and
 * `nextRecordsUrl: /services/data/vXX.X/query/<locator>-<offset>`.
 * queryAll also returns recycle-bin rows (IsDeleted = true, merged losers).
 * Cursors expire after 15 minutes without use (INVALID_QUERY_LOCATOR).
 * Docs: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_query.htm
 */
import { json, jsonText } from "../common/http.ts";
import { cachedJson } from "../common/json_cache.ts";
import type { RequestContext } from "../common/router.ts";
import { SfError } from "./errors.ts";
import type { SalesforceEmulator, SfAuth } from "./emulator.ts";
import { type CompiledQuery, compileQuery, runQuery, serializeRow } from "./soql_exec.ts";
import type { SfRecord } from "./store.ts";

interface Cursor {
  id: string;
  q: CompiledQuery;
  rows: SfRecord[];
  batch: number;
  lastUsed: number;
}

const CURSOR_TTL_MS = 15 * 60 * 1000;
const MAX_CURSORS = 200;

export function registerQueryRoutes(sf: SalesforceEmulator): void {
  const cursors = new Map<string, Cursor>();
  let nextCursor = 1;

  const batchSize = (ctx: RequestContext): number => {
    const opt = ctx.req.headers.get("sforce-query-options");
    const m = opt ? /batchSize\s*=\s*(\d+)/i.exec(opt) : null;
    if (!m) return sf.queryBatchSize;
    return Math.max(200, Math.min(2000, Number(m[1])));
  };

  const page = (c: Cursor, offset: number, version: string) => {
    const slice = c.rows.slice(offset, offset + c.batch);
    const done = offset + slice.length >= c.rows.length;
    // Rows without relationship fields are memoised per select list (related records change independently).
    const key = c.q.select.some((s) => s.via) ? null : `${version}|${c.q.query.fields.join(",")}`;
    const records = slice.map((r) =>
      key === null
        ? JSON.stringify(serializeRow(sf.store, r, c.q.select, version))
        : cachedJson(r, key, () => serializeRow(sf.store, r, c.q.select, version))
    );
    const next = done
      ? ""
      : `,"nextRecordsUrl":"/services/data/v${version}/query/${c.id}-${offset + slice.length}"`;
    if (done) cursors.delete(c.id);
    return jsonText(
      `{"totalSize":${c.rows.length},"done":${done}${next},"records":[${records.join(",")}]}`,
    );
  };

  const sweep = (now: number) => {
    for (const [k, c] of cursors) if (now - c.lastUsed > CURSOR_TTL_MS) cursors.delete(k);
    while (cursors.size > MAX_CURSORS) cursors.delete(cursors.keys().next().value!);
  };

  const run = (all: boolean) => (ctx: RequestContext, auth: SfAuth) => {
    const soql = ctx.url.searchParams.get("q");
    if (!soql) throw SfError.one(400, "MALFORMED_QUERY", "A query string has to be specified");
    const q = compileQuery(soql, sf.now(), sf.store.schema);
    const rows = runQuery(sf.store, q, all);
    if (q.query.count) return json({ totalSize: rows.length, done: true, records: [] });
    const now = sf.now();
    sweep(now);
    const id = `01g5g00000${String(nextCursor++).padStart(8, "0")}`;
    const c: Cursor = { id, q, rows, batch: batchSize(ctx), lastUsed: now };
    cursors.set(id, c);
    return page(c, 0, auth.version);
  };

  const more = (ctx: RequestContext, auth: SfAuth) => {
    const m = /^(.+)-(\d+)$/.exec(ctx.params.locator);
    const c = m ? cursors.get(m[1]) : undefined;
    if (!m || !c || sf.now() - c.lastUsed > CURSOR_TTL_MS) {
      throw SfError.one(400, "INVALID_QUERY_LOCATOR", "invalid query locator");
    }
    c.lastUsed = sf.now();
    return page(c, Number(m[2]), auth.version);
  };

  sf.route("GET", "/query", run(false));
  sf.route("GET", "/queryAll", run(true));
  sf.route("GET", "/query/:locator", more);
  sf.route("GET", "/queryAll/:locator", more);
}
