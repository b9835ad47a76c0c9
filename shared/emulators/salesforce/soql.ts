/**
 * SOQL subset parser.
 *
 * Supported: `SELECT f1, Rel.f2 … | COUNT()  FROM Object
 *   [WHERE cond] [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], …] [LIMIT n] [OFFSET n]`
 * with conditions built from `= != <> < <= > >=`, `[NOT] IN (…)`, `LIKE`,
 * `AND`, `OR`, `NOT` and parentheses; literals: 'strings', numbers,
 * TRUE/FALSE/NULL, datetimes (2024-01-01T00:00:00Z, …000+0000), dates and the
 * date keywords TODAY, YESTERDAY, LAST_N_DAYS:n.
 * As in Salesforce, AND and OR cannot be mixed without parentheses.
 * Everything else (GROUP BY, aggregates, sub-queries, semi-joins, TYPEOF,
 * WITH, FOR …) is a MALFORMED_QUERY naming the unsupported part.
 * Reference: https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/
 */
import { malformedQuery } from "./errors.ts";

export type Literal =
  | { kind: "string"; value: string }
  | { kind: "number"; value: number }
  | { kind: "boolean"; value: boolean }
  | { kind: "null" }
  | { kind: "datetime"; value: number; text: string }
  | { kind: "date"; value: number; text: string };

export type Cond =
  | { kind: "and"; items: Cond[] }
  | { kind: "or"; items: Cond[] }
  | { kind: "not"; item: Cond }
  | { kind: "cmp"; field: string; op: "=" | "!=" | "<" | "<=" | ">" | ">="; value: Literal }
  | { kind: "in"; field: string; negate: boolean; values: Literal[] }
  | { kind: "like"; field: string; pattern: string };

export interface OrderItem {
  field: string;
  desc: boolean;
  nullsLast: boolean;
}

export interface Query {
  count: boolean;
  fields: string[];
  object: string;
  where: Cond | null;
  orderBy: OrderItem[];
  limit: number | null;
  offset: number | null;
}

type Tok = { t: "id" | "str" | "num" | "dt" | "date" | "op" | "punct" | "eof"; v: string };

const DT_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?(Z|[+-]\d{2}:?\d{2})/;
const DATE_RE = /^\d{4}-\d{2}-\d{2}(?![\dT])/;

function tokenize(src: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const rest = src.slice(i);
    const dt = DT_RE.exec(rest);
    if (dt) {
      out.push({ t: "dt", v: dt[0] });
      i += dt[0].length;
      continue;
    }
    const d = DATE_RE.exec(rest);
    if (d) {
      out.push({ t: "date", v: d[0] });
      i += d[0].length;
      continue;
    }
    if (c === "'") {
      let s = "";
      i++;
      for (;;) {
        if (i >= src.length) throw malformedQuery("unterminated string literal");
        const ch = src[i];
        if (ch === "\\") {
          const n = src[i + 1];
          s += n === "n" ? "\n" : n === "t" ? "\t" : n;
          i += 2;
          continue;
        }
        if (ch === "'") {
          i++;
          break;
        }
        s += ch;
        i++;
      }
      out.push({ t: "str", v: s });
      continue;
    }
    const num = /^-?\d+(\.\d+)?/.exec(rest);
    if (num) {
      out.push({ t: "num", v: num[0] });
      i += num[0].length;
      continue;
    }
    const id = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*(:\d+)?/.exec(rest);
    if (id) {
      out.push({ t: "id", v: id[0] });
      i += id[0].length;
      continue;
    }
    const op = /^(<=|>=|!=|<>|=|<|>)/.exec(rest);
    if (op) {
      out.push({ t: "op", v: op[0] === "<>" ? "!=" : op[0] });
      i += op[0].length;
      continue;
    }
    if ("(),".includes(c)) {
      out.push({ t: "punct", v: c });
      i++;
      continue;
    }
    throw malformedQuery(`unexpected token: '${c}'`);
  }
  out.push({ t: "eof", v: "" });
  return out;
}

const UNSUPPORTED = new Set([
  "GROUP",
  "HAVING",
  "TYPEOF",
  "WITH",
  "FOR",
  "USING",
  "UPDATE",
  "ROLLUP",
  "CUBE",
]);

function dateKeyword(word: string, now: number): Literal | null {
  const day = 86_400_000;
  const today = Math.floor(now / day) * day;
  const w = word.toUpperCase();
  if (w === "TODAY") return { kind: "date", value: today, text: w };
  if (w === "YESTERDAY") return { kind: "date", value: today - day, text: w };
  if (w === "TOMORROW") return { kind: "date", value: today + day, text: w };
  const m = /^LAST_N_DAYS:(\d+)$/.exec(w);
  if (m) return { kind: "date", value: today - Number(m[1]) * day, text: w };
  return null;
}

export function parseSoql(src: string, now = Date.now()): Query {
  const toks = tokenize(src);
  let p = 0;
  const peek = () => toks[p];
  const kw = (w: string) => peek().t === "id" && peek().v.toUpperCase() === w;
  const next = () => toks[p++];
  const expectKw = (w: string) => {
    if (!kw(w)) throw malformedQuery(`unexpected token: '${peek().v || "<EOF>"}' (expected ${w})`);
    p++;
  };
  const expectPunct = (v: string) => {
    if (peek().t !== "punct" || peek().v !== v) {
      throw malformedQuery(`unexpected token: '${peek().v || "<EOF>"}' (expected '${v}')`);
    }
    p++;
  };
  const fieldName = (): string => {
    const t = next();
    if (t.t !== "id") throw malformedQuery(`unexpected token: '${t.v || "<EOF>"}'`);
    if (UNSUPPORTED.has(t.v.toUpperCase())) {
      throw malformedQuery(`${t.v.toUpperCase()} is not supported by this sandbox's SOQL subset`);
    }
    return t.v;
  };

  expectKw("SELECT");
  let count = false;
  const fields: string[] = [];
  if (kw("COUNT") && toks[p + 1]?.v === "(" && toks[p + 2]?.v === ")") {
    p += 3;
    count = true;
  } else {
    for (;;) {
      if (peek().t === "punct" && peek().v === "(") {
        throw malformedQuery("sub-queries are not supported by this sandbox's SOQL subset");
      }
      const f = fieldName();
      if (peek().t === "punct" && peek().v === "(") {
        throw malformedQuery(
          `aggregate function ${f.toUpperCase()}() is not supported by this sandbox's SOQL subset (only COUNT())`,
        );
      }
      fields.push(f);
      if (peek().t === "punct" && peek().v === ",") {
        p++;
        continue;
      }
      break;
    }
  }
  expectKw("FROM");
  const object = fieldName();
  if (object.includes(".")) throw malformedQuery(`unexpected token: '${object}'`);

  const literal = (): Literal => {
    const t = next();
    switch (t.t) {
      case "str":
        return { kind: "string", value: t.v };
      case "num":
        return { kind: "number", value: Number(t.v) };
      case "dt": {
        const iso = t.v.replace(/([+-]\d{2})(\d{2})$/, "$1:$2");
        return { kind: "datetime", value: Date.parse(iso), text: t.v };
      }
      case "date":
        return { kind: "date", value: Date.parse(t.v + "T00:00:00Z"), text: t.v };
      case "id": {
        const u = t.v.toUpperCase();
        if (u === "TRUE" || u === "FALSE") return { kind: "boolean", value: u === "TRUE" };
        if (u === "NULL") return { kind: "null" };
        const k = dateKeyword(t.v, now);
        if (k) return k;
        if (u === "SELECT") {
          throw malformedQuery(
            "semi-join sub-selects are not supported by this sandbox's SOQL subset",
          );
        }
        throw malformedQuery(`unexpected token: '${t.v}'`);
      }
      default:
        throw malformedQuery(`unexpected token: '${t.v || "<EOF>"}'`);
    }
  };

  const primary = (): Cond => {
    if (kw("NOT")) {
      p++;
      return { kind: "not", item: primary() };
    }
    if (peek().t === "punct" && peek().v === "(") {
      p++;
      const c = expr();
      expectPunct(")");
      return c;
    }
    const f = fieldName();
    if (kw("NOT") && toks[p + 1]?.t === "id" && toks[p + 1].v.toUpperCase() === "IN") {
      p += 2;
      return inList(f, true);
    }
    if (kw("IN")) {
      p++;
      return inList(f, false);
    }
    if (kw("LIKE")) {
      p++;
      const t = next();
      if (t.t !== "str") throw malformedQuery("LIKE requires a string literal");
      return { kind: "like", field: f, pattern: t.v };
    }
    if (kw("INCLUDES") || kw("EXCLUDES")) {
      throw malformedQuery(
        `${peek().v.toUpperCase()} is not supported by this sandbox's SOQL subset`,
      );
    }
    const op = next();
    if (op.t !== "op") throw malformedQuery(`unexpected token: '${op.v || "<EOF>"}'`);
    return { kind: "cmp", field: f, op: op.v as "=", value: literal() };
  };

  const inList = (f: string, negate: boolean): Cond => {
    expectPunct("(");
    if (kw("SELECT")) {
      throw malformedQuery("semi-join sub-selects are not supported by this sandbox's SOQL subset");
    }
    const values: Literal[] = [literal()];
    while (peek().t === "punct" && peek().v === ",") {
      p++;
      values.push(literal());
    }
    expectPunct(")");
    return { kind: "in", field: f, negate, values };
  };

  function expr(): Cond {
    const first = primary();
    let mode: "and" | "or" | null = null;
    const items = [first];
    while (kw("AND") || kw("OR")) {
      const m = next().v.toLowerCase() as "and" | "or";
      if (mode && m !== mode) {
        throw malformedQuery(
          "unexpected token: '" + m.toUpperCase() + "' (use parentheses when mixing AND and OR)",
        );
      }
      mode = m;
      items.push(primary());
    }
    return mode ? { kind: mode, items } : first;
  }

  let where: Cond | null = null;
  if (kw("WHERE")) {
    p++;
    where = expr();
  }
  const orderBy: OrderItem[] = [];
  if (kw("ORDER")) {
    p++;
    expectKw("BY");
    for (;;) {
      const f = fieldName();
      let desc = false;
      if (kw("ASC")) p++;
      else if (kw("DESC")) {
        p++;
        desc = true;
      }
      let nullsLast = desc;
      if (kw("NULLS")) {
        p++;
        if (kw("FIRST")) nullsLast = false;
        else if (kw("LAST")) nullsLast = true;
        else throw malformedQuery(`unexpected token: '${peek().v}'`);
        p++;
      }
      orderBy.push({ field: f, desc, nullsLast });
      if (peek().t === "punct" && peek().v === ",") {
        p++;
        continue;
      }
      break;
    }
  }
  let limit: number | null = null;
  let offset: number | null = null;
  if (kw("LIMIT")) {
    p++;
    const t = next();
    if (t.t !== "num" || !/^\d+$/.test(t.v)) throw malformedQuery(`unexpected token: '${t.v}'`);
    limit = Number(t.v);
  }
  if (kw("OFFSET")) {
    p++;
    const t = next();
    if (t.t !== "num" || !/^\d+$/.test(t.v)) throw malformedQuery(`unexpected token: '${t.v}'`);
    offset = Number(t.v);
  }
  if (peek().t !== "eof") {
    const v = peek().v;
    if (UNSUPPORTED.has(v.toUpperCase())) {
      throw malformedQuery(`${v.toUpperCase()} is not supported by this sandbox's SOQL subset`);
    }
    throw malformedQuery(`unexpected token: '${v}'`);
  }
  return { count, fields, object, where, orderBy, limit, offset };
}
