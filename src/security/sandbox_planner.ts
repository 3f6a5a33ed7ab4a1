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
import { basename, dirname, join } from "node:path";
import process from "node:process";
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
  /** The launcher binary. Default: {@link defaultLauncher}. */
  launcher?: string;
}

const here = fileURLToPath(import.meta.url);
/** This package's root: two levels up from src/security/, three from the compiled dist/src/security/. */
const packageDir = join(dirname(here), /\/dist\/src\/security\/[^/]*$/.test(here) ? "../../.." : "../..");

/**
 * What a plugin may read of plugin-shm and its dependencies: the checkout, or, when
 * installed, the whole node_modules it sits in (npm hoists msgpackr and the rest
 * beside it, not inside it). Read-only, and code the host runs anyway.
 */
const readablePackageDir = basename(dirname(packageDir)) === "node_modules" ? dirname(packageDir) : packageDir;

/** Project files a runtime reads to resolve imports the Node way: package.json, deno.json(c), node_modules. */
const resolverNames = ["package.json", "deno.json", "deno.jsonc", "node_modules"];

/**
 * What resolving imports needs, read-only: the project files (and node_modules) of
 * every directory from `dir` up to the root — where a plugin's own dependencies
 * (plugin-shm/plugin among them) and the installing project's manifest live.
 */
function resolverPaths(dir: string): string[] {
  const found: string[] = [];
  for (let at = dir;; at = dirname(at)) {
    for (const name of resolverNames) {
      if (existsSync(join(at, name))) found.push(join(at, name));
    }
    if (dirname(at) === at) return found;
  }
}

/** Node's spelling of this platform, as native/ is laid out (linux-x64, linux-arm64). */
const platformDir = `${process.platform}-${process.arch}`;
const packagedLauncher = join(packageDir, "native", platformDir, "pshm-launch");

/**
 * The launcher: the one the package ships in native/<platform>-<arch>/, or, in a
 * checkout without it, the one `make build` leaves in zig-out/bin.
 */
export const defaultLauncher: string = existsSync(packagedLauncher)
  ? packagedLauncher
  : join(packageDir, "zig-out", "bin", "pshm-launch");

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
        packageDir: readablePackageDir,
        resolverFiles: [
          ...new Set([...resolverPaths(manifest.dir), ...resolverPaths(dirname(readablePackageDir))]),
        ],
        nativeLibrary: env[libraryEnv],
        denoDir: env.DENO_DIR ?? (env.HOME ? `${env.HOME}/.cache/deno` : undefined),
        // The SDK also probes variables the host may not set (the library location).
        sdkEnv: [...new Set([...Object.keys(env), libraryEnv, ...Object.values(launchEnv)])],
        transportPort: transportPort && Number.isInteger(transportPort) ? transportPort : undefined,
        transportSocket: transport === "unix" && address ? address : undefined,
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
