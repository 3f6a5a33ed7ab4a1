/**
 * The sandbox as the host's {@link LaunchPlanner}: every plugin starts through
 * the launcher `pshm-launch` with the Landlock, seccomp, rlimit and PID
 * namespace rules its manifest's grants allow (planSandbox), and a Deno plugin
 * gets permission flags derived from the same grants instead of `-A`. The host
 * may narrow a plugin's grants and limits (never widen them).
 *
 * @module
 */

import { existsSync, realpathSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { LaunchPlan, LaunchPlanner } from "../host/types.ts";
import type { Manifest } from "../host/manifest.ts";
import { launchEntryFor } from "../host/launch_plan.ts";
import { launchEnv } from "../protocol/launch.ts";
import { findLibrary, libraryEnv } from "../native/library.ts";
import {
  type Limits,
  narrowLimits,
  narrowPermissions,
  type Permissions,
  planSandbox,
  type SandboxContext,
} from "./permissions.ts";
import { SandboxError } from "./errors.ts";

/** What the host narrows for one plugin: each grant kind given keeps only the listed entries. */
export interface SandboxNarrowing {
  permissions?: Permissions;
  limits?: Limits;
}

/** Options of {@link sandboxPlanner}. */
export interface SandboxPlannerOptions {
  /**
   * `required` (default): a kernel without Landlock, seccomp or PID namespaces refuses the plugin (its
   * load fails with the launcher's report); `best-effort`: what the kernel lacks is reported and the plugin
   * runs with the rest; `off`: no launcher (Deno plugins still get flags derived from the grants, never -A).
   */
  sandbox?: "required" | "best-effort" | "off";
  /** Per plugin, by name: narrows the manifest's grants and limits. A plugin not listed keeps its manifest's. */
  narrow?: Record<string, SandboxNarrowing> | ((manifest: Manifest) => SandboxNarrowing | undefined);
  /** The launcher binary. Default: zig-out/bin/pshm-launch of this package (`make build`). */
  launcher?: string;
}

const here = fileURLToPath(import.meta.url);
/** This package's root: two levels up from src/security/, three from the compiled dist/src/security/. */
const packageDir = join(dirname(here), /\/dist\/src\/security\/[^/]*$/.test(here) ? "../../.." : "../..");

/** The launcher built by `make build`. */
export const defaultLauncher: string = join(packageDir, "zig-out", "bin", "pshm-launch");

/**
 * The grants and limits a plugin runs with: its manifest's, narrowed by the host.
 * `cli.ts ls` and the planner show and use the same answer.
 */
export function effectiveGrants(
  manifest: Manifest,
  narrow?: SandboxPlannerOptions["narrow"],
): { permissions: Permissions; limits: Limits } {
  const narrowing = typeof narrow === "function" ? narrow(manifest) : narrow?.[manifest.name];
  return {
    permissions: narrowPermissions(manifest.permissions ?? {}, narrowing?.permissions),
    limits: narrowLimits(manifest.limits ?? {}, narrowing?.limits),
  };
}

/** The library the plugin will open (the host's own lookup); a missing one is reported by the plugin's load. */
function nativeLibrary(): string {
  try {
    return findLibrary();
  } catch {
    return join(packageDir, "zig-out", "lib", "libpluginshm.so");
  }
}

/** `command` as spawn would find it on `path` (the launcher execs only absolute paths). */
function onPath(command: string, path: string): string {
  if (command.includes("/")) return command;
  for (const dir of path.split(":")) {
    if (dir && existsSync(join(dir, command))) return join(dir, command);
  }
  return command;
}

/**
 * A launch planner that sandboxes every plugin by its grants.
 *
 * @example
 * ```ts
 * import { PluginHost } from "../../mod.ts";
 * import { sandboxPlanner } from "./sandbox_planner.ts";
 * const host = new PluginHost({ launchPlanner: sandboxPlanner({ sandbox: "required" }) });
 * await host.close();
 * ```
 */
export function sandboxPlanner(options: SandboxPlannerOptions = {}): LaunchPlanner {
  const mode = options.sandbox ?? "required";
  const launcher = options.launcher ?? defaultLauncher;
  return {
    plan(manifest: Manifest, base: LaunchPlan): LaunchPlan {
      const { permissions, limits } = effectiveGrants(manifest, options.narrow);
      const script = launchEntryFor(manifest.runtime);
      const at = base.args.indexOf(script);
      if (at < 0) {
        throw new SandboxError(
          "unexpected_plan",
          `The launch plan for plugin "${manifest.name}" does not run the launch entry ${script}; ` +
            "put sandboxPlanner first if you chain launch planners",
        );
      }
      const entryArgs = base.args.slice(at + 1);
      // Granted env names the host narrowed away leave the environment too.
      const dropped = (manifest.permissions?.env ?? []).filter((name) => !(permissions.env ?? []).includes(name));
      const env = Object.fromEntries(Object.entries(base.env).filter(([name]) => !dropped.includes(name)));
      // The plugin opens exactly the library the sandbox lets it read, without probing package roots.
      env[libraryEnv] ??= nativeLibrary();
      const transport = env[launchEnv.transport];
      const address = env[launchEnv.address] ?? "";
      const transportPort = transport === "tcp" ? Number(address.slice(address.lastIndexOf(":") + 1)) : undefined;
      let runtimeBinary: string;
      try {
        runtimeBinary = realpathSync(onPath(base.command, env.PATH ?? ""));
      } catch (error) {
        throw new SandboxError(
          "runtime_missing",
          `The ${manifest.runtime} binary ${base.command} for plugin "${manifest.name}" cannot be found ` +
            `(${(error as Error).message}); install it (make setup) or put it on PATH`,
        );
      }
      const context: SandboxContext = {
        runtime: manifest.runtime,
        runtimeBinary,
        launcher,
        pluginDir: manifest.dir,
        entryPath: script,
        packageDir,
        nativeLibrary: env[libraryEnv],
        denoDir: env.DENO_DIR ?? (env.HOME ? `${env.HOME}/.cache/deno` : undefined),
        // The SDK also probes variables the host may not set (the library location).
        sdkEnv: [...new Set([...Object.keys(env), libraryEnv, ...Object.values(launchEnv)])],
        transportPort: transportPort && Number.isInteger(transportPort) ? transportPort : undefined,
        mode: mode === "off" ? "best-effort" : mode,
      };
      const plan = planSandbox(context, permissions, limits);
      if (mode !== "off" && !existsSync(launcher)) {
        throw new SandboxError(
          "launcher_missing",
          `The sandbox launcher ${launcher} does not exist, so plugin "${manifest.name}" cannot start sandboxed; ` +
            'build it with `make build`, or pass sandbox: "off" to run plugins unconfined',
        );
      }
      if (mode === "off") {
        return { ...base, env, args: [...plan.runtimeArgs, ...entryArgs] };
      }
      return { ...base, env, command: plan.command, args: [...plan.args, ...entryArgs] };
    },
  };
}
