/**
 * Validation rules an org admin sets up, in the small form tests need: a condition on one
 * field of the record as it would be saved (`blank`, `equals`, `contains`, `matches` a regular
 * expression) that, when true, rejects the save with the rule's message. Salesforce reports a
 * failed rule as FIELD_CUSTOM_VALIDATION_EXCEPTION (fields: the error display field, else none);
 * a duplicate rule that blocks as DUPLICATES_DETECTED. Rules apply to every save, API and UI.
 * Docs: https://help.salesforce.com/s/articleView?id=sf.fields_about_field_validation.htm
 */
import { z } from "zod";
import type { Refusals } from "../common/refusals.ts";
import type { SfErrorItem } from "./errors.ts";
import { type SfObject, WRITABLE } from "./schema.ts";

export const ValidationRuleSchema = z.object({
  object: z.enum(WRITABLE as unknown as [SfObject, ...SfObject[]]),
  name: z.string().min(1),
  field: z.string().min(1),
  op: z.enum(["blank", "equals", "contains", "matches"]),
  value: z.string().optional(),
  message: z.string().min(1),
  /** Field the error is shown on (reported in `fields`); none = the top of the page. */
  errorDisplayField: z.string().optional(),
  errorCode: z.enum(["FIELD_CUSTOM_VALIDATION_EXCEPTION", "DUPLICATES_DETECTED"]).default(
    "FIELD_CUSTOM_VALIDATION_EXCEPTION",
  ),
}).strict();
export type ValidationRule = z.infer<typeof ValidationRuleSchema>;
export const ValidationRulesSchema = z.array(ValidationRuleSchema);

function valueOf(record: Record<string, unknown>, field: string): unknown {
  const k = Object.keys(record).find((n) => n.toLowerCase() === field.toLowerCase());
  return k === undefined ? null : record[k];
}

function holds(rule: ValidationRule, record: Record<string, unknown>): boolean {
  const v = valueOf(record, rule.field);
  const s = v === null || v === undefined ? "" : String(v);
  switch (rule.op) {
    case "blank":
      return s === "";
    case "equals":
      return s === (rule.value ?? "");
    case "contains":
      return s.includes(rule.value ?? "");
    case "matches":
      return new RegExp(rule.value ?? "").test(s);
  }
}

/** The errors of the rules of `type` that reject this record state. */
export function violated(
  rules: ValidationRule[],
  type: SfObject,
  record: Record<string, unknown>,
): SfErrorItem[] {
  return rules.filter((r) => r.object === type && holds(r, record)).map((r) => ({
    errorCode: r.errorCode,
    message: r.message,
    fields: r.errorDisplayField ? [r.errorDisplayField] : [],
  }));
}

/** A record refused by the sandbox's refusals (../common/refusals.ts) fails as a validation
 * rule does, on the API's update paths only. */
export function refusal(refusals: Refusals, id: string): SfErrorItem[] | null {
  const message = refusals.check(id);
  return message === null
    ? null
    : [{ errorCode: "FIELD_CUSTOM_VALIDATION_EXCEPTION", message, fields: [] }];
}
