// The chaos harness's model: from what each side did between two barriers (recorded effects,
// with the app's edit time and the CRM's modification time as the engine sees them) it predicts,
// per record, whether it is alive and each field's final value under the connection's policy.
//
// What it can predict exactly, and what it cannot (then it allows a set of outcomes, never
// anything outside it):
// - A field changed on one side only: that side's last value.
// - Changed on both sides: `crm_wins` → the CRM's value when the CRM's last edit came after the
//   app's (in real time: the harness runs operations one at a time); `app_wins` → the app's when
//   the app's came after. Otherwise whether the engine saw the two edits as one conflict or as
//   two successive changes depends on when the worker pulled, which the harness does not observe:
//   either value. `newest_wins` → the CRM's value when its recorded modification time is later
//   than the app's edit time (the engine compares exactly these; Salesforce and Pipedrive times
//   are whole seconds), the app's when the app's edit came last, after every CRM modification of
//   the record recorded so far; otherwise either. `manual` → either, and a conflict the harness
//   resolves at the barrier must end with the chosen side's value.
// - Liveness: no delete → alive; deletes on one side only (app soft/hard delete, CRM delete or
//   merge loser, a restore after a CRM delete) → that side's last word. Deletes and restores
//   mixed with the other side's edits: `newest_wins` and `crm_wins` → a CRM delete wins over app
//   edits; `app_wins` → an app edit after the CRM delete recreates the record; anything else
//   (e.g. an app delete racing a CRM edit, which the design does not specify) → alive or deleted,
//   and if alive any value either side wrote. Both sides must still agree.
import type { Field, Values } from "./ops.ts";

export type Policy = "newest_wins" | "crm_wins" | "app_wins" | "manual";

export type Effect =
  | { side: "app"; kind: "insert" | "edit"; op: number; at: number; v: Values }
  /** A merge loser's queued app edit, which the engine settles against the survivor; one being
   * pushed when the merge was made (`inFlight`) may land on the loser before the merge. */
  | {
    side: "app";
    kind: "edit";
    op: number;
    at: number;
    v: Values;
    retargeted: true;
    inFlight: boolean;
  }
  | { side: "app"; kind: "delete"; op: number; at: number }
  /** `raced`: fields of this CRM edit that had an app edit queued but not yet pushed when the
   * CRM edit was made (the harness looks at the outbox right before it writes). */
  | {
    side: "crm";
    kind: "create" | "edit";
    op: number;
    at: number;
    v: Values;
    raced?: Field[];
    /** Of `raced`: fields whose entry was already claimed by a push (in flight). */
    inFlight?: Field[];
  }
  | { side: "crm"; kind: "delete" | "restore" | "merged" | "touch"; op: number; at: number };

export interface Base {
  live: boolean;
  v: Values;
}

export interface Expect {
  live: Set<boolean>;
  fields: Partial<Record<Field, Set<string | null>>>;
  why: string[];
}

const setOf = <T>(...xs: T[]) => new Set(xs);

/**
 * `pushWindow`: how to judge a CRM edit made while an app edit of the same field waited in the
 * outbox. The push reads the records before it writes and lets the policy decide a field the CRM
 * changed (sync/push_recheck.ts), so `strict` expects what the policy says. The write itself is
 * still blind: a CRM edit made after that read and before the write is overwritten. The harness
 * cannot see when the read happened; an edit made while the entry was claimed (in flight) is
 * judged as that residual window, either value, under both modes. `known` allows either value
 * for every race (what the engine did before the read-before-write).
 */
export function expect(
  policy: Policy,
  fields: readonly Field[],
  base: Base | null,
  effects: Effect[],
  resolved: Partial<Record<Field, string | null>> = {},
  pushWindow: "strict" | "known" = "strict",
): Expect {
  const why: string[] = [];
  const app = effects.filter((e) => e.side === "app");
  const crm = effects.filter((e) => e.side === "crm");
  const start: Values = { ...(base?.v ?? {}) };
  for (const e of effects) {
    if (e.kind === "insert" || e.kind === "create") Object.assign(start, e.v);
  }

  // Liveness.
  let live: Set<boolean>;
  const appDel = app.some((e) => e.kind === "delete");
  const crmLife = crm.filter((e) => ["delete", "merged", "restore"].includes(e.kind));
  /** An app edit (`inFlight`: a re-targeted one was being pushed at the merge) or a CRM edit
   * (`inFlight`: its raced fields already claimed by a push). */
  type AppEdit = { op: number; at: number; v: Values; retargeted?: boolean; inFlight?: boolean };
  type CrmEdit = { op: number; at: number; v: Values; raced?: Field[]; inFlight?: Field[] };
  const appEdits = app.filter((e) => e.kind === "edit") as AppEdit[];
  const crmEdits = crm.filter((e) => e.kind === "edit") as CrmEdit[];
  const existed = base?.live ?? effects.some((e) => e.kind === "insert" || e.kind === "create");
  let mixed = false;
  if (!appDel && !crmLife.length) {
    live = setOf(existed);
  } else if (appDel && !crm.some((e) => e.kind !== "touch")) {
    live = setOf(false);
  } else if (appDel) {
    live = setOf(true, false);
    mixed = true;
    why.push("an app delete and CRM operations on one record");
  } else {
    const last = crmLife[crmLife.length - 1];
    const crmLive = last.kind === "restore";
    const killed = crmLife.some((e) => e.kind !== "restore");
    if (!appEdits.length) live = setOf(crmLive);
    else if (crmLive || crmLife.some((e) => e.kind === "merged")) {
      live = setOf(true, false);
      mixed = true;
      why.push("app edits and a CRM restore or merge");
    } else if (killed && (policy === "newest_wins" || policy === "crm_wins")) {
      live = setOf(false);
      why.push("a CRM delete against app edits: the delete wins");
    } else if (
      policy === "app_wins" && appEdits.some((a) => a.op > last.op)
    ) {
      live = setOf(true);
      mixed = true;
      why.push("app_wins: an app edit after the CRM delete recreates the record");
    } else {
      live = setOf(true, false);
      mixed = true;
      why.push(`${policy}: a CRM delete and app edits`);
    }
  }

  const out: Expect = { live, fields: {}, why };
  for (const f of fields) {
    const a = appEdits.filter((e) => e.v[f] !== undefined).pop();
    const c = crmEdits.filter((e) => e.v[f] !== undefined).pop();
    const b = start[f] ?? null;
    let s: Set<string | null>;
    if (mixed) {
      s = setOf<string | null>(b);
      for (const e of effects) if ("v" in e && e.v[f] !== undefined) s.add(e.v[f]!);
    } else if (!a && !c) s = setOf(b);
    else if (!c) {
      s = setOf(a!.v[f]!);
      // A merge survivor's own value is the CRM's side of a re-targeted edit.
      if (a!.retargeted && (policy !== "app_wins" || a!.inFlight)) {
        s.add(b);
        why.push(`${f}: a merge loser's app edit against the survivor's value under ${policy}`);
      }
    } else if (!a) {
      s = setOf(c.v[f]!);
      // A field the app did not edit is still raced when a push in flight writes it along: a
      // Pipedrive person's name halves are one CRM field (`name`), so the push of one half sends
      // the other as the push's read found it (run.ts counts both halves as queued).
      if ((pushWindow === "known" ? c.raced : c.inFlight)?.includes(f)) {
        const before = crmEdits.filter((e) => e.op < c.op && e.v[f] !== undefined).pop();
        s.add(before ? before.v[f]! : b);
        why.push(`${f}: the CRM edit #${c.op} raced a push in flight that writes the field along`);
      }
    } else {
      const av = a.v[f]!, cv = c.v[f]!;
      const either = setOf<string | null>(av, cv);
      if (policy === "crm_wins") s = c.op > a.op ? setOf(cv) : either;
      else if (policy === "app_wins") s = a.op > c.op ? setOf(av) : either;
      else if (policy === "newest_wins") {
        const crmAfter = crm.filter((e) => e.op > a.op);
        const crmMax = Math.max(...crm.map((e) => e.at));
        if (c.at > a.at) s = setOf(cv);
        else if (!crmAfter.length && a.at > crmMax) s = setOf(av);
        else s = either;
      } else s = either;
      if (c.raced?.includes(f) && c.op > a.op) {
        const inFlight = c.inFlight?.includes(f) ?? false;
        why.push(
          `${f}: the CRM edit #${c.op} raced a queued push of app edit #${a.op}` +
            (inFlight ? " (in flight)" : ""),
        );
        if (pushWindow === "known" || inFlight) s = either;
      }
      if (a.inFlight) {
        why.push(`${f}: a merge loser's app edit #${a.op} was being pushed at the merge`);
        s = either;
      }
      if (s.size > 1) why.push(`${f}: concurrent edits under ${policy}`);
    }
    // A survivor's own app edit of the field: the engine keeps it over a merge loser's while it
    // is queued, and the loser's is settled against it once pushed.
    const own = appEdits.filter((e) => !e.retargeted && e.v[f] !== undefined).pop();
    if (a?.retargeted && own && !mixed) {
      s.add(own.v[f]!);
      why.push(`${f}: the survivor's own app edit #${own.op} and a merge loser's`);
    }
    if (f in resolved) {
      s = setOf(resolved[f] ?? null);
      why.push(`${f}: manual conflict resolved`);
    }
    out.fields[f] = s;
  }
  return out;
}
