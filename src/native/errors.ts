/**
 * Errors of the native layer: the library and its segments. Every class extends
 * {@link PluginShmError} and carries a stable `code`; messages say what
 * happened and what to do.
 *
 * @module
 */

import { PluginShmError } from "../plugin_shm_error.ts";
import { statusNames } from "./_generated.ts";

/** Status codes returned by libpluginshm, by value: generated from zig/status.zig. */
export const nativeStatusCodes: typeof statusNames = statusNames;

/** A status name from {@link nativeStatusCodes}, or "unknown". */
export type NativeStatus = (typeof nativeStatusCodes)[keyof typeof nativeStatusCodes] | "unknown";

/**
 * A segment could not be created or attached: wrong token, wrong magic, a
 * layout version from another release, a truncated segment, and so on.
 *
 * @example
 * ```ts
 * import { SegmentError } from "./errors.ts";
 * const err = new SegmentError("token_mismatch", "wrong token");
 * console.assert(err.code === "token_mismatch");
 * ```
 */
export class SegmentError extends PluginShmError {
  /** The class name, "SegmentError", as stack traces and `error.name` show it. */
  override name = "SegmentError";
  /** The native status name. */
  readonly code: NativeStatus;
  /** Creates a SegmentError; plugin-shm throws these itself, and tests or adapters may construct one too. */
  constructor(code: NativeStatus, message: string) {
    super(message);
    this.code = code;
  }
}

/**
 * libpluginshm could not be found or loaded.
 *
 * @example
 * ```ts
 * import { NativeLibraryError } from "./errors.ts";
 * console.assert(new NativeLibraryError("x").code === "native_library");
 * ```
 */
export class NativeLibraryError extends PluginShmError {
  /** The class name, "NativeLibraryError", as stack traces and `error.name` show it. */
  override name = "NativeLibraryError";
  /** Always "native_library". */
  readonly code = "native_library";
}
