/**
 * Errors of the security layer. Every class extends {@link PluginShmError}
 * and carries a stable `code`; messages say what happened and what to do.
 *
 * @module
 */

import { PluginShmError } from "../plugin_shm_error.ts";

/**
 * The sandbox cannot plan a plugin's launch: the launcher or the runtime binary
 * is missing, or the host's launch plan is not the shape the sandbox wraps.
 *
 * @example
 * ```ts
 * import { SandboxError } from "./errors.ts";
 * const e = new SandboxError("runtime_missing", "The deno binary cannot be found; run make setup");
 * console.assert(e.code === "runtime_missing");
 * ```
 */
export class SandboxError extends PluginShmError {
  override name = "SandboxError";
  readonly code: "launcher_missing" | "runtime_missing" | "unexpected_plan";
  constructor(code: SandboxError["code"], message: string) {
    super(message);
    this.code = code;
  }
}
