/**
 * The admin API's failure domain: one class whose `code` names the failure
 * and whose `status` is the HTTP status it is answered with.
 *
 * @module
 */

/** Codes the admin API answers with, each with its HTTP status. */
export const adminErrorStatus = {
  missing_token: 401,
  invalid_token: 401,
  token_in_query: 400,
  malformed_json: 400,
  invalid_request: 422,
  invalid_config: 422,
  body_too_large: 413,
  not_found: 404,
  plugin_not_found: 404,
  plugin_not_running: 409,
  plugin_not_loaded: 409,
  plugin_busy: 409,
  already_running: 409,
  already_stopped: 409,
  action_failed: 502,
  tls_required: 500,
  token_file_insecure: 500,
  token_too_short: 500,
  internal: 500,
} as const;

/** One of {@link adminErrorStatus}'s codes. */
export type AdminErrorCode = keyof typeof adminErrorStatus;

/**
 * A refused admin request or a misconfigured admin server. The JSON body of
 * an error response is `{error: {code, message}}`.
 *
 * @example
 * ```ts
 * import { AdminError } from "./errors.ts";
 * const e = new AdminError("plugin_not_found", 'No plugin "x"; GET /api/plugins lists them');
 * console.assert(e.status === 404);
 * ```
 */
export class AdminError extends Error {
  /** The class name, "AdminError", as stack traces and `error.name` show it. */
  override name = "AdminError";
  /** Which failure this is (a AdminErrorCode): the stable identifier to check instead of the message. */
  readonly code: AdminErrorCode;
  /** The HTTP status this error is answered with. */
  readonly status: number;
  /** invalid_config: the setting that failed, as a dotted path ("" for the whole config). */
  readonly field?: string;
  /** Creates a AdminError; plugin-shm throws these itself, and tests or adapters may construct one too. */
  constructor(code: AdminErrorCode, message: string, options?: ErrorOptions & { field?: string }) {
    super(message, options);
    this.code = code;
    this.status = adminErrorStatus[code];
    if (options?.field !== undefined) this.field = options.field;
  }
}
