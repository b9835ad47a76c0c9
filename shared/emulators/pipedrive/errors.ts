/**
 * Pipedrive error envelope: `{success: false, error, error_info, data: null,
 * additional_data: null}` plus `errorCode` (v1 style) or `code` (v2 style).
 * The SDK rejects with exactly this body (its axios interceptor unwraps it).
 * Docs: https://pipedrive.readme.io/docs/core-api-concepts-http-status-codes
 */
import { json } from "../common/http.ts";
import type { PdEntity } from "./fields.ts";

export const ERROR_INFO =
  "Please check developers.pipedrive.com for more information about Pipedrive API.";

export class PdError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly extra: { code?: string; errorCode?: number; headers?: Record<string, string> } = {},
  ) {
    super(message);
  }

  static notFound(entity: PdEntity | "user" | "webhook"): PdError {
    const name = entity === "organization"
      ? "Organization"
      : entity.charAt(0).toUpperCase() + entity.slice(1);
    return new PdError(404, `${name} not found`, { code: "ERR_ENTITY_NOT_FOUND" });
  }

  response(extraHeaders: Record<string, string> = {}): Response {
    const body: Record<string, unknown> = { success: false, error: this.message };
    if (this.extra.code) body.code = this.extra.code;
    if (this.extra.errorCode) body.errorCode = this.extra.errorCode;
    body.error_info = ERROR_INFO;
    body.data = null;
    body.additional_data = null;
    return json(body, this.status, { ...(this.extra.headers ?? {}), ...extraHeaders });
  }
}
