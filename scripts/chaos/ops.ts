// The chaos harness's operations: a seeded, serialisable list (a regression fixture is such a
// list). Records are named by handles (h1, h2, …) that the runner binds to a local row id and a
// remote id as they become known; an operation whose record is not (or no longer) there when it
// runs is a no-op, so any sub-list of a list is itself a valid list (what shrinking needs).
import { Prng } from "../../shared/emulators/common/prng.ts";
import type { ProviderName } from "../../supabase/functions/_shared/providers/types.ts";

/** The mirror columns the harness edits, per provider (mapped `both` in the default mappings). */
export const FIELDS: Record<ProviderName, readonly Field[]> = {
  hubspot: ["first_name", "last_name", "job_title"],
  salesforce: ["first_name", "last_name", "job_title"],
  // Pipedrive's job title is not mapped.
  pipedrive: ["first_name", "last_name"],
};

export type Field = "first_name" | "last_name" | "job_title" | "company_remote_id";

/** The association the harness changes: a contact's company (HubSpot `associatedcompanyid`,
 * its primary company; Salesforce `AccountId`; Pipedrive `org_id`), mapped `both` for every
 * provider (docs/fields.md). Its values are the companies' remote ids, made at the start of a
 * run (`COMPANIES` of them) and named by index in the ops. Deals' associations are not
 * exercised: the harness syncs contacts only. */
export const ASSOC: Field = "company_remote_id";
export const COMPANIES = 3;

/** Every field the model and the comparison cover. */
export const compared = (p: ProviderName): Field[] => [...FIELDS[p], ASSOC];
/** null: cleared (only the association is ever cleared). */
export type Values = Partial<Record<Field, string | null>>;

export type Op =
  | { k: "app_insert"; h: number; v: Values }
  | { k: "app_update"; h: number; v: Values }
  /** Two updates back to back: the second lands while the first is (likely) being pushed. */
  | { k: "app_update_twice"; h: number; v: Values; v2: Values; gapMs: number }
  | { k: "app_soft_delete"; h: number }
  | { k: "app_hard_delete"; h: number }
  | { k: "crm_create"; h: number; v: Values }
  | { k: "crm_update"; h: number; v: Values }
  | { k: "crm_delete"; h: number }
  | { k: "crm_restore"; h: number }
  | { k: "crm_merge"; h: number; loser: number }
  /** The same field edited on many records, then all of them set to one modification time. */
  | { k: "crm_bulk"; hs: number[]; field: Field; value: string }
  /** A CRM user sets (or clears: null) the record's company, as the CRM's UI does. */
  | { k: "crm_assoc"; h: number; company: number | null }
  /** The app sets (or clears) the mirror row's company_remote_id. */
  | { k: "app_assoc"; h: number; company: number | null }
  /** From here on the CRM refuses every API update of the record (the sandbox's refusals):
   * the engine's pushes of it must end as dead letters with the CRM's reason. */
  | { k: "crm_refuse"; h: number }
  /** The functions gateway restarted: `hard` kills it and its function processes at once. */
  | { k: "restart_gateway"; hard: boolean }
  | { k: "pull" }
  | { k: "kill_worker" }
  | { k: "drop_pg" }
  | { k: "sleep"; ms: number }
  /** Barrier: quiesce, check against the model, continue from the observed state. */
  | { k: "settle" };

export interface GenOptions {
  provider: ProviderName;
  seed: number;
  ops: number;
  /** Records created in the CRM before the first barrier. */
  initial?: number;
}

/** Salesforce undeletes and HubSpot restores exist in the sandbox admin API; Pipedrive's has none. */
export const CAN_RESTORE: Record<ProviderName, boolean> = {
  hubspot: true,
  salesforce: true,
  pipedrive: false,
};

export function generate(o: GenOptions): Op[] {
  const rnd = new Prng(o.seed).fork(`chaos:${o.provider}`);
  const fields = FIELDS[o.provider];
  const pick = <T>(xs: readonly T[]): T => xs[rnd.int(0, xs.length - 1)];
  const ops: Op[] = [];
  let next = 1;
  // Shadow state, only to aim operations at records that are probably there.
  const live = new Set<number>();
  const values = (i: number, side: "A" | "C", all = false): Values => {
    const v: Values = {};
    const chosen = all ? fields : fields.filter(() => rnd.chance(0.5));
    for (const f of chosen.length ? chosen : [pick(fields)]) {
      v[f] = `${side}${f[0].toUpperCase()}${i}s${o.seed}`;
    }
    return v;
  };
  for (let i = 0; i < (o.initial ?? 8); i++) {
    const h = next++;
    live.add(h);
    ops.push({ k: "crm_create", h, v: values(ops.length, "C", true) });
  }
  // A few records refuse the engine's writes for the rest of the run (none in one run of four).
  const refused = rnd.int(0, 3) === 0 ? 0 : rnd.int(1, 2);
  for (let i = 0; i < refused; i++) ops.push({ k: "crm_refuse", h: rnd.int(1, o.initial ?? 8) });
  ops.push({ k: "settle" });
  const weights: Array<[Op["k"], number]> = [
    ["app_insert", 5],
    ["app_update", 20],
    ["app_update_twice", 6],
    ["app_soft_delete", 3],
    ["app_hard_delete", 2],
    ["crm_create", 5],
    ["crm_update", 20],
    ["crm_delete", 3],
    ["crm_restore", CAN_RESTORE[o.provider] ? 2 : 0],
    ["crm_merge", 2],
    ["crm_bulk", 3],
    ["crm_assoc", 6],
    ["app_assoc", 4],
    ["pull", 4],
    ["kill_worker", 1],
    ["drop_pg", 1],
    ["restart_gateway", 1],
    ["sleep", 4],
    ["settle", 4],
  ];
  const total = weights.reduce((n, [, w]) => n + w, 0);
  const dead: number[] = [];
  while (ops.length < o.ops) {
    let r = rnd.int(0, total - 1);
    const kind = weights.find(([, w]) => (r -= w) < 0)![0];
    const i = ops.length;
    const alive = [...live];
    const target = () => alive.length ? pick(alive) : null;
    switch (kind) {
      case "app_insert":
      case "crm_create": {
        const h = next++;
        live.add(h);
        ops.push({ k: kind, h, v: values(i, kind === "app_insert" ? "A" : "C", true) });
        break;
      }
      case "app_update":
      case "crm_update": {
        const h = target();
        if (h) ops.push({ k: kind, h, v: values(i, kind === "app_update" ? "A" : "C") });
        break;
      }
      case "app_update_twice": {
        const h = target();
        if (h) {
          ops.push({
            k: kind,
            h,
            v: values(i, "A"),
            v2: Object.fromEntries(
              Object.entries(values(i, "A")).map(([f, v]) => [f, `${v}b`]),
            ),
            gapMs: rnd.int(0, 120),
          });
        }
        break;
      }
      case "app_soft_delete":
      case "app_hard_delete":
      case "crm_delete": {
        const h = target();
        if (h && alive.length > 3) {
          live.delete(h);
          dead.push(h);
          ops.push({ k: kind, h });
        }
        break;
      }
      case "crm_restore": {
        if (dead.length) {
          const h = pick(dead);
          live.add(h);
          ops.push({ k: kind, h });
        }
        break;
      }
      case "crm_merge": {
        if (alive.length > 4) {
          const h = pick(alive);
          const loser = pick(alive.filter((x) => x !== h));
          live.delete(loser);
          ops.push({ k: kind, h, loser });
        }
        break;
      }
      case "crm_bulk": {
        const hs = alive.filter(() => rnd.chance(0.6));
        if (hs.length) {
          ops.push({ k: kind, hs, field: pick(fields), value: `CB${i}s${o.seed}` });
        }
        break;
      }
      case "crm_assoc":
      case "app_assoc": {
        const h = target();
        const company = rnd.int(0, COMPANIES);
        if (h) ops.push({ k: kind, h, company: company === COMPANIES ? null : company });
        break;
      }
      case "restart_gateway":
        ops.push({ k: kind, hard: rnd.chance(0.5) });
        break;
      case "sleep":
        ops.push({ k: "sleep", ms: rnd.int(50, 1500) });
        break;
      default:
        ops.push({ k: kind } as Op);
    }
  }
  ops.push({ k: "settle" });
  return ops;
}

/** What an op touches, for traces. */
export function handlesOf(op: Op): number[] {
  if ("hs" in op) return op.hs;
  if (op.k === "crm_merge") return [op.h, op.loser];
  return "h" in op ? [op.h] : [];
}
