/**
 * The one base class of every plugin-shm error. Each layer keeps its own
 * errors beside it (src/native/errors.ts, src/transport/errors.ts,
 * src/protocol/errors.ts, src/host/errors.ts); src/errors.ts re-exports them
 * all.
 *
 * @module
 */

/**
 * A failure plugin-shm reports: one subclass per failure domain, each with a
 * stable machine-readable `code`, so callers can branch on
 * `error instanceof PluginShmError` and `error.code` without parsing messages.
 *
 * @example
 * ```ts
 * import { PluginShmError } from "./plugin_shm_error.ts";
 * class ExampleError extends PluginShmError {
 *   readonly code = "example";
 * }
 * const error = new ExampleError("something went wrong; do this instead");
 * console.assert(error instanceof PluginShmError && error.code === "example");
 * ```
 */
export abstract class PluginShmError extends Error {
  /** A stable name for the failure, e.g. "plugin_crashed" or "bad_token". */
  abstract readonly code: string;
}
