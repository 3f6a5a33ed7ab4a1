/**
 * The OS sandbox as a {@link LaunchPlanner}: every plugin starts through the
 * launcher `pshm-launch` with the Landlock, seccomp, rlimit and PID namespace
 * rules its manifest's grants allow (planSandbox), and a Deno plugin gets
 * permission flags derived from the same grants instead of `-A`. The host
 * applies it to every plugin (option `sandbox`, default `"required"`); the
 * security layer exports it as `sandboxPlanner`. The host may narrow a
 * plugin's grants and limits, never widen them.
 *
 * @module
 */

import { existsSync, realpathSync } from "node:fs";
import process from "node:process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { LaunchPlan, LaunchPlanner } from "./types.ts";
import type { Manifest } from "./manifest.ts";
import { launchEntryFor } from "./launch_plan.ts";
import { launchEnv } from "../protocol/launch.ts";
import { findLibrary, libraryEnv } from "../native/library.ts";
import {
  type Limits,
  narrowLimits,
  narrowPermissions,
  type Permissions,
  planSandbox,
  type SandboxContext,
} from "./sandbox_plan.ts";
import { SandboxError } from "./errors.ts";

/**
 * `required`: a platform or kernel without Landlock, seccomp or PID namespaces refuses the plugin with a
 * {@link SandboxError} (`kernel_unsupported`, `platform_unsupported`); `best-effort`: what the kernel lacks is
 * reported on the plugin's stderr and it runs with the rest (unconfined where there is no launcher for the
 * platform); `off`: no launcher (Deno plugins still get flags derived from the grants, never `-A`).
 */
export type SandboxMode = "required" | "best-effort" | "off";

/** What the host narrows for one plugin: each grant kind given keeps only the listed entries. */
export interface SandboxNarrowing {
  /** Grants to keep: for each kind given, only the manifest's entries also listed here remain. */
  permissions?: Permissions;
  /** Limits to apply instead of the manifest's, where lower. */
  limits?: Limits;
}

/** Per plugin, by name: narrows the manifest's grants and limits. A plugin not listed keeps its manifest's. */
export type Narrow = Record<string, SandboxNarrowing> | ((manifest: Manifest) => SandboxNarrowing | undefined);

/** Options of {@link sandboxPlanner}. */
export interface SandboxPlannerOptions {
  /** Default `"required"`; see {@link SandboxMode}. */
  sandbox?: SandboxMode;
  /** Narrows grants and limits per plugin. */
  narrow?: Narrow;
  /** The launcher binary. Default: {@link findLauncher}. */
  launcher?: string;
}

/** How often a plugin under the launcher checks on its own that its host lives (launchEnv.livenessCheckMs). */
export const sandboxedLivenessCheckMs = 30_000;

/** The environment variable that overrides where the launcher is found. */
export const launcherEnv = "PLUGIN_SHM_LAUNCHER";
/** The launcher's file name. */
export const launcherFileName = "pshm-launch";

const here = fileURLToPath(import.meta.url);
/** This package's root: two levels up from src/host/, three from the compiled dist/src/host/. */
const packageDir = join(dirname(here), /\/dist\/src\/host\/[^/]*$/.test(here) ? "../../.." : "../..");

/**
 * Where the launcher is, in the order the native library is looked up (src/native/library.ts):
 * `PLUGIN_SHM_LAUNCHER`; the package's prebuilt `native/<platform>-<arch>/pshm-launch` (`make package`, shipped
 * on npm); a local `zig-out/bin/pshm-launch` (`make build`). The last candidate is returned when none exists,
 * so the error names it.
 */
export function findLauncher(
  env: (name: string) => string | undefined = (name) => process.env[name],
  platform: string = process.platform,
  arch: string = process.arch,
): string {
  const explicit = env(launcherEnv);
  if (explicit) return explicit;
  const prebuilt = join(packageDir, "native", `${platform}-${arch}`, launcherFileName);
  if (existsSync(prebuilt)) return prebuilt;
  return join(packageDir, "zig-out", "bin", launcherFileName);
}

/**
 * The launcher of this package, without the environment override: the prebuilt one, else the local build.
 * (Read lazily by the planner, never at import: plugins import this module graph without env access.)
 */
export const defaultLauncher: string = findLauncher(() => undefined);

/**
 * The grants and limits a plugin runs with: its manifest's, narrowed by the host.
 * `cli.ts ls`, the planner and the host-function gate use the same answer.
 */
export function effectiveGrants(manifest: Manifest, narrow?: Narrow): { permissions: Permissions; limits: Limits } {
  const narrowing = typeof narrow === "function" ? narrow(manifest) : narrow?.[manifest.name];
  return {
    permissions: narrowPermissions(manifest.permissions ?? {}, narrowing?.permissions),
    limits: narrowLimits(manifest.limits ?? {}, narrowing?.limits),
  };
}

/** What runtimes read in a directory and its ancestors to resolve bare imports (node_modules, project files). */
const resolutionFiles = [
  "node_modules",
  "package.json",
  "deno.json",
  "deno.jsonc",
  "deno.lock",
  "package-lock.json",
  "bun.lock",
  "bunfig.toml",
];

/**
 * Readable so a plugin's imports resolve as they would unsandboxed: the node_modules directories and project
 * files that exist in the plugin's directory and its ancestors, and in this package's (installed from npm, its
 * dependencies sit beside it). Only existing paths: a missing one is "not found" in the sandbox too. Listable
 * (names only): each directory holding such a node_modules, because Bun lists every ancestor while it resolves.
 */
function dependencyPaths(pluginDir: string): { read: string[]; list: string[] } {
  const read = new Set<string>();
  const list = new Set<string>();
  for (const start of [pluginDir, packageDir]) {
    for (let dir = start;; dir = dirname(dir)) {
      for (const file of resolutionFiles) {
        const path = join(dir, file);
        if (!existsSync(path)) continue;
        read.add(path);
        if (file === "node_modules") list.add(dir);
      }
      if (dirname(dir) === dir) break;
    }
  }
  return { read: [...read], list: [...list] };
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
 * A launch planner that sandboxes every plugin by its grants. The host applies one by default; pass
 * this as `launchPlanner` to choose the launcher or narrowing yourself (the host's own then stays out).
 *
 * @example
 * ```ts
 * import { PluginHost } from "../../mod.ts";
 * import { sandboxPlanner } from "./sandbox.ts";
 * const host = new PluginHost({ launchPlanner: sandboxPlanner({ sandbox: "required" }) });
 * await host.close();
 * ```
 */
export function sandboxPlanner(options: SandboxPlannerOptions = {}): LaunchPlanner {
  const mode = options.sandbox ?? "required";
  let launcherFound: string | undefined = options.launcher;
  return {
    sandboxes: true,
    plan(manifest: Manifest, base: LaunchPlan): LaunchPlan {
      const launcher = launcherFound ??= findLauncher();
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
      // The launcher is Linux-only (Landlock, seccomp, namespaces): elsewhere "required" refuses, "best-effort"
      // runs the plugin with its runtime's own checks only.
      const confined = mode !== "off" && (process.platform === "linux" || mode === "required");
      const dependencies = dependencyPaths(manifest.dir);
      const context: SandboxContext = {
        runtime: manifest.runtime,
        runtimeBinary,
        launcher,
        pluginDir: manifest.dir,
        entryPath: script,
        packageDir,
        dependencyPaths: dependencies.read,
        listPaths: dependencies.list,
        nativeLibrary: env[libraryEnv],
        denoDir: env.DENO_DIR ?? (env.HOME ? `${env.HOME}/.cache/deno` : undefined),
        // The SDK also probes variables the host may not set (the library location).
        sdkEnv: [...new Set([...Object.keys(env), libraryEnv, ...Object.values(launchEnv)])],
        transportPort: transportPort && Number.isInteger(transportPort) ? transportPort : undefined,
        // The doorbell (shm) is a unix socket too: Deno's checks want the same grants for it.
        transportSocket: transport === "unix" ? address : env[launchEnv.doorbell] || undefined,
        mode: mode === "required" ? "required" : "best-effort",
        inspect: base.inspect,
      };
      const plan = planSandbox(context, permissions, limits);
      if (!confined) return { ...base, env, args: [...plan.runtimeArgs, ...entryArgs] };
      if (process.platform !== "linux") {
        throw new SandboxError(
          "platform_unsupported",
          `Plugin "${manifest.name}" cannot start sandboxed: the OS sandbox (Landlock, seccomp) exists on Linux only, ` +
            `not on ${process.platform}; pass sandbox: "best-effort" (runtime checks only) or "off" to PluginHost`,
        );
      }
      if (!existsSync(launcher)) {
        throw new SandboxError(
          "launcher_missing",
          `The sandbox launcher ${launcher} does not exist, so plugin "${manifest.name}" cannot start sandboxed; ` +
            `build it with \`make build\` (or set ${launcherEnv}), or pass sandbox: "off" to run plugins unconfined`,
        );
      }
      // The launcher takes the plugin down with the host (PR_SET_PDEATHSIG, PID namespace): the plugin's own
      // check that the host lives is a backstop, not worth waking every idle plugin each second.
      const sandboxedEnv = { ...env, [launchEnv.livenessCheckMs]: String(sandboxedLivenessCheckMs) };
      return { ...base, env: sandboxedEnv, command: plan.command, args: [...plan.args, ...entryArgs] };
    },
  };
}
