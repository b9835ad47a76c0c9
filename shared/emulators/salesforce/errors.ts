/**
 * Salesforce REST error bodies: an array of `{message, errorCode, fields?}`.
 * Docs: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm
 */
import { json } from "../common/http.ts";

export interface SfErrorItem {
  message: string;
  errorCode: string;
  fields?: string[];
}

export class SfError extends Error {
  constructor(
    readonly status: number,
    readonly items: SfErrorItem[],
    readonly headers: Record<string, string> = {},
  ) {
    super(items.map((i) => `${i.errorCode}: ${i.message}`).join("; "));
  }

  static one(status: number, errorCode: string, message: string, fields?: string[]): SfError {
    return new SfError(status, [{ message, errorCode, ...(fields ? { fields } : {}) }]);
  }

  response(extraHeaders: Record<string, string> = {}): Response {
    return json(this.items, this.status, { ...this.headers, ...extraHeaders });
  }
}

export const invalidSession = () =>
  SfError.one(401, "INVALID_SESSION_ID", "Session expired or invalid");
export const notFound = () =>
  SfError.one(404, "NOT_FOUND", "The requested resource does not exist");
export const malformedQuery = (msg: string) => SfError.one(400, "MALFORMED_QUERY", msg);
