/**
 * HubSpot error bodies: `{status:"error", message, correlationId, category,
 * subCategory?, context?, errors?}`. Docs:
 * https://developers.hubspot.com/docs/api/error-handling
 */
import { json } from "../common/http.ts";
import type { Prng } from "../common/prng.ts";
import type { PropertyIssue } from "./properties.ts";

export class HsError extends Error {
  constructor(
    readonly status: number,
    readonly category: string,
    message: string,
    readonly extra: {
      subCategory?: string;
      context?: Record<string, unknown>;
      errors?: unknown[];
      headers?: Record<string, string>;
      /** Extra top-level fields (e.g. policyName for 429s). */
      fields?: Record<string, unknown>;
    } = {},
  ) {
    super(message);
  }
}

export function validationError(issues: PropertyIssue[]): HsError {
  return new HsError(
    400,
    "VALIDATION_ERROR",
    `Property values were not valid: ${JSON.stringify(issues)}`,
  );
}

export function notFoundError(id?: string): HsError {
  return new HsError(404, "OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric.", {
    context: id === undefined ? undefined : { id: [id] },
  });
}

/** Builds responses with correlation ids from the emulator's stream. */
export class HsErrors {
  constructor(private prng: Prng) {}

  correlationId(): string {
    return this.prng.uuid();
  }

  response(e: HsError): Response {
    const body: Record<string, unknown> = {
      status: "error",
      message: e.message,
      correlationId: this.correlationId(),
      ...(e.extra.fields ?? {}),
    };
    if (!("errorType" in body)) body.category = e.category;
    if (e.extra.subCategory) body.subCategory = e.extra.subCategory;
    if (e.extra.context) body.context = e.extra.context;
    if (e.extra.errors) body.errors = e.extra.errors;
    return json(body, e.status, e.extra.headers ?? {});
  }

  make(status: number, category: string, message: string, extra: HsError["extra"] = {}): Response {
    return this.response(new HsError(status, category, message, extra));
  }
}
