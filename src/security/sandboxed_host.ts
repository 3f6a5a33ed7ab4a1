/**
 * The PluginHost users get from the package: the host of src/host/ with the
 * OS sandbox as its launch planner by default. The host itself knows nothing
 * of sandboxes (it takes a launch planner as a collaborator); this is where
 * the default is decided, one layer up.
 *
 * @module
 */

import process from "node:process";
import { PluginHost as HostBase } from "../host/host.ts";
import type { PluginHostOptions as HostBaseOptions } from "../host/options.ts";
import { sandboxPlanner, type SandboxPlannerOptions } from "./sandbox_planner.ts";

/** How strictly plugins are sandboxed; see {@link PluginHostOptions.sandbox}. */
export type SandboxMode = "required" | "best-effort" | "off";

/** Where the launcher exists: Linux (Landlock, seccomp, namespaces). Elsewhere there is no OS sandbox yet. */
export const sandboxSupported: boolean = process.platform === "linux";

/**
 * The default of {@link PluginHostOptions.sandbox}. Still "off" (Deno plugins get flags from their grants,
 * never -A): Bun resolves imports by listing every ancestor directory, which Landlock cannot grant without
 * granting the listing of everything below it, so an npm-installed Bun plugin cannot start under "required"
 * yet. Turn the sandbox on with `sandbox: "required"`; docs/security.md.
 */
export const sandboxDefault: SandboxMode = "off";

/** Options for {@link PluginHost}: the host's own, plus the sandbox. */
export interface PluginHostOptions extends HostBaseOptions {
  /**
   * The OS sandbox every plugin starts in (docs/security.md): `"required"` refuses a plugin
   * whose sandbox the kernel cannot fully set up, with an error that says what is missing; `"best-effort"` starts
   * it with what the kernel supports and reports the rest; `"off"` starts plugins unconfined (Deno plugins still
   * get permission flags derived from their grants, never -A; the default, see {@link sandboxDefault}). Ignored
   * when `launchPlanner` is given: that
   * planner decides alone.
   */
  sandbox?: SandboxMode;
  /** Per plugin name: narrows its manifest's grants and limits (never widens them). */
  narrow?: SandboxPlannerOptions["narrow"];
  /** The sandbox launcher binary. Default: the package's own (native/<platform>/pshm-launch, or zig-out). */
  launcher?: string;
}

function withSandbox(options: PluginHostOptions): HostBaseOptions {
  const { sandbox, narrow, launcher, ...rest } = options;
  if (sandbox !== undefined && sandbox !== "required" && sandbox !== "best-effort" && sandbox !== "off") {
    throw new TypeError(
      `PluginHost option sandbox must be "required", "best-effort" or "off", got ${JSON.stringify(sandbox)}`,
    );
  }
  if (rest.launchPlanner) return rest;
  return { ...rest, launchPlanner: sandboxPlanner({ sandbox: sandbox ?? sandboxDefault, narrow, launcher }) };
}

/**
 * Loads, runs, supervises and reloads plugins, each in its own OS process and
 * OS sandbox, and routes calls to them over shared memory (or a socket).
 *
 * @example
 * ```ts
 * import { PluginHost } from "../../mod.ts";
 * const host = new PluginHost({ dirs: ["examples/plugins"], logger: () => {} });
 * await host.load("echo");
 * console.assert(await host.call("echo", "echo", ["hi"]) === "hi");
 * await host.close();
 * ```
 */
export class PluginHost extends HostBase {
  constructor(options: PluginHostOptions = {}) {
    super(withSandbox(options));
  }
}
