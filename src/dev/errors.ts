/**
 * Errors of the authoring tools: the test harness and the scaffolder. Each
 * extends {@link PluginShmError} with a stable `code`; messages say what
 * happened and what to do.
 *
 * @module
 */

import { PluginShmError } from "../plugin_shm_error.ts";

/**
 * The test harness could not do what a test asked (a wait ran out, a host
 * function was never declared) or found something left behind after
 * `close()` (a plugin process still running, a segment still in /dev/shm).
 *
 * @example
 * ```ts
 * import { HarnessError } from "./errors.ts";
 * const e = new HarnessError("timeout", "no event \"changed\" within 10 ms");
 * console.assert(e.code === "timeout");
 * ```
 */
export class HarnessError extends PluginShmError {
  /** "HarnessError". */
  override name = "HarnessError";
  /** "timeout", "unknown_host_function", "leak" or "closed". */
  readonly code: "timeout" | "unknown_host_function" | "leak" | "closed";
  /** Makes the error; the message says what to do. */
  constructor(code: HarnessError["code"], message: string) {
    super(message);
    this.code = code;
  }
}

/**
 * `cli.ts new` refused to write a plugin: a bad name, an unknown runtime, or
 * a target directory that is not empty.
 *
 * @example
 * ```ts
 * import { ScaffoldError } from "./errors.ts";
 * const e = new ScaffoldError("not_empty", "/tmp/x is not empty; pick another --dir");
 * console.assert(e.code === "not_empty");
 * ```
 */
export class ScaffoldError extends PluginShmError {
  /** "ScaffoldError". */
  override name = "ScaffoldError";
  /** "bad_name", "bad_runtime", "not_empty" or "no_tests". */
  readonly code: "bad_name" | "bad_runtime" | "not_empty" | "no_tests";
  /** Makes the error; the message says what to do. */
  constructor(code: ScaffoldError["code"], message: string) {
    super(message);
    this.code = code;
  }
}
